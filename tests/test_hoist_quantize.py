"""onnxruntime's quantize_static leaves the first data movement of a model float (the NHWC input
Transpose, a MaxPool, a nearest Resize) and quantizes its output; hoist-quantize quantizes before it
instead (exact), so such models compile. Checked against onnxruntime running the QDQ graph itself:
a copy or a max of the quantized input gives the same int8 values, so the first layer's output
equals onnxruntime's exactly, and the whole model is within one step per later requantization."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import build_firmware, run_firmware
from tinyc.targets import get_target

from .conftest import need_tools, ort_run
from .onnx_builders import ort_quantized, weights

H, W, C = 6, 6, 3


def _models(tmp_path, first: str):
    """NHWC input -> Transpose -> ``first`` (a data movement or max op) -> Conv -> Relu."""
    n = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw")]
    if first == "MaxPool":
        n.append(helper.make_node("MaxPool", ["t"], ["f"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0]))
        side = H
    elif first == "Resize":
        n.append(helper.make_node("Resize", ["t", "", "scales"], ["f"], mode="nearest"))
        side = 2 * H
    else:
        n.append(helper.make_node("Identity", ["t"], ["f"]))
        side = H
    n += [helper.make_node("Conv", ["f", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
          helper.make_node("Relu", ["c"], ["y"])]
    inits = [onnx.numpy_helper.from_array(weights(4, C, 3, 3), "w"), onnx.numpy_helper.from_array(weights(4, seed=2), "b"),
             onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return ort_quantized(n, inits, (1, H, W, C), (1, 4, side, side), tmp_path / f"{first}.onnx", np.random.default_rng(0),
                         per_channel=True)


@pytest.mark.parametrize("first", ["Transpose", "MaxPool", "Resize"])
def test_float_data_movement_at_the_input_is_quantized_before(first, tmp_path):
    path = _models(tmp_path, first)
    m = onnx.load(path)
    # onnxruntime did leave the input Transpose float: its input is the graph input, no QuantizeLinear
    t = next(x for x in m.graph.node if x.op_type == "Transpose")
    assert t.input[0] == "x"
    g = prepare(path, progress=False).graph
    # the input's Transpose cancels against the NHWC layout; one stays, for the NCHW output
    assert g.nodes[0].op == "QuantizeLinear" and [n.op for n in g.nodes].count("Transpose") == 1, [n.op for n in g.nodes]
    rng = np.random.default_rng(1)
    samples = [{"x": rng.uniform(-1, 1, (1, H, W, C)).astype(np.float32)} for _ in range(20)]
    y_scale = float(next(onnx.numpy_helper.to_array(i) for i in m.graph.initializer if i.name == "y_scale"))
    steps = []
    for s in samples:
        got = interpreter.run(g, s)[g.outputs[0]]
        want = ort_run(path, s)[0]
        steps.append(np.abs(np.round((got - want) / y_scale)).max())
    assert max(steps) <= 1, steps  # one requantization (the Conv's) after the exact part
    need_tools("gcc")
    model = generate(g, get_target("host"), name="hoist")
    out = run_firmware(model, get_target("host"), build_firmware(model, get_target("host"), tmp_path / "build"),
                       samples[:3]).outputs
    for s, o in zip(samples[:3], out):
        np.testing.assert_array_equal(o[g.outputs[0]], interpreter.run(g, s)[g.outputs[0]])
