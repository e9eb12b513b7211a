"""int8: tinyc's integer reference against TFLite Micro (the `tflite-micro` package), generated C
against the reference bit for bit on the emulated Cortex-M4, onnxruntime-quantized models, and
clean errors for what cannot be lowered exactly."""
from __future__ import annotations

import copy
import re
import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import import_model
from tinyc.passes import run_passes
from tinyc.quant.rounding import set_graph
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, shared_model
from .onnx_builders import ort_quantized

MODELS = {
    "hello_world": "hello-world/hello_world_int8",
    "kws": "mlperf-tiny/kws_int8",
    "ic": "mlperf-tiny/ic_int8",
    "ad": "mlperf-tiny/ad_int8",
}


def _inputs(key: str, g, count: int = 100) -> list[dict[str, np.ndarray]]:
    """The real sample from samples.npz (KWS) and `count` random int8 inputs."""
    name = g.inputs[0]
    shape = g.tensors[name].shape
    out = []
    if key == "kws":
        out.append({name: np.load(shared_model("mlperf-tiny/samples.npz"))["kws_int8"].reshape(shape)})
    if key == "ad":  # real log-mel windows, quantized with the model's input parameters
        q = g.tensors[name].quant
        ad = np.load(shared_model("mlperf-tiny/samples.npz"))["ad_float"][:10]
        for row in ad:
            out.append({name: np.clip(np.round(row / float(q.scale)) + int(q.zero_point), -128, 127).astype(np.int8).reshape(shape)})
    rng = np.random.default_rng(1234)
    out += [{name: rng.integers(-128, 128, size=shape).astype(np.int8)} for _ in range(count)]
    return out


def _tflm(key: str, samples):
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    it = runtime.Interpreter.from_file(str(shared_model(MODELS[key] + ".tflite")))
    outs = []
    for s in samples:
        it.set_input(next(iter(s.values())), 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return outs


@pytest.mark.parametrize("key", list(MODELS))
def test_reference_equals_tflite_micro(key):
    g = load_graph(shared_model(MODELS[key] + ".onnx"))
    assert all(n.op not in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes)
    samples = _inputs(key, g)
    want = _tflm(key, samples)
    for s, w in zip(samples, want):
        got = interpreter.run(g, s)[g.outputs[0]]
        np.testing.assert_array_equal(got, w.reshape(got.shape))


@pytest.mark.emulator
@pytest.mark.parametrize("key", list(MODELS))
def test_cortex_m4_equals_reference_and_tflite_micro_bit_for_bit(key, tmp_path):
    need_arm()
    g = load_graph(shared_model(MODELS[key] + ".onnx"))
    samples = _inputs(key, g)
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, samples)
    want = _tflm(key, samples)
    for s, got, w in zip(samples, res.outputs, want):
        out = got[g.outputs[0]]
        np.testing.assert_array_equal(out, interpreter.run(g, s)[g.outputs[0]])
        np.testing.assert_array_equal(out, w.reshape(out.shape))


