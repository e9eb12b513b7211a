"""ONNX routes to the 16x8 kernels: QDQ graphs with int16 activations as onnxruntime's quantizer
makes them, and tinyc's own ``--quantize int16x8``; a float model of Conv, Sigmoid, Add, Tanh, a
fully connected layer and Softmax. onnxruntime is the oracle for the QDQ model, the float model for tinyc's quantization."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.compiler import prepare
from tinyc.codegen.emit import generate
from tinyc.emulator.runner import run_on_target
from tinyc.targets import get_target

from .conftest import need_arm, ort_run, run_cli
from .onnx_builders import float_chain, ort_quantized, weights


def _chain():
    """Conv, Sigmoid, Conv, Add (skip), Tanh, Reshape, Gemm (fully connected), Softmax over 10."""
    inits = [numpy_helper.from_array(weights(4, 2, 3, 3, seed=1) / 3, "w1"),
             numpy_helper.from_array(weights(4, seed=2) / 5, "b1"),
             numpy_helper.from_array(weights(4, 4, 3, 3, seed=3) / 4, "w2"),
             numpy_helper.from_array(weights(4, seed=4) / 5, "b2"),
             numpy_helper.from_array(np.array([1, 64], np.int64), "shape"),
             numpy_helper.from_array(weights(10, 64, seed=5) / 2, "w3"),
             numpy_helper.from_array(weights(10, seed=6) / 5, "b3")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Sigmoid", ["c1"], ["s1"], name="sig"),
             helper.make_node("Conv", ["s1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "c1"], ["a"], name="add"),
             helper.make_node("Tanh", ["a"], ["t"], name="tanh"),
             helper.make_node("Reshape", ["t", "shape"], ["r"], name="flat"),
             helper.make_node("Gemm", ["r", "w3", "b3"], ["f"], transB=1, name="fc"),
             helper.make_node("Softmax", ["f"], ["y"], name="softmax", axis=-1)]
    return nodes, inits, (1, 2, 4, 4), (1, 10)


def _float_model(path):
    return float_chain(*_chain(), path)


def _ort_int16(tmp_path, symmetric: bool = True):
    return ort_quantized(*_chain(), tmp_path / "q16.onnx", np.random.default_rng(1), activation_type="QInt16",
                         extra_options={"ActivationSymmetric": True} if symmetric else {})


def _samples(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 2, 4, 4)).astype(np.float32)} for _ in range(n)]


def test_onnxruntime_int16_qdq_model_within_tflite_softmax_bound_and_c_exact(tmp_path):
    """Conv, Gemm and Add requantize with one rounding each, within onnxruntime's float rounding;
    the output is TFLite's int16 Softmax over 10 values, whose exp table stops at exp(-10) * 2^15
    (about 1.5 of its LSBs) where the float meaning goes to 0, so each of the 9 other values of a
    row can add that to the sum: the bound is 9 * 1.5 of TFLite's LSBs in output steps, plus 1."""
    path = _ort_int16(tmp_path)
    g = prepare(path, progress=False).graph
    assert any(t.dtype == "s16" for t in g.tensors.values())
    out = g.outputs[0]
    scale = float(g.tensors[next(n for n in g.nodes if n.op == "DequantizeLinear").inputs[0]].quant.scale)
    samples = _samples(40, 5)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", samples)
    worst = 0.0
    for s, got in zip(samples, res.outputs):
        ref = interpreter.run(g, s)[out]
        np.testing.assert_array_equal(got[out], ref)  # C == reference, exactly
        worst = max(worst, float(np.abs(ref - ort_run(path, s)[0]).max()) / scale)
    assert worst <= 9 * np.exp(-10.0) * 32768 * (2.0 ** -15 / scale) + 1 + 1e-3


