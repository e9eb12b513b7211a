"""Open a page in headless Chromium and look at it as a user's browser renders it.

Talks the DevTools protocol over --remote-debugging-pipe (fd 3: commands in, fd 4: replies out,
JSON messages ending in NUL), so no extra Python package is needed: load the page, collect console
errors and uncaught exceptions, evaluate expressions in it and take a full-page screenshot.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    values: dict[str, object] = field(default_factory=dict)  # expression -> value
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int, timeout: float):
        self.proc, self.w, self.r, self.timeout = proc, to_browser, from_browser, timeout
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit code {self.proc.poll()})")
                self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass


def open_page(html: Path, expressions: list[str], width: int = 1200, height: int = 900,
              timeout: float = 60.0) -> Page:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    cmd_r, cmd_w = os.pipe()  # we write commands, chromium reads fd 3
    rep_r, rep_w = os.pipe()  # chromium writes replies to fd 4, we read

    def child_fds():  # fds 3 and 4, inheritable (the pipes may themselves be 3..6, close-on-exec)
        a, b = os.dup(cmd_r), os.dup(rep_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with tempfile.TemporaryDirectory(prefix="tinyc-chromium-") as profile:
        proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, close_fds=False)
        os.close(cmd_r)
        os.close(rep_w)
        pipe = _Pipe(proc, cmd_w, rep_r, timeout)
        page = Page()
        try:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
            session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session)
            pipe.call("Page.navigate", session, url=html.resolve().as_uri())
            pipe.wait_event("Page.loadEventFired", timeout)
            pipe.drain(0.5)  # late console messages
            for e in pipe.events:
                method, p = e.get("method"), e.get("params", {})
                if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                    page.errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                            for a in p.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    d = p.get("exceptionDetails", {})
                    page.errors.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
                elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                    page.errors.append("log: " + p["entry"].get("text", ""))
                elif method == "Network.loadingFailed":
                    page.errors.append("load failed: " + p.get("errorText", ""))
                elif method == "Network.requestWillBeSent":
                    url = p.get("request", {}).get("url", "")
                    if not url.startswith(("file:", "data:", "about:")):
                        page.errors.append(f"network request: {url}")
            for expr in expressions:
                r = pipe.call("Runtime.evaluate", session, expression=expr, returnByValue=True)
                if "exceptionDetails" in r:
                    raise RuntimeError(f"evaluating {expr!r}: {r['exceptionDetails'].get('text')}")
                page.values[expr] = r["result"].get("value")
            shot = pipe.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)
            page.screenshot = base64.b64decode(shot["data"])
            try:
                pipe.call("Browser.close")
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(cmd_w)
            os.close(rep_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return page