def test_litert_reference_resolver_is_reproduced_with_single_rounding():
    """LiteRT's reference kernels differ from TFLite Micro on AD's fully connected layers; they
    are TFLite's single-rounding build. tinyc's single-rounding mode reproduces them exactly,
    which pins down that the rounding switch is the only difference."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    g = load_graph(shared_model(MODELS["ad"] + ".onnx"))
    single = copy.deepcopy(g)
    set_graph(single, "single")
    samples = _inputs("ad", g, count=20)
    it = litert.Interpreter(model_path=str(shared_model(MODELS["ad"] + ".tflite")),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    i0, o0 = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    differ_double = 0
    for s in samples:
        it.set_tensor(i0, next(iter(s.values())))
        it.invoke()
        want = it.get_tensor(o0)
        differ_double += int(np.count_nonzero(interpreter.run(g, s)[g.outputs[0]] != want))
        np.testing.assert_array_equal(interpreter.run(single, s)[g.outputs[0]], want)
    assert differ_double > 0  # the two builds really differ on AD


@pytest.mark.parametrize("key", ["kws", "ic"])
def test_int8_io_model_has_no_float_code(key, tmp_path):
    g = load_graph(shared_model(MODELS[key] + ".onnx"))
    src = generate(g, get_target("cortex-m4"), name="net").files["net.c"]
    code = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    assert "float" not in code and "double" not in code
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-objdump")
    (tmp_path / "net.c").write_text(src)
    (tmp_path / "net.h").write_text(generate(g, get_target("cortex-m4"), name="net").files["net.h"])
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                    "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c", "net.c"], cwd=tmp_path, check=True)
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "net.o"], cwd=tmp_path, capture_output=True, text=True).stdout
    fp_instructions = [l for l in dis.splitlines() if re.search(r"\tv[a-z]+\.(f32|f64)", l)]
    assert not fp_instructions, fp_instructions[:5]


def _ort_cnn(tmp_path):
    """A small CNN with random weights, quantized by onnxruntime (QDQ, per-channel, int8)."""
    rng = np.random.default_rng(0)

    def w(*s):
        return (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)

    inits = [numpy_helper.from_array(w(8, 1, 3, 3), "w1"), numpy_helper.from_array(w(8) * 0.1, "b1"),
             numpy_helper.from_array(w(16, 8, 3, 3), "w2"), numpy_helper.from_array(w(16) * 0.1, "b2"),
             numpy_helper.from_array(w(10, 64), "w3"), numpy_helper.from_array(w(10) * 0.1, "b3")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
             helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    return ort_quantized(nodes, inits, (1, 1, 16, 16), (1, 10), tmp_path / "cnn_q.onnx", rng)


def test_onnxruntime_quantize_static_cnn_within_one_lsb(tmp_path):
    import onnxruntime as ort

    path = _ort_cnn(tmp_path)
    g = load_graph(path)
    assert [n.op for n in g.nodes][0] == "QuantizeLinear" and g.nodes[-1].op == "DequantizeLinear"
    assert {n.op for n in g.nodes[1:-1]} <= {"Conv", "MaxPool", "Flatten", "Reshape", "Gemm"}
    out_scale = float(g.tensors[g.nodes[-1].inputs[0]].quant.scale)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    samples = [{"x": rng.standard_normal((1, 1, 16, 16)).astype(np.float32)} for _ in range(50)]
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        ref = interpreter.run(g, s)["y"]
        np.testing.assert_array_equal(got["y"], ref)  # C == reference, exactly
        lsb = np.abs(ref - sess.run(None, s)[0]) / out_scale
        assert lsb.max() <= 1.0 + 1e-4  # onnxruntime requantizes in float


def _qlinear_model(op: str):
    rng = np.random.default_rng(3)
    x_s, x_zp, y_s, y_zp = np.float32(0.05), np.int8(-3), np.float32(0.11), np.int8(7)
    if op == "QLinearConv":
        w = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
        w_s = (rng.uniform(0.002, 0.01, 4)).astype(np.float32)
        b = rng.integers(-2000, 2000, size=4).astype(np.int32)
        inputs = ["x", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp", "b"]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_s, "w_s"),
                 numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"), numpy_helper.from_array(b, "b")]
        shape, out_shape, attrs = [1, 3, 8, 8], [1, 4, 8, 8], dict(pads=[1, 1, 1, 1])
    else:
        w = rng.integers(-127, 128, size=(16, 5)).astype(np.int8)
        inputs = ["x", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp"]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0.007), "w_s"),
                 numpy_helper.from_array(np.int8(0), "w_zp")]
        shape, out_shape, attrs = [3, 16], [3, 5], {}
    inits += [numpy_helper.from_array(np.array(x_s), "x_s"), numpy_helper.from_array(np.array(x_zp), "x_zp"),
              numpy_helper.from_array(np.array(y_s), "y_s"), numpy_helper.from_array(np.array(y_zp), "y_zp")]
    node = helper.make_node(op, inputs, ["y"], name="the_op", **attrs)
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.INT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"x": rng.integers(-128, 128, size=shape).astype(np.int8)}


@pytest.mark.parametrize("op", ["QLinearConv", "QLinearMatMul"])
def test_qlinear_ops_within_one_lsb_of_onnxruntime(op, tmp_path):
    model, feeds = _qlinear_model(op)
    g = run_passes(import_model(model), ["lower-qdq", "dead-code"])
    assert [n.op for n in g.nodes] == (["Conv"] if op == "QLinearConv" else ["Gemm"])
    _within_one_lsb_of_onnxruntime_and_c_exact(model, g, feeds, tmp_path)


def _within_one_lsb_of_onnxruntime_and_c_exact(model, g, feeds, tmp_path) -> None:
    """The int8 reference within 1 LSB of onnxruntime (float requantization), the C equal to it."""
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    ref = interpreter.run(g, feeds)["y"]
    assert np.abs(ref.astype(int) - want.astype(int)).max() <= 1
    host = get_target("host")
    got = run_on_target(generate(g, host), host, tmp_path, [feeds]).outputs[0]["y"]
    np.testing.assert_array_equal(got, ref)


def _qdq_chain(op: str, act_dtype=TensorProto.INT8, operands=("xf",), **attrs):
    zp_t = np.int8(0) if act_dtype == TensorProto.INT8 else np.uint8(128)
    inits = [numpy_helper.from_array(np.array(np.float32(0.1)), "s"), numpy_helper.from_array(np.array(zp_t), "zp"),
             numpy_helper.from_array(np.array(np.float32(1 / 256)), "s_out"),
             numpy_helper.from_array(np.array(zp_t), "zp_out")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["xf"], name="dq"),
             helper.make_node(op, list(operands), ["yf"], name="the_" + op.lower(), **attrs),
             helper.make_node("QuantizeLinear", ["yf", "s_out", "zp_out"], ["y"], name="q")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", act_dtype, [1, 8])],
                              [helper.make_tensor_value_info("y", act_dtype, [1, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_quantized_op_without_int8_kernel_is_a_clear_error():
    # Div exists in float only: inside a quantized region it must not silently run in float
    with pytest.raises(UnsupportedError) as e:
        run_passes(import_model(_qdq_chain("Div", operands=("xf", "xf"))), ["lower-qdq"])
    assert "the_div" in str(e.value) and "no float fallback" in str(e.value)


def test_uint8_activations_are_a_clear_error():
    with pytest.raises(UnsupportedError, match="QInt8"):
        run_passes(import_model(_qdq_chain("Softmax", TensorProto.UINT8)), ["lower-qdq"])


def _single_op_qdq(op: str, n_in: int, shape, out_scale: float, out_zp: int, _consts=(), _opset=13, **attrs):
    """x_i (int8) -> DequantizeLinear -> op -> QuantizeLinear -> y (int8), each input with its own
    parameters; onnxruntime evaluates it in float (the QDQ meaning) as the oracle."""
    rng = np.random.default_rng(11)
    inits, nodes, inputs, feeds = [], [], [], {}
    for i in range(n_in):
        s, z = np.float32(rng.uniform(0.01, 0.1)), np.int8(rng.integers(-20, 20))
        inits += [numpy_helper.from_array(np.array(s), f"s{i}"), numpy_helper.from_array(np.array(z), f"z{i}")]
        nodes.append(helper.make_node("DequantizeLinear", [f"x{i}", f"s{i}", f"z{i}"], [f"f{i}"], name=f"dq{i}"))
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.INT8, list(shape)))
        feeds[f"x{i}"] = rng.integers(-128, 128, size=shape).astype(np.int8)
    inits += [numpy_helper.from_array(np.array(np.float32(out_scale)), "so"), numpy_helper.from_array(np.array(np.int8(out_zp)), "zo")]
    for name, value in _consts:  # constant operands after the quantized inputs (pads, scales, ...)
        inits.append(numpy_helper.from_array(value, name))
    nodes.append(helper.make_node(op, [f"f{i}" for i in range(n_in)] + [c[0] for c in _consts], ["yf"], name="the_op", **attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["yf", "so", "zo"], ["y"], name="q"))
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _opset)])
    model.ir_version = 8
    return model, feeds


SINGLE_OPS = {
    "add": ("Add", 2, (1, 4, 5, 6), 0.12, 3, {}),
    "mul": ("Mul", 2, (1, 4, 5, 6), 0.07, -5, {}),
    "concat_requantized": ("Concat", 2, (1, 3, 4, 4), 0.05, 0, dict(axis=1)),
    "global_avgpool": ("GlobalAveragePool", 1, (1, 6, 5, 7), 0.04, 2, {}),
    "global_maxpool": ("GlobalMaxPool", 1, (1, 6, 5, 7), 0.05, 1, {}),
    "maxpool": ("MaxPool", 1, (1, 3, 8, 8), 0.06, -1, dict(kernel_shape=[2, 2], strides=[2, 2])),
    "avgpool_requantized": ("AveragePool", 1, (1, 3, 8, 8), 0.03, 4, dict(kernel_shape=[3, 3], strides=[1, 1])),
    "relu_standalone": ("Relu", 1, (2, 50), 0.05, -128, {}),
    "transpose": ("Transpose", 1, (2, 3, 4), 0.08, 1, dict(perm=[2, 0, 1])),
    "softmax": ("Softmax", 1, (3, 10), 1 / 256, -128, dict(axis=-1)),
    # issue 15: any other softmax output quantization, and LogSoftmax (tinyc/quant/softmax_exact.py)
    "softmax_output_1/100": ("Softmax", 1, (3, 10), 0.01, 0, dict(axis=-1)),
    "log_softmax": ("LogSoftmax", 1, (3, 10), 0.05, 127, dict(axis=-1)),
    # issue 5: pointwise ops by table, Sub, Max/Min with requantized inputs, data movement
    "sigmoid": ("Sigmoid", 1, (4, 64), 1 / 256, -128, {}),
    "tanh": ("Tanh", 1, (4, 64), 1 / 128, 0, {}),
    "hard_swish": ("HardSwish", 1, (4, 64), 0.03, -20, dict(_opset=14)),
    "hard_sigmoid": ("HardSigmoid", 1, (4, 64), 1 / 256, -128, dict(alpha=0.25, beta=0.5)),
    "leaky_relu": ("LeakyRelu", 1, (4, 64), 0.04, 10, dict(alpha=0.1)),
    "elu": ("Elu", 1, (4, 64), 0.04, 30, {}),
    "exp": ("Exp", 1, (4, 64), 0.2, -128, {}),
    "abs": ("Abs", 1, (4, 64), 0.05, -128, {}),
    "sub": ("Sub", 2, (1, 4, 5, 6), 0.1, 2, {}),
    "max_requantized_inputs": ("Max", 2, (2, 30), 0.06, 0, {}),
    "min_requantized_inputs": ("Min", 2, (2, 30), 0.06, -3, {}),
    "slice": ("Slice", 1, (2, 6, 7), 0.08, 1, dict(_consts=[("st", np.array([1, -1], np.int64)), ("en", np.array([5, 0], np.int64)),
                                                            ("ax", np.array([1, 2], np.int64)), ("sp", np.array([2, -2], np.int64))])),
    "pad_constant": ("Pad", 1, (1, 3, 4, 4), 0.05, 0, dict(_consts=[("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
                                                                   ("v", np.array(0.3, np.float32))])),
    "resize_nearest": ("Resize", 1, (1, 3, 4, 5), 0.07, 2, dict(mode="nearest", _consts=[
        ("roi", np.array([], np.float32)), ("sc", np.array([1, 1, 2, 1.5], np.float32))])),
    "reduce_mean_spatial_keepdims0": ("ReduceMean", 1, (1, 6, 5, 7), 0.04, 2, dict(axes=[2, 3], keepdims=0)),
    "reduce_max_spatial": ("ReduceMax", 1, (1, 6, 5, 7), 0.05, 1, dict(axes=[2, 3])),
    "gather": ("Gather", 1, (5, 8), 0.08, 1, dict(axis=1, _consts=[("idx", np.array([7, 0, 3, 3], np.int64))])),
    # issue 21: activation x activation MatMul (BATCH_MATMUL), LayerNorm, bilinear Resize
    "batch_matmul": ("MatMul", 2, (2, 4, 4), 3.0, 3, {}),
    "layernorm": ("LayerNormalization", 1, (2, 3, 8), 0.03, 0, dict(axis=-1, _opset=17, _consts=[
        ("ln_s", np.linspace(0.5, 1.5, 8, dtype=np.float32)), ("ln_b", np.linspace(-0.4, 0.3, 8, dtype=np.float32))])),
    "resize_bilinear": ("Resize", 1, (1, 3, 4, 5), 0.07, 2, dict(mode="linear", _consts=[
        ("roi", np.array([], np.float32)), ("sc", np.array([1, 1, 2, 2], np.float32))])),
}


@pytest.mark.parametrize("case", list(SINGLE_OPS))
def test_each_int8_op_within_one_lsb_of_onnxruntime_and_c_exact(case, tmp_path):
    op, n_in, shape, so, zo, attrs = SINGLE_OPS[case]
    model, feeds = _single_op_qdq(op, n_in, shape, so, zo, **attrs)
    g = run_passes(import_model(model), ["canonicalize", "lower-qdq", "dead-code"])
    assert all(n.op not in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes)
    _within_one_lsb_of_onnxruntime_and_c_exact(model, g, feeds, tmp_path)
