"""Renode: the test firmware with its inputs built in, a Renode script (.resc) describing the
target's board without any network fetch, and a robotframework test (.robot, with its keyword
library tinyc_check.py) that checks the outputs the firmware prints on the semihosting console.
The .resc also writes that console to a file in the build folder, which tinyc reads and compares
itself (renode_test.py runs the test). The same firmware also runs in QEMU on a machine with the
same memory map (the CI check, since no package registry here ships Renode)."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from ..codegen import GeneratedModel
from ..codegen.cnames import c_array_body
from ..codegen.emit import template_env
from ..errors import TinycError
from ..ir import DTYPES
from ..resources import data_dir
from ..targets import Target
from ..toolchain import STRICT_CFLAGS, need_tool
from .runner import EXIT_CODES, FAULTS, _io_entries

CONSOLE = "console.txt"  # the semihosting console, written by Renode beside the .resc
SOURCES = ("main.c", "io_semihost.c", "startup_cortexm.c")


def output_hex(model: GeneratedModel, out: dict[str, np.ndarray]) -> list[str]:
    """One sample's outputs as the firmware prints them: each output's bytes (little-endian) in hex."""
    return [np.asarray(out[e["name"]], DTYPES[e["dtype"]]).astype(DTYPES[e["dtype"]].newbyteorder("<")).tobytes().hex()
            for e in model.report["outputs"]]


def expected_lines(model: GeneratedModel, outputs: Sequence[dict[str, np.ndarray]]) -> list[str]:
    """What the firmware prints for each sample when its outputs equal ``outputs``."""
    return [f"tinyc-output {s} {''.join(output_hex(model, out))}" for s, out in enumerate(outputs)]


def _struct_format(dtype: np.dtype) -> str:
    """The Python struct format of one value (what tinyc_check.py unpacks)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "?"
    return {"i": "bhiq", "u": "BHIQ", "f": "?efd"}[dtype.kind][dtype.itemsize.bit_length() - 1]


def _robot_specs(model: GeneratedModel, out: dict[str, np.ndarray]) -> str:
    """The .robot's arguments for one sample: name:format:hex per output (a name robotframework
    would read differently is replaced by its position)."""
    specs = []
    for i, (e, text) in enumerate(zip(model.report["outputs"], output_hex(model, out))):
        name = e["name"] if re.fullmatch(r"[\w.:/-]+", e["name"]) else f"output{i}"
        specs.append(f"{name}:{_struct_format(DTYPES[e['dtype']])}:{text}")
    return "    ".join(specs)


def exit_kinds() -> list[tuple[int, str]]:
    """What the firmware prints after "tinyc-exit <code>" for the codes an Arm firmware can end with."""
    codes = [13, *sorted(c for c in FAULTS if c < 90)]
    return [(c, EXIT_CODES[c].replace("\\", "/").replace('"', "'")) for c in codes]


def build(model: GeneratedModel, target: Target, build_dir: Path, samples: Sequence[dict[str, np.ndarray]],
          expected: Sequence[dict[str, np.ndarray]], rtol: float = 1e-4, timeout: float = 300.0) -> Path:
    """Write and compile the firmware for the target's Renode board, the .resc and the .robot (its
    wall-clock limit ``timeout`` seconds, floats within ``rtol``); returns the .robot file."""
    r = target.renode
    if r is None:
        raise TinycError(f"target {target.name} has no Renode board description (see `tinyc targets`; "
                         "cortex-m4 and cortex-m7 have one)")
    build_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in model.files.items():
        (build_dir / fname).write_text(text)
    env = template_env(target.template_variants)
    inputs, outputs = _io_entries(model, "inputs"), _io_entries(model, "outputs")
    embedded = [[c_array_body(np.asarray(s[e["name"]], DTYPES[e["dtype"]]).reshape(-1)) for e in inputs] for s in samples]
    out_bytes = sum(e["size"] * DTYPES[e["dtype"]].itemsize for e in outputs)
    ctx = dict(name=model.name, macro=model.name.upper(), target=target, inputs=inputs, outputs=outputs,
               samples=embedded, line_bytes=len(f"tinyc-output {len(samples)} ") + 2 * out_bytes + 2,
               exit_kinds=exit_kinds())
    (build_dir / "main.c").write_text(env.get_template("firmware/main_embedded.c.j2").render(**ctx))
    fw = data_dir("templates") / "firmware"
    for f in ("tinyc_io.h", "io_semihost.c", "startup_cortexm.c"):
        shutil.copy(fw / f, build_dir / f)
    shutil.copy(data_dir("templates") / "renode" / "tinyc_check.py", build_dir / "tinyc_check.py")
    board = dataclasses.replace(target, emulator=dataclasses.replace(
        target.emulator, machine=r.board, flash_origin=r.flash_origin, flash_bytes=r.flash_bytes,
        ram_origin=r.ram_origin, ram_bytes=r.ram_bytes))
    (build_dir / "link.ld").write_text(env.get_template("firmware/cortexm.ld.j2").render(target=board))
    compile_firmware(model.name, target, build_dir)
    rctx = dict(name=model.name, target=target, renode=r, console=CONSOLE, rtol=f"{rtol:g}",
                timeout=f"{timeout:g}", samples=[_robot_specs(model, out) for out in expected])
    (build_dir / f"{model.name}.resc").write_text(env.get_template("renode/model.resc.j2").render(**rctx))
    robot = build_dir / f"{model.name}.robot"
    robot.write_text(env.get_template("renode/model.robot.j2").render(**rctx))
    return robot


def compile_firmware(name: str, target: Target, build_dir: Path) -> Path:
    """Compile firmware.elf from the sources in ``build_dir`` (again, after a change to main.c)."""
    cc = need_tool(target.cc, target)
    cmd = [cc, *target.cflags, *STRICT_CFLAGS, "-DTINYC_EXIT_LINE", "-I.", "-nostartfiles", "-T", "link.ld",
           f"{name}.c", *SOURCES, "-o", "firmware.elf", *target.ldflags]
    res = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    if res.returncode != 0:
        raise TinycError(f"building the Renode firmware failed: {(res.stderr.strip().splitlines() or ['?'])[0]}")
    return build_dir / "firmware.elf"


def run_in_qemu(target: Target, elf: Path, timeout: float = 60.0) -> list[str]:
    """The Renode firmware on the QEMU machine with the same memory map: its console lines."""
    machine = target.renode.qemu_machine if target.renode else ""
    if not machine:
        raise TinycError(f"target {target.name}: no QEMU machine shares its Renode board's memory map")
    qemu = need_tool(target.emulator.system, target)
    cmd = [qemu, "-M", machine, "-display", "none", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native,chardev=console", "-chardev", "stdio,id=console",
           "-kernel", elf.name]
    try:
        r = subprocess.run(cmd, cwd=elf.parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinycError(f"the Renode firmware did not finish in QEMU -M {machine} within {timeout:g} s") from None
    return r.stdout.splitlines()
