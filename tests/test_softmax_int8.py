"""int8 Softmax and LogSoftmax with any output quantization (the exact integer recipe of
tinyc/quant/softmax_exact.py): onnxruntime-quantized classifiers and hand-built QDQ models with odd
output parameters, against onnxruntime executing the QDQ graph (unfused: dequantize, float op,
quantize), with the generated C equal to the reference; the recipe against float64 math."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import import_model
from tinyc.passes import run_passes
from tinyc.quant import softmax_exact as se
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, run_cli
from .onnx_builders import ort_quantized


def _ort_qdq(model_or_path, feeds_list):
    """onnxruntime on the QDQ graph as written. Its default optimizations fuse DequantizeLinear ->
    Softmax -> QuantizeLinear into com.microsoft.QLinearSoftmax, which divides by floor(1 / s_out)
    (254 for 1/255) and so is not the graph's meaning; with them off it runs the graph's nodes."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return [sess.run(None, f)[0] for f in feeds_list]


# -- the recipe against float64 --------------------------------------------------------------------

def _exact_softmax(x, s_in, s_out, zp, log):
    v = s_in * x.astype(np.float64)
    d = v - v.max(-1, keepdims=True)
    y = d - np.log(np.exp(d).sum(-1, keepdims=True)) if log else np.exp(d) / np.exp(d).sum(-1, keepdims=True)
    return y / s_out + zp


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "logsoftmax"])
@pytest.mark.parametrize("s_in,s_out,zp", [(0.03, 1 / 255, -128), (0.1, 0.01, 0), (0.05, 0.5, 10), (1e-4, 1e-3, -100),
                                            (0.7, 0.02, 60), (0.02, 2.0 ** -20, 0), (0.3, 300.0, 5)])
def test_recipe_is_the_correctly_rounded_real_result(log, s_in, s_out, zp):
    rng = np.random.default_rng(7)
    rows = [rng.integers(-128, 128, (3000, 10)), rng.integers(100, 128, (300, 10)), np.full((2, 10), 5),
            rng.integers(-128, 128, (20, 1000)), rng.integers(-128, 128, (500, 2))]
    params = (se.log_softmax_params if log else se.softmax_params)("t", s_in, s_out, zp)
    for x in rows:
        x = x.astype(np.int8)
        got = (se.log_softmax_any if log else se.softmax_any)(x, params).astype(np.int64)
        real = _exact_softmax(x, s_in, s_out, zp, log)
        want = np.clip(np.rint(real), -128, 127)
        # equal except where the real value is within 1e-6 output steps of a rounding boundary
        near_tie = np.abs(np.abs(real - np.floor(real)) - 0.5) < 1e-6
        assert np.all((got == want) | near_tie), np.argwhere((got != want) & ~near_tie)[:5]
        assert np.abs(got - want).max() <= 1


def test_log2_q30_is_within_2_to_the_minus_28():
    s = np.array([2 ** 30, 2 ** 30 + 1, 2 ** 31 - 1, 2 ** 31, 3 * 2 ** 30, 10 ** 10, 1000 * 2 ** 30, 2 ** 54 - 1], np.int64)
    err = se.log2_q30(s) / 2.0 ** 30 - np.log2(s / 2.0 ** 30)
    assert np.all(np.abs(err) < 2.0 ** -28), err
    assert se.log2_q30(np.array([2 ** 30, 2 ** 32]))[0] == 0 and se.log2_q30(np.array([2 ** 32]))[0] == 2 << 30


