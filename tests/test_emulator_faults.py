"""Emulated runs that go wrong are named for what happened: a fault with its kind (not a
mismatch), an endless loop stopped by the instruction budget or the timeout."""
from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, need_arm, need_tools, run_cli
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.data import random_samples
from tinyc.emulator import build_firmware, run_firmware
from tinyc.emulator.runner import instruction_budget
from tinyc.errors import TinycError
from tinyc.targets import get_target

MODEL = ROOT / "examples" / "digits" / "digits_mlp.onnx"


def _with_statement(code: str, layer: int, statement: str) -> str:
    """``statement`` at the start of layer ``layer``'s function in the generated C."""
    m = re.search(r"static TINYC_LAYER void layer%d_\w+\([^)]*\)\n\{\n" % layer, code)
    assert m
    return code[:m.end()] + f"    {statement}\n" + code[m.end():]


def _run_broken(target_name, statement, tmp_path, **kw):
    target = get_target(target_name)
    g = prepare(MODEL, progress=False).graph
    m = generate(g, target, name="digits")
    m.files["digits.c"] = _with_statement(m.files["digits.c"], 0, statement)
    program = build_firmware(m, target, tmp_path)
    with pytest.raises(TinycError) as e:
        run_firmware(m, target, program, random_samples(g, 1, 0), **kw)
    return str(e.value)


@pytest.mark.parametrize("target_name,statement,kind", [
    ("cortex-m4", '__asm__ volatile("udf #0");', "faulted on cortex-m4: UsageFault: undefined instruction"),
    ("cortex-m55", '__asm__ volatile("udf #0");', "faulted on cortex-m55: UsageFault: undefined instruction"),
    ("cortex-m0plus", '__asm__ volatile("udf #0");', "faulted on cortex-m0plus: HardFault"),
    ("cortex-m4", 'volatile uintptr_t a = 0x20000001u; __asm__ volatile("ldrd r2, r3, [%0]" :: "r"(a) : "r2", "r3");', "faulted on cortex-m4: UsageFault: unaligned access"),
    ("esp32c3", '__asm__ volatile(".word 0");', "faulted on esp32c3: RISC-V trap: illegal instruction"),
])
def test_a_fault_is_named_with_its_kind(target_name, statement, kind, tmp_path):
    if target_name == "esp32c3":
        need_tools("riscv64-unknown-elf-gcc", "qemu-system-riscv32")
    else:
        need_arm()
    assert kind in _run_broken(target_name, statement, tmp_path, timeout=60)


def test_an_endless_loop_is_stopped_by_the_instruction_budget(tmp_path):
    need_arm()
    msg = _run_broken("cortex-m4", "for (;;) { __asm__ volatile(\"nop\"); }", tmp_path, timeout=120,
                      max_instructions=5_000_000)
    assert "did not finish within its budget of 5,000,000 instructions on cortex-m4" in msg


def test_default_budget_bounds_an_endless_loop_and_fits_real_runs(tmp_path):
    """The default budget (from the model's MACs and tensor sizes) stops an endless loop, while
    the same model's real run, with its budget, passes."""
    need_arm()
    g = prepare(MODEL, progress=False).graph
    target = get_target("cortex-m0plus")
    m = generate(g, target, name="digits")
    assert instruction_budget(m, 1) < 200_000_000
    assert run_firmware(m, target, build_firmware(m, target, tmp_path / "ok"), random_samples(g, 2, 0), timeout=60).outputs
    msg = _run_broken("cortex-m0plus", "for (;;) { __asm__ volatile(\"nop\"); }", tmp_path / "loop", timeout=120)
    assert "did not finish within its budget of" in msg


def test_timeout_is_a_one_line_error(tmp_path):
    need_arm()
    msg = _run_broken("cortex-m4", "for (;;) { __asm__ volatile(\"nop\"); }", tmp_path, timeout=1.5,
                      max_instructions=10 ** 15)
    assert "did not finish within 1.5 s on cortex-m4" in msg


def test_verify_reports_a_fault_with_exit_code_2(tmp_path):
    """Through the CLI: a firmware fault is a clear error (exit 2), not a mismatch (exit 1)."""
    need_arm()
    r = run_cli("verify", str(MODEL), "-t", "cortex-m4", "--max-instructions", "1000")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "did not finish within its budget of 1,000 instructions" in r.stderr
