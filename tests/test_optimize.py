"""--optimize speed|size|balanced and the flash budget: the select-kernels pass picks each layer's
kernel among its op's options by estimated cost (tinyc/kernel_cost.py, tinyc/optimize.py) and
records the choice in the IR and report.json."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyc.compiler import prepare
from tinyc.codegen import generate
from tinyc.ir_text import parse_graph, print_graph
from tinyc.kernel_cost import Cost, wait_cycles
from tinyc.optimize import FLASH_MARGIN, MODES, choose, set_options
from tinyc.passes import run_passes
from tinyc.passes.pipeline import KERNELS
from tinyc.targets import get_target

from .conftest import need_tools, run_cli, shared_model
from .test_cli import _assert_one_line_error
from .tflite_builders import model_bytes

CASES = Path(__file__).parent / "backend"
SHARED = ["mlperf-tiny/kws_int8.onnx", "mlperf-tiny/ic_int8.onnx", "mlperf-tiny/ad_int8.onnx"]


def _kernels(mode=None, budget=None, target="cortex-m4"):
    g = parse_graph((CASES / "kernels.ir").read_text())
    set_options(g, mode, budget)
    return run_passes(g, KERNELS, target=get_target(target))


@pytest.mark.parametrize("mode", ["speed", "size"])
def test_mode_golden(mode):
    """(balanced, the default: tests/test_backend.py's cortex-m4 golden)"""
    assert print_graph(_kernels(mode)) == (CASES / f"kernels.cortex-m4.{mode}.expected.ir").read_text()


def test_budget_golden():
    assert print_graph(_kernels("speed", budget=11300)) == (CASES / "kernels.cortex-m4.budget.expected.ir").read_text()


def _forms(kg):
    return {n.name: n.attrs["form"] for n in kg.nodes if "form" in n.attrs}


def _best(kg, column):
    """Per node with options: is its chosen option one with the least of ``column`` (index into
    the options' [form, kernel, instructions, flash, flash read, cycles])?"""
    out = {}
    for n in kg.nodes:
        if "options" in n.attrs:
            values = {o[0]: o[column] for o in n.attrs["options"]}
            out[n.name] = values[n.attrs["form"]] == min(values.values())
    return out


def test_what_the_goldens_hold():
    """Said plainly: speed keeps the DSP kernels' widened weights on this graph (fewest
    instructions); size keeps every layer's weights int8; balanced (the default) takes int8 where
    the flash wait states of reading twice the bytes cost more cycles than the SXTB16s it saves
    (the 3x3 ring convolution, which walks its weights once per pair of pixels, and the fully
    connected layer) and keeps the widened ones elsewhere; a flash budget switches the layers that
    lose the fewest cycles per byte saved first: the 3x3 convolution, then the fully connected one,
    then the rest."""
    wide = {"pw": "wide", "c3": "wide", "dw": "wide", "fc": "wide"}
    assert _forms(_kernels("speed")) == wide
    assert _forms(_kernels()) == dict(wide, c3="int8", fc="int8")
    assert _forms(_kernels("size")) == {n: "int8" for n in wide}
    assert _forms(_kernels("speed", budget=11900)) == dict(wide, c3="int8")
    assert _forms(_kernels("speed", budget=11300)) == dict(wide, c3="int8", fc="int8")
    assert _forms(_kernels("speed", budget=10500)) == {n: "int8" for n in wide}
    assert all(_best(_kernels("speed"), 2).values())  # fewest instructions
    assert all(_best(_kernels(), 5).values())  # fewest cycles
    assert all(_best(_kernels("size"), 3).values())  # least flash


def test_forms_knob_takes_the_first_option_of_those_forms():
    from tinyc.passes.select_kernels import select_kernels

    g = parse_graph((CASES / "kernels.ir").read_text())
    variants = get_target("cortex-m4").template_variants
    assert set(_forms(select_kernels(g, variants, forms=("int8",))).values()) == {"int8"}
    assert set(_forms(select_kernels(g, variants, forms=("wide",))).values()) == {"wide"}
    assert _forms(select_kernels(g, variants, forms=("none",))) == _forms(select_kernels(g, variants))
    assert not any("options" in n.attrs for n in select_kernels(g, variants).nodes)  # (no target: no costs)


@pytest.mark.parametrize("target", ["host", "cortex-m0plus", "cortex-m3", "esp32s3"])
def test_targets_without_a_choice_record_none(target):
    kg = _kernels("size", target=target)
    assert not any("form" in n.attrs or "options" in n.attrs for n in kg.nodes)


def test_helium_cores_choose_only_for_depthwise():
    """The M55's Helium matrix products keep int8 weights (one option); its depthwise layers run
    the DSP extension's kernel, in either weight form (its board's flash has no wait states:
    balanced takes the fewer instructions)."""
    kg = _kernels(target="cortex-m55")
    assert {n.name for n in kg.nodes if "options" in n.attrs} == {"dw"}
    assert _forms(kg)["dw"] == "wide" and all(_best(kg, 2).values())


def _c(instructions, flash, cycles=None, reads=0):
    return Cost(instructions, flash, reads, instructions if cycles is None else cycles)


def test_choose_by_mode():
    opts = {"a": [_c(100, 1000, cycles=600), _c(120, 500, cycles=170)]}
    assert choose(opts, "speed", 0) == {"a": 0}
    assert choose(opts, "balanced", 0) == {"a": 1}  # fewer cycles once the wait states count
    assert choose(opts, "size", 0) == {"a": 1}


def test_choose_downgrades_the_cheapest_bytes_first():
    # a loses 200 cycles for 500 bytes (0.4 per byte), b 50 for 400 (0.125 per byte)
    opts = {"a": [_c(100, 1000), _c(300, 500)], "b": [_c(100, 1000), _c(150, 600)]}
    assert choose(opts, "speed", 0) == {"a": 0, "b": 0}  # no budget
    assert choose(opts, "speed", 2000 / (1 - FLASH_MARGIN)) == {"a": 0, "b": 0}  # fits
    assert choose(opts, "speed", 1650) == {"a": 0, "b": 1}  # 383 bytes to save: b's 400 do
    assert choose(opts, "speed", 1500) == {"a": 1, "b": 1}
    assert choose(opts, "speed", 100, fixed_bytes=50) == {"a": 1, "b": 1}  # nothing fits: the smallest


def test_wait_cycles_follow_the_board():
    """STM32F407 at 168 MHz: 5 wait states per 128-bit (16-byte) flash read (RM0090, table 10)."""
    m4 = get_target("cortex-m4")
    assert (m4.flash_wait_states, m4.flash_line_bytes) == (5, 16)
    assert wait_cycles(160, m4) == 50 and wait_cycles(161, m4) == 55
    assert wait_cycles(10_000, get_target("host")) == 0


@pytest.mark.parametrize("model", SHARED)
def test_each_mode_takes_its_best_option_on_the_shared_models(model):
    """Within the board's flash (no layer is downgraded), every layer with options takes the one
    with the fewest estimated instructions (speed), cycles (balanced) or flash bytes (size)."""
    for mode, column in (("speed", 2), ("balanced", 5), ("size", 3)):
        g = prepare(shared_model(model), progress=False).graph
        set_options(g, mode, None)
        best = _best(generate(g, get_target("cortex-m4")).graph, column)
        assert best and all(best.values()), (mode, best)


def _fc_model(path: Path, k: int = 256, n: int = 96) -> Path:
    """A built int8 fully connected layer: n x k weights (24 KiB of int8 by default)."""
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    ws = list(rng.uniform(0.002, 0.004, n))
    ts = [dict(name="x", shape=(1, k), type="s8", q=((0.05,), (3,), 0)),
          dict(name="w", shape=(n, k), type="s8", data=w, q=(ws, [0] * n, 0)),
          dict(name="b", shape=(n,), type="s32", data=rng.integers(-3000, 3000, n).astype(np.int32),
               q=([0.05 * s for s in ws], [0] * n, 0)),
          dict(name="y", shape=(1, n), type="s8", q=((0.5,), (-5,), 0))]
    path.write_bytes(model_bytes("FULLY_CONNECTED", ts, [0], [3], [0, 1, 2], [3],
                                 ("FullyConnectedOptions", dict(fusedActivationFunction=1)), version=4))
    return path


def _pw_model(path: Path, c: int = 128, m: int = 128, hw: int = 8) -> Path:
    """A built int8 1x1 convolution: m x c weights (16 KiB of int8 by default) over hw x hw pixels."""
    rng = np.random.default_rng(11)
    ws = list(rng.uniform(0.002, 0.004, m))
    ts = [dict(name="x", shape=(1, hw, hw, c), type="s8", q=((0.05,), (3,), 0)),
          dict(name="w", shape=(m, 1, 1, c), type="s8", data=rng.integers(-127, 128, (m, 1, 1, c)).astype(np.int8),
               q=(ws, [0] * m, 0)),
          dict(name="b", shape=(m,), type="s32", data=rng.integers(-3000, 3000, m).astype(np.int32),
               q=([0.05 * s for s in ws], [0] * m, 0)),
          dict(name="y", shape=(1, hw, hw, m), type="s8", q=((0.5,), (-5,), 0))]
    opts = ("Conv2DOptions", dict(padding=1, strideH=1, strideW=1, fusedActivationFunction=1))
    path.write_bytes(model_bytes("CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=3))
    return path


def _compile(tmp_path, *args, build=None):
    model = (build or _fc_model)(tmp_path / "m.tflite")
    out = tmp_path / "out"
    r = run_cli("compile", str(model), "-o", str(out), "--target", "cortex-m4", *args)
    report = json.loads((out / "report.json").read_text()) if r.returncode == 0 else None
    return r, report


def _choice(report):
    return next(l["kernel_choice"] for l in report["layers"] if "kernel_choice" in l)


def test_report_json_and_verbose_show_the_choice(tmp_path):
    """A fully connected layer (one row: each weight read once; 256 inputs, 96 outputs): its int8
    form (inputs widened in registers: a copy would be bigger than the layer's rows) reads half
    the bytes for a few more instructions, and balanced takes it."""
    need_tools("arm-none-eabi-gcc")
    r, report = _compile(tmp_path, "--verbose", "--report")
    assert r.returncode == 0, r.stderr
    assert report["optimize"] == {"mode": "balanced", "flash_budget": 1048576}
    c = _choice(report)
    assert c["form"] == "int8" and c["kernel"] == "s8.fc_wide_direct"
    assert [o["form"] for o in c["options"]] == ["wide", "int8"]
    assert [o["kernel"] for o in c["options"]] == ["s8.fc_wide", "s8.fc_wide_direct"]
    assert [o["chosen"] for o in c["options"]] == [False, True]
    for o in c["options"]:
        assert set(o) == {"form", "kernel", "instructions", "flash_bytes", "flash_read_bytes", "cycles", "chosen"}
    wide, int8 = c["options"]
    assert int8["cycles"] < wide["cycles"]
    # the weights' bytes (oracle: the layer's own shape) are part of each option's flash
    assert wide["flash_bytes"] > 2 * 96 * 256 and 96 * 256 < int8["flash_bytes"] < 2 * 96 * 256
    assert wide["flash_read_bytes"] >= 2 * 96 * 256 and int8["flash_read_bytes"] >= 96 * 256
    assert "kernel choice (--optimize balanced" in r.stdout
    assert "s8.fc_wide_direct [int8]" in r.stdout and "instead s8.fc_wide [wide]" in r.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "kernel (--optimize balanced)" in html and "instead: s8.fc_wide [wide]" in html


def test_size_mode_and_a_small_budget_keep_the_weights_int8(tmp_path):
    """A 1x1 convolution (128 x 128 int8 weights over 8x8 pixels): speed widens its weights (32 KiB);
    under a 28 KiB budget the same mode compiles with them int8 instead of failing."""
    need_tools("arm-none-eabi-gcc")
    _, report = _compile(tmp_path, "--optimize", "speed", build=_pw_model)
    assert _choice(report)["form"] == "wide" and report["flash_bytes"] > 2 * 128 * 128
    _, report = _compile(tmp_path, "--optimize", "size", build=_pw_model)
    assert report["optimize"]["mode"] == "size" and _choice(report)["form"] == "int8"
    r, report = _compile(tmp_path, "--optimize", "speed", "--flash-budget", "28K", build=_pw_model)
    assert r.returncode == 0, r.stderr
    assert report["optimize"] == {"mode": "speed", "flash_budget": 28 * 1024}
    assert _choice(report)["form"] == "int8"
    assert report["flash_bytes"] <= 28 * 1024  # measured from the compiled object


def test_nothing_fits_is_the_one_line_error(tmp_path):
    need_tools("arm-none-eabi-gcc")
    r, _ = _compile(tmp_path, "--flash-budget", "16K")  # less than the int8 weights (24 KiB)
    _assert_one_line_error(r, "flash budget of 16,384 B")


def test_optimize_is_an_option_of_every_command_that_compiles():
    from tinyc.cli import build_parser

    p = build_parser()
    for cmd in ("compile", "verify", "bench", "diff", "report", "check"):
        extra = ["-o", "x"] if cmd in ("compile", "report") else []
        args = p.parse_args([cmd, "m.onnx", *extra, "--optimize", "size"])
        assert args.optimize == "size"
    assert set(MODES) == {"speed", "balanced", "size"}


# the calibrated model's largest relative error per layer against `tinyc bench` on KWS, IC and AD
# (every layer with kernel options, in either form), and on a whole model's layers with options
LAYER_ERROR, MODEL_ERROR = 0.40, 0.10


@pytest.mark.emulator
@pytest.mark.slow
@pytest.mark.parametrize("model", SHARED)
@pytest.mark.parametrize("form", ["wide", "int8"])
def test_estimates_against_bench(model, form, tmp_path):
    """Oracle: the instructions QEMU counts (tinyc bench) per layer."""
    from tinyc.bench import count
    from tinyc.codegen.emit import print_model
    from tinyc.data import choose_samples
    from tinyc.passes.select_kernels import choose_kernels

    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    t = get_target("cortex-m4")
    g = prepare(shared_model(model), progress=False).graph
    kg = run_passes(choose_kernels(g, t.template_variants, forms=(form,), target=t), ["plan-memory"], None, t)
    r = count(print_model(kg, t, name="model"), t, tmp_path, choose_samples(g, None, 1, 0, None).feeds[0])
    est = meas = 0
    for node, layer in zip(kg.nodes, r["layers"]):
        if "options" not in node.attrs:
            continue
        e = next(o[2] for o in node.attrs["options"] if o[0] == node.attrs["form"])
        assert abs(e - layer["instructions"]) <= LAYER_ERROR * layer["instructions"], (node.name, e, layer["instructions"])
        est, meas = est + e, meas + layer["instructions"]
    assert meas and abs(est - meas) <= MODEL_ERROR * meas, (est, meas)


@pytest.mark.emulator
@pytest.mark.parametrize("choice", [("--optimize", "size"), ("--optimize", "speed", "--flash-budget", "50K")])
def test_smaller_kernels_equal_tflite_micro_on_cortex_m4(choice):
    """KWS with int8 weights everywhere (size), and mixed (speed under a flash budget: some
    layers switch to int8 weights, the others keep widened weights), on the emulated M4:
    bit-exact against TFLite Micro."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    pytest.importorskip("tflite_micro")
    kws = "mlperf-tiny/kws_int8"
    r = run_cli("verify", str(shared_model(kws + ".onnx")), "-t", "cortex-m4", "--samples", "3", *choice,
                "--against", f"tflm={shared_model(kws + '.tflite')}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vs TFLite Micro (kws_int8.tflite, tflite-micro package): bit-exact" in r.stdout


def test_default_build_under_a_budget_it_would_exceed_compiles_smaller(tmp_path):
    """KWS on the M4: balanced keeps the depthwise layers' weights widened (41 KB of flash); under
    a 40,000 B budget the default build compiles with int8 weights there too and fits (measured)."""
    need_tools("arm-none-eabi-gcc")
    kws = str(shared_model("mlperf-tiny/kws_int8.onnx"))
    forms = {}
    for name, extra in (("free", ()), ("budget", ("--flash-budget", "40000"))):
        out = tmp_path / name
        r = run_cli("compile", kws, "-t", "cortex-m4", "-o", str(out), *extra)
        assert r.returncode == 0, r.stderr
        report = json.loads((out / "report.json").read_text())
        forms[name] = [(l["kernel_choice"]["kernel"], l["kernel_choice"]["form"]) for l in report["layers"]
                       if "kernel_choice" in l]
        forms[name + " flash"] = report["flash_bytes"]
    assert ("s8.dwconv_wide", "wide") in forms["free"] and forms["free flash"] > 40000
    assert {f for _, f in forms["budget"]} == {"int8"} and forms["budget flash"] <= 40000
