"""int8 answers before calibration: `check --quantize int8` without data, fit errors that list the
options that would make the model fit (their bytes from a real build), and verify's fit warning."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinyc.check import check
from tinyc.pipeline import Build
from tinyc.targets import get_target

from .conftest import ROOT, need_tools, run_cli, shared_model

DIGITS = ROOT / "examples" / "digits"


def _big_gemm(path, calib):
    """A Gemm with 2 MiB of float weights (over the 1 MiB flash of cortex-m4's board; 512 KiB as int8)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((1024, 512)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc"), helper.make_node("Relu", ["h"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(512, np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    np.savez(calib, x=rng.standard_normal((8, 1024)).astype(np.float32))


def _compiled(tmp_path, name, *args):
    out = tmp_path / name
    r = run_cli("compile", *args, "-t", "cortex-m4", "-o", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "report.json").read_text())


def test_check_quantize_int8_needs_no_calibration_and_gives_compiles_sizes(tmp_path):
    need_tools("arm-none-eabi-gcc")
    model = DIGITS / "digits_mlp.onnx"
    r = run_cli("check", str(model), "-t", "cortex-m4", "--quantize", "int8")
    assert r.returncode == 0 and "fits" in r.stdout and "measure it with --calib" in r.stdout, r.stdout + r.stderr
    res = check(Build(model, get_target("cortex-m4"), quantize="int8", problems=[], placeholder_calib=True))
    rep = _compiled(tmp_path, "q", str(model), "--quantize", "int8", "--calib", str(DIGITS / "digits_calib.npz"))
    for key in ("arena_bytes", "io_bytes", "weights_bytes"):
        assert res.details[key] == rep[key], key
    assert res.ram_bytes == rep["ram_bytes"]
    m = rep["measured"]
    assert res.details["code_and_rodata_bytes"] - m["rodata_bytes"] - m["code_bytes"] in range(-16, 17)  # immediates
    assert res.flash_bytes - rep["flash_bytes"] in range(-16, 17)


def test_check_quantize_int8_names_every_op_without_int8_kernel(tmp_path):
    w = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Resize", ["h", "", "sc"], ["u"], mode="cubic", name="up_cubic"),
             helper.make_node("Resize", ["u", "", "sc"], ["v"], mode="linear",
                              coordinate_transformation_mode="tf_crop_and_resize", name="up_crop"),
             helper.make_node("ReduceSumSquare", ["v"], ["y"], axes=[2, 3], name="rss")]
    g = helper.make_graph(nodes, "rc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    r = run_cli("check", str(tmp_path / "m.onnx"), "-t", "cortex-m4", "--quantize", "int8")
    assert r.returncode == 2, r.stdout + r.stderr
    for name in ("ReduceSumSquare ('rss')", "'up_cubic'", "'up_crop'"):
        assert name in r.stdout, name
    assert run_cli("check", str(tmp_path / "m.onnx"), "-t", "cortex-m4").returncode == 0  # float has kernels


def _option(stderr, flag):
    m = re.search(re.escape(flag) + r" \(RAM ([\d,]+) B, flash ([\d,]+) B: [^;]*; (fits|does not fit)\)", stderr)
    assert m, stderr
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), m.group(3)


def test_fit_error_offers_quantize_int8_with_a_real_compiles_bytes(tmp_path):
    need_tools("arm-none-eabi-gcc")
    _big_gemm(tmp_path / "big.onnx", tmp_path / "calib.npz")
    r = run_cli("compile", str(tmp_path / "big.onnx"), "-t", "cortex-m4", "-o", str(tmp_path / "f"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "more than the flash budget of 1,048,576 B" in r.stderr
    ram, flash, fits = _option(r.stderr, "--quantize int8")
    rep = _compiled(tmp_path, "q", str(tmp_path / "big.onnx"), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"))
    assert fits == "fits" and ram == rep["ram_bytes"]
    assert flash - rep["flash_bytes"] in range(-16, 17)  # the weights exactly; code up to a few immediates
    r = run_cli("check", str(tmp_path / "big.onnx"), "-t", "cortex-m4")
    assert r.returncode == 2 and _option(r.stdout, "--quantize int8") == (ram, flash, fits)


def test_fit_error_offers_io_int8_with_the_exact_saving(tmp_path):
    need_tools("arm-none-eabi-gcc")
    _big_gemm(tmp_path / "big.onnx", tmp_path / "calib.npz")
    q = (str(tmp_path / "big.onnx"), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"))
    r = run_cli("compile", *q, "-t", "cortex-m4", "-o", str(tmp_path / "f"), "--ram-budget", "7000")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    ram, flash, fits = _option(r.stderr, "--io int8")
    rep = _compiled(tmp_path, "io", *q, "--io", "int8")
    assert (ram, flash, fits) == (rep["ram_bytes"], rep["flash_bytes"], "fits")
    before = _compiled(tmp_path, "fio", *q)
    saving = int(re.search(r"--io int8 \(RAM [\d,]+ B, flash [\d,]+ B: RAM ([-+][\d,]+) B", r.stderr).group(1).replace(",", ""))
    assert saving == rep["ram_bytes"] - before["ram_bytes"] and rep["io_bytes"] - before["io_bytes"] == -(1024 + 512) * 3


def test_verify_warns_when_the_board_is_too_small(tmp_path):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    model = DIGITS / "digits_mlp.onnx"
    r = run_cli("verify", str(model), "-t", "cortex-m4", "--flash-budget", "4K")
    warnings = [l for l in r.stderr.splitlines() if "warning:" in l]
    assert r.returncode == 0 and "PASS" in r.stdout and len(warnings) == 1, r.stdout + r.stderr
    assert "flash budget of 4,096 B" in warnings[0] and "verify goes on" in warnings[0]
    r = run_cli("verify", str(model), "-t", "cortex-m4")
    assert r.returncode == 0 and "warning:" not in r.stderr


def test_mlperf_ad_float_over_flash_gets_int8_sizes_without_calibration(tmp_path):
    """MLPerf Tiny's float AD model (1.06 MB of weights) on cortex-m4's 1 MiB: check --quantize int8
    without data gives the sizes compile --quantize int8 gives with the real samples, and the float
    compile's error offers --quantize int8 with those bytes."""
    need_tools("arm-none-eabi-gcc")
    model = shared_model("mlperf-tiny/ad_float.onnx")
    np.savez(tmp_path / "calib.npz", input_1=np.load(shared_model("mlperf-tiny/samples.npz"))["ad_float"][:8])
    res = check(Build(model, get_target("cortex-m4"), quantize="int8", problems=[], placeholder_calib=True))
    rep = _compiled(tmp_path, "q", str(model), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"))
    assert (res.details["arena_bytes"], res.details["io_bytes"], res.ram_bytes) == \
        (rep["arena_bytes"], rep["io_bytes"], rep["ram_bytes"])
    # one layer's requantization takes the fast form (a table of 12 B per channel, less code) with
    # the real ranges only: the weights differ by that table (1,536 B of 290,944), the flash by 364 B
    assert rep["weights_bytes"] - res.details["weights_bytes"] == 128 * 12
    assert abs(rep["flash_bytes"] - res.flash_bytes) <= rep["flash_bytes"] // 200
    r = run_cli("compile", str(model), "-t", "cortex-m4", "-o", str(tmp_path / "f"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert _option(r.stderr, "--quantize int8") == (res.ram_bytes, res.flash_bytes, "fits")
