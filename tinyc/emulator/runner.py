"""Firmware build and execution.

The firmware (templates/firmware/) reads ``input.bin`` and writes ``output.bin`` in its working
directory: on the host through stdio, on Arm through semihosting, which QEMU maps to the files of
its own working directory. Every run has a timeout.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..codegen import GeneratedModel
from ..codegen.blob import ERRORS as BLOB_ERRORS
from ..codegen.cnames import CTYPES
from ..codegen.emit import template_env
from ..errors import TinycError
from ..ir import DTYPES
from ..resources import data_dir
from ..targets import Target
from ..toolchain import STRICT_CFLAGS, need_tool


EXIT_CODES = {
    10: "could not open input.bin/output.bin",
    11: "could not read the sample count",
    12: "input.bin is shorter than expected",
    13: "the model's run function failed",
    14: "could not write output.bin",
    15: "could not write dump.bin (the debug build's layer outputs)",
    71: "NMI", 72: "HardFault", 73: "MemManage fault", 74: "BusFault", 75: "UsageFault",
    76: "unexpected exception", 77: "RISC-V trap (an interrupt or unknown cause)",
    78: "UsageFault: undefined instruction", 79: "UsageFault: invalid state (e.g. a branch to Arm code)",
    80: "UsageFault: division by zero", 81: "UsageFault: unaligned access", 82: "BusFault: bad data address",
    **{90 + cause: f"RISC-V trap: {what}" for cause, what in enumerate((
        "misaligned instruction address", "instruction access fault", "illegal instruction", "breakpoint",
        "misaligned load", "load access fault", "misaligned store", "store access fault", "ecall from U-mode",
        "ecall from S-mode", "reserved cause 10", "ecall from M-mode", "instruction page fault",
        "load page fault", "reserved cause 14", "store page fault"))},
    **{20 - code: f"the weights blob was refused: {text}" for code, (_, text) in BLOB_ERRORS.items()},
}


FAULTS = set(range(71, 83)) | set(range(90, 106))  # exit codes of the fault and trap handlers

# Every emulated run is bounded twice: by a timeout and by an instruction budget (a QEMU plugin
# stops the guest past it). The budget is generous -- soft-float MACs on a Cortex-M0+ take ~150
# instructions -- and only there to turn an endless loop into a clear error quickly.
BUDGET_PER_MAC = 1000
BUDGET_PER_ELEMENT = 500  # per element a layer writes (tables, exp, copies)
BUDGET_PER_SAMPLE = 20_000_000  # I/O of a sample over semihosting, layer call overhead
BUDGET_FIXED = 50_000_000  # start-up, C library
OVER_BUDGET_STATUS = 125  # the budget plugin's exit status


def instruction_budget(model: GeneratedModel, samples: int, blob_bytes: int = 0) -> int:
    r = model.report
    elements = sum(int(np.prod(l["output_shape"], dtype=np.int64)) for l in r["layers"])
    per_sample = BUDGET_PER_MAC * r["macs_total"] + BUDGET_PER_ELEMENT * elements + BUDGET_PER_SAMPLE
    return BUDGET_FIXED + samples * per_sample + 40 * blob_bytes


def build_plugin(build_dir: Path, name: str) -> Path:
    """Build one of tinyc's QEMU plugins (templates/bench/<name>.c) with the host gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise TinycError(f"gcc not found: tinyc's QEMU plugin {name} is built with the host gcc "
                         "(apt-get install -y --no-install-recommends gcc libc6-dev)")
    src = data_dir("templates") / "bench" / f"{name}.c"
    out = build_dir / f"libtinyc_{name}.so"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out  # built for an earlier run in this folder
    r = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", str(src), "-o", str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise TinycError(f"building the QEMU plugin {name} failed: {(r.stderr.strip().splitlines() or ['?'])[0]}")
    return out


@dataclass
class FirmwareResult:
    outputs: list[dict[str, np.ndarray]]  # one dict per sample
    command: list[str]





def _io_entries(model: GeneratedModel, key: str) -> list[dict]:
    return [dict(e, ctype=CTYPES[e["dtype"]], size=int(np.prod(e["shape"], dtype=np.int64))) for e in model.report[key]]


