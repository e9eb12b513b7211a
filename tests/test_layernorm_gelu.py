"""LayerNormalization, Gelu and Erf: float against onnxruntime (reference and generated C, host and
Cortex-M4), the fuse-transformer pass on PyTorch's decomposed forms, int8 GELU against TFLite
(LiteRT's reference kernels: TFLite Micro has no GELU), int8 LayerNorm C == its integer reference
and within 1 output step of float LayerNorm, and the dynamo transformer export end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph, prepare
from tinyc.emulator import run_on_target
from tinyc.errors import TinycError
from tinyc.frontend.onnx import import_model
from tinyc.quant import layernorm_int
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, need_tools, rel_err, run_cli
from .onnx_builders import single_node, weights as W
from .tflite_builders import model_bytes

X = ("x", (2, 3, 8))
FLOAT_CASES = {
    "layernorm_last_bias": ("LayerNormalization", [X, ("s", W(8)), ("b", W(8))], dict(axis=-1, epsilon=1e-3), 17),
    "layernorm_last_no_bias": ("LayerNormalization", [X, ("s", W(8))], {}, 17),
    "layernorm_two_axes": ("LayerNormalization", [X, ("s", W(3, 8)), ("b", W(3, 8))], dict(axis=1), 17),
    "layernorm_partial_broadcast": ("LayerNormalization", [X, ("s", W(8)), ("b", W(1, 8))], dict(axis=-2), 17),
    "layernorm_scalar_scale": ("LayerNormalization", [("x", (4, 5)), ("s", W(1)), ("b", W(5))], dict(axis=1), 17),
    "gelu_erf": ("Gelu", [X], {}, 20),
    "gelu_tanh": ("Gelu", [X], dict(approximate="tanh"), 20),
    "erf": ("Erf", [X], {}, 17),
}


def _ort(model: onnx.ModelProto, feeds):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _case(name):
    op, inputs, attrs, opset = FLOAT_CASES[name]
    model, feeds = single_node(op, inputs, opset=opset, **attrs)
    feeds = {k: v * 3 for k, v in feeds.items()}  # GELU's and erf's tails too
    return model, feeds


@pytest.mark.parametrize("name", list(FLOAT_CASES))
def test_float_reference_and_host_c_match_onnxruntime(name, tmp_path: Path):
    need_tools("gcc")
    model, feeds = _case(name)
    want = _ort(model, feeds)[0]
    g = import_model(model, name="case")
    assert rel_err(interpreter.run(g, feeds)[g.outputs[0]], want) < 1e-5
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path, [feeds])
    assert rel_err(res.outputs[0][g.outputs[0]], want) < 1e-5


@pytest.mark.emulator
def test_float_cortex_m4_matches_onnxruntime(tmp_path: Path):
    need_arm()
    target = get_target("cortex-m4")
    for name in FLOAT_CASES:
        model, feeds = _case(name)
        g = import_model(model, name="case")
        res = run_on_target(generate(g, target), target, tmp_path / name, [feeds])
        assert rel_err(res.outputs[0][g.outputs[0]], _ort(model, feeds)[0]) < 1e-5, name


@pytest.mark.parametrize("count", [2, 3])
def test_layernorm_mean_and_inv_std_dev_outputs_match_onnxruntime(count, tmp_path: Path):
    need_tools("gcc")
    model, feeds = single_node("LayerNormalization", [X, ("s", W(3, 8))], out_count=count, opset=17, axis=1)
    want = _ort(model, feeds)
    g = import_model(model, name="case")
    host = get_target("host")
    got = run_on_target(generate(g, host), host, tmp_path, [feeds]).outputs[0]
    assert len(g.outputs) == count
    for name, w in zip(g.outputs, want):
        assert got[name].shape == w.shape and rel_err(got[name], w) < 1e-5, name
        assert rel_err(interpreter.run(g, feeds)[name], w) < 1e-5, name


def test_layernorm_statistics_outputs_are_refused_in_int8(tmp_path: Path):
    model, feeds = single_node("LayerNormalization", [X, ("s", W(8))], out_count=2, opset=17)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([feeds["x"]] * 2))
    with pytest.raises(TinycError, match="int8 has output Y only"):
        prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", progress=False).graph


# -- the fuse-transformer pass on PyTorch's decomposed forms (TorchScript exporter, opset 16)

def _const(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32), name))


def _torch_layernorm(x, y, n, eps=1e-5):
    """nn.LayerNorm(n) at opset 16, node for node as PyTorch's exporter writes it."""
    return [
        helper.make_node("ReduceMean", [x], ["m"], axes=[-1]),
        helper.make_node("Sub", [x, "m"], ["d"]),
        _const("two", 2.0), helper.make_node("Pow", ["d", "two"], ["p"]),
        helper.make_node("ReduceMean", ["p"], ["v"], axes=[-1]),
        _const("eps", eps), helper.make_node("Add", ["v", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["nrm"]),
        helper.make_node("Mul", ["nrm", "ln.weight"], ["sc"]),
        helper.make_node("Add", ["sc", "ln.bias"], [y]),
    ]


def _torch_gelu_erf(x, y, half=0.5):
    return [_const("sqrt2", np.sqrt(2.0)), helper.make_node("Div", [x, "sqrt2"], ["g_d"]),
            helper.make_node("Erf", ["g_d"], ["g_e"]),
            _const("one", 1.0), helper.make_node("Add", ["g_e", "one"], ["g_a"]),
            helper.make_node("Mul", [x, "g_a"], ["g_m"]),
            _const("half", half), helper.make_node("Mul", ["g_m", "half"], [y])]


def _torch_gelu_tanh(x, y):
    return [helper.make_node("Mul", [x, x], ["t_sq"]), helper.make_node("Mul", [x, "t_sq"], ["t_cu"]),
            _const("k", 0.044715), helper.make_node("Mul", ["k", "t_cu"], ["t_k"]),
            helper.make_node("Add", [x, "t_k"], ["t_a"]),
            _const("c", np.sqrt(2 / np.pi)), helper.make_node("Mul", ["c", "t_a"], ["t_in"]),
            helper.make_node("Tanh", ["t_in"], ["t_t"]),
            _const("one_t", 1.0), helper.make_node("Add", ["one_t", "t_t"], ["t_o"]),
            helper.make_node("Mul", [x, "t_o"], ["t_m"]),
            _const("half_t", 0.5), helper.make_node("Mul", ["half_t", "t_m"], [y])]


def _decomposed_model(shape=(1, 8, 32), half=0.5):
    rng = np.random.default_rng(3)
    n = shape[-1]
    nodes = _torch_layernorm("x", "ln", n) + _torch_gelu_erf("ln", "ge", half) + _torch_gelu_tanh("ge", "y")
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), "ln.weight"),
             numpy_helper.from_array(rng.uniform(-0.5, 0.5, n).astype(np.float32), "ln.bias")]
    graph = helper.make_graph(nodes, "torch16", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("shape", [(1, 8, 32), (8, 32), (2, 4, 3, 16)])
def test_decomposed_forms_become_layernorm_and_gelu(shape, tmp_path: Path):
    need_tools("gcc")
    model = _decomposed_model(shape)
    onnx.save(model, tmp_path / "m.onnx")
    g = prepare(tmp_path / "m.onnx", progress=False).graph
    assert [n.op for n in g.nodes] == ["LayerNormalization", "Gelu", "Gelu"]
    assert [n.attrs.get("approximate") for n in g.nodes[1:]] == ["none", "tanh"]
    assert g.nodes[0].attrs["epsilon"] == pytest.approx(1e-5)
    feeds = {"x": (np.random.default_rng(0).standard_normal(shape) * 2).astype(np.float32)}
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", [feeds])
    assert rel_err(res.outputs[0]["y"], _ort(model, feeds)[0]) < 1e-5


def test_a_constant_off_the_pattern_is_not_fused(tmp_path: Path):
    onnx.save(_decomposed_model(half=0.499), tmp_path / "m.onnx")
    ops = [n.op for n in prepare(tmp_path / "m.onnx", progress=False).graph.nodes]
    assert "Erf" in ops and ops.count("Gelu") == 1 and ops[0] == "LayerNormalization"


# -- int8 GELU: TFLite's table, against LiteRT's reference kernel

def _gelu_tflite(approximate: bool, qx, qy) -> bytes:
    return model_bytes("GELU", [dict(name="x", shape=[1, 256], type="s8", q=([qx[0]], [qx[1]], 0)),
                                dict(name="y", shape=[1, 256], type="s8", q=([qy[0]], [qy[1]], 0))],
                       [0], [1], [0], [1], options=("GeluOptions", {"approximate": approximate}))


def _litert(model: bytes, x: np.ndarray) -> np.ndarray:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


GELU_Q = [((0.05, -3), (0.03, -100)), ((0.0123, 10), (0.0077, -120)), ((0.1, 0), (0.05, -128)), ((0.02, 5), (0.02, 5)),
          ((0.03125, -121), (0.0625, -96))]  # (the last: tanh's float32 rounding decides one entry)


def _gelu_graphs(tmp_path: Path):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for approximate in (False, True):
        for k, (qx, qy) in enumerate(GELU_Q):
            data = _gelu_tflite(approximate, qx, qy)
            path = tmp_path / f"gelu_{int(approximate)}_{k}.tflite"
            path.write_bytes(data)
            yield path.stem, load_graph(path), {"x": x}, _litert(data, x)


def test_int8_gelu_equals_tflite(tmp_path: Path):
    need_tools("gcc")
    host = get_target("host")
    for name, g, feeds, want in _gelu_graphs(tmp_path):
        assert [n.attrs for n in g.nodes if n.op == "Gelu"] == [{"approximate": "tanh" if "_1_" in name else "none",
                                                                  "recipe": "tflite"}]
        np.testing.assert_array_equal(interpreter.run(g, feeds)[g.outputs[0]], want, err_msg=name)
        res = run_on_target(generate(g, host), host, tmp_path / name, [feeds])
        np.testing.assert_array_equal(res.outputs[0][g.outputs[0]], want, err_msg=name)


def test_int8_gelu_tables_equal_tflite_on_random_parameters():
    """200 random quantizations (power-of-two scales and equal scales among them), both forms: the
    256-entry table equals LiteRT's reference GELU on every input."""
    from types import SimpleNamespace

    from tinyc.ops.gelu import int8_table

    rng = np.random.default_rng(1)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for k in range(200):
        si = float(rng.choice([rng.uniform(0.001, 0.2), 2.0 ** -int(rng.integers(3, 8))]))
        so = float(rng.choice([rng.uniform(0.001, 0.2), 2.0 ** -int(rng.integers(3, 8)), si]))
        zi, zo = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        want = _litert(_gelu_tflite(bool(k % 2), (si, zi), (so, zo)), x).reshape(-1)
        got = int8_table("tanh" if k % 2 else "none", "tflite", SimpleNamespace(scale=si, zero_point=zi),
                         SimpleNamespace(scale=so, zero_point=zo))
        np.testing.assert_array_equal(got, want, err_msg=f"{k}: {si} {zi} -> {so} {zo}")


@pytest.mark.emulator
def test_int8_gelu_cortex_m4_equals_tflite(tmp_path: Path):
    need_arm()
    target = get_target("cortex-m4")
    for name, g, feeds, want in _gelu_graphs(tmp_path):
        res = run_on_target(generate(g, target), target, tmp_path / name, [feeds])
        np.testing.assert_array_equal(res.outputs[0][g.outputs[0]], want, err_msg=name)


# -- int8 LayerNorm: tinyc's integer design

def test_int8_layernorm_is_within_one_step_of_float_on_random_data():
    """The integer kernel against float LayerNorm of the dequantized input, quantized once: 300
    random configurations (row lengths 4 to 768, scales, zero points, epsilons, Scale and B)."""
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(300):
        n = int(rng.choice([4, 8, 16, 32, 64, 100, 256, 768]))
        sx, zx = float(rng.uniform(0.005, 0.2)), int(rng.integers(-50, 50))
        gamma, beta = rng.uniform(-2, 2, n), rng.uniform(-1, 1, n)
        eps = float(rng.choice([1e-5, 1e-6, 1e-3, 0.1]))
        x = np.clip(np.round(rng.standard_normal((16, n)) * rng.uniform(5, 60) + rng.uniform(-40, 40)) + zx,
                    -128, 127).astype(np.int8)
        xf = (x.astype(np.float64) - zx) * sx
        mean = xf.mean(1, keepdims=True)
        yf = (xf - mean) / np.sqrt(((xf - mean) ** 2).mean(1, keepdims=True) + eps) * gamma + beta
        sy, zy = float(np.abs(yf).max() / 120), int(rng.integers(-10, 10))
        want = np.clip(np.round(yf / sy) + zy, -128, 127)
        got = layernorm_int.layernorm_s8(x, layernorm_int.params("t", n, eps, sx, sy, zy, gamma, beta))
        diffs.append(np.abs(got.astype(int) - want).ravel())
    d = np.concatenate(diffs)
    assert d.max() <= 1 and (d > 0).mean() < 1e-4  # measured: 1 of 634,624 values off by one step


def _int8_layernorm_build(tmp_path: Path, axis=-1, shape=(6, 32)):
    rng = np.random.default_rng(5)
    inner = shape[axis:]
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, inner).astype(np.float32), "s"),
             numpy_helper.from_array(rng.uniform(-0.5, 0.5, inner).astype(np.float32), "b")]
    graph = helper.make_graph([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=axis)], "ln",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    calib = (rng.standard_normal((32, *shape)) * rng.uniform(0.5, 3, (32, *shape[:-1], 1))).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=calib + 0.5)
    p = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    samples = [{"x": (rng.standard_normal(shape) * rng.uniform(0.5, 3) + 0.5).astype(np.float32)} for _ in range(8)]
    return model, p.graph, samples