def test_output_scales_outside_the_recipe_range_are_a_clear_error(tmp_path):
    for s_out in (1e-9, 1e6):
        with pytest.raises(UnsupportedError, match=r"output scale .* outside \[2\^-20, 2\^16\]"):
            se.softmax_params("Softmax node 'sm'", 0.05, s_out, 0)
    onnx.save(_qdq_model("LogSoftmax", (1, 10), 0.05, 0, 1e-9, 0), tmp_path / "m.onnx")
    r = run_cli("compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "LogSoftmax node 'the_op'" in r.stderr and "output scale 1e-09" in r.stderr


# -- hand-built QDQ with odd output parameters -----------------------------------------------------

def _qdq_model(op, shape, s_in, zp_in, s_out, zp_out, opset=13, **attrs):
    inits = [numpy_helper.from_array(np.array(np.float32(s_in)), "si"), numpy_helper.from_array(np.array(np.int8(zp_in)), "zi"),
             numpy_helper.from_array(np.array(np.float32(s_out)), "so"), numpy_helper.from_array(np.array(np.int8(zp_out)), "zo")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "si", "zi"], ["xf"], name="dq"),
             helper.make_node(op, ["xf"], ["yf"], name="the_op", **attrs),
             helper.make_node("QuantizeLinear", ["yf", "so", "zo"], ["y"], name="q")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.INT8, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, list(shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


HAND_BUILT = {
    "softmax_1/100_zp0": ("Softmax", (4, 10), 0.05, 3, 0.01, 0, 13, dict(axis=-1)),
    "softmax_0.5_zp10": ("Softmax", (4, 10), 0.3, -7, 0.5, 10, 13, dict(axis=-1)),
    "softmax_1/255_axis1_of_3d": ("Softmax", (2, 6, 5), 0.04, 0, 1 / 255, -128, 13, dict(axis=1)),
    "softmax_opset11_flatten": ("Softmax", (2, 3, 4), 0.08, 1, 1 / 200, -100, 11, dict(axis=1)),
    "softmax_1000_classes": ("Softmax", (2, 1000), 0.06, 0, 1 / 2000, -128, 13, {}),
    "logsoftmax_0.1_zp50": ("LogSoftmax", (4, 10), 0.05, 3, 0.1, 50, 13, dict(axis=-1)),
    "logsoftmax_1/100_zp0": ("LogSoftmax", (4, 10), 0.02, 0, 0.01, 0, 13, dict(axis=-1)),
    "logsoftmax_axis0_of_3d": ("LogSoftmax", (7, 3, 4), 0.1, -2, 0.07, 127, 13, dict(axis=0)),
    "logsoftmax_1000_classes": ("LogSoftmax", (2, 1000), 0.06, 0, 0.05, 127, 13, dict(axis=-1)),
}


@pytest.mark.parametrize("case", list(HAND_BUILT))
def test_hand_built_qdq_within_one_lsb_of_onnxruntime_and_c_exact(case, tmp_path):
    need_tools("gcc")
    op, shape, s_in, zp_in, s_out, zp_out, opset, attrs = HAND_BUILT[case]
    model = _qdq_model(op, shape, s_in, zp_in, s_out, zp_out, opset, **attrs)
    g = run_passes(import_model(model), ["canonicalize", "lower-qdq", "dead-code"])
    assert [n.op for n in g.nodes] == [op]
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.integers(-128, 128, size=shape).astype(np.int8)} for _ in range(20)]
    feeds.append({"x": np.full(shape, 17, np.int8)})  # all equal: every row sums n * 2^30
    feeds.append({"x": np.where(rng.random(shape) < 0.5, 127, -128).astype(np.int8)})  # ties of maxima
    host = get_target("host")
    outs = run_on_target(generate(g, host), host, tmp_path, feeds).outputs
    want = _ort_qdq(model, feeds)
    for f, got, w in zip(feeds, outs, want):
        ref = interpreter.run(g, f)["y"]
        np.testing.assert_array_equal(got["y"], ref)  # C == reference
        assert np.abs(ref.astype(int) - w.astype(int)).max() <= 1


# -- classifiers quantized by onnxruntime ------------------------------------------------------------

def _classifier(kind: str, op: str, tmp_path, per_channel: bool):
    """Gemm -> op, or Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> op, random weights,
    quantized by onnxruntime's quantize_static (QDQ, int8 activations and weights)."""
    rng = np.random.default_rng(1)
    if kind == "gemm":
        shape = [1, 32]
        inits = [numpy_helper.from_array((rng.standard_normal((10, 32)) / 3).astype(np.float32), "w"),
                 numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b")]
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, name="fc")]
    else:
        shape = [1, 3, 12, 12]
        inits = [numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) / 4).astype(np.float32), "wc"),
                 numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "bc"),
                 numpy_helper.from_array((rng.standard_normal((10, 16)) * 1.5).astype(np.float32), "w"),
                 numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b")]
        nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                 helper.make_node("Relu", ["c"], ["r"], name="relu"),
                 helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
                 helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
                 helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1, name="fc")]
    nodes.append(helper.make_node(op, ["g"], ["y"], axis=-1, name="/" + op))
    # onnxruntime leaves LogSoftmax in float unless asked to quantize it
    ops = [n.op_type for n in nodes if n.op_type not in ("Relu", "Flatten")]
    return ort_quantized(nodes, inits, shape, (1, 10), tmp_path / "q.onnx", rng, per_channel, op_types_to_quantize=ops), shape


CLASSIFIERS = [(kind, op, pc) for op in ("Softmax", "LogSoftmax") for kind in ("gemm", "conv") for pc in (False, True)]


