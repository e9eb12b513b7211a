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
from tinyc.optimize import set_options
from tinyc.targets import get_target
from tinyc.traffic import read_blocks

from .conftest import ROOT, need_arm, need_tools, run_cli, shared_model
from .tflite_builders import model_bytes, run_tflm


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
    # memory traffic and the estimate add up: the layers plus the run function and the library
    for key in TRAFFIC_KEYS:
        assert sum(l[key] for l in a["layers"]) + a["outside_layers"][key] == a[key], key
    assert a["outside_layers"]["instructions"] == a["run_function_instructions"] + sum(a["library_instructions"].values())
    text = run_cli("bench", str(path), "--target", "cortex-m4", "--build-dir", str(tmp_path / "text"))
    assert text.returncode == 0 and f"{a['flash_read_bytes']:,}" in text.stdout
    assert f"estimate: {a['estimated_cycles']:,} cycles" in text.stdout and "see README" in text.stdout


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
    # AD's first layer is fully connected: its weights are read from flash (ITCM on the M55)
    assert r["layers"][0]["flash_read_bytes"] >= r["layers"][0]["macs"]
    if target == "cortex-m55":  # no cycle model for the M55: no estimate rather than a made-up one
        assert r["estimated_cycles"] is None and r["estimated_latency_us"] is None and r["estimate"] is None


TRAFFIC_KEYS = ("flash_read_bytes", "sram_read_bytes", "sram_write_bytes", "other_access_bytes", "flash_line_reads",
                "flash_wait_cycles", "estimated_cycles")


