"""Every target: the table, the int8 KWS model run on every QEMU-runnable core with the same output
bytes as the reference, and the Xtensa (ESP32 / ESP32-S3) compile check."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.elf import Elf
from tinyc.emulator import run_on_target
from tinyc.targets import all_targets, get_target
from tinyc.toolchain import compile_object

from .conftest import need_tools, run_cli, shared_model

QEMU_TARGETS = [n for n, t in all_targets().items() if t.emulator.kind == "qemu"]
XTENSA_TARGETS = [n for n, t in all_targets().items() if t.arch == "xtensa"]
ALL = ["host", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "esp32", "esp32s3", "esp32c3"]


def test_every_target_is_described_and_listed():
    targets = all_targets()
    assert sorted(targets) == sorted(ALL)
    for t in targets.values():
        assert t.cc and t.cflags and t.alignment in (4, 8, 16)
        if t.name != "host":
            assert t.board and t.ram_bytes > 0 and t.flash_bytes > 0 and t.apt, t.name
    r = run_cli("targets")
    assert r.returncode == 0
    for name in ALL:
        assert f"\n{name} " in "\n" + r.stdout
    assert "compiling only (no emulator)" in r.stdout and "qemu-system-riscv32 -M virt" in r.stdout
    assert set(QEMU_TARGETS) == {"cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "esp32c3"}


def test_features_choose_the_kernel_templates_and_must_agree_with_the_float_abi():
    want = {"cortex-m4": ("dsp",), "cortex-m7": ("dsp",), "cortex-m33": ("dsp",), "cortex-m55": ("mve", "dsp")}
    for name, t in all_targets().items():
        assert t.template_variants == want.get(name, ()), name
    from tinyc.errors import TinycError
    from tinyc.targets import _target

    base = dict(name="x", arch="arm", cc="arm-none-eabi-gcc")
    with pytest.raises(TinycError, match="declares the feature fpu-sp but its cflags lack -mfloat-abi=hard"):
        _target(dict(base, features=["fpu-sp"], cflags=["-mfloat-abi=soft"]))
    with pytest.raises(TinycError, match="does not declare the feature fpu-sp but its cflags have"):
        _target(dict(base, features=["dsp"], cflags=["-mfloat-abi=hard"]))
    with pytest.raises(TinycError, match="unknown feature neon"):
        _target(dict(base, features=["neon"], cflags=[]))
    assert _target(dict(base, features=["dsp", "fpu-sp"], cflags=["-mfloat-abi=hard"])).template_variants == ("dsp",)


@pytest.fixture(scope="module")
def kws():
    g = load_graph(shared_model("mlperf-tiny/kws_int8.onnx"))
    rng = np.random.default_rng(2)
    x = g.tensors[g.inputs[0]]
    samples = [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]
    ref = [interpreter.run(g, s)[g.outputs[0]] for s in samples]
    return g, samples, ref


@pytest.mark.emulator
@pytest.mark.parametrize("name", QEMU_TARGETS)
def test_int8_kws_gives_the_reference_bytes_on_every_qemu_target(name, kws, tmp_path):
    t = get_target(name)
    need_tools(t.cc, t.emulator.system)
    g, samples, ref = kws
    res = run_on_target(generate(g, t), t, tmp_path, samples)
    for got, want in zip(res.outputs, ref):
        assert got[g.outputs[0]].tobytes() == want.tobytes()


@pytest.mark.parametrize("name", XTENSA_TARGETS)
@pytest.mark.parametrize("model", ["kws_int8", "kws_float"])
def test_xtensa_compiles_the_generated_code_without_warnings(name, model, tmp_path):
    """clang-22 (warnings as errors) + llc-22: an Xtensa object whose static arena and weights are
    the sizes report.json gives."""
    t = get_target(name)
    need_tools(t.cc, t.llc[0])
    g = load_graph(shared_model(f"mlperf-tiny/{model}.onnx"))
    m = generate(g, t)
    for fname, text in m.files.items():
        (tmp_path / fname).write_text(text)
    elf = Elf(compile_object(tmp_path, f"{m.name}.c", t))
    assert elf.symbol("arena").size == m.report["arena_bytes"]
    sizes = elf.bytes_by_kind()
    assert sizes["code"] > 1000
    import re

    assert sum(s.size for s in elf.symbols if re.fullmatch(r"w\d+", s.name)) == m.report["weights_bytes"]
    assert sizes["rodata"] >= m.report["weights_bytes"]  # plus the kernels' requantization tables


def test_a_target_without_emulator_says_so(tmp_path):
    r = run_cli("verify", str(shared_model("mlperf-tiny/ad_int8.onnx")), "--target", "esp32", "--build-dir", str(tmp_path))
    assert r.returncode == 2 and "no emulator" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("name", [n for n in ALL if n != "host"])
def test_generated_code_compiles_pedantically_clean_for_every_cross_target(name, tmp_path):
    """float and int8 KWS with -std=c99 -Wall -Wextra -Werror -Wpedantic -Wvla -Wshadow and the
    target's own compiler and flags (gcc for Arm and RISC-V, clang-22 + llc-22 for Xtensa)."""
    t = get_target(name)
    need_tools(t.cc, *t.llc[:1])
    for model in ("kws_float", "kws_int8"):
        out = tmp_path / model
        out.mkdir()
        m = generate(load_graph(shared_model(f"mlperf-tiny/{model}.onnx")), t)
        for fname, text in m.files.items():
            (out / fname).write_text(text)
        obj = compile_object(out, f"{m.name}.c", t, extra=("-Wpedantic", "-Wvla", "-Wshadow"))
        assert Elf(obj).symbol(f"{m.name}_run") is not None