@pytest.mark.parametrize("kind,op,per_channel", CLASSIFIERS,
                         ids=[f"{k}-{o.lower()}-{'per_channel' if p else 'per_tensor'}" for k, o, p in CLASSIFIERS])
def test_onnxruntime_quantized_classifier_within_one_lsb_and_c_exact(kind, op, per_channel, tmp_path):
    """The generated C equals the reference; the int8 op is within 1 LSB of onnxruntime's QDQ
    execution on the same int8 input, and so is the whole model wherever the op's int8 input equals
    onnxruntime's (elsewhere a 1 LSB difference before the softmax is amplified by it)."""
    need_tools("gcc")
    path, shape = _classifier(kind, op, tmp_path, per_channel)
    g = load_graph(path)
    sm = g.nodes[-2]
    assert sm.op == op and g.nodes[-1].op == "DequantizeLinear"
    in_q, out_q = g.tensors[sm.inputs[0]].quant, g.tensors[sm.outputs[0]].quant
    if op == "Softmax":  # onnxruntime's softmax output: 1/255, zero point -128 (not TFLite's 1/256)
        assert math.isclose(float(out_q.scale), 1 / 255, rel_tol=1e-6) and int(out_q.zero_point) == -128
    rng = np.random.default_rng(9)
    feeds = [{"x": (rng.standard_normal(shape) * 1.5).astype(np.float32)} for _ in range(200)]
    host = get_target("host")
    outs = run_on_target(generate(g, host), host, tmp_path / "fw", feeds).outputs
    envs = [interpreter.run(g, f, keep_all=True) for f in feeds]
    for got, env in zip(outs, envs):
        np.testing.assert_array_equal(got["y"], env["y"])  # C == reference
    x_int = np.stack([env[sm.inputs[0]] for env in envs]).astype(np.int64)
    y_int = np.stack([env[sm.outputs[0]] for env in envs]).astype(np.int64)
    # the op alone: onnxruntime on the same int8 input
    tail = _qdq_model(op, x_int.shape[1:], float(in_q.scale), int(in_q.zero_point), float(out_q.scale),
                      int(out_q.zero_point), axis=-1)
    want = np.stack(_ort_qdq(tail, [{"x": x.astype(np.int8)} for x in x_int])).astype(np.int64)
    assert np.abs(y_int - want).max() <= 1
    assert np.mean(y_int == want) >= 0.98, np.unique(y_int - want, return_counts=True)
    # the whole model where the op's int8 input equals onnxruntime's (before it, the conv model's
    # GlobalAveragePool rounds at its input scale and then requantizes to a finer output scale: up
    # to 4 LSB from onnxruntime there, which the softmax amplifies)
    full = onnx.load(path)
    full.graph.output.extend([helper.make_tensor_value_info(sm.inputs[0], TensorProto.INT8, None)])
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(full.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ort_y, ort_x = zip(*(sess.run(None, f) for f in feeds))
    same_row = np.all(x_int == np.stack(ort_x), axis=-1)
    lsb = np.rint((np.stack([env["y"] for env in envs]) - np.stack(ort_y)) / float(out_q.scale))
    assert same_row.sum() >= 5 and np.abs(lsb[same_row]).max() <= 1


def test_cortex_m4_equals_reference(tmp_path):
    need_arm()
    target = get_target("cortex-m4")
    rng = np.random.default_rng(4)
    for op in ("Softmax", "LogSoftmax"):
        (tmp_path / op).mkdir()
        path, shape = _classifier("conv", op, tmp_path / op, per_channel=True)
        g = load_graph(path)
        samples = [{"x": (rng.standard_normal(shape) * 1.5).astype(np.float32)} for _ in range(5)]
        res = run_on_target(generate(g, target), target, tmp_path / op / "fw", samples)
        for s, got in zip(samples, res.outputs):
            np.testing.assert_array_equal(got["y"], interpreter.run(g, s)["y"])


def test_tinyc_quantizes_log_softmax(tmp_path):
    """tinyc's own quantizer (--quantize int8) on Gemm -> LogSoftmax: int8 LogSoftmax with the
    calibrated output range, close to onnxruntime's float model."""
    need_tools("gcc")
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array((rng.standard_normal((10, 32)) / 3).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("LogSoftmax", ["g"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((64, 1, 32)).astype(np.float32))
    r = run_cli("compile", str(tmp_path / "m.onnx"), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"),
                "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    from tinyc.compiler import prepare

    p = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    assert [n.op for n in p.graph.nodes] == ["QuantizeLinear", "Gemm", "LogSoftmax", "DequantizeLinear"]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out_q = p.graph.tensors[p.graph.nodes[-1].inputs[0]].quant
    out_scale, lowest = float(out_q.scale), float(out_q.scale) * (-128 - int(out_q.zero_point))
    samples = [{"x": (rng.standard_normal((1, 32)) * 0.7).astype(np.float32)} for _ in range(50)]
    host = get_target("host")
    res = run_on_target(generate(p.graph, host), host, tmp_path / "fw", samples)
    logits = p.graph.nodes[2].inputs[0]
    checked = 0
    for s, got in zip(samples, res.outputs):
        env = interpreter.run(p.graph, s, keep_all=True)
        np.testing.assert_array_equal(got["y"], env["y"])
        if np.abs(env[logits].astype(int) + 0.5).max() > 127:
            continue  # a logit beyond the calibrated range saturates
        want = sess.run(None, s)[0]
        inside = want > lowest  # and so does an output below it
        assert np.abs(env["y"] - want)[inside].max() < 4 * out_scale  # input, logits and output rounding
        checked += 1
    assert checked >= 20


HARNESS = """#include <stdint.h>
#include <stdio.h>
{helpers}
static const int64_t n[] = {{{n}}};
static const int64_t d[] = {{{d}}};
static const int64_t s[] = {{{s}}};
int main(void)
{{
    for (int i = 0; i < {count}; ++i) {{
        printf("%lld %lld\\n", (long long)tinyc_div_half_even(n[i], d[i]), (long long)tinyc_log2_q30(s[i]));
    }}
    return 0;
}}
"""


def test_c_helpers_equal_numpy(tmp_path):
    """tinyc_div_half_even and tinyc_log2_q30 against the numpy functions on edges (ties, powers of
    two, the largest sums) and random values."""
    need_tools("gcc")
    import subprocess

    from tinyc.codegen.emit import template_env

    rng = np.random.default_rng(0)
    d = np.concatenate([[1, 2, 2, 4, 3, 1 << 30, 10 << 30, (1 << 54) - 1], rng.integers(1 << 30, 1 << 54, 200)])
    n = np.concatenate([[0, 1, 3, 6, 7, 1 << 29, 15 << 29, 1 << 61], rng.integers(0, 1 << 61, 200)])
    n[8:40] = d[8:40] // 2 * (2 * rng.integers(0, 300, 32) + 1)  # exact ties when d is even
    s = np.concatenate([[1 << 30, (1 << 30) + 1, (1 << 31) - 1, 1 << 31, 3 << 30, (1 << 54) - 1, 1 << 54, 1000 << 30],
                        rng.integers(1 << 30, 1 << 54, 200)])
    env = template_env()  # the kernel's preamble: the fixed-point helpers, then its own
    helpers = (env.get_template("s8/fixedpoint.c.j2").render(single_rounding=False)
               + env.get_template("s8/softmax_exact_helpers.c.j2").render())
    fmt = lambda v: ", ".join(f"INT64_C({int(x)})" for x in v)
    (tmp_path / "h.c").write_text(HARNESS.format(helpers=helpers, n=fmt(n), d=fmt(d), s=fmt(s), count=len(n)))
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Werror", "h.c", "-o", "h"],
                   cwd=tmp_path, check=True)
    out = subprocess.run(["./h"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    got = np.array([[int(v) for v in line.split()] for line in out.splitlines()])
    np.testing.assert_array_equal(got[:, 0], se._round_half_even_div(n, d))
    np.testing.assert_array_equal(got[:, 1], se.log2_q30(s))
    np.testing.assert_array_equal(se._round_half_even_div(np.array([5, 7, 9, 11]), np.array([2, 2, 2, 2])), [2, 4, 4, 6])


def test_log_softmax_left_in_float_by_onnxruntime_is_a_clear_error(tmp_path):
    """quantize_static's defaults leave LogSoftmax float after a DequantizeLinear: refused in one
    line that says how to quantize it, not that LogSoftmax has no int8 kernel."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array((rng.standard_normal((10, 32)) / 3).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, name="fc"),
             helper.make_node("LogSoftmax", ["g"], ["y"], axis=-1, name="/LogSoftmax")]
    path = ort_quantized(nodes, inits, (1, 32), (1, 10), tmp_path / "q.onnx", rng)
    r = run_cli("compile", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "LogSoftmax node '/LogSoftmax'" in r.stderr and "op_types_to_quantize" in r.stderr
