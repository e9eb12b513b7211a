"""Importer fuzzing (harness: tests/fuzz_onnx.py): every input ends in a compiled model (exit 0) or
one clear error (exit 2, one stderr line), with no traceback, no hang, no stray file and bounded
memory. The corpus in tests/fuzz_corpus/ keeps the nastiest cases the fuzzer found, reduced;
corpus.json gives each one's expected exit code, a part of its message and what it once broke."""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from . import fuzz_harness, fuzz_onnx
from .conftest import ROOT

CORPUS = Path(__file__).parent / "fuzz_corpus"
MANIFEST = json.loads((CORPUS / "corpus.json").read_text())
OUTSIDE = b"OUTSIDE-THE-MODEL-FOLDER"


def _files(folder: Path) -> dict[str, bytes | str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


def _compile(model: Path, cwd: Path, memory: int | None = None) -> subprocess.CompletedProcess:
    """`python -m tinyc compile MODEL -t host -o out` in cwd, its address space capped if asked."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TINYC_TRACEBACK", None)

    def cap():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "tinyc", "compile", str(model), "-t", "host", "-o", "out"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=cap)


def _check_outcome(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), f"exit {r.returncode}: {r.stderr}"
    lines = r.stderr.splitlines()
    if r.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("tinyc: error: "), r.stderr
    else:
        assert not lines, r.stderr


def test_corpus_manifest_lists_every_file():
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.onnx")}
    assert files == set(MANIFEST)
    assert len(files) >= 40
    assert all(v["exit"] in (0, 2) for v in MANIFEST.values())


@pytest.mark.parametrize("rel", sorted(MANIFEST))
def test_corpus_case(rel, tmp_path):
    """Through the CLI as a user runs it: the model's folder copied to tmp/model (external data and
    symlinks too), a canary outside.bin beside it; afterwards nothing new outside out/ and nothing
    changed."""
    want = MANIFEST[rel]
    src = CORPUS / rel
    model_dir = tmp_path / "model"
    if src.parent != CORPUS:
        shutil.copytree(src.parent, model_dir, symlinks=True)
    else:
        model_dir.mkdir()
        shutil.copy(src, model_dir / "model.onnx")
    (tmp_path / "outside.bin").write_bytes(OUTSIDE * 64)
    before = _files(tmp_path)
    r = _compile(model_dir / "model.onnx", tmp_path)
    _check_outcome(r)
    assert r.returncode == want["exit"], f"{want['found']}: {r.stderr or r.stdout}"
    assert want["match"] in r.stderr, r.stderr
    after = {k: v for k, v in _files(tmp_path).items() if not k.startswith("out" + os.sep)}
    assert after == before, "a file was written or changed outside the output folder"
    if r.returncode == 0:
        assert (tmp_path / "out" / "report.json").is_file()


def test_fuzz_run(tmp_path):
    """At least 2,000 fuzz cases (TINYC_FUZZ_CASES / TINYC_FUZZ_SEED change the count and seed) in
    child processes under a memory cap and a per-case alarm: zero failures, and both outcomes in
    sizeable numbers (so that it cannot pass by refusing, or compiling, everything)."""
    cases = int(os.environ.get("TINYC_FUZZ_CASES", "2000"))
    seed = int(os.environ.get("TINYC_FUZZ_SEED", "20240601"))
    s = fuzz_onnx.run_fuzz(cases, seed, tmp_path / "fuzz", jobs=2)
    report = fuzz_harness.failure_report(s)
    assert not s["failures"], (f"{len(s['failures'])} of {s['cases']} fuzz cases failed (saved under "
                               f"{tmp_path / 'fuzz' / 'failures'}; python -m tests.fuzz_onnx --seed {seed} --case N "
                               f"--traceback replays one):\n{report}")
    assert s["cases"] == cases >= 2000
    assert s["compiled"] >= cases // 10, s
    assert s["refused"] >= cases // 10, s
    assert s["compiled"] + s["refused"] == cases


def _absurd_models(folder: Path) -> dict[str, Path]:
    """Models that declare absurd sizes in each way the importer meets them."""
    one = numpy_helper.from_array(np.ones((1, 1), np.float32), "one")
    out = {}

    def save(name, nodes, inputs, inits):
        g = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        d = folder / name
        d.mkdir()
        onnx.save(m, d / "model.onnx")
        out[name] = d / "model.onnx"
        return d

    x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100000, 100000, 100000])]
    save("input", [helper.make_node("Relu", ["x"], ["y"])], x, [])
    save("expand", [helper.make_node("Expand", ["one", "shape"], ["y"])], [],
         [one, numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "shape")])
    save("pad", [helper.make_node("Pad", ["one", "pads"], ["y"])], [],
         [one, numpy_helper.from_array(np.array([0, 0, 10**6, 10**6], np.int64), "pads")])
    save("resize", [helper.make_node("Resize", ["one4", "", "scales"], ["y"])], [],
         [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "one4"),
          numpy_helper.from_array(np.array([1, 1, 1e5, 1e5], np.float32), "scales")])
    save("constantofshape", [helper.make_node("ConstantOfShape", ["shape"], ["y"])], [],
         [numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "shape")])
    big = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**20, 2**20])
    save("initializer", [helper.make_node("Add", ["w", "w"], ["y"])], [], [big])
    # external data: a 2 GiB sparse file declared as the weight (read whole, it would not fit)
    ext = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**29], data_location=TensorProto.EXTERNAL)
    e = ext.external_data.add()
    e.key, e.value = "location", "w.bin"
    d = save("external", [helper.make_node("Relu", ["w"], ["y"])], [], [ext])
    with open(d / "w.bin", "wb") as f:
        f.truncate(2**31)
    return out


@pytest.mark.parametrize("kind", ["input", "expand", "pad", "resize", "constantofshape", "initializer", "external"])
def test_absurd_shapes_are_refused_before_allocating(kind, tmp_path):
    """Under a 1 GiB address-space cap the compiler refuses each model with exit 2 (an attempt to
    allocate the tensor would end in MemoryError: exit 3)."""
    model = _absurd_models(tmp_path)[kind]
    r = _compile(model, tmp_path, memory=2**30)
    _check_outcome(r)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "refuses" in r.stderr or "unsupported op: ConstantOfShape" in r.stderr, r.stderr


def test_harness_detects_each_kind_of_failure(tmp_path, monkeypatch):
    """The harness itself: a fake compiler that crashes, prints two lines, hangs, or writes beside
    the model is caught each time (a fuzz run with zero failures means something)."""
    import tinyc.cli

    case = next(c for c in (fuzz_onnx.make_case(1, i) for i in range(100)) if not c.mutations)  # an unchanged seed

    def outcome(fake, seconds=5):
        monkeypatch.setattr(tinyc.cli, "main", fake)
        return fuzz_onnx.run_case(case, tmp_path / "case", seconds)

    def crash(argv):
        raise KeyError("boom")

    def two_lines(argv):
        print("tinyc: error: one\nand two", file=sys.stderr)
        return 2

    def hang(argv):
        while True:
            pass

    def stray(argv):
        Path("model/stray.c").write_text("")
        return 0

    def internal(argv):
        print("tinyc: internal error: KeyError", file=sys.stderr)
        return 3

    def ok(argv):
        Path("out").mkdir()
        Path("out/report.json").write_text("{}")
        return 0

    assert "exception escaped" in outcome(crash)["problem"]
    assert "stderr line" in outcome(two_lines)["problem"]
    assert "hang" in outcome(hang, seconds=1)["problem"]
    assert "stray file" in outcome(stray)["problem"]
    assert "exit code 3" in outcome(internal)["problem"]
    assert outcome(ok)["outcome"] == "compiled"
