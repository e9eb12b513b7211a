"""`tinyc check`: all problems in one run, and RAM/flash against the target's budget (measured
from the compiled object when the cross compiler is there)."""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinyc.check import check
from tinyc.pipeline import Build
from tinyc.targets import get_target

from .conftest import need_tools, run_cli, shared_model


def _three_unsupported(path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Sinh", ["a"], ["b"], name="sinh1"),
             helper.make_node("Softplus", ["b"], ["c"], name="softplus1"),
             helper.make_node("MaxPool", ["c"], ["d"], kernel_shape=[2, 2], storage_order=1, name="colmajor_pool"),
             helper.make_node("Upsample", ["d", "sc"], ["e"], name="upsample1"),
             helper.make_node("Relu", ["e"], ["y"], name="r2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def test_check_names_every_problem_in_one_run(tmp_path):
    _three_unsupported(tmp_path / "m.onnx")
    r = run_cli("check", str(tmp_path / "m.onnx"), "--target", "cortex-m4")
    assert r.returncode == 2
    for name in ("Sinh (node 'sinh1')", "Softplus (node 'softplus1')", "Upsample (node 'upsample1')", "'colmajor_pool'"):
        assert name in r.stdout, name
    assert "re-export with Resize" in r.stdout  # a hint where a rewrite exists
    assert r.stderr.strip().startswith("tinyc: error: 4 problems")


def test_check_measures_ram_and_flash_from_the_object(tmp_path):
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-size")
    path = shared_model("mlperf-tiny/kws_int8.onnx")
    res = check(Build(path, get_target("cortex-m4"), problems=[]))
    assert not res.problems and res.flash_measured
    r = run_cli("compile", str(path), "-t", "cortex-m4", "-o", str(tmp_path))
    rep = json.loads((tmp_path / "report.json").read_text())
    assert res.details["bss_bytes"] == rep["arena_bytes"]  # the arena is the object's only RAM
    assert res.details["code_and_rodata_bytes"] >= rep["weights_bytes"]
    r = run_cli("check", str(path), "-t", "cortex-m4")
    assert r.returncode == 0 and "fits" in r.stdout


def test_check_refuses_a_model_too_big_for_the_board():
    r = run_cli("check", str(shared_model("mlperf-tiny/ad_float.onnx")), "-t", "cortex-m4")
    assert r.returncode == 2  # 1.06 MB of weights and code, 1 MiB of flash
    assert "does not fit" in r.stderr and "flash" in r.stdout


def test_check_without_a_cross_compiler_counts_weights_and_says_so(tmp_path):
    r = run_cli("check", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", env={"PATH": str(tmp_path)})
    assert r.returncode == 0 and "weights only" in r.stdout


def _flash(stdout: str) -> int:
    return int(stdout.split("flash ")[1].split(" B")[0].replace(",", ""))


def test_check_takes_the_model_options_of_compile(tmp_path):
    """AD float needs more flash than the board has; quantized to int8 by tinyc (--quantize int8
    --calib, as compile takes them) it fits, and check says so with the int8 sizes."""
    model = shared_model("mlperf-tiny/ad_float.onnx")
    np.savez(tmp_path / "calib.npz", input_1=np.load(shared_model("mlperf-tiny/samples.npz"))["ad_float"][:8])
    float_check = run_cli("check", str(model), "-t", "cortex-m4")
    r = run_cli("check", str(model), "-t", "cortex-m4", "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fits" in r.stdout
    assert _flash(r.stdout) < _flash(float_check.stdout) * 0.6
    r = run_cli("check", str(model), "-t", "cortex-m4", "--calib", str(tmp_path / "calib.npz"))
    assert r.returncode == 2 and "--calib is only used with --quantize int8" in r.stderr
