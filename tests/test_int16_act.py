"""int16 (16x8) LOGISTIC, TANH and SOFTMAX from .tflite files through the compiler: the reference
interpreter and the generated C (host; a few on the emulated cortex-m4) equal TFLite Micro."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.compiler import load_graph
from tinyc.codegen.emit import generate
from tinyc.emulator.runner import run_on_target
from tinyc.targets import get_target

from .conftest import need_arm
from .test_int16_lut import ALL, unary_model
from .tflite_builders import run_tflm

CASES = [("LOGISTIC", [1, 65536], 2.0 ** -12), ("LOGISTIC", [1, 65536], 3.7e-4), ("TANH", [1, 65536], 2.0 ** -11),
         ("TANH", [1, 65536], 1e-5), ("SOFTMAX", [64, 10], 3e-3), ("SOFTMAX", [2, 8, 300], 2.0 ** -10)]


def _case(op, shape, scale, tmp_path):
    path = tmp_path / f"{op.lower()}.tflite"
    path.write_bytes(unary_model(op, shape, scale, options=("SoftmaxOptions", {"beta": 1.0}) if op == "SOFTMAX" else None))
    if shape == [1, 65536]:
        x = ALL
    else:
        x = np.random.default_rng(len(shape)).integers(-32768, 32768, size=shape).astype(np.int16)
        x.reshape(-1, shape[-1])[0] = 0
    return path, x, run_tflm(path.read_bytes(), [x])[0]


def _compiled(path, x, target, tmp_path):
    g = load_graph(path)
    feeds = {g.inputs[0]: x}
    ref = interpreter.run(g, feeds)[g.outputs[0]]
    got = run_on_target(generate(g, get_target(target)), get_target(target), tmp_path / target, [feeds])
    return g, ref, got.outputs[0][g.outputs[0]]


@pytest.mark.parametrize("op,shape,scale", CASES)
def test_reference_and_host_c_equal_tflite_micro(op, shape, scale, tmp_path):
    path, x, want = _case(op, shape, scale, tmp_path)
    g, ref, c = _compiled(path, x, "host", tmp_path)
    assert [n.op for n in g.nodes] == [{"LOGISTIC": "Sigmoid", "TANH": "Tanh", "SOFTMAX": "Softmax"}[op]]
    assert ref.dtype == np.int16
    np.testing.assert_array_equal(ref, want)
    np.testing.assert_array_equal(c, want)


@pytest.mark.emulator
@pytest.mark.parametrize("op,shape,scale", [CASES[1], CASES[3], CASES[4]])
def test_cortex_m4_equals_tflite_micro(op, shape, scale, tmp_path):
    need_arm()
    path, x, want = _case(op, shape, scale, tmp_path)
    if x.size > 4096:
        x, want = x[:, ::16].copy(), want[:, ::16].copy()  # a 4096-value sample of every input's range
        path.write_bytes(unary_model(op, list(x.shape), scale))
    np.testing.assert_array_equal(_compiled(path, x, "cortex-m4", tmp_path)[2], want)


def test_other_output_scale_is_requantized_after_the_kernel(tmp_path):
    """TFLite's int16 LOGISTIC writes 2^-15; any other output scale (ONNX QDQ models have their
    calibrated one) gets a Requantize after it, visible in the IR."""
    path, x, want15 = _case("LOGISTIC", [1, 65536], 3.7e-4, tmp_path)
    path.write_bytes(unary_model("LOGISTIC", [1, 65536], 3.7e-4, out_scale=2.0 ** -14))
    g, ref, c = _compiled(path, x, "host", tmp_path)
    assert [n.op for n in g.nodes] == ["Sigmoid", "Requantize"]
    want = (want15.astype(np.int32) + 1) >> 1  # TFLite Micro's Q15 output halved, ties away from zero (all >= 0)
    np.testing.assert_array_equal(ref, want)
    np.testing.assert_array_equal(c, want)