# arch -> (startup file, linker script template) of the bare-metal test firmware
BARE_METAL = {"arm": ("startup_cortexm.c", "cortexm.ld.j2"), "riscv": ("startup_riscv.c", "riscv.ld.j2")}


def build_firmware(model: GeneratedModel, target: Target, build_dir: Path, extra_cflags: tuple[str, ...] = (),
                   dump: bool = False) -> Path:
    """Write the model and a test firmware into ``build_dir`` and compile it; return the program.
    ``dump``: the firmware of a debug build (``generate(..., dump=True)``), which writes dump.bin.
    A model compiled with a weights blob gets a firmware that loads one from input.bin."""
    env = template_env(target.template_variants)
    ctx = dict(name=model.name, macro=model.name.upper(), target=target,
               inputs=_io_entries(model, "inputs"), outputs=_io_entries(model, "outputs"), dump=dump,
               blob="weights_blob" in model.report)
    sources = {"main.c": env.get_template("firmware/main.c.j2").render(**ctx), **model.files}
    return build_program(sources, target, build_dir, extra_cflags)


def build_program(files: dict[str, str], target: Target, build_dir: Path,
                  extra_cflags: tuple[str, ...] = ()) -> Path:
    """Compile a test program from ``files`` (name -> text; a main.c and the generated models'
    files) with the firmware's I/O layer (input.bin in, output.bin out) and, on bare-metal targets,
    its start-up code and linker script; return the program."""
    build_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (build_dir / fname).write_text(text)
    fw = data_dir("templates") / "firmware"
    shutil.copy(fw / "tinyc_io.h", build_dir / "tinyc_io.h")
    cc = need_tool(target.cc, target)
    sources = [f for f in files if f.endswith(".c")]
    if target.emulator.kind == "native":
        shutil.copy(fw / "io_host.c", build_dir / "io_host.c")
        sources.append("io_host.c")
        out = build_dir / "firmware"
        cmd = [cc, *target.cflags, *extra_cflags, *STRICT_CFLAGS, "-I.", *sources, "-o", out.name, *target.ldflags]
    elif target.arch in BARE_METAL:
        startup, script = BARE_METAL[target.arch]
        for f in ("io_semihost.c", startup):
            shutil.copy(fw / f, build_dir / f)
        env = template_env(target.template_variants)
        (build_dir / "link.ld").write_text(env.get_template(f"firmware/{script}").render(target=target))
        sources += ["io_semihost.c", startup]
        out = build_dir / "firmware.elf"
        cmd = [cc, *target.cflags, *extra_cflags, *STRICT_CFLAGS, "-I.", "-nostartfiles", "-T", "link.ld",
               *sources, "-o", out.name, *target.ldflags]
    else:
        raise TinycError(f"target {target.name} has no emulator to run firmware on ({target.description}); "
                         "its generated code is compiled and measured by `tinyc check`, not run")
    r = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    overflow = re.search(r"will not fit in region `(\w+)'", r.stderr)
    if r.returncode != 0 and overflow:
        region = overflow.group(1)
        size = target.emulator.flash_bytes if region == "FLASH" else target.emulator.ram_bytes
        raise TinycError(f"the model does not fit the emulated {target.emulator.machine}'s {region} ({size:,} B) for {target.name}")
    if r.returncode != 0:
        first = (r.stderr.strip().splitlines() or ["(no output)"])
        raise TinycError(f"building the firmware failed: {first[0]}" + (f" (+{len(first) - 1} more lines, see {build_dir})" if len(first) > 1 else ""))
    return out