def test_int8_layernorm_of_onnxruntime_qdq_is_within_one_step(tmp_path: Path):
    """onnxruntime's quantize_static writes Scale as a DequantizeLinear of int8 and B of int32:
    tinyc takes them dequantized, and its integer reference is within one output step of
    onnxruntime running the QDQ graph."""
    from .modelfuzz.quantize import ort_quantize

    model, _, samples = _int8_layernorm_build(tmp_path, axis=1, shape=(2, 4, 16))
    qdq = ort_quantize(model, samples, per_channel=False)
    assert {"DequantizeLinear"} == {n.op_type for n in qdq.graph.node if n.output[0] in
                                    {i for m in qdq.graph.node if m.op_type == "LayerNormalization" for i in m.input[1:]}}
    onnx.save(qdq, tmp_path / "qdq.onnx")
    g = prepare(tmp_path / "qdq.onnx", progress=False).graph
    assert [n.op for n in g.nodes if n.op == "LayerNormalization"]
    scale = float(numpy_helper.to_array(next(t for t in qdq.graph.initializer if t.name == next(
        n.input[1] for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == "y"))))
    for feeds in samples:
        got = interpreter.run(g, feeds)[g.outputs[0]].astype(np.float64)
        want = _ort(qdq, feeds)[0].astype(np.float64)
        assert np.abs(np.round((got - want) / scale)).max() <= 1


