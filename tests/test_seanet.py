"""TFLite's 16x8 scheme on the seanet models (../shared/models/tflm/seanet/): 127 single-operator
.tflite files (int16 activations, int8 weights, int64 biases) with their inputs and TFLite Micro's
outputs as CSV files (one line of flattened values). Each must equal its golden output exactly, in
the reference interpreter and in generated C on the host and on the emulated Cortex-M4."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, need_tools, unavailable

SEANET = ROOT.parent / "shared" / "models" / "tflm" / "seanet"
_TYPES = {"int16": np.int16, "int32": np.int32, "int8": np.int8}


def _models() -> list[str]:
    if not SEANET.is_dir():
        return []
    return sorted((str(p.relative_to(SEANET))[:-len(".tflite")] for p in SEANET.glob("*/*.tflite")),
                  key=lambda k: (k.split("/")[0], int(re.sub(r"\D", "", k.split("/")[1]) or 0)))


MODELS = _models()


def _csv(path: Path) -> np.ndarray:
    dtype = _TYPES[path.stem.rsplit("_", 1)[1]]
    return np.array([int(v) for v in path.read_text().replace("\n", ",").split(",") if v.strip()], dtype)


def _case(key: str):
    """(graph, feeds by input name, golden output) of one model."""
    if not SEANET.is_dir():
        unavailable("../shared/models/tflm/seanet is not available")
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
    if not SEANET.is_dir():
        unavailable("../shared/models/tflm/seanet is not available")
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
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m55"])
def test_cortex_m4_equals_tflite_micro_golden(target_name, tmp_path):
    """Every model on the emulated Cortex-M4 and Cortex-M55 (its Helium 16x8 convolution, Add/Sub,
    padding and slice copies; one firmware each: about a minute in all per target)."""
    need_arm()
    target = get_target(target_name)
    for key in MODELS:
        g, feeds, golden = _case(key)
        res = run_on_target(generate(g, target), target, tmp_path / key.replace("/", "_"), [feeds])
        np.testing.assert_array_equal(res.outputs[0][g.outputs[0]].reshape(-1), golden, err_msg=f"{key} ({target_name})")


# The tflite-micro package (0.dev20261023) computes LEAKY_RELU's multipliers from the scales in
# double; TFLite Micro's kernel source and the goldens use the float32 quotients (tinyc too), which
# differ by 1 LSB on these models' values (6 in all).
PACKAGE_DIFFERS = {"leaky_relu/leaky_relu3", "leaky_relu/leaky_relu11", "leaky_relu/leaky_relu18",
                   "leaky_relu/leaky_relu19"}


def test_tflite_micro_package_reproduces_the_goldens():
    """The oracle checked: the tflite-micro package on the same files and inputs gives the goldens,
    except PACKAGE_DIFFERS (by at most 1)."""
    from .tflite_builders import run_tflm_all

    differ = set()
    for key in MODELS:
        g, feeds, golden = _case(key)
        out = run_tflm_all((SEANET / f"{key}.tflite").read_bytes(), [[feeds[n] for n in g.inputs]], 4 << 20)[0]
        out = out.reshape(-1).astype(np.int64)
        if not np.array_equal(out, golden):
            differ.add(key)
            assert np.abs(out - golden).max() == 1, key
    assert differ == PACKAGE_DIFFERS
