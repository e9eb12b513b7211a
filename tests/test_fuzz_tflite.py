"""Fuzzing the .tflite reader (harness: tests/fuzz_tflite.py on tests/fuzz_harness.py), with the
rules of the ONNX fuzzing: every input ends in an accepted model (exit 0) or one clear error
(exit 2, one stderr line), no traceback, no hang, no stray file, bounded memory."""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from . import fuzz_harness, fuzz_tflite


def test_fuzz_run(tmp_path):
    """At least 1,000 cases (TINYC_FUZZ_TFLITE_CASES / TINYC_FUZZ_SEED change the count and seed)
    in child processes under a memory cap and a per-case alarm: zero failures, and both outcomes in
    sizeable numbers."""
    cases = int(os.environ.get("TINYC_FUZZ_TFLITE_CASES", "1000"))
    seed = int(os.environ.get("TINYC_FUZZ_SEED", "20240601"))
    s = fuzz_tflite.run_fuzz(cases, seed, tmp_path / "fuzz", jobs=2)
    report = fuzz_harness.failure_report(s)
    assert not s["failures"], (f"{len(s['failures'])} of {s['cases']} fuzz cases failed (python -m tests.fuzz_tflite "
                               f"--seed {seed} --case N replays one):\n{report}")
    assert s["cases"] == cases >= 1000
    assert s["compiled"] >= cases // 10, s
    assert s["refused"] >= cases // 10, s
    assert s["compiled"] + s["refused"] == cases


def test_unchanged_seeds_are_accepted(tmp_path):
    cases = [c for c in (fuzz_tflite.make_case(1, i) for i in range(200)) if not c.mutations]
    assert {c.base for c in cases} == set(fuzz_tflite.SEEDS)
    for c in cases:
        res = fuzz_tflite.run_case(c, tmp_path / "case")
        assert res["outcome"] == "compiled", res


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


# --------------------------------------------------------------------------------------------
# The corpus: each distinct bug the .tflite fuzzer found in the frontend, kept as the case's file;
# corpus.json gives its expected exit code, a part of its message and what it once broke.
# --------------------------------------------------------------------------------------------

CORPUS = Path(__file__).parent / "fuzz_corpus_tflite"
MANIFEST = json.loads((CORPUS / "corpus.json").read_text())


def test_corpus_manifest_lists_every_file():
    assert {p.name for p in CORPUS.glob("*.tflite")} == set(MANIFEST)
    assert all(v["exit"] in (0, 2) for v in MANIFEST.values())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_case(name, tmp_path):
    """`python -m tinyc compile model.tflite -t host -o out` as a user runs it: the expected exit
    code, one clean error line with the expected part, or a report and an empty stderr."""
    from .test_fuzz import _check_outcome, _compile

    want = MANIFEST[name]
    shutil.copy(CORPUS / name, tmp_path / "model.tflite")
    r = _compile(tmp_path / "model.tflite", tmp_path)
    _check_outcome(r)
    assert r.returncode == want["exit"], f"{want['found']}: {r.stderr or r.stdout}"
    assert want["match"] in r.stderr, r.stderr
    if r.returncode == 0:
        assert (tmp_path / "out" / "report.json").is_file()


def test_softmax_without_options_is_beta_0_for_tflite_micro():
    """Why softmax_without_options is refused: TFLite Micro reads the absent SoftmaxOptions as beta
    0 (every output 1/N), not as tinyc's beta 1."""
    from .tflite_builders import run_tflm

    x = np.random.default_rng(0).standard_normal((1, 6, 6, 1)).astype(np.float32)
    (y,) = run_tflm((CORPUS / "softmax_without_options.tflite").read_bytes(), [x])
    np.testing.assert_array_equal(y, np.full(y.shape, 1 / y.size, np.float32))
