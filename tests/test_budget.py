"""RAM/flash budget: report.json's figures measured from the compiled object, the budgets
enforced by compile, and the cross-check against the linked firmware's ELF (binutils as oracle)."""
from __future__ import annotations

import json
import re
import subprocess

from .conftest import need_arm, need_tools, run_cli, shared_model


def _size_sections(path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(path)], capture_output=True, text=True, check=True).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)", out, re.M)}


def _nm_sizes(path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(path)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def test_report_sizes_equal_the_object_file(tmp_path):
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-size")
    r = run_cli("compile", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    m = rep["measured"]
    # the same object compiled here, measured by binutils
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
                    "-ffunction-sections", "-fdata-sections", "-std=c99", "-c", "kws_int8.c", "-o", "k.o"],
                   cwd=tmp_path / "out", check=True)
    sec = _size_sections(tmp_path / "out" / "k.o")
    assert m["code_bytes"] == sum(v for k, v in sec.items() if k.startswith(".text"))
    assert m["rodata_bytes"] == sum(v for k, v in sec.items() if k.startswith(".rodata"))
    assert m["bss_bytes"] == sec.get(".bss", 0) + sum(v for k, v in sec.items() if k.startswith(".bss."))
    assert m["bss_bytes"] == rep["arena_bytes"]  # the arena is the model's only RAM
    assert 0 < m["stack_bytes_estimate"] < 2048
    assert rep["flash_bytes"] == m["code_bytes"] + m["rodata_bytes"] + m["data_bytes"]
    assert rep["ram_bytes"] == rep["arena_bytes"] + rep["io_bytes"] + m["stack_bytes_estimate"]


def test_verify_cross_checks_the_linked_firmware(tmp_path):
    need_arm()
    r = run_cli("verify", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "--samples", "1",
                "--build-dir", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "firmware ELF vs report" in l)
    nm = _nm_sizes(tmp_path / "b" / "firmware.elf")  # binutils' view of the same ELF
    weights = sum(v for k, v in nm.items() if re.fullmatch(r"w\d+", k))
    assert f"arena {nm['arena']:,} B = ELF" in line and f"weights {weights:,} B = ELF" in line and "code" in line
    assert nm["arena"] <= 9_000  # KWS's arena bar (../shared/BENCHMARKS.md)


def test_budgets_make_compile_fail_with_one_line(tmp_path):
    need_tools("arm-none-eabi-gcc")
    kws = str(shared_model("mlperf-tiny/kws_int8.onnx"))
    r = run_cli("compile", kws, "-t", "cortex-m3", "-o", str(tmp_path / "a"), "--ram-budget", "8K")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "needs 9," in r.stderr and "RAM budget of 8,192 B" in r.stderr and not (tmp_path / "a").exists()
    r = run_cli("compile", kws, "-t", "cortex-m3", "-o", str(tmp_path / "b"), "--flash-budget", "16K")
    assert r.returncode == 2 and "flash budget of 16,384 B" in r.stderr and not (tmp_path / "b").exists()
    # the board's budget by default: the float AD model (1.06 MB of weights) does not fit 1 MiB of flash
    ad = str(shared_model("mlperf-tiny/ad_float.onnx"))
    r = run_cli("compile", ad, "-t", "cortex-m4", "-o", str(tmp_path / "c"))
    assert r.returncode == 2 and "flash budget of 1,048,576 B (STM32F407 Discovery)" in r.stderr
    r = run_cli("compile", ad, "-t", "cortex-m4", "-o", str(tmp_path / "d"), "--flash-budget", "0")
    assert r.returncode == 0, r.stderr
    r = run_cli("compile", kws, "-t", "cortex-m4", "-o", str(tmp_path / "e"), "--ram-budget", "lots")
    assert r.returncode == 2 and "--ram-budget 'lots'" in r.stderr


def test_verify_names_the_library_routines_a_soft_float_firmware_holds(tmp_path):
    """A float model on a core without FPU: the firmware's code beyond the model is the soft-float
    routines (and memcpy/memset/strlen) plus the test harness, each figure from binutils' nm."""
    need_arm()
    r = run_cli("verify", str(shared_model("hello-world/hello_world_float.onnx")), "-t", "cortex-m0plus",
                "--samples", "2", "--build-dir", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "the firmware's other code" in l)
    nm = _nm_sizes(tmp_path / "b" / "firmware.elf")
    for routine in ("__aeabi_fadd", "__aeabi_fmul", "memset"):  # what a float layer calls on Armv6-M
        assert f"{routine} {nm[routine]:,}" in line, line
    elf = re.search(r"code [\d,]+ B (?:= ELF|!= ELF ([\d,]+) B)", r.stdout)
    library, harness = (int(re.search(p, line).group(1).replace(",", "")) for p in (r"([\d,]+) B of C library",
                                                                                   r"([\d,]+) B of test harness"))
    text = subprocess.run(["arm-none-eabi-nm", "-S", str(tmp_path / "b" / "firmware.elf")], capture_output=True,
                          text=True, check=True).stdout
    functions = {}  # address -> size of every function (aliases once)
    for row in text.splitlines():
        parts = row.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            functions[parts[0]] = int(parts[1], 16)
    assert int(elf.group(1).replace(",", "")) + library + harness == sum(functions.values())
