"""Every pass: a text-IR golden test (tests/passes/NAME.ir in, NAME.expected.ir out) and an
equivalence test through the reference interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.compiler import load_graph
from tinyc.errors import TinycError
from tinyc.ir_text import parse_graph, print_graph
from tinyc.passes import PASSES, run_passes
from tinyc.passes.pipeline import DEFAULT

from .conftest import ROOT, shared_model

CASES = Path(__file__).parent / "passes"
GOLDEN = sorted(p.stem for p in CASES.glob("*.ir") if not p.name.endswith(".expected.ir"))


def test_every_pipeline_pass_has_a_golden_test():
    assert set(DEFAULT) - {"dead-code"} <= set(GOLDEN)


def _random_feeds(g, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}


@pytest.mark.parametrize("name", GOLDEN)
def test_pass_golden(name):
    g = parse_graph((CASES / f"{name}.ir").read_text())
    out = run_passes(g, [name])
    assert print_graph(out) == (CASES / f"{name}.expected.ir").read_text()


@pytest.mark.parametrize("name", GOLDEN)
def test_pass_keeps_the_meaning(name):
    """Float passes: within 1e-5 relative. lower-qdq swaps float QDQ arithmetic for TFLite's
    integer arithmetic, so there the tolerance is one step of the output quantization."""
    before = parse_graph((CASES / f"{name}.ir").read_text())
    after = run_passes(parse_graph((CASES / f"{name}.ir").read_text()), [name])
    for seed in range(5):
        feeds = _random_feeds(before, seed)
        a, b = interpreter.run(before, feeds), interpreter.run(after, feeds)
        for o in before.outputs:
            x, y = np.asarray(a[o], np.float64), np.asarray(b[o], np.float64)
            if name == "lower-qdq":
                step = float(after.tensors[after.nodes[-1].inputs[0]].quant.scale)
                assert np.abs(x - y).max() <= step * 1.0001
            else:
                assert np.abs(x - y).max() <= 1e-5 * max(np.abs(x).max(), 1e-30)


def test_parse_rejects_a_declared_shape_the_op_does_not_give():
    with pytest.raises(TinycError, match="declared"):
        parse_graph('graph "g" {\n input %x : f32[1,4]\n %y : f32[4] = Relu(%x) @"r"\n output %y\n}\n')


@pytest.mark.parametrize("rel", ["mnist-8/model.onnx", "mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx",
                                 "mlperf-tiny/ad_float.onnx"])
def test_shared_float_models_have_no_standalone_activations_or_batchnorm(rel):
    g = load_graph(shared_model(rel))
    ops = [n.op for n in g.nodes]
    assert not {"Relu", "Clip", "BatchNormalization", "Identity", "Dropout"} & set(ops), ops


def test_all_pass_names_are_unique_and_described():
    for name, cls in PASSES.items():
        assert cls.name == name and cls.description


def _same_net(nhwc_input: bool):
    """One small CNN, exported two ways: NCHW input (as PyTorch does) or NHWC input followed by a
    Transpose into NCHW (as tf2onnx does)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((10, 4 * 3 * 3)) * 0.3).astype(np.float32)
    nodes = []
    x = "x"
    if nhwc_input:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2], name="to_nchw"))
        x = "x_nchw"
    nodes += [helper.make_node("Conv", [x, "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
              helper.make_node("Relu", ["c"], ["r"], name="relu"),
              helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1, name="fc")]
    shape = [1, 6, 6, 3] if nhwc_input else [1, 3, 6, 6]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_pytorch_and_tf2onnx_style_exports_compile_to_the_same_kernels():
    from tinyc.frontend.onnx import import_model

    graphs = {style: run_passes(import_model(_same_net(style == "tf2onnx")), DEFAULT) for style in ("pytorch", "tf2onnx")}
    ops = {k: [n.op for n in g.nodes] for k, g in graphs.items()}
    # tf2onnx style: NHWC in, nothing moves. PyTorch style: the caller's NCHW input is transposed once.
    # (the Flatten is a view: no code, no bytes)
    assert ops["tf2onnx"] == ["Conv", "MaxPool", "Flatten", "Gemm"]
    assert ops["pytorch"] == ["Transpose", "Conv", "MaxPool", "Flatten", "Gemm"]
    def kernels(g):
        from tinyc.ops import get_op

        out = []
        for n in g.nodes:
            if n.op in ("Transpose", "Flatten"):
                continue
            k = get_op(n.op).kernel(n, [g.tensors[x] for x in n.inputs], [g.tensors[o] for o in n.outputs])
            weights = [g.tensors[x].data.tobytes() for x in n.inputs[1:] if g.tensors[x].is_const]
            out.append((k.template, k.params, weights))
        return out

    assert kernels(graphs["pytorch"]) == kernels(graphs["tf2onnx"])  # same templates, constants and weights
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    a = interpreter.run(graphs["pytorch"], {"x": x})["y"]
    b = interpreter.run(graphs["tf2onnx"], {"x": np.transpose(x, (0, 2, 3, 1))})["y"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rel", ["mnist-8/model.onnx", "mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx",
                                 "mlperf-tiny/ad_float.onnx", "mlperf-tiny/kws_int8.onnx", "mlperf-tiny/ic_int8.onnx"])
