"""The command line as a user meets it: outputs, reports, and one-line errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
import onnx

from .conftest import ROOT, ort_run, rel_err, run_cli, shared_model


def _files_under(p: Path) -> set[str]:
    return {str(f.relative_to(p)) for f in p.rglob("*") if f.is_file()}


def test_compile_writes_only_into_the_output_folder(tmp_path):
    model = shared_model("mlperf-tiny/kws_float.onnx")
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli("compile", str(model), "--target", "cortex-m4", "-o", "out/kws", cwd=work)
    assert r.returncode == 0, r.stderr
    assert _files_under(work) == {"out/kws/kws_float.h", "out/kws/kws_float.c", "out/kws/report.json",
                                  "out/kws/CMakeLists.txt", "out/kws/kws_float.mk"}
    assert "arena" in r.stdout and "MACs" in r.stdout


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_rounding_is_a_compile_option_recorded_in_the_report(rounding, tmp_path):
    model = shared_model("hello-world/hello_world_int8.onnx")
    r = run_cli("compile", str(model), "-t", "host", "--rounding", rounding, "--dump-ir", "after=dead-code",
                "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "report.json").read_text())["rounding"] == rounding
    assert f"({rounding} rounding" in (tmp_path / "hello_world_int8.c").read_text()
    header = next(line for line in r.stdout.splitlines() if line.startswith("graph "))
    assert ('{rounding="single"}' in header) == (rounding == "single")


def test_report_json_describes_every_layer(tmp_path):
    r = run_cli("compile", str(shared_model("mlperf-tiny/kws_float.onnx")), "-t", "cortex-m4", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "report.json").read_text())
    for key in ("arena_bytes", "arena_lower_bound_bytes", "weights_bytes", "layers", "macs_total", "memory_plan"):
        assert key in rep
    # 24 ONNX nodes; after fusing the nine Relus into their convs and MatMul + bias into one
    # fully connected layer, and the input Reshape vanishing in NHWC, 13 layers remain
    assert len(rep["layers"]) == 13
    assert [l["op"] for l in rep["layers"]].count("Conv") == 9
    for layer in rep["layers"]:
        assert set(layer) >= {"name", "op", "output_shape", "macs"}
    # MLPerf Tiny's published count for KWS (BENCHMARKS.md), from TFLite's own graph
    assert rep["macs_total"] == 2_656_768
    assert rep["layers"][-1]["output_shape"] == [1, 12]
    # weights: every float parameter of the model, 4 bytes each (22.6 K parameters + BN folded by the exporter)
    m = onnx.load(shared_model("mlperf-tiny/kws_float.onnx"))
    floats = sum(int(np.prod(i.dims)) for i in m.graph.initializer if i.data_type == TensorProto.FLOAT)
    assert rep["weights_bytes"] == 4 * floats


def test_verbose_prints_the_memory_plan(tmp_path):
    r = run_cli("compile", str(shared_model("mnist-8/model.onnx")), "-o", str(tmp_path), "--verbose")
    assert r.returncode == 0
    assert "lower bound" in r.stdout and "offset" in r.stdout


def test_run_matches_onnxruntime(tmp_path):
    model = shared_model("mlperf-tiny/ic_float.onnx")
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "x.npz", input_1=x)
    r = run_cli("run", str(model), "--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npz")["Identity"]
    assert y.shape == (3, 1, 10)
    for i in range(3):
        assert rel_err(y[i], ort_run(model, {"input_1": x[i]})[0]) < 1e-5


def test_targets_lists_host_and_cortex_m4():
    r = run_cli("targets")
    assert r.returncode == 0
    assert "cortex-m4" in r.stdout and "mps2-an386" in r.stdout and "host" in r.stdout


def _made_up_op_model(path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu_1"),
             helper.make_node("QuantumFlux", ["a"], ["y"], name="flux_capacitor")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("tinyc: error: ")
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0]


def test_made_up_op_is_one_line_naming_op_and_node(tmp_path):
    _made_up_op_model(tmp_path / "m.onnx")
    r = run_cli("compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out"))
    _assert_one_line_error(r, "QuantumFlux", "flux_capacitor")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "empty", "directory"])
def test_bad_model_files_are_one_line_errors(tmp_path, kind):
    p = tmp_path / "model.onnx"
    if kind == "text":
        p.write_text("this is not a model\n")
    elif kind == "truncated":
        p.write_bytes(shared_model("mnist-8/model.onnx").read_bytes()[:9000])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "directory":
        p.mkdir()
    for cmd in (["compile", str(p), "-o", str(tmp_path / "out")], ["verify", str(p)]):
        r = run_cli(*cmd)
        _assert_one_line_error(r, "model.onnx")


def test_bad_options_are_one_line_errors(tmp_path):
    model = str(shared_model("mlperf-tiny/ad_float.onnx"))
    _assert_one_line_error(run_cli("compile", model, "-t", "cortex-m99", "-o", str(tmp_path)), "unknown target")
    _assert_one_line_error(run_cli("compile", model, "--input-shape", "input_1=1,x", "-o", str(tmp_path)), "--input-shape")
    np.savez(tmp_path / "bad.npz", input_1=np.zeros((3, 7), np.float32))
    _assert_one_line_error(run_cli("run", model, "-i", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "y.npz")), "input_1")
    _assert_one_line_error(run_cli("run", model, "-i", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "y.npz")), "not found")


def test_unnamed_input_shape_for_one_input_models(tmp_path):
    r = run_cli("compile", str(shared_model("mlperf-tiny/ad_float.onnx")), "-t", "host", "--input-shape", "2,640", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "report.json").read_text())["inputs"][0]["shape"] == [2, 640]


def _reshape_by_input(path):
    """y = Reshape(x, shape) + 1 with ``shape`` a graph input, as some exporters leave it."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
             helper.make_node("Add", ["r", "one"], ["y"], name="add")]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]), helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def test_bind_turns_a_shape_input_into_a_constant(tmp_path):
    _reshape_by_input(tmp_path / "m.onnx")
    r = run_cli("compile", str(tmp_path / "m.onnx"), "--target", "host", "-o", str(tmp_path / "a"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "input 1 ('shape') must be a constant" in r.stderr
    assert "--bind shape=FILE.npy" in r.stderr  # the error says how to fix it
    shape = np.array([3, 2, 2], np.int64)
    np.save(tmp_path / "shape.npy", shape)
    r = run_cli("compile", str(tmp_path / "m.onnx"), "--target", "host", "-o", str(tmp_path / "b"),
                "--bind", f"shape={tmp_path / 'shape.npy'}")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [i["name"] for i in report["inputs"]] == ["x"]
    assert report["outputs"][0]["shape"] == [3, 2, 2]
    # the bound model computes what onnxruntime computes when fed that shape
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    r = run_cli("run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npz"),
                "-o", str(tmp_path / "y.npz"), "--bind", f"shape={tmp_path / 'shape.npy'}")
    assert r.returncode == 0, r.stderr
    want = ort_run(tmp_path / "m.onnx", {"x": x, "shape": shape})[0]
    assert rel_err(np.load(tmp_path / "y.npz")["y"], want) == 0
    r = run_cli("verify", str(tmp_path / "m.onnx"), "--target", "host", "--input", str(tmp_path / "x.npz"),
                "--build-dir", str(tmp_path / "build"), "--bind", f"shape={tmp_path / 'shape.npy'}")
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def test_bind_errors_are_one_line(tmp_path):
    _reshape_by_input(tmp_path / "m.onnx")
    np.save(tmp_path / "f.npy", np.array([3, 2, 2], np.float32))
    for bind, expect in ((f"shape={tmp_path / 'missing.npy'}", "file not found"),
                         (f"shape={tmp_path / 'f.npy'}", "the value is float32, the model's input is int64"),
                         (f"nope={tmp_path / 'f.npy'}", "--bind names unknown input(s): nope"),
                         ("shape", "use NAME=FILE.npy")):
        r = run_cli("compile", str(tmp_path / "m.onnx"), "--target", "host", "-o", str(tmp_path / "o"), "--bind", bind)
        assert r.returncode == 2 and expect in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_passes_lists_the_whole_build_in_order(tmp_path):
    from tinyc.passes.pipeline import BACKEND, DEFAULT

    r = run_cli("compile", "--passes")
    assert r.returncode == 0, r.stderr
    names = [line.split()[1] for line in r.stdout.splitlines()]
    assert names == ["import", *DEFAULT, *BACKEND]
    assert list(BACKEND) == ["patch", "select-kernels", "plan-memory", "emit", "measure"]
    r = run_cli("compile", "--passes", "--quantize", "int8")  # the options after --passes count too
    assert [line.split()[1] for line in r.stdout.splitlines()][:3] == ["import", "quantize", DEFAULT[0]]


def test_dump_ir_labels_import_before_quantize(tmp_path):
    """--dump-ir: "import" is the model as read (float), "quantize" the int8 graph after calibration."""
    np.savez(tmp_path / "calib.npz", input_1=np.load(shared_model("mlperf-tiny/samples.npz"))["ad_float"][:4])
    r = run_cli("compile", str(shared_model("mlperf-tiny/ad_float.onnx")), "-t", "host", "-o", str(tmp_path / "o"),
                "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"), "--dump-ir", "after=import,quantize,dead-code")
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if line.startswith("# --- IR after")]
    assert heads == ["# --- IR after import ---", "# --- IR after quantize ---", "# --- IR after dead-code ---"]
    imported = r.stdout.split(heads[1])[0]
    quantized = r.stdout.split(heads[1])[1].split(heads[2])[0]
    assert "s8" not in imported and "s8" in quantized
