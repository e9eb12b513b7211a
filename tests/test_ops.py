"""Every op and attribute variant, against onnxruntime: through the numpy reference interpreter
and through generated C compiled and run on the host."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.emulator import run_on_target
from tinyc.frontend.onnx import import_model
from tinyc.targets import get_target

from .conftest import need_tools, ort_run, rel_err
from .onnx_builders import single_node, weights as W

X4 = ("x", (1, 4, 9, 8))

CASES = {
    # Conv
    "conv3x3_pad1_bias": ("Conv", [X4, ("w", W(6, 4, 3, 3)), ("b", W(6))], dict(pads=[1, 1, 1, 1])),
    "conv_stride2_nobias": ("Conv", [X4, ("w", W(5, 4, 3, 3))], dict(strides=[2, 2])),
    "conv_dilation2_asym_pads": ("Conv", [X4, ("w", W(3, 4, 3, 2))], dict(dilations=[2, 1], pads=[2, 0, 1, 3])),
    "conv_groups2": ("Conv", [X4, ("w", W(6, 2, 3, 3)), ("b", W(6))], dict(group=2, pads=[1, 1, 1, 1])),
    "conv_depthwise_stride2": ("Conv", [X4, ("w", W(4, 1, 3, 3)), ("b", W(4))], dict(group=4, strides=[2, 2], pads=[1, 1, 1, 1])),
    "conv_depthwise_multiplier2": ("Conv", [X4, ("w", W(8, 1, 3, 3))], dict(group=4)),
    "conv_same_upper_stride2": ("Conv", [X4, ("w", W(3, 4, 4, 4))], dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    "conv_same_lower": ("Conv", [X4, ("w", W(3, 4, 2, 2))], dict(auto_pad="SAME_LOWER")),
    "conv_valid": ("Conv", [X4, ("w", W(3, 4, 3, 3))], dict(auto_pad="VALID")),
    "conv_1x1": ("Conv", [X4, ("w", W(7, 4, 1, 1)), ("b", W(7))], {}),
    "conv_1d": ("Conv", [("x", (1, 3, 20)), ("w", W(4, 3, 5)), ("b", W(4))], dict(strides=[2], pads=[2, 1])),
    "conv_batch2": ("Conv", [("x", (2, 3, 6, 6)), ("w", W(2, 3, 3, 3))], {}),
    # Pooling
    "maxpool_2x2": ("MaxPool", [X4], dict(kernel_shape=[2, 2], strides=[2, 2])),
    "maxpool_3x3_pad_stride2": ("MaxPool", [X4], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "maxpool_ceil": ("MaxPool", [X4], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "maxpool_dilated": ("MaxPool", [X4], dict(kernel_shape=[2, 2], dilations=[2, 2])),
    "maxpool_same_upper": ("MaxPool", [X4], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    "maxpool_1d": ("MaxPool", [("x", (1, 2, 11))], dict(kernel_shape=[3], strides=[2])),
    "avgpool_3x3_pad_exclude": ("AveragePool", [X4], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    "avgpool_3x3_pad_include": ("AveragePool", [X4], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)),
    "avgpool_ceil": ("AveragePool", [X4], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "avgpool_ceil_pad_include": ("AveragePool", [X4], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)),
    "avgpool_global_like": ("AveragePool", [X4], dict(kernel_shape=[9, 8])),
    "global_avgpool": ("GlobalAveragePool", [X4], {}),
    "global_maxpool": ("GlobalMaxPool", [X4], {}),
    # Matrix products
    "gemm_plain": ("Gemm", [("a", (3, 5)), ("b", W(5, 4))], {}),
    "gemm_transB_bias": ("Gemm", [("a", (2, 6)), ("b", W(4, 6)), ("c", W(4))], dict(transB=1)),
    "gemm_transA_alpha_beta": ("Gemm", [("a", (6, 3)), ("b", W(6, 4)), ("c", W(3, 4))], dict(transA=1, alpha=0.5, beta=2.0)),
    "gemm_c_column": ("Gemm", [("a", (3, 5)), ("b", W(5, 4)), ("c", W(3, 1))], {}),
    "gemm_c_scalar": ("Gemm", [("a", (3, 5)), ("b", W(5, 4)), ("c", W(1))], dict(beta=0.25)),
    "matmul_2d": ("MatMul", [("a", (3, 5)), ("b", W(5, 4))], {}),
    "matmul_3d_by_2d": ("MatMul", [("a", (2, 3, 5)), ("b", W(5, 4))], {}),
    "matmul_batched": ("MatMul", [("a", (2, 3, 5)), ("b", (2, 5, 4))], {}),
    "matmul_vector": ("MatMul", [("a", (5,)), ("b", W(5, 4))], {}),
    # Elementwise
    "add_same": ("Add", [("a", (2, 3, 4)), ("b", (2, 3, 4))], {}),
    "add_channel_bias": ("Add", [X4, ("b", W(1, 4, 1, 1))], {}),
    "add_scalar": ("Add", [X4, ("b", W(1))], {}),
    "mul_outer": ("Mul", [("a", (3, 1)), ("b", (1, 4))], {}),
    "mul_rows": ("Mul", [("a", (2, 3, 4)), ("b", W(4))], {}),
    "sub_broadcast_first": ("Sub", [("a", W(3, 1, 4)), ("b", (2, 3, 5, 4))], {}),
    "div": ("Div", [("a", (2, 5)), ("b", W(2, 5, low=0.5))], {}),
    "relu": ("Relu", [X4], {}),
    "clip_inputs": ("Clip", [X4, ("lo", np.array(-0.5, np.float32)), ("hi", np.array(0.75, np.float32))], {}),
    "clip_max_only": ("Clip", [X4, None, ("hi", np.array(6.0, np.float32))], {}),
    "softmax_last": ("Softmax", [("x", (2, 3, 7))], {}),
    "softmax_axis1": ("Softmax", [("x", (2, 3, 7))], dict(axis=1)),
    "logsoftmax_last": ("LogSoftmax", [("x", (2, 3, 7))], {}),
    "logsoftmax_axis0": ("LogSoftmax", [("x", (2, 3, 7))], dict(axis=0)),
    # Data movement
    "reshape_minus1": ("Reshape", [X4, ("s", np.array([1, -1], np.int64))], {}),
    "reshape_zero": ("Reshape", [X4, ("s", np.array([0, 0, 72], np.int64))], {}),
    "flatten_axis2": ("Flatten", [X4], dict(axis=2)),
    "flatten_axis0": ("Flatten", [X4], dict(axis=0)),
    "flatten_neg": ("Flatten", [X4], dict(axis=-1)),
    "transpose_default": ("Transpose", [("x", (2, 3, 4))], {}),
    "transpose_nchw_to_nhwc": ("Transpose", [X4], dict(perm=[0, 2, 3, 1])),
    "pad_constant": ("Pad", [X4, ("pads", np.array([0, 1, 2, 0, 0, 0, 1, 3], np.int64)),
                             ("v", np.array(0.5, np.float32))], {}),
    "pad_axes_opset18": ("Pad", [X4, ("pads", np.array([1, 2, 0, 1], np.int64)), None,
                                 ("axes", np.array([2, 3], np.int64))], {}),
    "concat_axis1": ("Concat", [X4, ("b", W(1, 2, 9, 8))], dict(axis=1)),
    "sigmoid": ("Sigmoid", [X4], {}),
    "leaky_relu": ("LeakyRelu", [X4], dict(alpha=0.2)),
    "leaky_relu_default": ("LeakyRelu", [X4], {}),
    "hard_sigmoid": ("HardSigmoid", [X4], dict(alpha=0.3, beta=0.4)),
    "hard_swish": ("HardSwish", [X4], {}),
    "max_broadcast": ("Max", [("a", (2, 3, 4)), ("b", W(3, 1))], {}),
    "min": ("Min", [("a", (2, 3)), ("b", (2, 3))], {}),
    "pow_const_exponent": ("Pow", [("x_pos", (2, 3, 4)), ("e", np.array(1.5, np.float32))], {}),
    "prelu_channel_slope": ("PRelu", [X4, ("slope", W(4, 1, 1))], {}),
    "abs": ("Abs", [X4], {}),
    "neg": ("Neg", [X4], {}),
    "exp": ("Exp", [X4], {}),
    "tanh": ("Tanh", [X4], {}),
    "elu": ("Elu", [X4], dict(alpha=0.7)),
    "sqrt": ("Sqrt", [("x_pos", (2, 3, 5))], {}),
    "log": ("Log", [("x_pos", (2, 3, 5))], {}),
}

I64 = lambda *v: np.array(v, np.int64)  # noqa: E731
F32 = lambda *v: np.array(v, np.float32)  # noqa: E731

# Ops added for issue 5, at shapes of real models (the node tests cover the attribute corners).
MORE_CASES = {
    "pad_reflect": ("Pad", [X4, ("pads", I64(0, 0, 2, 3, 0, 0, 3, 1))], dict(mode="reflect")),
    "pad_edge": ("Pad", [X4, ("pads", I64(0, 1, 2, 0, 0, 0, 1, 2))], dict(mode="edge")),
    "slice_negative_step": ("Slice", [X4, ("s", I64(-1, 1)), ("e", I64(-10, 8)), ("a", I64(2, 3)), ("st", I64(-2, 3))], {}),
    "slice_channels": ("Slice", [X4, ("s", I64(1)), ("e", I64(3)), ("a", I64(1))], {}),
    "split_channels": ("Split", [X4, ("sp", I64(1, 3))], dict(axis=1, _outs=2)),
    "split_equal_opset18": ("Split", [X4], dict(axis=-1, num_outputs=3, _outs=3)),
    "gather_const_indices": ("Gather", [X4, ("i", I64(3, 0, -1, 3))], dict(axis=1)),
    "reduce_mean_hw": ("ReduceMean", [X4, ("ax", I64(2, 3))], dict(_opset=18)),
    "reduce_sum_keepdims0": ("ReduceSum", [X4, ("ax", I64(1))], dict(keepdims=0)),
    "reduce_max_all": ("ReduceMax", [X4], dict(_opset=18)),
    "reduce_l2_mixed_axes": ("ReduceL2", [("x", (3, 4, 5, 6)), ("ax", I64(0, 2))], dict(_opset=18)),
    "resize_linear_up2_half_pixel": ("Resize", [X4, None, ("sc", F32(1, 1, 2, 2))], dict(mode="linear")),
    "resize_nearest_sizes_asymmetric": ("Resize", [X4, None, None, ("sz", I64(1, 4, 20, 13))],
                                        dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
    # sizes, not scales: with a fractional scale * length onnxruntime's align_corners uses the
    # rounded length and the ONNX reference (and tinyc) the real one
    "resize_linear_align_corners_down": ("Resize", [X4, None, None, ("sz", I64(1, 4, 5, 6))],
                                         dict(mode="linear", coordinate_transformation_mode="align_corners")),
    "resize_cubic_up": ("Resize", [X4, None, ("sc", F32(1, 1, 1.5, 2))], dict(mode="cubic")),
    "resize_linear_pytorch_half_pixel": ("Resize", [X4, None, None, ("sz", I64(1, 4, 5, 16))],
                                         dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")),
    "conv_transpose_stride2": ("ConvTranspose", [X4, ("w", W(4, 3, 3, 3)), ("b", W(3))],
                               dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    "conv_transpose_groups_dilation": ("ConvTranspose", [X4, ("w", W(4, 2, 2, 3))], dict(group=2, dilations=[2, 1])),
    "conv_transpose_1d": ("ConvTranspose", [("x", (1, 3, 12)), ("w", W(3, 5, 4))], dict(strides=[3])),
    "lstm_bidirectional": ("LSTM", [("x", (7, 2, 10)), ("w", W(2, 64, 10)), ("r", W(2, 64, 16, seed=2)), ("b", W(2, 128, seed=3))],
                           dict(hidden_size=16, direction="bidirectional", _outs=3)),
    "lstm_peepholes_initial_state": ("LSTM", [("x", (5, 1, 6)), ("w", W(1, 32, 6)), ("r", W(1, 32, 8, seed=2)), None, None,
                                              ("h0", (1, 1, 8)), ("c0", (1, 1, 8)), ("p", W(1, 24, seed=4))],
                                     dict(hidden_size=8, _outs=3)),
    "gru_reverse": ("GRU", [("x", (6, 2, 10)), ("w", W(1, 48, 10)), ("r", W(1, 48, 16, seed=2)), ("b", W(1, 96, seed=3))],
                              dict(hidden_size=16, direction="reverse", _outs=2)),
    "gru_linear_before_reset": ("GRU", [("x", (6, 1, 5)), ("w", W(1, 12, 5)), ("r", W(1, 12, 4, seed=2)), ("b", W(1, 24, seed=3)),
                                        None, ("h0", (1, 1, 4))], dict(hidden_size=4, linear_before_reset=1, _outs=2)),
}

OLD_OPSET_CASES = {
    "clip_opset7_attrs": ("Clip", [X4], dict(min=-0.25, max=0.5), 7),
    "softmax_opset11_flattens": ("Softmax", [("x", (2, 3, 7))], dict(axis=1), 11),
    "softmax_opset11_default": ("Softmax", [("x", (2, 3, 7))], {}, 11),
    "logsoftmax_opset11_flattens": ("LogSoftmax", [("x", (2, 3, 7))], dict(axis=1), 11),
    "gemm_opset7": ("Gemm", [("a", (3, 5)), ("b", W(5, 4)), ("c", W(4))], {}, 7),
    "maxpool_opset7": ("MaxPool", [X4], dict(kernel_shape=[2, 2], strides=[2, 2]), 7),
    "avgpool_opset7_include": ("AveragePool", [X4], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1), 7),
}


def test_pad_reflect_and_edge_in_the_reference(tmp_path):
    for mode in ("reflect", "edge"):
        model, feeds = _build("Pad", [X4, ("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))], dict(mode=mode))
        g = import_model(model)
        assert rel_err(interpreter.run(g, feeds)[g.outputs[0]], ort_run_model(model, feeds)[0]) < 1e-6


def _build(op, inputs, attrs, opset=17):
    attrs = dict(attrs)
    outs = attrs.pop("_outs", 1)
    opset = attrs.pop("_opset", opset)
    model, feeds = single_node(op, inputs, out_count=outs, opset=opset, **attrs)
    return model, feeds


def _all_cases():
    for k, (op, inputs, attrs) in {**CASES, **MORE_CASES}.items():
        yield pytest.param(op, inputs, attrs, 18 if "opset18" in k else 17, id=k)
    for k, (op, inputs, attrs, opset) in OLD_OPSET_CASES.items():
        yield pytest.param(op, inputs, attrs, opset, id=k)


@pytest.mark.parametrize("op,inputs,attrs,opset", list(_all_cases()))
def test_op_matches_onnxruntime_in_reference_and_host_c(op, inputs, attrs, opset, tmp_path: Path):
    need_tools("gcc")
    model, feeds = _build(op, inputs, attrs, opset)
    want = ort_run_model(model, feeds)
    g = import_model(model, name="case")
    got = interpreter.run(g, feeds)
    for name, w in zip(g.outputs, want):
        assert got[name].shape == w.shape
        assert rel_err(got[name], w) < 1e-5, f"reference differs from onnxruntime for {name}"
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path, [feeds])
    for name, w in zip(g.outputs, want):
        assert rel_err(res.outputs[0][name], w) < 1e-5, f"generated C differs from onnxruntime for {name}"


def ort_run_model(model: onnx.ModelProto, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_macs_of_conv_and_gemm():
    model, _ = _build("Conv", [X4, ("w", W(6, 4, 3, 3)), ("b", W(6))], dict(pads=[1, 1, 1, 1]))
    g = import_model(model)
    rep = generate(g, get_target("host")).report
    assert rep["layers"][0]["macs"] == 6 * 9 * 8 * 4 * 3 * 3
    model, _ = _build("Conv", [X4, ("w", W(4, 1, 3, 3))], dict(group=4))
    rep = generate(import_model(model), get_target("host")).report
    assert rep["layers"][0]["macs"] == 4 * 7 * 6 * 9
    model, _ = _build("Gemm", [("a", (2, 6)), ("b", W(4, 6))], dict(transB=1))
    assert generate(import_model(model), get_target("host")).report["macs_total"] == 2 * 6 * 4


def test_fused_activations_through_the_pipeline_match_onnxruntime(tmp_path):
    """Conv -> HardSwish, Add -> LeakyRelu, Gemm -> Sigmoid: fused by the passes, run as C."""
    from onnx import TensorProto, helper, numpy_helper

    from tinyc.passes import run_passes
    from tinyc.passes.pipeline import DEFAULT

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
             helper.make_node("Add", ["h", "x2"], ["a"], name="add"),
             helper.make_node("LeakyRelu", ["a"], ["l"], alpha=0.1, name="lrelu"),
             helper.make_node("Flatten", ["l"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1, name="fc"),
             helper.make_node("Sigmoid", ["g"], ["y"], name="sigmoid")]
    inits = [numpy_helper.from_array(W(4, 2, 3, 3), "w"), numpy_helper.from_array(W(4), "b"),
             numpy_helper.from_array(W(1, 4, 1, 1), "x2"), numpy_helper.from_array(W(5, 64), "fw"),
             numpy_helper.from_array(W(5), "fb")]
    graph = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    g = run_passes(import_model(model), DEFAULT)
    assert {n.op for n in g.nodes} == {"Transpose", "Conv", "Add", "Flatten", "Gemm"}  # the caller's NCHW input
    assert [n.attrs.get("act") for n in g.nodes if n.op in ("Conv", "Add", "Gemm")] == ["HardSwish", "LeakyRelu", "Sigmoid"]
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)}
    want = ort_run_model(model, feeds)[0]
    assert rel_err(interpreter.run(g, feeds)["y"], want) < 1e-5
    host = get_target("host")
    assert rel_err(run_on_target(generate(g, host), host, tmp_path, [feeds]).outputs[0]["y"], want) < 1e-5


def test_linear_resize_that_resizes_no_axis_is_its_input(tmp_path):
    """A linear Resize with scales 1 (fuzz seed 100058): the float reference crashed (no axis to
    interpolate); it and the C give the input, as onnxruntime does."""
    from .conftest import ort_run
    from .onnx_builders import single_node

    model, feeds = single_node("Resize", [("x", (1, 1, 2, 16)), None, ("scales", np.ones(4, np.float32))],
                               mode="linear")
    path = tmp_path / "resize1.onnx"
    onnx.save(model, path)
    g = import_model(onnx.load(path))
    want = ort_run(path, feeds)[0]
    np.testing.assert_array_equal(interpreter.run(g, feeds)[g.outputs[0]], want)
    res = run_on_target(generate(g, get_target("host")), get_target("host"), tmp_path / "b", [feeds])
    np.testing.assert_array_equal(res.outputs[0][g.outputs[0]], want)
