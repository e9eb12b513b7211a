"""1-D pooling between two layers, in generated C on cortex-m3, cortex-m4 and the host, against the
reference (int8: bit for bit) and onnxruntime (float).

Regression for issue 15's "1-D MaxPool on Armv7-M": with GCC 12 at -O2, a layer function cloned with
the arena addresses as constants saw its input and output as one object; the loop optimizer then
wrote the strided input address relative to the output pointer with a null base, pure/const
discovery concluded the layer wrote nothing, and the caller dropped the call, so the next layer read
stale arena bytes. Which shapes it hit depended on -mcpu (here cortex-m3/m4/m7/m33, on some shapes the
host and m55, not m0plus). Each model is Conv1d -> pool -> 1x1 Conv1d, so the pool reads and writes
the arena. Before the fix 7 cases lost their pool layer on at least one of the three targets: every
int8 MaxPool with 2 taps and stride 2 but ceil_mode_odd_length, and the float AveragePool (on
cortex-m3); the others are their neighbours."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_tools, ort_run

TARGETS = ("cortex-m3", "cortex-m4", "host")

CASES = {
    # name: (channels, length, pool op, pool attributes, int8 route: "tinyc" PTQ, "ort" QDQ or None for float)
    "maxpool_k2_s2": (8, 64, "MaxPool", dict(kernel_shape=[2], strides=[2]), "tinyc"),
    "maxpool_k2_s2_onnxruntime_qdq": (8, 64, "MaxPool", dict(kernel_shape=[2], strides=[2]), "ort"),
    "maxpool_k2_s2_odd_length_odd_channels": (5, 37, "MaxPool", dict(kernel_shape=[2], strides=[2]), "tinyc"),
    "maxpool_k2_s2_dilated": (8, 64, "MaxPool", dict(kernel_shape=[2], strides=[2], dilations=[2]), "tinyc"),
    "maxpool_k2_s2_ceil_mode": (8, 64, "MaxPool", dict(kernel_shape=[2], strides=[2], ceil_mode=1), "tinyc"),
    "maxpool_k2_s2_ceil_mode_odd_length": (8, 63, "MaxPool", dict(kernel_shape=[2], strides=[2], ceil_mode=1), "tinyc"),
    "maxpool_k2_s2_pad_begin": (5, 37, "MaxPool", dict(kernel_shape=[2], strides=[2], pads=[1, 0]), "tinyc"),
    "maxpool_k3_s2_padded": (8, 63, "MaxPool", dict(kernel_shape=[3], strides=[2], pads=[1, 1]), "tinyc"),
    "maxpool_k2_s3": (5, 37, "MaxPool", dict(kernel_shape=[2], strides=[3]), "tinyc"),
    "avgpool_k2_s2_odd_length": (5, 37, "AveragePool", dict(kernel_shape=[2], strides=[2]), "tinyc"),
    "avgpool_k3_s2_padded_ceil_mode": (8, 64, "AveragePool", dict(kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1),
                                       "tinyc"),
    "maxpool_k2_s2_float": (5, 37, "MaxPool", dict(kernel_shape=[2], strides=[2]), None),
    "avgpool_k2_s2_float": (8, 64, "AveragePool", dict(kernel_shape=[2], strides=[2]), None),
}


def _model(path, channels, length, op, attrs):
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal((channels, channels, 3)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(channels) * 0.1).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((4, channels, 1)) * 0.3).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node(op, ["c"], ["p"], **attrs),
             helper.make_node("Conv", ["p", "w2"], ["y"], kernel_shape=[1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, length])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def _ort_qdq(src, dst, calib):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"x": x} for x in calib])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(CASES))
def test_pool_between_layers_equals_reference_on_m3_m4_and_host(case, tmp_path):
    need_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    channels, length, op, attrs, route = CASES[case]
    _model(tmp_path / "m.onnx", channels, length, op, attrs)
    rng = np.random.default_rng(1)
    calib = rng.standard_normal((16, 1, channels, length)).astype(np.float32)
    if route == "ort":
        _ort_qdq(tmp_path / "m.onnx", tmp_path / "q.onnx", calib)
        p = prepare(tmp_path / "q.onnx", io="int8", progress=False)
    elif route == "tinyc":
        np.savez(tmp_path / "calib.npz", x=calib)
        p = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", io="int8", progress=False)
    else:
        p = prepare(tmp_path / "m.onnx", progress=False)
    g = p.graph
    x, y = g.inputs[0], g.outputs[0]
    if route:
        samples = [{x: rng.integers(-128, 128, g.tensors[x].shape).astype(np.int8)} for _ in range(3)]
        want = [interpreter.run(g, s)[y] for s in samples]
    else:
        samples = [{x: rng.standard_normal((1, channels, length)).astype(np.float32)} for _ in range(3)]
        want = [ort_run(tmp_path / "m.onnx", s)[0] for s in samples]
    for target in TARGETS:
        t = get_target(target)
        got = run_on_target(generate(g, t), t, tmp_path / target, samples).outputs
        for o, w in zip(got, want):
            if route:
                np.testing.assert_array_equal(o[y], w, err_msg=target)
            else:
                np.testing.assert_allclose(o[y], w, rtol=1e-5, atol=1e-6, err_msg=target)