def test_int8_layernorm_host_c_equals_reference_and_float(tmp_path: Path):
    need_tools("gcc")
    model, g, samples = _int8_layernorm_build(tmp_path)
    assert [n.op for n in g.nodes] == ["QuantizeLinear", "LayerNormalization", "DequantizeLinear"]
    xq, yq = (g.tensors[g.nodes[1].inputs[0]].quant, g.tensors[g.nodes[1].outputs[0]].quant)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        env = interpreter.run(g, s, keep_all=True)
        np.testing.assert_array_equal(got["y"], env["y"])
        x_int = env[g.nodes[1].inputs[0]].astype(np.float32)
        deq = ((x_int - int(xq.zero_point)) * np.float32(xq.scale)).astype(np.float32)
        want = np.clip(np.round(_ort(model, {"x": deq})[0] / float(yq.scale)) + int(yq.zero_point), -128, 127)
        assert np.abs(env[g.nodes[1].outputs[0]].astype(int) - want).max() <= 1


@pytest.mark.emulator
def test_int8_layernorm_cortex_m4_equals_reference(tmp_path: Path):
    need_arm()
    _, g, samples = _int8_layernorm_build(tmp_path, axis=1, shape=(2, 4, 16))
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        np.testing.assert_array_equal(got["y"], interpreter.run(g, s)["y"])


