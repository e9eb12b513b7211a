"""ONNX import: old and new exporters, shapes, external data, constants, and clean errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.onnx import import_model, load

from .conftest import ort_run, rel_err, shared_model
from .onnx_builders import single_node, weights as W


def test_mnist8_initializers_listed_as_inputs_are_constants():
    path = shared_model("mnist-8/model.onnx")
    m = onnx.load(path)
    assert len(m.graph.input) > 1  # IR version 3: weights are graph inputs too
    g = load(path)
    assert g.inputs == ["Input3"]
    assert all(t.is_const for n, t in g.tensors.items() if n.startswith("Parameter"))


def test_mnist8_reference_matches_test_data():
    path = shared_model("mnist-8/model.onnx")
    g = load(path)
    for d in sorted(path.parent.glob("test_data_set_*")):
        x = numpy_helper.to_array(onnx.load_tensor(str(d / "input_0.pb")))
        want = numpy_helper.to_array(onnx.load_tensor(str(d / "output_0.pb")))
        got = interpreter.run(g, {"Input3": x})[g.outputs[0]]
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("rel", ["mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx", "mlperf-tiny/ad_float.onnx",
                                 "hello-world/hello_world_float.onnx"])
def test_symbolic_batch_is_fixed_to_one_and_reference_matches_onnxruntime(rel):
    path = shared_model(rel)
    m = onnx.load(path)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic in the file
    g = load(path)
    assert g.tensors[g.inputs[0]].shape[0] == 1
    feeds = {n: np.random.default_rng(5).standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}
    want = ort_run(path, feeds)
    got = interpreter.run(g, feeds)
    for name, w in zip(g.outputs, want):
        assert rel_err(got[name], w) < 1e-5


def test_input_shape_option_sets_batch():
    path = shared_model("mlperf-tiny/ad_float.onnx")
    g = load(path, {"input_1": (4, 640)})
    assert g.tensors["input_1"].shape == (4, 640)
    x = np.random.default_rng(0).standard_normal((4, 640)).astype(np.float32)
    assert rel_err(interpreter.run(g, {"input_1": x})[g.outputs[0]], ort_run(path, {"input_1": x})[0]) < 1e-5
    with pytest.raises(TinycError, match="rank"):
        load(path, {"input_1": (4, 640, 1)})
    with pytest.raises(TinycError, match="unknown input"):
        load(path, {"nope": (1, 640)})


def _external_model(tmp: Path, location: str) -> Path:
    model, _ = single_node("MatMul", [("a", (2, 8)), ("b", W(8, 3))])
    onnx.external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                              location="weights.bin", size_threshold=0)
    onnx.save_model(model, tmp / "m.onnx")  # writes weights.bin beside it
    if location != "weights.bin":
        m = onnx.load(tmp / "m.onnx", load_external_data=False)
        for e in m.graph.initializer[0].external_data:
            if e.key == "location":
                e.value = location
        onnx.save_model(m, tmp / "m.onnx")
    return tmp / "m.onnx"


def test_external_data_inside_the_model_folder_is_read(tmp_path):
    p = _external_model(tmp_path, "weights.bin")
    g = load(p)
    np.testing.assert_array_equal(g.tensors["b"].data, W(8, 3))


@pytest.mark.parametrize("location", ["../escape.bin", "/etc/passwd", "sub/../../escape.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "escape.bin").write_bytes(b"\0" * 96)
    p = _external_model(inner, location)
    with pytest.raises(TinycError, match="outside the model's folder"):
        load(p)


def test_missing_external_data_file(tmp_path):
    p = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(TinycError, match="not found"):
        load(p)


def test_constant_nodes_and_constant_subgraphs_are_folded():
    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, -1], np.int64)))
    two = helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.full((1, 12), 2, np.float32)))
    dbl = helper.make_node("Add", ["two", "two"], ["four"])  # constant inputs only: folded
    rs = helper.make_node("Reshape", ["x", "shape"], ["flat"])
    mul = helper.make_node("Mul", ["flat", "four"], ["y"])
    graph = helper.make_graph([shape, two, dbl, rs, mul], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    g = import_model(m)
    assert [n.op for n in g.nodes] == ["Reshape", "Mul"]
    np.testing.assert_array_equal(g.tensors["four"].data, np.full((1, 12), 4, np.float32))
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_array_equal(interpreter.run(g, {"x": x})["y"], 4 * x.reshape(1, 12))


def test_unsupported_ops_are_all_listed_with_node_names():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("FrobnicateV2", ["a"], ["b"], name="frob1"),
             helper.make_node("Relu", ["b"], ["c"], name="ok2"),
             helper.make_node("FrobnicateV2", ["c"], ["d"], name="frob2"),
             helper.make_node("Gizmo", ["d"], ["y"], name="giz", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedError) as e:
        import_model(m)
    msg = str(e.value)
    assert "FrobnicateV2" in msg and "'frob1'" in msg and "'frob2'" in msg
    assert "com.example.Gizmo" in msg and "'giz'" in msg
    assert "\n" not in msg


def test_bad_shapes_name_the_node():
    model, _ = single_node("Conv", [("x", (1, 3, 8, 8)), ("w", W(4, 5, 3, 3))])
    with pytest.raises(TinycError, match="the_conv"):
        import_model(model)
    model, _ = single_node("Add", [("a", (2, 3)), ("b", (4, 3))])
    with pytest.raises(TinycError, match="the_add"):
        import_model(model)


def test_too_old_opset_and_cycles_are_errors():
    model, _ = single_node("Relu", [("x", (1, 2))], opset=6)
    with pytest.raises(TinycError, match="opset 6"):
        import_model(model)
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    with pytest.raises(TinycError, match="cycle"):
        import_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_non_constant_shape_operand_is_refused():
    model, _ = single_node("Reshape", [("x", (2, 3)), ("s", (2,))])
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(UnsupportedError, match="must be a constant"):
        import_model(model)
