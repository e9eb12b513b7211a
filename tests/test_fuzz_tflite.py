"""Fuzzing the .tflite reader (harness: tests/fuzz_tflite.py on tests/fuzz_harness.py), with the
rules of the ONNX fuzzing: every input ends in an accepted model (exit 0) or one clear error
(exit 2, one stderr line), no traceback, no hang, no stray file, bounded memory."""
from __future__ import annotations

import os
import struct
import sys

import pytest

from . import fuzz_harness, fuzz_tflite

pytest.importorskip("tflite", reason="the `tflite` package (tinyc's .tflite reader) is not installed")

CLI_SKIP = ("tinyc.frontend.tflite (the TFLite importer) is not merged yet: the fuzz cases ran through read_model "
            "only; `tinyc compile` on .tflite is tested once it is there")


def test_fuzz_run(tmp_path):
    """At least 1,000 cases (TINYC_FUZZ_TFLITE_CASES / TINYC_FUZZ_SEED change the count and seed)
    in child processes under a memory cap and a per-case alarm: zero failures, and both outcomes in
    sizeable numbers. Without the TFLite frontend the cases run read_model only (READ_ONLY)."""
    cases = int(os.environ.get("TINYC_FUZZ_TFLITE_CASES", "1000"))
    seed = int(os.environ.get("TINYC_FUZZ_SEED", "20240601"))
    s = fuzz_tflite.run_fuzz(cases, seed, tmp_path / "fuzz", jobs=2)
    report = fuzz_harness.failure_report(s)
    assert not s["failures"], (f"{len(s['failures'])} of {s['cases']} fuzz cases failed (python -m tests.fuzz_tflite "
                               f"--seed {seed} --case N replays one):\n{report}")
    accepted = s["read"] if fuzz_tflite.READ_ONLY else s["compiled"]
    assert s["cases"] == cases >= 1000
    assert accepted >= cases // 10, s
    assert s["refused"] >= cases // 10, s
    assert accepted + s["refused"] == cases


def test_unchanged_seeds_are_accepted(tmp_path):
    cases = [c for c in (fuzz_tflite.make_case(1, i) for i in range(200)) if not c.mutations]
    assert {c.base for c in cases} == set(fuzz_tflite.SEEDS)
    for c in cases:
        res = fuzz_tflite.run_case(c, tmp_path / "case")
        assert res["outcome"] == ("read" if fuzz_tflite.READ_ONLY else "compiled"), res


@pytest.mark.skipif(fuzz_tflite.READ_ONLY, reason=CLI_SKIP)
@pytest.mark.parametrize("seed", sorted(fuzz_tflite.SEEDS))
def test_seeds_compile_through_the_cli(seed, tmp_path):
    """`python -m tinyc compile model.tflite -t host -o out` (a real process) on each seed."""
    import subprocess

    from .conftest import ROOT
    from .tflite_seeds import seed_model, serialize

    (tmp_path / "model.tflite").write_bytes(serialize(seed_model(seed)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TINYC_TRACEBACK", None)
    r = subprocess.run([sys.executable, "-m", "tinyc", "compile", "model.tflite", "-t", "host", "-o", "out"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert (tmp_path / "out" / "report.json").is_file()


def test_harness_catches_an_escaping_exception(tmp_path, monkeypatch):
    """A reader that raises something other than TinycError (or prints two lines) fails the case."""
    import tinyc.frontend.tflite_file as tf

    case = next(c for c in (fuzz_tflite.make_case(1, i) for i in range(100)) if not c.mutations)

    def crash(path):
        raise struct.error("unpack_from requires a buffer of at least 4 bytes")

    monkeypatch.setattr(tf, "read_model_file", crash)
    assert "exception escaped" in fuzz_tflite.run_case(case, tmp_path / "case")["problem"]

    def two_lines(path):
        print("tinyc: error: one\nand two", file=sys.stderr)
        raise tf.TinycError("x")
    monkeypatch.setattr(tf, "read_model_file", two_lines)
    assert "stderr line" in fuzz_tflite.run_case(case, tmp_path / "case")["problem"]
