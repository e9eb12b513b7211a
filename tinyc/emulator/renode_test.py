"""Running a generated .robot with Renode's ``renode-test``: in a session (process group) of its
own, so that a timeout or Ctrl-C ends it with every Renode process it started; its results and
Renode's log in the build folder (``-r``), so that two runs do not share files; with a Python that
has the packages Renode's test runner imports."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinycError

RESULTS = "renode-results"  # renode-test's results folder, inside the build folder
STARTUP_S = 30.0  # on top of the test's own limit: Renode's start and the robot's set-up
# modules Renode's tests/run_tests.py imports (its tests/requirements.txt) -> their pip names
RUNNER_MODULES = {"robot": "robotframework", "psutil": "psutil", "yaml": "pyyaml"}


@dataclass
class RobotRun:
    passed: bool
    failure: str = ""  # the robot's failure message
    log_tail: list[str] = field(default_factory=list)  # the last lines of Renode's log
    output_tail: list[str] = field(default_factory=list)  # the last lines renode-test printed


def find_renode_test() -> str:
    tool = shutil.which("renode-test")
    if tool is None:
        raise TinycError("renode-test not found: Renode is not installed (no Debian, PyPI or npm package ships it; "
                         "install Renode's own release and put renode-test on PATH)")
    return tool


def _missing_modules(python: str) -> list[str] | None:
    """The runner's modules ``python`` cannot import (None: it does not run)."""
    code = "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m) is None))" % list(RUNNER_MODULES)
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.split() if r.returncode == 0 else None


def runner_python() -> str:
    """The folder of a ``python3`` that has the runner's modules: the first on PATH (what renode-test
    runs) when it has them, else the next python3 on PATH or /usr/bin's. None has them: a TinycError
    naming the missing packages."""
    seen, first = [], None
    for d in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]:
        exe = os.path.join(d or ".", "python3")
        if not os.access(exe, os.X_OK) or os.path.abspath(exe) in seen:  # not realpath: a venv's links to its base
            continue
        seen.append(os.path.abspath(exe))
        missing = _missing_modules(exe)
        if missing == []:
            return os.path.dirname(exe)
        if first is None and missing is not None:
            first = (exe, missing)
    if first is None:
        raise TinycError("renode-test runs python3, and there is none on PATH")
    exe, missing = first
    pkgs = " ".join(RUNNER_MODULES[m] for m in missing)
    raise TinycError(f"renode-test needs the Python packages {pkgs}, missing from {exe} (and from every other "
                     f"python3 on PATH): {exe} -m pip install {pkgs} (Renode's tests/requirements.txt)")


def _stop(proc: subprocess.Popen) -> None:
    """End renode-test's whole process group: SIGINT first (its runner closes Renode), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_robot(robot: Path, timeout: float) -> RobotRun:
    """Run ``robot`` with renode-test; the test stops itself after ``timeout`` s of wall-clock time
    (its Test Timeout), tinyc ends the whole process group STARTUP_S later or on Ctrl-C."""
    tool = find_renode_test()
    python_dir = runner_python()
    results = robot.parent / RESULTS
    shutil.rmtree(results, ignore_errors=True)
    env = dict(os.environ, PATH=os.pathsep.join([python_dir, os.environ.get("PATH", "")]))
    log = robot.parent / "renode-test.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen([tool, robot.name, "-r", str(results.resolve())], cwd=robot.parent, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout + STARTUP_S)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise TinycError(f"timeout: renode-test did not finish within {timeout + STARTUP_S:g} s (--timeout "
                             f"{timeout:g} + {STARTUP_S:g} s for Renode's start); it was stopped with every "
                             f"Renode process it started. Files in {robot.parent}") from None
        except KeyboardInterrupt:
            _stop(proc)
            raise
        finally:
            if _group_alive(proc.pid):  # renode-test ended, something it started did not
                _stop(proc)
    printed = log.read_text(errors="replace").strip().splitlines()
    if proc.returncode == 0:
        return RobotRun(True, output_tail=printed[-5:])
    return RobotRun(False, _failure_message(results), _log_tail(results), printed[-8:])


def _failure_message(results: Path) -> str:
    """The failed test's message in renode-test's result files (without what its teardown added)."""
    for xml in sorted(results.glob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            continue
        for test in root.iter("test"):
            status = test.find("status")
            if status is not None and status.get("status") == "FAIL" and (status.text or "").strip():
                return status.text.split("\n\nAlso teardown failed")[0].strip()
    return ""


def _log_tail(results: Path, n: int = 10) -> list[str]:
    """The last lines of Renode's log of the failed test (saved by its Test Teardown)."""
    logs = sorted((results / "logs").glob("*.log"))
    return logs[-1].read_text(errors="replace").strip().splitlines()[-n:] if logs else []
