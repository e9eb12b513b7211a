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
    assert print_graph(_kernels(budget=13500)) == (CASES / "kernels.cortex-m4.budget.expected.ir").read_text()


def _forms(kg):
    return {n.name: n.attrs["form"] for n in kg.nodes if "form" in n.attrs}


def test_what_the_goldens_hold():
    """Said plainly: speed and balanced keep the DSP kernels' widened weights on this graph; size
    takes the int8 kernels where they are smaller (the 1x1 convolution's DSP kernel has less
    code than the portable one's unrolled loops, so it stays); a flash budget switches the layers
    that lose the fewest cycles per byte saved first: the fully connected layer, then the
    depthwise one."""
    wide = {"pw": "wide", "c3": "wide", "dw": "wide", "fc": "wide"}
    assert _forms(_kernels()) == _forms(_kernels("speed")) == wide
    assert _forms(_kernels("size")) == {"pw": "wide", "c3": "int8", "dw": "int8", "fc": "int8"}
    assert _forms(_kernels(budget=14250)) == dict(wide, fc="int8")
    assert _forms(_kernels(budget=13500)) == dict(wide, fc="int8", dw="int8")
    for n in _kernels("size").nodes:
        if "options" in n.attrs:  # size: the least flash of the node's options
            flash = {o[0]: o[3] for o in n.attrs["options"]}
            assert flash[n.attrs["form"]] == min(flash.values())


def test_forms_knob_takes_the_first_option_of_those_forms():
    from tinyc.passes.select_kernels import select_kernels

    g = parse_graph((CASES / "kernels.ir").read_text())
    variants = get_target("cortex-m4").template_variants
    assert set(_forms(select_kernels(g, variants, forms=("int8",))).values()) == {"int8"}
    assert set(_forms(select_kernels(g, variants, forms=("wide",))).values()) == {"wide"}
    assert _forms(select_kernels(g, variants, forms=("none",))) == _forms(select_kernels(g, variants))
    assert not any("options" in n.attrs for n in select_kernels(g, variants).nodes)  # (no target: no costs)


@pytest.mark.parametrize("target", ["host", "cortex-m0plus", "cortex-m3", "cortex-m55", "esp32s3"])
def test_targets_without_a_choice_record_none(target):
    kg = _kernels("size", target=target)
    assert not any("form" in n.attrs or "options" in n.attrs for n in kg.nodes)


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
def test_speed_takes_the_widened_dsp_kernels(model):
    """speed keeps today's kernels on the shared models: wherever a DSP kernel with widened
    weights exists, it is chosen (the snapshot of the generated code checks the bytes)."""
    g = prepare(shared_model(model), progress=False).graph
    set_options(g, "speed", None)
    kg = generate(g, get_target("cortex-m4")).graph
    chosen = [(n.attrs["form"], n.attrs["options"]) for n in kg.nodes if "options" in n.attrs]
    assert chosen
    for form, options in chosen:
        forms = [o[0] for o in options]
        assert form == ("wide" if "wide" in forms else forms[0])


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


def _compile(tmp_path, *args):
    model = _fc_model(tmp_path / "fc.tflite")
    out = tmp_path / "out"
    r = run_cli("compile", str(model), "-o", str(out), "--target", "cortex-m4", *args)
    report = json.loads((out / "report.json").read_text()) if r.returncode == 0 else None
    return r, report


def _choice(report):
    return next(l["kernel_choice"] for l in report["layers"] if "kernel_choice" in l)


def test_report_json_and_verbose_show_the_choice(tmp_path):
    need_tools("arm-none-eabi-gcc")
    r, report = _compile(tmp_path, "--verbose", "--report")
    assert r.returncode == 0, r.stderr
    assert report["optimize"] == {"mode": "balanced", "flash_budget": 1048576}
    c = _choice(report)
    assert c["form"] == "wide" and c["kernel"] == "s8.fc_wide"
    assert [o["form"] for o in c["options"]] == ["wide", "int8"]
    assert [o["chosen"] for o in c["options"]] == [True, False]
    for o in c["options"]:
        assert set(o) == {"form", "kernel", "instructions", "flash_bytes", "flash_read_bytes", "cycles", "chosen"}
    wide, int8 = c["options"]
    # the weights' bytes (oracle: the layer's own shape) are part of each option's flash
    assert wide["flash_bytes"] > 2 * 96 * 256 and 96 * 256 < int8["flash_bytes"] < 2 * 96 * 256
    assert wide["flash_read_bytes"] >= 2 * 96 * 256 and int8["flash_read_bytes"] >= 96 * 256
    assert "kernel choice (--optimize balanced" in r.stdout
    assert "s8.fc_wide [wide]" in r.stdout and "instead s8.fully_connected [int8]" in r.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "kernel (--optimize balanced)" in html and "instead: s8.fully_connected [int8]" in html


def test_size_mode_and_a_small_budget_keep_the_weights_int8(tmp_path):
    need_tools("arm-none-eabi-gcc")
    _, report = _compile(tmp_path, "--optimize", "size")
    assert report["optimize"]["mode"] == "size" and _choice(report)["form"] == "int8"
    # the widened weights alone (48 KiB) exceed 40 KiB: the model compiles with int8 weights
    r, report = _compile(tmp_path, "--flash-budget", "40K")
    assert r.returncode == 0, r.stderr
    assert report["optimize"] == {"mode": "balanced", "flash_budget": 40 * 1024}
    assert _choice(report)["form"] == "int8"
    assert report["flash_bytes"] <= 40 * 1024  # measured from the compiled object


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
@pytest.mark.parametrize("choice", [("--optimize", "size"), ("--flash-budget", "50K")])
def test_smaller_kernels_equal_tflite_micro_on_cortex_m4(choice):
    """KWS with int8 weights everywhere (size), and mixed (a flash budget: the first and the 1x1
    convolutions and the fully connected layer switch to int8 weights, the depthwise ones keep
    widened weights), on the emulated M4: bit-exact against TFLite Micro."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    pytest.importorskip("tflite_micro")
    kws = "mlperf-tiny/kws_int8"
    r = run_cli("verify", str(shared_model(kws + ".onnx")), "-t", "cortex-m4", "--samples", "3", *choice,
                "--against", f"tflm={shared_model(kws + '.tflite')}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vs TFLite Micro (kws_int8.tflite, tflite-micro package): bit-exact" in r.stdout
