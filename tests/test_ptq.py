"""Post-training quantization: calibration methods, accuracy of the quantized example, the
quality report, and generated C equal to the int8 reference."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.frontend.onnx import import_model
from tinyc.quant import calibrate, ptq
from tinyc.targets import get_target

from .conftest import ROOT, need_tools, run_cli, shared_model

DIGITS = ROOT / "examples" / "digits"


def _accuracy(p, pixels, labels):
    g = p.graph
    name = g.inputs[0]
    t = g.tensors[name]
    correct = 0
    for x, y in zip(pixels, labels):
        x = x[None]
        if t.dtype == "s8":
            x = np.clip(np.round(x / float(t.quant.scale)) + int(t.quant.zero_point), -128, 127).astype(np.int8)
        correct += int(interpreter.run(g, {name: x})[g.outputs[0]].argmax() == y)
    return correct / len(labels)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("io", ["float", "int8"])
def test_quantized_example_keeps_accuracy_on_held_out_data(method, io):
    data = np.load(DIGITS / "digits_test.npz")
    p = prepare(DIGITS / "digits_mlp.onnx", quantize="int8", calib=DIGITS / "digits_calib.npz", method=method, io=io,
                progress=False)
    ops = [n.op for n in p.graph.nodes]
    assert ops == (["QuantizeLinear", "Gemm", "Gemm", "Gemm", "Softmax", "DequantizeLinear"] if io == "float"
                   else ["Gemm", "Gemm", "Gemm", "Softmax"])
    float_acc = np.mean([interpreter.run(p.float_graph, {"pixels": x[None]})["probs"].argmax() == y
                         for x, y in zip(data["pixels"], data["labels"])])
    int8_acc = _accuracy(p, data["pixels"], data["labels"])
    assert float_acc > 0.95
    assert int8_acc >= float_acc - 0.01


def test_calibration_methods_on_known_data():
    g = import_model(_relu_model())
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(40)]
    samples[7]["x"][0, 3] = 50.0  # one outlier
    lo, hi = calibrate.collect(g, samples, ["x"], "minmax", progress=False)["x"]
    all_x = np.concatenate([s["x"].reshape(-1) for s in samples])
    assert (lo, hi) == (float(all_x.min()), float(all_x.max()))
    plo, phi = calibrate.collect(g, samples, ["x"], "percentile", 99.9, progress=False)["x"]
    assert phi < 10 and plo < -1.5  # the outlier is clipped, the bulk is kept
    # one far outlier costs more squared error clipped than the rounding noise it causes: kept
    assert calibrate.collect(g, samples, ["x"], "mse", progress=False)["x"][1] == pytest.approx(50.0, rel=0.05)
    # heavy tails (Laplace, b=1): MSE clips them, near the known 8-bit optimum of about 9.9 b
    heavy = [{"x": rng.laplace(size=(1, 64)).astype(np.float32)} for _ in range(200)]
    mlo, mhi = calibrate.collect(g, heavy, ["x"], "mse", progress=False)["x"]
    top = max(float(s["x"].max()) for s in heavy)
    bottom = min(float(s["x"].min()) for s in heavy)
    assert 7.0 < mhi < top and bottom < mlo < -7.0


def test_asymmetric_params_represent_zero_and_cover_the_range():
    for lo, hi in [(-1.0, 3.0), (0.0, 6.0), (-5.0, -1.0), (0.5, 2.0), (0.0, 0.0)]:
        scale, zp = calibrate.asymmetric_params(lo, hi)
        assert -128 <= zp <= 127 and scale > 0
        assert abs(scale * (-128 - zp) - min(lo, 0.0)) <= scale  # covers the low end
        assert scale * (127 - zp) >= max(hi, 0.0) - scale  # and the high end


def _relu_model(zero_column: bool = False):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((64, 8)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(8) * 0.5).astype(np.float32)
    if zero_column:
        w[:, 2] = 1e-12  # a dead unit: its bias must still fit int32
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_dead_unit_bias_still_fits_and_output_stays_close(tmp_path):
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(_relu_model(zero_column=True), path)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((64, 1, 64)).astype(np.float32))
    p = prepare(path, quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    assert [n.op for n in p.graph.nodes] == ["QuantizeLinear", "Gemm", "DequantizeLinear"]
    x = rng.standard_normal((1, 64)).astype(np.float32)
    f = interpreter.run(p.float_graph, {"x": x})["y"]
    q = interpreter.run(p.graph, {"x": x})["y"]
    out_scale = float(p.graph.tensors[p.graph.nodes[-1].inputs[0]].quant.scale)
    assert np.abs(f - q).max() < 4 * out_scale


@pytest.mark.parametrize("model", ["ic", "kws"])
def test_ptq_of_conv_models_gives_exact_c_and_a_quality_report(model, tmp_path):
    need_tools("gcc")
    path = shared_model(f"mlperf-tiny/{model}_float.onnx")
    g = import_model(__import__("onnx").load(path))
    name = g.inputs[0]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", **{name: rng.standard_normal((24,) + g.tensors[name].shape).astype(np.float32)})
    r = run_cli("compile", str(path), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "calibration (range): 24/24 samples (100%)" in r.stderr  # progress
    q = json.loads((tmp_path / "out" / "report.json").read_text())["quantization"]
    (out_name, stats), = q["outputs"].items()
    assert stats["sqnr_db"] > 15 and stats["top1_agreement"] >= 0.9 and stats["samples"] == 24
    assert "SQNR" in r.stdout
    p = prepare(path, quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    assert all(n.op not in ("Relu",) for n in p.graph.nodes)  # fused as clamps
    samples = [{name: rng.standard_normal(g.tensors[name].shape).astype(np.float32)} for _ in range(3)]
    host = get_target("host")
    res = run_on_target(generate(p.graph, host), host, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        np.testing.assert_array_equal(got[out_name], interpreter.run(p.graph, s)[out_name])


def test_int8_io_header_documents_the_quantization(tmp_path):
    r = run_cli("compile", str(DIGITS / "digits_mlp.onnx"), "--quantize", "int8", "--calib", str(DIGITS / "digits_calib.npz"),
                "--io", "int8", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    h = (tmp_path / "digits_mlp.h").read_text()
    assert "DIGITS_MLP_INPUT0_SCALE" in h and "DIGITS_MLP_INPUT0_ZERO_POINT -128" in h
    assert "DIGITS_MLP_OUTPUT0_ZERO_POINT -128" in h and "int digits_mlp_run(const int8_t *input0, int8_t *output0);" in h
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["inputs"][0]["dtype"] == "s8" and rep["outputs"][0]["scale"] == 1 / 256


def test_quantize_option_errors(tmp_path):
    r = run_cli("compile", str(DIGITS / "digits_mlp.onnx"), "--quantize", "int8", "-o", str(tmp_path))
    assert r.returncode == 2 and "--calib" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("compile", str(shared_model("mlperf-tiny/kws_int8.onnx")), "--quantize", "int8",
                "--calib", str(DIGITS / "digits_calib.npz"), "-o", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_ptq_of_pointwise_resize_and_mean_ops_is_close_and_c_exact(tmp_path):
    """tinyc's own quantizer on Conv -> Sigmoid -> Resize (nearest) -> Sub -> Tanh -> ReduceMean:
    the pointwise ops run as int8 tables, Resize passes values through, the mean is a global
    pooling; int8 stays close to float and the C equals the reference."""
    need_tools("gcc")
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(np.array([], np.float32), "roi"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array(0.25, np.float32), "quarter")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Resize", ["s", "roi", "scales"], ["r"], mode="nearest"),
             helper.make_node("Sub", ["r", "quarter"], ["d"]),
             helper.make_node("Tanh", ["d"], ["t"]),
             helper.make_node("ReduceMean", ["t"], ["y"], axes=[2, 3], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    __import__("onnx").save(m, path)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 1, 3, 8, 8)).astype(np.float32))
    p = prepare(path, quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    ops = [n.op for n in p.graph.nodes]
    assert {"Sigmoid", "Sub", "Resize", "Tanh", "GlobalAveragePool"} <= set(ops)
    assert all(p.graph.tensors[n.outputs[0]].dtype == "s8" for n in p.graph.nodes if n.op in ("Sigmoid", "Tanh", "Resize", "Sub"))
    samples = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    q = p.quality["y"]
    assert q["sqnr_db"] > 25, q  # 46.1 dB when written
    host = get_target("host")
    res = run_on_target(generate(p.graph, host), host, tmp_path / "fw", samples)
    for s, got in zip(samples, res.outputs):
        np.testing.assert_array_equal(got["y"], interpreter.run(p.graph, s)["y"])