# -- the dynamo export of examples/transformer (LayerNormalization, Gelu; opset 20)

DYNAMO = ROOT / "examples" / "transformer" / "digits_transformer_dynamo.onnx"


def _dynamo_rows(count: int):
    rows = np.load(ROOT / "examples" / "transformer" / "transformer_test.npz")["rows"][:count]
    return [{"rows": r[None].astype(np.float32)} for r in rows]


def _dynamo_check(tmp_path: Path, target_name: str):
    import onnxruntime as ort

    g = load_graph(DYNAMO)
    assert {"LayerNormalization", "Gelu"} <= {n.op for n in g.nodes}
    samples = _dynamo_rows(10)
    target = get_target(target_name)
    res = run_on_target(generate(g, target), target, tmp_path / "fw", samples)
    sess = ort.InferenceSession(str(DYNAMO), providers=["CPUExecutionProvider"])
    for s, got in zip(samples, res.outputs):
        assert rel_err(got[g.outputs[0]], sess.run(None, s)[0]) < 1e-5
    r = run_cli("verify", str(DYNAMO), "--target", target_name, "--build-dir", str(tmp_path / "verify"))
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def test_dynamo_transformer_on_host_matches_onnxruntime(tmp_path: Path):
    need_tools("gcc")
    _dynamo_check(tmp_path, "host")


