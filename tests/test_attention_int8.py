"""An attention core (q, k, v from Gemms of the input; MatMul(q, Transpose(k)), scale Mul, Softmax
over the last axis, MatMul(p, v); heads split and merged by Reshape/Transpose; a residual Add),
built with onnx.helper and quantized by tinyc (--quantize int8 with calibration data): the two
activation x activation MatMuls are int8, Transpose/Reshape/Softmax/Add run int8 on the rank-3
attention tensors, the C equals tinyc's integer reference on the host and Cortex-M4, and the int8
outputs stay close to onnxruntime's float ones (SQNR measured on held-out inputs)."""
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

from .conftest import need_arm, need_tools, ort_run

pytest.importorskip("onnxruntime")
L, E, H = 8, 16, 2
HD = E // H
MIN_SQNR_DB = 30.0  # measured 33.15 dB on 32 held-out inputs (rank 3 and rank 4 alike)


def _attention(path, rank):
    """rank 3: heads as (H, L, HD); rank 4: as PyTorch's MultiheadAttention export has them,
    (1, H, L, HD), k transposed on its last two axes, merged back by Transpose [2, 0, 1, 3]."""
    rng = np.random.default_rng(5)
    w = {n: numpy_helper.from_array((rng.standard_normal((E, E)) / np.sqrt(E)).astype(np.float32), n) for n in ("wq", "wk", "wv")}
    b = {n: numpy_helper.from_array((rng.standard_normal(E) * 0.1).astype(np.float32), n) for n in ("bq", "bk", "bv")}
    consts = [numpy_helper.from_array(np.array([L, H, HD], np.int64), "heads"),
              numpy_helper.from_array(np.array([L, E], np.int64), "merged"),
              numpy_helper.from_array(np.array(1.0 / np.sqrt(HD), np.float32), "scale")]
    nodes = [helper.make_node("Gemm", ["x", f"w{t}", f"b{t}"], [t]) for t in "qkv"]
    nodes += [helper.make_node("Reshape", [t, "heads"], [t + "3"]) for t in "qkv"]
    if rank == 3:
        nodes += [helper.make_node("Transpose", ["q3"], ["qh"], perm=[1, 0, 2]),
                  helper.make_node("Transpose", ["k3"], ["kt"], perm=[1, 2, 0]),  # (H, HD, L)
                  helper.make_node("Transpose", ["v3"], ["vh"], perm=[1, 0, 2])]
        merge = [1, 0, 2]
    else:
        consts.append(numpy_helper.from_array(np.array([1, H, L, HD], np.int64), "heads4"))
        nodes += [helper.make_node("Transpose", [t + "3"], [t + "t3"], perm=[1, 0, 2]) for t in "qkv"]
        nodes += [helper.make_node("Reshape", [t + "t3", "heads4"], [t + "4"]) for t in "qkv"]
        nodes += [helper.make_node("Identity", ["q4"], ["qh"]), helper.make_node("Identity", ["v4"], ["vh"]),
                  helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 1, 3, 2])]
        merge = [2, 0, 1, 3]
    nodes += [helper.make_node("MatMul", ["qh", "kt"], ["s"]),
              helper.make_node("Mul", ["s", "scale"], ["ss"]),
              helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=merge),
              helper.make_node("Reshape", ["ot", "merged"], ["om"]),
              helper.make_node("Add", ["x", "om"], ["y"])]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [L, E])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [L, E])],
                              list(w.values()) + list(b.values()) + consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def _inputs(n, seed):
    return np.random.default_rng(seed).standard_normal((n, L, E)).astype(np.float32)


@pytest.fixture(scope="module", params=[3, 4], ids=["rank3", "rank4"])
def quantized(tmp_path_factory, request):
    d = tmp_path_factory.mktemp("attention")
    _attention(d / "m.onnx", request.param)
    np.savez(d / "calib.npz", x=_inputs(64, 1))
    g = prepare(d / "m.onnx", quantize="int8", calib=d / "calib.npz", progress=False).graph
    return d, g


def test_attention_core_is_int8_throughout(quantized):
    _, g = quantized
    mms = [n for n in g.nodes if n.op == "MatMul"]
    assert len(mms) == 2 and all(g.tensors[x].dtype == "s8" for n in mms for x in n.inputs + n.outputs)
    for op in ("Transpose", "Softmax", "Add", "Gemm"):
        nodes = [n for n in g.nodes if n.op == op]
        assert nodes and all(g.tensors[n.outputs[0]].dtype == "s8" for n in nodes), op
    assert any(len(g.tensors[n.outputs[0]].shape) >= 3 for n in g.nodes if n.op == "Transpose")
    float_ops = {n.op for n in g.nodes if any(g.tensors[x].dtype == "f32" for x in n.inputs + n.outputs if x)}
    assert float_ops <= {"QuantizeLinear", "DequantizeLinear"}, float_ops


def test_attention_core_int8_sqnr_against_onnxruntime_float(quantized):
    d, g = quantized
    xs = _inputs(32, 2)  # held out
    want = np.stack([ort_run(d / "m.onnx", {"x": x})[0] for x in xs]).astype(np.float64)
    got = np.stack([interpreter.run(g, {"x": x})["y"] for x in xs]).astype(np.float64)
    sqnr = 10 * np.log10(np.sum(want ** 2) / np.sum((want - got) ** 2))
    print(f"attention core int8 vs float SQNR {sqnr:.2f} dB")
    assert sqnr >= MIN_SQNR_DB


@pytest.mark.parametrize("target", ["host", pytest.param("cortex-m4", marks=pytest.mark.emulator)])
def test_attention_core_c_equals_the_integer_reference(quantized, target, tmp_path):
    d, g = quantized
    need_arm() if target != "host" else need_tools("gcc")
    feeds = [{"x": x} for x in _inputs(4, 3)]
    t = get_target(target)
    got = run_on_target(generate(g, t), t, tmp_path / target, feeds).outputs
    for k, (o, f) in enumerate(zip(got, feeds)):
        np.testing.assert_array_equal(o["y"], interpreter.run(g, f)["y"], err_msg=f"{target} sample {k}")