def _function_disassembly(elf, name: str) -> list[str]:
    """``name``'s instructions as binutils disassembles them (not tinyc's or QEMU's reading)."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    body = out.split(f"<{name}>:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split("\t", 2)[2] for line in body.splitlines() if line.count("\t") >= 2]


@pytest.mark.emulator
def test_bench_memory_traffic_of_a_fully_connected_layer(tmp_path):
    """One int8 fully connected layer, 4 output channels of 256 inputs, one row: every weight is read
    once from flash, every input once from SRAM, and SRAM is written with the 4 outputs and the
    registers the function saves on the stack (read back at its end) -- counted here from binutils'
    disassembly of the firmware, which must show no other stack access."""
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm", "gcc")
    rng = np.random.default_rng(7)
    n, k = 4, 256
    scales = list(rng.uniform(0.002, 0.01, n))
    data = model_bytes("FULLY_CONNECTED", [
        dict(name="x", shape=(1, k), type="s8", q=((0.05,), (3,), 0)),
        dict(name="w", shape=(n, k), type="s8", data=rng.integers(-127, 128, (n, k)).astype(np.int8), q=(scales, [0] * n, 0)),
        dict(name="b", shape=(n,), type="s32", data=rng.integers(-3000, 3000, n).astype(np.int32),
             q=([0.05 * s for s in scales], [0] * n, 0)),
        dict(name="y", shape=(1, n), type="s8", q=((0.07,), (-5,), 0))],
        [0], [3], [0, 1, 2], [3], ("FullyConnectedOptions", dict(fusedActivationFunction=0)), version=4)
    path = tmp_path / "fc.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    x = rng.integers(-128, 128, (1, k)).astype(np.int8)
    t = get_target("cortex-m4")
    model = generate(g, t)
    # bytes per weight in flash: the kernel's weight form (--optimize's choice) says
    per_weight = {"wide": 2, "int8": 1}[next(nd.attrs["form"] for nd in model.graph.nodes if "form" in nd.attrs)]
    r = count(model, t, tmp_path / "b", {g.inputs[0]: x})
    np.testing.assert_array_equal(r["outputs"][g.outputs[0]], run_tflm(data, [x])[0])
    (layer,) = r["layers"]
    elf = tmp_path / "b" / "firmware.elf"
    code = _function_disassembly(elf, "layer0_gemm")
    stack = [i for i in code if "sp" in i.split("\t", 1)[-1] and i.split()[0].startswith(("push", "pop", "stm", "ldm", "str", "ldr"))]
    saved = [i for i in stack if i.startswith(("push", "stmdb"))]
    restored = [i for i in stack if i.startswith(("pop", "ldmia"))]
    assert len(saved) == 1 and len(restored) == 1 and len(stack) == 2, stack  # no spills
    saved_bytes = 4 * saved[0].split("{", 1)[1].count(",") + 4
    assert layer["sram_write_bytes"] == n + saved_bytes
    assert layer["sram_read_bytes"] == k + saved_bytes
    # the weights (int8, or widened to int16) in the stream with biases and requantization
    # constants (some of which gcc may fold into immediates); nothing else from flash but the
    # literal pool's words
    nm = subprocess.run(["arm-none-eabi-nm", "--print-size", str(elf)], capture_output=True, text=True, check=True).stdout
    weights = sum(int(f[1], 16) for f in (line.split() for line in nm.splitlines()) if len(f) == 4 and f[3] == "w0")
    literals = sum(1 for i in code if i.startswith("ldr") and "[pc" in i)
    assert n * k * per_weight <= layer["flash_read_bytes"] <= weights + 4 * literals
    assert layer["flash_line_reads"] >= n * k * per_weight // t.flash_line_bytes
    assert layer["other_access_bytes"] == 0
    # the totals are the layer's plus the run function's and the library's
    for key in TRAFFIC_KEYS:
        assert layer[key] + r["outside_layers"][key] == r[key], key
    # the estimate: core cycles (at least one per instruction on the M4) + wait states, over the clock
    assert r["flash_wait_cycles"] == r["flash_line_reads"] * t.flash_wait_states
    assert r["estimated_cycles"] - r["flash_wait_cycles"] >= r["instructions_total"]
    assert r["estimated_latency_us"] == round(r["estimated_cycles"] / t.clock_hz * 1e6, 2)
    assert layer["estimated_latency_us"] == round(layer["estimated_cycles"] / 168e6 * 1e6, 2)
    # the plugin's taken exits (a block entered other than from its predecessor's end): the
    # architecture's oracle is that an unconditional branch or call is always taken
    blocks = list(read_blocks(tmp_path / "b" / "insn_counts.txt"))
    assert all(0 <= b.taken <= b.executions for b in blocks)
    always = [b for b in blocks if b.disas[-1].split()[0] in ("b", "b.w", "bl", "blx")]
    assert always and all(b.taken == b.executions for b in always)


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


# TFLite Micro + CMSIS-NN on the same models, counted the same way (../shared/BENCHMARKS.md):
# instructions per inference on the M4, and flash = its int8-only code + the .tflite
TFLM_CMSIS_NN_M4 = {"kws_int8": 7_697_355, "ic_int8": 29_861_980, "ad_int8": 582_884}
TFLM_FLASH = {"kws_int8": 111_028, "ic_int8": 153_392, "ad_int8": 308_284}


@pytest.mark.emulator
@pytest.mark.parametrize("model", ["kws_int8", "ic_int8", "ad_int8"])
def test_m4_fast_and_small_m55_fewer_bit_exact(model, tmp_path):
    """The bar of the issues: on cortex-m4 the default build (--optimize balanced) needs no more
    flash (code + weights in the ELF) than TFLite Micro + CMSIS-NN and at most 0.55x its
    instructions; --optimize speed at most half of them; cortex-m55 fewer than cortex-m4; outputs
    bit-exact to the reference in every build."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm", "gcc")
    g = load_graph(shared_model(f"mlperf-tiny/{model}.onnx"))
    x = g.tensors[g.inputs[0]]
    sample = {g.inputs[0]: np.random.default_rng(3).integers(-128, 128, x.shape).astype(np.int8)}
    want = interpreter.run(g, sample)[g.outputs[0]]
    runs = {}
    for name, target, mode in (("m4", "cortex-m4", None), ("m4 speed", "cortex-m4", "speed"), ("m55", "cortex-m55", None)):
        t = get_target(target)
        g.options.pop("optimize", None)
        set_options(g, mode, None)
        r = count(generate(g, t), t, tmp_path / name.replace(" ", "-"), sample)
        np.testing.assert_array_equal(r["outputs"][g.outputs[0]], want)
        runs[name] = (r["instructions_total"], r["code_bytes"] + r["weights_bytes"])
    assert runs["m4"][1] <= TFLM_FLASH[model], runs
    assert runs["m4"][0] <= 0.55 * TFLM_CMSIS_NN_M4[model], runs
    assert runs["m4 speed"][0] <= TFLM_CMSIS_NN_M4[model] / 2, runs
    assert runs["m55"][0] < runs["m4"][0], runs