def test_asymmetric_int16_activations_are_refused_naming_the_option(tmp_path):
    path = _ort_int16(tmp_path, symmetric=False)
    r = run_cli("compile", str(path), "-t", "host", "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "must be symmetric" in r.stderr and "ActivationSymmetric" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _sqnr(f: np.ndarray, q: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2)))


def test_quantize_int16x8_beats_int8_and_c_equals_reference(tmp_path):
    """Against the float model on held-out inputs: 16x8 well above int8, as good as onnxruntime's
    own int16 QDQ quantization of the same model (the int8 weights bound both). 1000 calibration
    inputs, so held-out ones seldom leave the calibrated ranges."""
    model = _float_model(tmp_path / "f.onnx")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.stack([s["x"] for s in _samples(1000, 2)]))
    held_out = _samples(100, 3)
    want = np.stack([ort_run(model, s)[0] for s in held_out]).astype(np.float64)
    sqnr = {}
    for scheme in ("int8", "int16x8"):
        g = prepare(model, quantize=scheme, calib=calib, progress=False).graph
        got = np.stack([interpreter.run(g, s)[g.outputs[0]] for s in held_out]).astype(np.float64)
        sqnr[scheme] = _sqnr(want, got)
    assert {t.dtype for t in g.tensors.values()} >= {"s16", "s8", "s64"}  # int16 activations, int8 weights, int64 bias
    ort16 = _ort_int16(tmp_path)
    sqnr["onnxruntime int16"] = _sqnr(want, np.stack([ort_run(ort16, s)[0] for s in held_out]).astype(np.float64))
    assert sqnr["int16x8"] > sqnr["int8"] + 10, sqnr
    assert sqnr["int16x8"] > sqnr["onnxruntime int16"] - 1, sqnr
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", held_out[:10])
    for s, got in zip(held_out, res.outputs):
        np.testing.assert_array_equal(got[g.outputs[0]], interpreter.run(g, s)[g.outputs[0]])


def test_quantize_int16x8_refuses_ops_without_16x8_kernel(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph([helper.make_node("LogSoftmax", ["x"], ["y"], name="ls", axis=-1)], "m", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).standard_normal((8, 1, 8)).astype(np.float32))
    r = run_cli("compile", str(tmp_path / "m.onnx"), "--quantize", "int16x8", "--calib", str(tmp_path / "calib.npz"),
                "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "int16x8 quantization: no 16x8 kernel for LogSoftmax ('ls')" in r.stderr


@pytest.mark.emulator
def test_onnxruntime_int16_qdq_model_on_cortex_m4_equals_reference(tmp_path):
    need_arm()
    path = _ort_int16(tmp_path)
    g = prepare(path, progress=False).graph
    samples = _samples(5, 7)
    m4 = get_target("cortex-m4")
    res = run_on_target(generate(g, m4), m4, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        np.testing.assert_array_equal(got[g.outputs[0]], interpreter.run(g, s)[g.outputs[0]])


def test_softmax_along_a_middle_axis(tmp_path):
    """int16 Softmax over axis 1 of [2, 5, 3] (the kernel's inner stride). TFLite's exp table stops
    at exp(-10) * 2^15 (about 1.5 of its LSBs), so each of the other 4 values of a row can add that
    much to the sum: the bound against onnxruntime's float meaning is 4 * 1.5 of TFLite's LSBs, in
    output steps, plus 1 for the two roundings."""
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=1)]
    path = ort_quantized(nodes, [], (2, 5, 3), (2, 5, 3), tmp_path / "sm16.onnx", np.random.default_rng(2),
                         activation_type="QInt16", extra_options={"ActivationSymmetric": True})
    g = prepare(path, progress=False).graph
    assert [n.op for n in g.nodes if n.op == "Softmax"] and any(n.op == "Requantize" for n in g.nodes)
    out_scale = float(g.tensors[next(n for n in g.nodes if n.op == "DequantizeLinear").inputs[0]].quant.scale)
    rng = np.random.default_rng(3)
    samples = [{"x": (3 * rng.standard_normal((2, 5, 3))).astype(np.float32)} for _ in range(20)]
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", samples)
    bound = 4 * np.exp(-10.0) * 32768 * (2.0 ** -15 / out_scale) + 1 + 1e-3
    for s, got in zip(samples, res.outputs):
        ref = interpreter.run(g, s)["y"]
        np.testing.assert_array_equal(got["y"], ref)
        assert np.abs(ref - ort_run(path, s)[0]).max() / out_scale <= bound


def test_quantize_int16x8_with_int8_io_is_refused(tmp_path):
    model = _float_model(tmp_path / "f.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([s["x"] for s in _samples(8, 2)]))
    r = run_cli("compile", str(model), "--quantize", "int16x8", "--calib", str(tmp_path / "calib.npz"), "--io", "int8",
                "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "--io int8 is for int8 models" in r.stderr and "Traceback" not in r.stderr
