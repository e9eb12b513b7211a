"""`tinyc bench`: exact instruction counts in QEMU (tinyc's TCG plugin), identical from run to run,
adding up per layer, on runs whose outputs are bit-exact; the benchmarks script as a smoke test."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.bench import count
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, need_tools, run_cli, shared_model


@pytest.mark.emulator
def test_bench_json_counts_are_exact_and_add_up(tmp_path):
    need_arm()
    need_tools("gcc")
    path = shared_model("mlperf-tiny/kws_int8.onnx")
    runs = []
    for i in range(2):
        r = run_cli("bench", str(path), "--target", "cortex-m4", "--json", "--build-dir", str(tmp_path / f"b{i}"))
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    a, b = runs
    assert a == b  # identical from run to run
    for key in ("instructions_total", "macs_total", "arena_bytes", "code_bytes", "weights_bytes", "layers"):
        assert key in a
    # sizes against binutils' reading of the bench firmware (not tinyc's ELF reader)
    nm = subprocess.run(["arm-none-eabi-nm", "--print-size", str(tmp_path / "b0" / "firmware.elf")],
                        capture_output=True, text=True, check=True).stdout.split("\n")
    sizes = {f[3]: int(f[1], 16) for f in (line.split() for line in nm) if len(f) == 4}
    assert a["macs_total"] == 2_656_768 and a["arena_bytes"] == sizes["arena"]
    assert a["weights_bytes"] == sum(v for k, v in sizes.items() if k[0] == "w" and k[1:].isdigit())
    assert all({"name", "op", "macs", "instructions"} <= set(l) for l in a["layers"])
    parts = sum(l["instructions"] for l in a["layers"]) + a["run_function_instructions"] + sum(a["library_instructions"].values())
    assert parts == a["instructions_total"]
    conv = [l for l in a["layers"] if l["op"] == "Conv"]
    assert len(conv) == 9 and all(l["instructions"] > l["macs"] for l in conv)  # every layer counted
    assert 1000 < a["code_bytes"] <= 10 * 1024


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_counted_runs_are_bit_exact(target, tmp_path):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm", "gcc")
    g = load_graph(shared_model("mlperf-tiny/ad_int8.onnx"))
    x = g.tensors[g.inputs[0]]
    sample = {g.inputs[0]: np.random.default_rng(1).integers(-128, 128, x.shape).astype(np.int8)}
    r = count(generate(g, get_target(target)), get_target(target), tmp_path, sample)
    np.testing.assert_array_equal(r["outputs"][g.outputs[0]], interpreter.run(g, sample)[g.outputs[0]])
    assert r["instructions_total"] > 0 and r["layers"][0]["instructions"] > 0


def test_bench_refuses_targets_without_qemu(tmp_path):
    r = run_cli("bench", str(shared_model("mlperf-tiny/ad_int8.onnx")), "--target", "esp32")
    assert r.returncode == 2 and "needs a QEMU target" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.emulator
def test_benchmarks_script_smoke(tmp_path):
    need_arm()
    out = tmp_path / "results.md"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--models", "ad", "--targets", "cortex-m4",
                        "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    table = out.read_text()
    assert "| AD | cortex-m4 |" in table and "582,884" in table


# TFLite Micro + CMSIS-NN on the same models, counted the same way (../shared/BENCHMARKS.md)
TFLM_CMSIS_NN_M4 = {"kws_int8": 7_697_355, "ic_int8": 29_861_980, "ad_int8": 582_884}


@pytest.mark.emulator
@pytest.mark.parametrize("model", ["kws_int8", "ic_int8", "ad_int8"])
def test_m4_at_most_half_of_tflm_and_m55_fewer_bit_exact(model, tmp_path):
    """The issue's bar: on cortex-m4 at most half of TFLite Micro + CMSIS-NN's instructions; on
    cortex-m55 fewer than on cortex-m4; outputs bit-exact to the reference on both."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm", "gcc")
    g = load_graph(shared_model(f"mlperf-tiny/{model}.onnx"))
    x = g.tensors[g.inputs[0]]
    sample = {g.inputs[0]: np.random.default_rng(3).integers(-128, 128, x.shape).astype(np.int8)}
    want = interpreter.run(g, sample)[g.outputs[0]]
    counts = {}
    for target in ("cortex-m4", "cortex-m55"):
        t = get_target(target)
        r = count(generate(g, t), t, tmp_path / target, sample)
        np.testing.assert_array_equal(r["outputs"][g.outputs[0]], want)
        counts[target] = r["instructions_total"]
    assert counts["cortex-m4"] <= TFLM_CMSIS_NN_M4[model] / 2, counts
    assert counts["cortex-m55"] < counts["cortex-m4"], counts