def _pack_inputs(model: GeneratedModel, samples: Sequence[dict[str, np.ndarray]], blob: bytes | None = None) -> bytes:
    parts = []
    if "weights_blob" in model.report:  # the blob first (its length, its bytes)
        if blob is None:
            blob = model.binaries[model.report["weights_blob"]["file"]]
        parts += [struct.pack("<I", len(blob)), blob]
    parts.append(struct.pack("<I", len(samples)))
    for feeds in samples:
        for e in model.report["inputs"]:
            a = np.asarray(feeds[e["name"]], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
            parts.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def _unpack_outputs(model: GeneratedModel, raw: bytes, count: int) -> list[dict[str, np.ndarray]]:
    outs, pos = [], 0
    for _ in range(count):
        sample = {}
        for e in model.report["outputs"]:
            dt = DTYPES[e["dtype"]].newbyteorder("<")
            n = int(np.prod(e["shape"], dtype=np.int64)) * dt.itemsize
            if pos + n > len(raw):
                raise TinycError(f"the firmware wrote {len(raw)} bytes, fewer than expected")
            sample[e["name"]] = np.frombuffer(raw[pos:pos + n], dt).astype(dt.newbyteorder("=")).reshape(e["shape"])
            pos += n
        outs.append(sample)
    return outs


def run_firmware(model: GeneratedModel, target: Target, program: Path,
                 samples: Sequence[dict[str, np.ndarray]], timeout: float = 300.0,
                 emulator_args: Sequence[str] = (), blob: bytes | None = None,
                 max_instructions: int | None = None) -> FirmwareResult:
    """``blob``: for a model with a weights blob, the blob to load (default: its own).
    ``max_instructions``: the emulated run's instruction budget (default: ``instruction_budget``)."""
    packed = _pack_inputs(model, samples, blob)
    if max_instructions is None and target.emulator.kind == "qemu":
        max_instructions = instruction_budget(model, len(samples), len(packed))
    raw, cmd = run_program(target, program, packed, timeout, emulator_args, max_instructions)
    return FirmwareResult(_unpack_outputs(model, raw, len(samples)), cmd)


def run_program(target: Target, program: Path, packed: bytes, timeout: float = 300.0,
                emulator_args: Sequence[str] = (), max_instructions: int = BUDGET_FIXED) -> tuple[bytes, list[str]]:
    """Run a test program (natively or in QEMU, bounded by ``timeout`` and ``max_instructions``)
    on ``packed`` as input.bin; return output.bin's bytes and the command. A fault, a hang or a
    failure is a TinycError naming it."""
    workdir = program.parent
    (workdir / "input.bin").write_bytes(packed)
    out_file = workdir / "output.bin"
    for stale in (out_file, workdir / "dump.bin"):
        if stale.exists():
            stale.unlink()
    emu = target.emulator
    if emu.kind == "native":
        cmd = [str(program.resolve())]
    elif emu.kind == "qemu":
        qemu = need_tool(emu.system, target)
        budget = build_plugin(workdir, "insn_budget")
        emulator_args = [*emulator_args, "-plugin", f"{budget.resolve()},limit={max_instructions}"]
        cmd = [qemu, "-M", emu.machine, *(["-cpu", emu.cpu] if emu.cpu else []), *emu.args, "-display", "none",
               "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native",
               *emulator_args, "-kernel", program.name]
    else:
        raise TinycError(f"target {target.name}: unknown emulator kind '{emu.kind}'")
    try:
        r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinycError(f"the firmware did not finish within {timeout:g} s on {target.name} (hang?)") from None
    if emu.kind == "qemu" and r.returncode == OVER_BUDGET_STATUS:
        raise TinycError(f"the firmware did not finish within its budget of {max_instructions:,} instructions on "
                         f"{target.name} (an endless loop?)")
    if r.returncode != 0:
        what = EXIT_CODES.get(r.returncode, f"exit code {r.returncode}")
        detail = r.stderr.strip().splitlines()[:1]
        kind = "faulted" if r.returncode in FAULTS else "failed"
        raise TinycError(f"the firmware {kind} on {target.name}: {what}" + (f" ({detail[0]})" if detail else ""))
    if not out_file.exists():
        raise TinycError("the firmware wrote no output.bin")
    return out_file.read_bytes(), cmd


def run_on_target(model: GeneratedModel, target: Target, build_dir: Path,
                  samples: Sequence[dict[str, np.ndarray]], timeout: float = 300.0,
                  max_instructions: int | None = None) -> FirmwareResult:
    program = build_firmware(model, target, build_dir)
    return run_firmware(model, target, program, samples, timeout, max_instructions=max_instructions)
