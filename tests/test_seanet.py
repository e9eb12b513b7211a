"""TFLite's 16x8 scheme on the seanet models (../shared/models/tflm/seanet/): 127 single-operator
.tflite files (int16 activations, int8 weights, int64 biases) with their inputs and TFLite Micro's
outputs as CSV files (one line of flattened values). Each must equal its golden output exactly, in
the reference interpreter and in generated C on the host; a sample covering every operator also on
the emulated Cortex-M4."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, need_tools

SEANET = ROOT.parent / "shared" / "models" / "tflm" / "seanet"
_TYPES = {"int16": np.int16, "int32": np.int32, "int8": np.int8}


def _models() -> list[str]:
    if not SEANET.is_dir():
        return []
    return sorted((str(p.relative_to(SEANET))[:-len(".tflite")] for p in SEANET.glob("*/*.tflite")),
                  key=lambda k: (k.split("/")[0], int(re.sub(r"\D", "", k.split("/")[1]) or 0)))


MODELS = _models()
# one firmware per model on the emulator: a sample of every operator directory (the first three of each)
M4_SAMPLE = [k for k in MODELS if int(re.sub(r"\D", "", k.split("/")[1])) < 3]


def _csv(path: Path) -> np.ndarray:
    dtype = _TYPES[path.stem.rsplit("_", 1)[1]]
    return np.array([int(v) for v in path.read_text().replace("\n", ",").split(",") if v.strip()], dtype)


def _case(key: str):
    """(graph, feeds by input name, golden output) of one model."""
    if not SEANET.is_dir():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{SEANET} is missing (the seanet models are required under CI)")
        pytest.skip("../shared/models/tflm/seanet is not available")
    base = SEANET / key
    g = load_graph(base.with_suffix(".tflite"))
    name = base.name
    ins = {int(m.group(1)): p for p in base.parent.glob(f"{name}_input*_*.csv")
           if (m := re.fullmatch(rf"{re.escape(name)}_input(\d+)_\w+\.csv", p.name))}
    assert sorted(ins) == list(range(len(g.inputs))), f"{key}: inputs {sorted(ins)} for {g.inputs}"
    feeds = {n: _csv(ins[k]).reshape(g.tensors[n].shape) for k, n in enumerate(g.inputs)}
    golden = next(base.parent.glob(f"{name}_golden_*.csv"))
    return g, feeds, _csv(golden)


def test_all_127_models_are_here():
    if not SEANET.is_dir() and os.environ.get("CI") != "true":
        pytest.skip("../shared/models/tflm/seanet is not available")
    assert len(MODELS) == 127


@pytest.mark.parametrize("key", MODELS)
def test_reference_equals_tflite_micro_golden(key):
    g, feeds, golden = _case(key)
    got = interpreter.run(g, feeds)[g.outputs[0]]
    assert got.dtype == golden.dtype
    np.testing.assert_array_equal(got.reshape(-1), golden, err_msg=key)


@pytest.mark.parametrize("key", MODELS)
def test_host_c_equals_tflite_micro_golden(key, tmp_path):
    need_tools("cc")
    g, feeds, golden = _case(key)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", [feeds])
    np.testing.assert_array_equal(res.outputs[0][g.outputs[0]].reshape(-1), golden, err_msg=f"{key} (host C)")


@pytest.mark.emulator
def test_cortex_m4_sample_equals_tflite_micro_golden(tmp_path):
    """The first three models of every operator directory on the emulated Cortex-M4."""
    need_arm()
    target = get_target("cortex-m4")
    assert len(M4_SAMPLE) >= 20
    for key in M4_SAMPLE:
        g, feeds, golden = _case(key)
        res = run_on_target(generate(g, target), target, tmp_path / key.replace("/", "_"), [feeds])
        np.testing.assert_array_equal(res.outputs[0][g.outputs[0]].reshape(-1), golden, err_msg=f"{key} (cortex-m4)")
