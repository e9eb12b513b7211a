"""Regressions of issue 15 (int8 Transpose between NHWC layers computing wrong values in C), on
minimal NCHW models as PyTorch exports them:

- GCC 12 at -O2 dropped the calls of layers (Transposes) whose outputs later layers read, float
  and int8 (its interprocedural summaries of the layer functions were wrong): every layer is now a
  call GCC may not optimize across (``noipa``);
- a squeeze-excite block (GlobalAveragePool -> Conv -> Relu -> Conv -> HardSigmoid -> Mul with the
  block input) and a U-Net skip (MaxPool, Resize nearest x2, Concat with the skip) kept such
  Transposes: they now sink through the Mul (its [1, C, 1, 1] scale follows as a view) and the
  Concat (its axis permuted), so only the caller's NCHW input and output are transposed.

Each model, float and int8 by tinyc's PTQ and by onnxruntime's quantize_static (QDQ, per tensor
and per channel): generated C on the host == tinyc's reference (bit for bit in int8), which equals
the graph before the layout passes (NCHW, no Transpose; exactly in int8) and, in float, onnxruntime.
"""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

C = 4


def _model(nodes, inits: dict[str, np.ndarray], shape, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _weights(seed: int, **shapes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * 0.4).astype(np.float32) for k, s in shapes.items()}


def _kept_transpose():
    """Conv 1x1 -> depthwise Conv 3x3 (both in place) -> Transpose swapping H and W (a Transpose
    stays: the model's own, composed with the one back from NHWC) -> Add."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2", "b2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C),
             helper.make_node("Transpose", ["b"], ["c"], perm=[0, 1, 3, 2]),
             helper.make_node("Add", ["c", "c"], ["y"])]
    w = _weights(0, w1=(C, C, 1, 1), b1=(C,), w2=(C, 1, 3, 3), b2=(C,))
    return _model(nodes, w, [1, C, 6, 6], "kept_transpose")


def _squeeze_excite():
    """Conv 1x1 -> depthwise Conv 3x3 -> SE (GlobalAveragePool -> Conv -> Relu -> Conv ->
    HardSigmoid) -> Mul with the block input -> Conv 1x1."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2", "b2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C),
             helper.make_node("GlobalAveragePool", ["b"], ["g"]),
             helper.make_node("Conv", ["g", "w3", "b3"], ["s1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["s1"], ["s2"]),
             helper.make_node("Conv", ["s2", "w4", "b4"], ["s3"], kernel_shape=[1, 1]),
             helper.make_node("HardSigmoid", ["s3"], ["s"], alpha=1 / 6),
             helper.make_node("Mul", ["b", "s"], ["m"]),
             helper.make_node("Conv", ["m", "w5", "b5"], ["y"], kernel_shape=[1, 1])]
    w = _weights(1, w1=(C, C, 1, 1), b1=(C,), w2=(C, 1, 3, 3), b2=(C,), w3=(2, C, 1, 1), b3=(2,),
                 w4=(C, 2, 1, 1), b4=(C,), w5=(C, C, 1, 1), b5=(C,))
    return _model(nodes, w, [1, C, 6, 6], "squeeze_excite")


def _unet_skip():
    """Conv (the skip) -> MaxPool -> Conv -> Resize nearest x2 -> Concat with the skip -> Conv."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["skip"]),
             helper.make_node("MaxPool", ["skip"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "w2", "b2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["b", "", "scales"], ["u"], mode="nearest"),
             helper.make_node("Concat", ["u", "skip"], ["c"], axis=1),
             helper.make_node("Conv", ["c", "w3", "b3"], ["y"], kernel_shape=[1, 1])]
    w = _weights(2, w1=(C, 3, 3, 3), b1=(C,), w2=(C, C, 3, 3), b2=(C,), w3=(2, 2 * C, 1, 1), b3=(2,))
    w["scales"] = np.array([1, 1, 2, 2], np.float32)
    return _model(nodes, w, [1, 3, 8, 8], "unet_skip")


MODELS = {"kept_transpose": _kept_transpose, "squeeze_excite": _squeeze_excite, "unet_skip": _unet_skip}


def _samples(m: onnx.ModelProto, n: int, seed: int) -> np.ndarray:
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _ort(model_path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _ort_qdq(src, dst, calib: np.ndarray, per_channel: bool):
    q = pytest.importorskip("onnxruntime.quantization")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in calib])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                      activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
    return dst


def _host(g, tmp_path, xs: np.ndarray) -> list[np.ndarray]:
    host = get_target("host")
    return [o["y"] for o in run_on_target(generate(g, host), host, tmp_path / "fw", [{"x": x} for x in xs]).outputs]


def _prepare(path, route: str, calib_path):
    """(the compiled graph, the same graph before the layout passes: NCHW, no Transpose)."""
    seen = {}

    def keep(name, g):
        if name == "fold-dead-channels":
            seen["nchw"] = copy.deepcopy(g)

    quantize = dict(quantize="int8", calib=calib_path) if route == "ptq" else {}
    return prepare(path, progress=False, after_pass=keep, **quantize).graph, seen["nchw"]


@pytest.mark.parametrize("route", ["float", "ptq", "qdq", "qdq_per_channel"])
@pytest.mark.parametrize("name", list(MODELS))
def test_host_code_equals_reference_and_transposes_are_gone(name, route, tmp_path):
    m = MODELS[name]()
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, path)
    calib, xs = _samples(m, 16, 1), _samples(m, 3, 2)
    np.savez(tmp_path / "calib.npz", x=calib)
    if route.startswith("qdq"):
        path = _ort_qdq(path, tmp_path / f"{name}_qdq.onnx", calib, per_channel=route == "qdq_per_channel")
    g, nchw = _prepare(path, route, tmp_path / "calib.npz")
    # Transposes left: the caller's NCHW input to NHWC and the NCHW output back (kept_transpose:
    # its own swap of H and W composed with that one)
    ops = [n.op for n in g.nodes if n.op not in ("QuantizeLinear", "DequantizeLinear")]
    assert ops[0] == ops[-1] == "Transpose" and "Transpose" not in ops[1:-1], ops
    got = _host(g, tmp_path, xs)
    for x, y in zip(xs, got):
        ref = interpreter.run(g, {"x": x})["y"]
        before_layout = interpreter.run(nchw, {"x": x})["y"]
        if route == "float":
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ref, before_layout, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ref, _ort(path, x), rtol=1e-4, atol=1e-5)
        else:  # int8: the same integers in C, and in NHWC as in the NCHW graph
            np.testing.assert_array_equal(y, ref)
            np.testing.assert_array_equal(ref, before_layout)
