"""DepthToSpace (DCR and CRD): against onnxruntime, in float and as an onnxruntime-quantized int8
model; NHWC between convolutions (no Transpose left); C == reference on the host and Cortex-M4."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_tools
from .modelfuzz.bound import steps_bound
from .modelfuzz.run import output_scale
from .onnx_builders import ort_quantized, weights

ort = pytest.importorskip("onnxruntime")
SHAPE = (1, 3, 5, 4)


def _chain(mode: str, k: int):
    """Conv (3 -> 2 * k * k channels) -> DepthToSpace -> Relu -> Conv 1x1."""
    c = 2 * k * k
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["a"], ["d"], blocksize=k, mode=mode),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    inits = [numpy_helper.from_array(weights(c, 3, 3, 3, seed=k), "w1"), numpy_helper.from_array(weights(4, 2, 1, 1), "w2")]
    return nodes, inits, (1, 4, SHAPE[2] * k, SHAPE[3] * k)


def _ort(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("k", [2, 3])
def test_float_against_onnxruntime_in_nhwc(mode, k, tmp_path):
    nodes, inits, out = _chain(mode, k)
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(out))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    g = prepare(tmp_path / "m.onnx", progress=False).graph
    d2s = next(n for n in g.nodes if n.op == "DepthToSpace")
    assert d2s.attrs.get("layout") == "NHWC"
    assert [n.op for n in g.nodes].count("Transpose") == 2  # the caller's NCHW input and output only
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    want = _ort(tmp_path / "m.onnx", x)
    ref = interpreter.run(g, {"x": x})["y"]
    np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5)
    need_tools("gcc")
    got = run_on_target(generate(g, get_target("host")), get_target("host"), tmp_path / "host", [{"x": x}]).outputs[0]
    np.testing.assert_allclose(got["y"], ref, rtol=1e-5, atol=1e-6)


def _quantize_around_d2s(path):
    """onnxruntime's quantizer leaves DepthToSpace in float (DequantizeLinear -> DepthToSpace ->
    Relu -> QuantizeLinear); quantize its output with its input's parameters, as a converter
    writes a data-movement op (onnxruntime then runs it as QDQ, the oracle)."""
    m = onnx.load(path)
    d2s = next(n for n in m.graph.node if n.op_type == "DepthToSpace")
    dq = next(n for n in m.graph.node if d2s.input[0] in n.output)
    assert dq.op_type == "DequantizeLinear"
    q_out, dq_out = d2s.output[0] + "_q", d2s.output[0] + "_dq"
    for n in m.graph.node:
        n.input[:] = [dq_out if x == d2s.output[0] else x for x in n.input]
    at = list(m.graph.node).index(d2s) + 1
    m.graph.node.insert(at, helper.make_node("DequantizeLinear", [q_out, *dq.input[1:]], [dq_out]))
    m.graph.node.insert(at, helper.make_node("QuantizeLinear", [d2s.output[0], *dq.input[1:]], [q_out]))
    onnx.save(m, path)
    return path


@pytest.mark.emulator
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_int8_passes_through_bit_exact_on_the_targets(mode, tmp_path):
    nodes, inits, out = _chain(mode, 2)
    rng = np.random.default_rng(3)
    path = _quantize_around_d2s(ort_quantized(nodes, inits, SHAPE, out, tmp_path / "q.onnx", rng, per_channel=False))
    g = prepare(path, progress=False).graph
    d2s = next(n for n in g.nodes if n.op == "DepthToSpace")
    assert g.tensors[d2s.inputs[0]].dtype == "s8" and d2s.attrs.get("layout") == "NHWC"
    samples = [{"x": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(3)]
    refs = [interpreter.run(g, s)["y"] for s in samples]
    # against onnxruntime's QDQ execution: within the steps its float rounding may account for
    model = onnx.load(path)
    scale, bound = output_scale(model), steps_bound(model)
    assert bound is not None
    for s, ref in zip(samples, refs):
        steps = np.abs(np.round((np.asarray(ref, np.float64) - _ort(path, s["x"])) / scale))
        assert steps.max() <= bound
    need_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    for target in ("host", "cortex-m4"):
        t = get_target(target)
        got = run_on_target(generate(g, t), t, tmp_path / target, samples).outputs
        for o, ref in zip(got, refs):
            np.testing.assert_array_equal(o["y"], ref, err_msg=target)