@pytest.mark.emulator
def test_dynamo_transformer_on_cortex_m4_matches_onnxruntime(tmp_path: Path):
    need_arm()
    _dynamo_check(tmp_path, "cortex-m4")


def test_int8_block_of_layernorm_linear_gelu_against_float(tmp_path: Path):
    """tinyc's quantizer on PyTorch's decomposed LayerNorm -> Linear on [1, 8, 32] (an int8 fully
    connected layer over the rows, between views) -> erf GELU -> tanh GELU: C == reference, and
    SQNR against onnxruntime's float model on held-out inputs."""
    need_tools("gcc")
    rng = np.random.default_rng(9)
    shape = (1, 8, 32)
    model = _decomposed_model(shape)
    ln = next(n for n in model.graph.node if n.output[0] == "ln")
    model.graph.initializer.append(numpy_helper.from_array((rng.standard_normal((32, 32)) / 6).astype(np.float32), "fc.w"))
    ln.output[0] = "ln0"
    model.graph.node.insert(list(model.graph.node).index(ln) + 1, helper.make_node("MatMul", ["ln0", "fc.w"], ["ln"]))
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((64, *shape)).astype(np.float32))
    p = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    ops = [n.op for n in p.graph.nodes]
    assert ops == ["QuantizeLinear", "LayerNormalization", "Reshape", "Gemm", "Reshape", "Gelu", "Gelu", "DequantizeLinear"]
    samples = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(10)]
    host = get_target("host")
    res = run_on_target(generate(p.graph, host), host, tmp_path / "fw", samples)
    signal = noise = 0.0
    for s, got in zip(samples, res.outputs):
        np.testing.assert_array_equal(got["y"], interpreter.run(p.graph, s)["y"])
        want = _ort(model, s)[0].astype(np.float64)
        signal, noise = signal + (want ** 2).sum(), noise + ((got["y"] - want) ** 2).sum()
    assert 10 * np.log10(signal / noise) > 30  # measured 33.9 dB


@pytest.mark.parametrize("opset", [16, 17])
def test_layernorm_and_gelu_of_the_torchscript_exports(opset, tmp_path: Path):
    """The first LayerNorm and the GELU of examples/transformer's TorchScript exports, cut out with
    onnx.utils (the whole files need shape folding): opset 16's decomposed forms and opset 17's
    LayerNormalization + decomposed erf GELU become LayerNormalization and Gelu, equal to
    onnxruntime on the cut-out model."""
    need_tools("gcc")
    src = ROOT / "examples" / "transformer" / f"digits_transformer_opset{opset}.onnx"
    norm = "/block/norm1/Add_1_output_0" if opset == 16 else "/block/norm1/LayerNormalization_output_0"
    onnx.utils.extract_model(str(src), str(tmp_path / "cut.onnx"), ["/block/Add_output_0", "/block/linear1/Add_output_0"],
                             [norm, "/block/Mul_1_output_0"])
    g = prepare(tmp_path / "cut.onnx", progress=False).graph
    assert [(n.op, n.attrs) for n in g.nodes] == [("LayerNormalization", {"axis": 2, "epsilon": pytest.approx(1e-5)}),
                                                  ("Gelu", {"approximate": "none"})]
    rng = np.random.default_rng(2)
    feeds = {"/block/Add_output_0": rng.standard_normal((1, 8, 32)).astype(np.float32) * 2,
             "/block/linear1/Add_output_0": rng.standard_normal((1, 8, 64)).astype(np.float32) * 3}
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", [feeds])
    for name, want in zip(g.outputs, _ort(onnx.load(tmp_path / "cut.onnx"), feeds)):
        assert rel_err(res.outputs[0][name], want) < 1e-5, name
