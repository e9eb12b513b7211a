"""Quantization feedback: --eval/--labels figures, the per-layer sensitivity ranking, --keep-float.

Oracles: onnxruntime runs the float model; the int8 outputs come from `tinyc run` (the reference
interpreter, which the generated C equals bit for bit) and the figures are computed here with numpy.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import ROOT, need_arm, ort_run, run_cli

DIGITS = ROOT / "examples" / "digits"


def _assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: ") and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def _digits_eval(tmp_path, n=120):
    d = np.load(DIGITS / "digits_test.npz")
    np.savez(tmp_path / "eval.npz", pixels=d["pixels"][:n])
    np.save(tmp_path / "labels.npy", d["labels"][:n])
    return d["pixels"][:n], d["labels"][:n]


def _sqnr(f, q):
    f, q = np.asarray(f, np.float64), np.asarray(q, np.float64)
    return 10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2))


def test_eval_figures_equal_a_hand_computation(tmp_path):
    """--eval/--labels on the digits MLP: SQNR, max error, top-1 agreement and both accuracies in
    report.json and on the terminal equal numpy's on onnxruntime's float outputs and the int8
    reference's (tinyc run)."""
    model = DIGITS / "digits_mlp.onnx"
    x, labels = _digits_eval(tmp_path)
    q = ["--quantize", "int8", "--calib", str(DIGITS / "digits_calib.npz")]
    r = run_cli("compile", str(model), "-t", "host", *q, "--eval", str(tmp_path / "eval.npz"),
                "--labels", str(tmp_path / "labels.npy"), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rr = run_cli("run", str(model), *q, "-i", str(tmp_path / "eval.npz"), "-o", str(tmp_path / "q.npz"))
    assert rr.returncode == 0, rr.stderr
    qout = np.load(tmp_path / "q.npz")["probs"].reshape(len(x), -1)
    fout = np.concatenate([ort_run(model, {"pixels": s[None]})[0] for s in x]).reshape(len(x), -1)
    ev = json.loads((tmp_path / "out" / "report.json").read_text())["quantization"]["eval"]
    o = ev["outputs"]["probs"]
    assert ev["samples"] == o["samples"] == len(x)
    assert o["sqnr_db"] == pytest.approx(_sqnr(fout, qout), abs=0.01)
    assert o["max_abs_error"] == pytest.approx(np.abs(fout - qout).max(), rel=1e-4)
    assert o["top1_agreement"] == np.mean(fout.argmax(1) == qout.argmax(1))
    assert ev["float_accuracy"] == np.mean(fout.argmax(1) == labels)
    assert ev["int8_accuracy"] == np.mean(qout.argmax(1) == labels)
    assert f"SQNR {o['sqnr_db']:.1f} dB" in r.stdout and f"{len(x)} --eval samples" in r.stdout
    assert f"float {ev['float_accuracy']:.1%}, int8 {ev['int8_accuracy']:.1%}" in r.stdout


def test_label_and_eval_errors_are_one_line(tmp_path):
    model = str(DIGITS / "digits_mlp.onnx")
    _digits_eval(tmp_path, 30)
    np.save(tmp_path / "short.npy", np.zeros(29, np.int64))
    q = ["--quantize", "int8", "--calib", str(DIGITS / "digits_calib.npz"), "--eval", str(tmp_path / "eval.npz")]
    _assert_one_line_error(run_cli("compile", model, "-t", "host", *q, "--labels", str(tmp_path / "short.npy"),
                                   "-o", str(tmp_path / "o")), "29 labels for 30 --eval samples")
    _assert_one_line_error(run_cli("compile", model, "-t", "host", "--eval", str(tmp_path / "eval.npz"),
                                   "-o", str(tmp_path / "o")), "--eval", "--quantize int8")
    # a model whose only output is one value is not a classifier
    g = helper.make_graph([helper.make_node("Gemm", ["pixels", "w"], ["y"], "fc", transB=1)], "reg",
                          [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
                          [numpy_helper.from_array(np.ones((1, 64), np.float32), "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "reg.onnx")
    np.save(tmp_path / "labels30.npy", np.zeros(30, np.int64))
    _assert_one_line_error(run_cli("compile", str(tmp_path / "reg.onnx"), "-t", "host", *q, "--labels",
                                   str(tmp_path / "labels30.npy"), "-o", str(tmp_path / "o")),
                           "no classification-like output")


def _outlier_model(tmp_path):
    """fc0 -> Relu -> Mul by a constant vector -> fc1. The Mul's constant has one huge element
    (1000, multiplied by a channel the Relu always zeroes): int8 quantizes the constant per tensor,
    so every other element becomes 0 -- the Mul alone wrecks the output."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.5, (32, 16)).astype(np.float32)
    b0 = rng.normal(0, 0.1, 32).astype(np.float32)
    w0[0], b0[0] = 0, -1
    c = rng.uniform(0.5, 1.5, 32).astype(np.float32)
    c[0] = 1000.0
    w1 = rng.normal(0, 0.5, (10, 32)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [(w0, "w0"), (b0, "b0"), (c, "c"), (w1, "w1")]]
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h0"], "fc0", transB=1),
             helper.make_node("Relu", ["h0"], ["r0"], "relu0"), helper.make_node("Mul", ["r0", "c"], ["m"], "scale_mul"),
             helper.make_node("Gemm", ["m", "w1"], ["y"], "fc1", transB=1)]
    g = helper.make_graph(nodes, "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    path = tmp_path / "outlier.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    np.savez(tmp_path / "calib.npz", x=rng.normal(0, 1, (64, 1, 16)).astype(np.float32))
    x = rng.normal(0, 1, (40, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x)
    return path, x


def test_sensitive_layer_ranks_first_and_keeping_it_float_helps(tmp_path):
    """The outlier Mul heads the sensitivity ranking (report.json and the printed headline), the
    inputs' quantization is never the headline; --keep-float on it raises the int8 model's SQNR
    against onnxruntime's float output, and its byte cost is reported."""
    model, x = _outlier_model(tmp_path)
    q = ["--quantize", "int8", "--calib", str(tmp_path / "calib.npz"), "--eval", str(tmp_path / "eval.npz")]
    fout = np.concatenate([ort_run(model, {"x": s})[0] for s in x])
    sqnr = {}
    for keep in ([], ["--keep-float", "scale_mul"]):
        r = run_cli("compile", str(model), "-t", "host", *q, *keep, "-o", str(tmp_path / "out"))
        assert r.returncode == 0, r.stderr
        rep = json.loads((tmp_path / "out" / "report.json").read_text())["quantization"]
        assert [s["layer"] for s in rep["sensitivity"]][0] == "scale_mul"
        assert all("/" not in s["layer"] and s["layer"] != "x" for s in rep["sensitivity"])
        assert "most sensitive layer: 'scale_mul'" in r.stdout
        rr = run_cli("run", str(model), *q[:4], *keep, "-i", str(tmp_path / "eval.npz"), "-o", str(tmp_path / "q.npz"))
        assert rr.returncode == 0, rr.stderr
        qout = np.load(tmp_path / "q.npz")["y"].reshape(fout.shape)
        sqnr[bool(keep)] = _sqnr(fout, qout)
        assert rep["eval"]["outputs"]["y"]["sqnr_db"] == pytest.approx(sqnr[bool(keep)], abs=0.01)
    assert sqnr[True] > sqnr[False] + 10, sqnr  # measured: 0.0 dB -> 35.8 dB
    k = rep["keep_float"]
    assert k["layers"] == ["scale_mul"] and k["flash_bytes"] > 0 and k["ram_bytes"] >= 0
    assert "--keep-float scale_mul: RAM" in r.stdout


def test_diff_headline_is_never_the_input_quantizer(tmp_path):
    """On the outlier model the input's quantization has a large drop too; the headline names a
    layer of the model."""
    model, _ = _outlier_model(tmp_path)
    r = run_cli("diff", str(model), "-t", "host", "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"),
                "-i", str(tmp_path / "eval.npz"), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    inputs = [l for l in d["layers"] if l["input_quantizer"]]
    assert inputs and inputs[0]["sqnr_drop_db"] > 0
    assert d["largest_error_growth"]["name"] not in {l["name"] for l in inputs}


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_keep_float_model_verifies_bit_exact(target, tmp_path):
    if target != "host":
        need_arm()
    model, _ = _outlier_model(tmp_path)
    r = run_cli("verify", str(model), "-t", target, "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"),
                "--keep-float", "scale_mul", "-i", str(tmp_path / "eval.npz"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max abs error 0," in r.stdout and "PASS" in r.stdout


def test_keep_float_instructions_from_bench(tmp_path):
    need_arm()
    model, _ = _outlier_model(tmp_path)
    r = run_cli("bench", str(model), "-t", "cortex-m4", "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"),
                "--keep-float", "scale_mul", "--json")
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)["keep_float"]
    assert k["all_int8_instructions"] > 0 and k["instructions"] != 0


def test_keep_float_unknown_layer_lists_valid_names(tmp_path):
    model, _ = _outlier_model(tmp_path)
    _assert_one_line_error(run_cli("compile", str(model), "-t", "host", "--quantize", "int8", "--calib",
                                   str(tmp_path / "calib.npz"), "--keep-float", "nope", "-o", str(tmp_path / "o")),
                           "'nope'", "fc0", "scale_mul")


def test_calibration_method_advice(tmp_path):
    """A percentile that clips hard gives a lower SQNR than minmax on the eval data: one line of
    advice, with both figures."""
    _digits_eval(tmp_path, 60)
    r = run_cli("compile", str(DIGITS / "digits_mlp.onnx"), "-t", "host", "--quantize", "int8", "--calib",
                str(DIGITS / "digits_calib.npz"), "--calib-method", "percentile", "--percentile", "90",
                "--eval", str(tmp_path / "eval.npz"), "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "o" / "report.json").read_text())["quantization"]["eval"]
    assert ev["minmax_sqnr_db"]["probs"] > ev["outputs"]["probs"]["sqnr_db"]
    lines = [l for l in r.stdout.splitlines() if "advice:" in l]
    assert len(lines) == 1 and "--calib-method minmax" in lines[0]


def test_html_report_shows_eval_sensitivity_and_keep_float(tmp_path):
    model, _ = _outlier_model(tmp_path)
    r = run_cli("report", str(model), "-t", "host", "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"),
                "--eval", str(tmp_path / "eval.npz"), "--keep-float", "scale_mul", "-o", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "r.html").read_text()
    assert 'id="eval"' in html and 'id="keep-float"' in html
    table = html[html.index('id="sensitivity"'):]
    assert table.index("scale_mul") < table.index("fc0")
