"""Progress output: one line updated in place on a terminal, nothing (verify) or one final line
(calibration) off a terminal; the counts against the number of samples run."""
from __future__ import annotations

import io
import sys

import numpy as np

from tinyc import interpreter
from tinyc.cli import main
from tinyc.frontend.onnx import import_model
from tinyc.quant import calibrate

from .conftest import shared_model

HELLO = "hello-world/hello_world_float.onnx"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _verify(monkeypatch, capsys, stream) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    assert main(["verify", str(shared_model(HELLO)), "-t", "host", "--samples", "30"]) == 0
    return capsys.readouterr().out


def test_verify_shows_progress_only_on_a_terminal(monkeypatch, capsys):
    tty, pipe = Tty(), io.StringIO()
    out_tty = _verify(monkeypatch, capsys, tty)
    out_pipe = _verify(monkeypatch, capsys, pipe)
    assert out_tty == out_pipe and out_pipe.splitlines()[-1] == "PASS"  # stdout the same either way
    assert pipe.getvalue() == ""  # nothing extra in CI or a pipe
    err = tty.getvalue()
    steps = [int(s.split("/")[0].rsplit(" ", 1)[1]) for s in err.split("\r\x1b[K") if "reference interpreter:" in s]
    assert steps == list(range(1, 31))  # one update per sample, 30 samples
    assert "building and running the firmware on 30 sample(s) natively" in err
    assert "\n" not in err and err.endswith("\r\x1b[K")  # the line is cleared at the end


def _calibrate(monkeypatch, stream):
    g = import_model(__import__("onnx").load(shared_model(HELLO)))
    x = np.linspace(0, 6, 24, dtype=np.float32).reshape(24, 1, 1)
    samples = [{g.inputs[0]: s} for s in x]
    monkeypatch.setattr(sys, "stderr", stream)
    return g, x, calibrate.collect(g, samples, g.outputs)


def test_calibration_progress_is_one_line(monkeypatch):
    tty, pipe = Tty(), io.StringIO()
    g, x, ranges = _calibrate(monkeypatch, tty)
    assert _calibrate(monkeypatch, pipe)[2] == ranges
    assert pipe.getvalue() == "tinyc: calibration (range): 24/24 samples (100%)\n"  # a single final line
    err = tty.getvalue()
    assert err.count("\n") == 1 and err.endswith("calibration (range): 24/24 samples (100%)\n")
    assert err.count("\r\x1b[K") == 24  # one update per sample, in place
    # the ranges themselves: the output's min and max over the samples, by the interpreter
    y = np.array([interpreter.run(g, {g.inputs[0]: s})[g.outputs[0]] for s in x])
    assert ranges[g.outputs[0]] == (float(y.min()), float(y.max()))
