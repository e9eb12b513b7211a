"""A plain (non-editable) install carries the templates and targets: build the wheel, unpack it
away from the source tree, and compile a model with it."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_wheel_contains_templates_and_targets_and_works_outside_the_repo(tmp_path):
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "dist"), "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("tinyc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # every file of the package (sources, the IR grammar, the kernel cost calibration, ...)
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tinyc").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    for folder in ("templates", "targets"):
        expected |= {f"tinyc/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / folder).rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts}
    assert expected - names == set()
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-c", "import tinyc.resources as r; print(r.data_dir('templates'))"],
                       capture_output=True, text=True, cwd=work, env=env)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(site)), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "tinyc", "compile", str(ROOT / "examples/digits/digits_mlp.onnx"),
                        "-t", "cortex-m4", "-o", "out"], capture_output=True, text=True, cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert (work / "out" / "digits_mlp.c").exists()