def test_shared_models_have_no_transpose_left(rel):
    g = load_graph(shared_model(rel))
    assert "Transpose" not in [n.op for n in g.nodes]
    assert all(n.attrs.get("layout") == "NHWC" for n in g.nodes if n.op in ("Conv", "MaxPool", "AveragePool"))


def _upsampling_net():
    """Conv -> Sigmoid -> Resize (bilinear x2) -> Sub -> Conv -> ReduceMean over H, W (keepdims=0)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal((6, 3, 3, 3)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal((4, 6, 3, 3)) * 0.3).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([], np.float32), "roi"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Resize", ["s", "roi", "scales"], ["r"], mode="linear"),
             helper.make_node("Sub", ["r", "half"], ["d"]),
             helper.make_node("Conv", ["d", "w2"], ["c"]),
             helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=0)]
    graph = helper.make_graph(nodes, "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_nhwc_runs_through_pointwise_ops_resize_and_spatial_means(tmp_path):
    """Only the caller's NCHW input is transposed: Sub and Resize run in NHWC (Resize with its
    per-axis attributes permuted), Sigmoid is fused into the Conv, ReduceMean became a global
    pooling; values equal onnxruntime."""
    import onnxruntime as ort

    from tinyc.codegen import generate
    from tinyc.emulator import run_on_target
    from tinyc.frontend.onnx import import_model
    from tinyc.targets import get_target

    m = _upsampling_net()
    g = run_passes(import_model(m), DEFAULT)
    assert [n.op for n in g.nodes] == ["Transpose", "Conv", "Resize", "Sub", "Conv", "GlobalAveragePool", "Reshape"]
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 5)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(interpreter.run(g, {"x": x})["y"], want, rtol=1e-5, atol=1e-6)
    host = get_target("host")
    got = run_on_target(generate(g, host), host, tmp_path, [{"x": x}]).outputs[0]["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dead_channels_are_folded_and_dropped_end_to_end(tmp_path):
    """A pruned CNN (3 of 8 channels of the first conv have all-zero weights): the channels vanish
    from both convs, MACs and weights shrink by exactly their share, outputs equal onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from tinyc.codegen import generate
    from tinyc.emulator import run_on_target
    from tinyc.frontend.onnx import import_model
    from tinyc.targets import get_target

    rng = np.random.default_rng(9)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w1[[1, 4, 6]] = 0.0
    b1 = (rng.standard_normal(8) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((6, 8, 1, 1)) * 0.3).astype(np.float32)
    inits = [numpy_helper.from_array(v, k) for k, v in dict(w1=w1, b1=b1, w2=w2).items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"]),
             helper.make_node("Relu", ["c2"], ["y"])]
    graph = helper.make_graph(nodes, "pruned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    without = [p for p in DEFAULT if p != "fold-dead-channels"]
    g_all = run_passes(import_model(m), without)
    g = run_passes(import_model(m), DEFAULT)
    host = get_target("host")
    full, pruned = generate(g_all, host).report, generate(g, host).report
    assert full["macs_total"] - pruned["macs_total"] == 3 * (8 * 8 * 3 * 3 * 3) + 3 * (8 * 8 * 6)
    assert full["weights_bytes"] - pruned["weights_bytes"] == 4 * (3 * 27 + 3 + 3 * 6) - 4 * 6  # + the new bias
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = run_on_target(generate(g, host), host, tmp_path, [{"x": x}]).outputs[0]["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_rewrite_loop_that_never_settles_is_an_error_not_a_hang(monkeypatch):
    """Every fixpoint loop of the passes is bounded: a rewrite that keeps reporting changes (a
    bug) ends in a clear error."""
    from tinyc.passes import layout
    from tinyc.passes.canonicalize import canonicalize

    g = parse_graph('graph "g" {\n input %x : f32[1,4]\n %y : f32[1,4] = Relu(%x) @"r"\n output %y\n}\n')
    monkeypatch.setattr(layout, "_sink", lambda g: True)
    with pytest.raises(TinycError, match="cancel-transposes did not settle"):
        layout.cancel_transposes(g)
    monkeypatch.setattr("tinyc.passes.canonicalize._collapse_views", lambda g: True)
    with pytest.raises(TinycError, match="canonicalize did not settle"):
        canonicalize(g)
