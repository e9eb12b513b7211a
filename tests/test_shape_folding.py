"""Shape arithmetic as PyTorch's exports of nn.MultiheadAttention emit it (Shape, Mod, Slice with
computed bounds, Concat, Reshape, Gather, Cast, Sqrt, ...; Where/Equal/ConstantOfShape/Expand,
Range, Less/Greater/Not/And) is folded at import: no such op reaches code generation, and the
compiled C equals onnxruntime. Genuinely data-dependent uses are a one-line error naming the op."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import import_model
from tinyc.targets import get_target

from .conftest import ROOT, need_tools, ort_run, run_cli

pytest.importorskip("onnxruntime")

# ops that compute only shapes, scales and masks in these models: none may survive import when the
# input shape is fixed (Gather, Squeeze, Reshape and Transpose of the activations do)
SHAPE_OPS = {"Shape", "Mod", "Slice", "Concat", "Cast", "Equal", "Where", "ConstantOfShape", "Expand", "Range",
             "Less", "Greater", "Not", "And", "Sqrt", "Div"}


def _no_shape_arithmetic(g, allowed=frozenset()):
    assert not {n.op for n in g.nodes} & (SHAPE_OPS - allowed), [n.op for n in g.nodes]
    ints = {x for n in g.nodes for x in n.inputs + n.outputs if x and g.tensors[x].dtype != "f32" and not g.tensors[x].is_const}
    assert not ints, ints
L, N, E, H = 4, 1, 6, 2
INT64_MAX = np.iinfo(np.int64).max


def _c(name, value, dtype=np.int64):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype), name))


def _attention_nodes():
    """The TorchScript opset-16 in-projection split and scaled dot product of
    nn.MultiheadAttention (batch_first=False), on x (L, N, E)."""
    hd = E // H
    return [
        helper.make_node("MatMul", ["x", "w_in"], ["p"]),
        _c("k3", [2]), _c("k4", [3]), helper.make_node("Mod", ["k3", "k4"], ["mod"]),
        helper.make_node("Shape", ["p"], ["s"]),
        _c("c0", [0]), _c("c1", [1]), _c("cmax", [INT64_MAX]), _c("c3e", [3, E]),
        helper.make_node("Reshape", ["mod", "c1"], ["end0"]),
        helper.make_node("Slice", ["s", "c0", "end0"], ["head"]),
        helper.make_node("Add", ["mod", "c1"], ["mod1"]),
        helper.make_node("Reshape", ["mod1", "c1"], ["start1"]),
        helper.make_node("Slice", ["s", "start1", "cmax"], ["tail"]),  # empty: s[3:]
        helper.make_node("Concat", ["head", "c3e", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["p4"]),
        helper.make_node("Unsqueeze", ["p4", "c0"], ["p5"]),
        helper.make_node("Transpose", ["p5"], ["p5t"], perm=[3, 1, 2, 0, 4]),
        _c("cm2", [3]), helper.make_node("Squeeze", ["p5t", "cm2"], ["qkv"]),
        _c("g0", 0), _c("g1", 1), _c("g2", 2),
        helper.make_node("Gather", ["qkv", "g0"], ["q"], axis=0),
        helper.make_node("Gather", ["qkv", "g1"], ["k"], axis=0),
        helper.make_node("Gather", ["qkv", "g2"], ["v"], axis=0),
        _c("heads", [L, N * H, hd]),
        *[helper.make_node("Reshape", [t, "heads"], [t + "r"]) for t in "qkv"],
        *[helper.make_node("Transpose", [t + "r"], [t + "h"], perm=[1, 0, 2]) for t in "qkv"],
        helper.make_node("Shape", ["qh"], ["sq"]),
        _c("cm1", [-1]), helper.make_node("Slice", ["sq", "cm1", "cmax"], ["hdim"]),
        helper.make_node("Cast", ["hdim"], ["hdimf"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["hdimf"], ["sqrt_hd"]),
        _c("one", [1.0], np.float32), helper.make_node("Div", ["one", "sqrt_hd"], ["scale"]),
        helper.make_node("Cast", ["scale"], ["scale_f"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["scale_f"], ["rs"]),
        helper.make_node("Mul", ["qh", "rs"], ["qs"]),
        helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("Mul", ["kt", "rs"], ["ks"]),
        helper.make_node("MatMul", ["qs", "ks"], ["att"]),
        helper.make_node("Softmax", ["att"], ["pr"], axis=-1),
        helper.make_node("MatMul", ["pr", "vh"], ["o"]),
        helper.make_node("Transpose", ["o"], ["y"], perm=[1, 0, 2]),
    ], (L, N * H, hd)


def _mask_nodes():
    """Torch's expand (ConstantOfShape, Mul, Equal, Where, Expand), a Range over a shape dimension,
    a boolean band (Less, Greater, Not, And) and a float Mod, all on shapes; applied to y."""
    return [
        helper.make_node("Shape", ["y"], ["sy"]),
        _c("g1b", 1), helper.make_node("Gather", ["sy", "g1b"], ["len"], axis=0),
        _c("r0", 0), _c("r1", 1), helper.make_node("Range", ["r0", "len", "r1"], ["pos"]),
        _c("two", 2), _c("zero", 0),
        helper.make_node("Less", ["pos", "two"], ["lt"]), helper.make_node("Not", ["lt"], ["ge"]),
        helper.make_node("Greater", ["pos", "zero"], ["gt"]), helper.make_node("And", ["ge", "gt"], ["band"]),
        _c("a", [1.5], np.float32), _c("b", [0.25], np.float32),
        helper.make_node("Where", ["band", "a", "b"], ["w"]),
        _c("rank", [3]), helper.make_node("ConstantOfShape", ["rank"], ["ones"], value=numpy_helper.from_array(np.array([1], np.int64))),
        _c("neg", -1), helper.make_node("Mul", ["ones", "neg"], ["negs"]),
        _c("want", [1, -1, 1]), helper.make_node("Equal", ["want", "negs"], ["isneg"]),
        helper.make_node("Where", ["isneg", "ones", "want"], ["ex_shape"]),
        helper.make_node("Unsqueeze", ["w", "zero1"], ["w2"]), _c("zero1", [0, 2]),
        helper.make_node("Expand", ["w2", "ex_shape"], ["wx"]),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        _c("three", [3.0], np.float32), helper.make_node("Mod", ["posf", "three"], ["posm"], fmod=1),
        helper.make_node("Unsqueeze", ["posm", "zero1"], ["posm3"]),
        helper.make_node("Mul", ["y", "wx"], ["ym"]),
        helper.make_node("Add", ["ym", "posm3"], ["z"]),
    ]


def _model(tmp_path, with_mask: bool):
    nodes, out = _attention_nodes()
    if with_mask:
        # (Unsqueeze's axes constant is defined after its use above: sort it to the front)
        mask = _mask_nodes()
        mask.insert(0, mask.pop(next(i for i, n in enumerate(mask) if n.output[0] == "zero1")))
        nodes += mask
    w = np.random.default_rng(1).standard_normal((E, 3 * E)).astype(np.float32) * 0.5
    graph = helper.make_graph(nodes, "mha", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [L, N, E])],
                              [helper.make_tensor_value_info("z" if with_mask else "y", TensorProto.FLOAT, list(out))],
                              [numpy_helper.from_array(w, "w_in")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "mha.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_shape_arithmetic_folds_and_matches_onnxruntime(with_mask, tmp_path):
    path = _model(tmp_path, with_mask)
    g = prepare(path, progress=False).graph
    _no_shape_arithmetic(g)
    x = np.random.default_rng(0).standard_normal((L, N, E)).astype(np.float32)
    want = ort_run(path, {"x": x})[0]
    need_tools("gcc")
    got = run_on_target(generate(g, get_target("host")), get_target("host"), tmp_path / "host", [{"x": x}]).outputs[0]
    got = got["z" if with_mask else "y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _single(tmp_path, node, inputs, out_type, inits=()):
    graph = helper.make_graph([node], "m", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(node.output[0], out_type, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("dtype,fmod", [(np.float32, 1), (np.int32, 0), (np.int32, 1), (np.int64, 0)])
def test_mod_at_run_time_matches_onnxruntime(dtype, fmod, tmp_path):
    rng = np.random.default_rng(3)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    if dtype == np.float32:
        x, d = rng.standard_normal((3, 5)).astype(dtype) * 7, np.array([2.5, -1.5, 3.0, -4.0, 0.75], dtype)
    else:
        x, d = rng.integers(-20, 20, (3, 5)).astype(dtype), np.array([3, -4, 7, -2, 5], dtype)
    path = _single(tmp_path, helper.make_node("Mod", ["x", "d"], ["y"], fmod=fmod), [("x", elem, [3, 5])], elem,
                   [numpy_helper.from_array(d, "d")])
    want = ort_run(path, {"x": x})[0]
    need_tools("gcc")
    g = prepare(path, progress=False).graph
    assert [n.op for n in g.nodes] == ["Mod"]
    got = run_on_target(generate(g, get_target("host")), get_target("host"), tmp_path / "host", [{"x": x}]).outputs[0]["y"]
    np.testing.assert_array_equal(got, want)


def test_range_of_a_run_time_value_is_a_one_line_error(tmp_path):
    path = _single(tmp_path, helper.make_node("Range", ["s", "n", "d"], ["y"]), [("n", TensorProto.INT64, [])],
                   TensorProto.INT64, [numpy_helper.from_array(np.array(0, np.int64), "s"),
                                       numpy_helper.from_array(np.array(1, np.int64), "d")])
    with pytest.raises(UnsupportedError, match=r"Range node .*input 1 \('limit'\) must be a constant"):
        prepare(path, progress=False)


def test_equal_on_run_time_data_names_the_op(tmp_path):
    path = _single(tmp_path, helper.make_node("Equal", ["x", "c"], ["y"]), [("x", TensorProto.FLOAT, [4])],
                   TensorProto.BOOL, [numpy_helper.from_array(np.zeros(4, np.float32), "c")])
    r = run_cli("compile", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Equal" in r.stderr and "no C kernel" in r.stderr, r.stderr


# what the LayerNorm/GELU work (a separate change) delivers: problems that may remain in the exports
LATER = ("Erf", "LayerNormalization", "Gelu")


@pytest.mark.parametrize("opset", [16, 17])
def test_the_transformer_exports_keep_no_shape_op(opset):
    path = ROOT / "examples" / "transformer" / f"digits_transformer_opset{opset}.onnx"
    problems: list[str] = []
    g = import_model(onnx.load(path), problems=problems)
    direct = [p for p in problems if "not checked" not in p]
    assert all(p.startswith("unsupported op") and any(op in p for op in LATER) for p in direct), direct
    _no_shape_arithmetic(g, allowed={"Div", "Sqrt"})  # (LayerNorm's decomposition divides, at opset 16)
    ops = {n.op for n in g.nodes}
    assert "MatMul" in ops and "Softmax" in ops
