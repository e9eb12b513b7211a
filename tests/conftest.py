"""Shared test helpers.

Real models come from ../shared/models (not part of the repo). Tests that need them, or the Arm
toolchain and QEMU, skip with a reason on a developer machine that lacks them, and fail in CI
(CI=true), where nothing may be skipped.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def shared_model(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        unavailable(f"shared model {rel} not found at {SHARED}")
    return p


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"missing tools: {', '.join(missing)} (bash .ci/setup installs them)")


def need_arm() -> None:
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m tinyc ARGS` as a user would; output captured as text."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("TINYC_TRACEBACK", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "tinyc", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=900)


def ort_run(path: Path | str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64).reshape(got.shape)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


@contextlib.contextmanager
def recording_templates(into: set[str]):
    """Collect the absolute paths of the Jinja templates that code generation loads meanwhile
    (tests that check every kernel template was exercised)."""
    import threading

    import jinja2

    original = jinja2.Environment.get_template
    lock = threading.Lock()

    def get_template(self, *args, **kwargs):
        t = original(self, *args, **kwargs)
        if t.filename:
            with lock:
                into.add(str(Path(t.filename).resolve()))
        return t

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jinja2.Environment, "get_template", get_template)
        yield
