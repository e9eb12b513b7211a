"""Renode: the test firmware with its inputs built in, a Renode script (.resc) describing the
target's board without any network fetch, and a robotframework test (.robot) that expects the
reference outputs on the semihosting console. ``tinyc verify --emulator renode`` runs the test with
``renode-test`` when Renode is installed. The same firmware also runs in QEMU on a machine with the
same memory map (the CI check, since no package registry here ships Renode)."""
from __future__ import annotations

import dataclasses
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
from .runner import _io_entries

ROBOT_TIMEOUT_S = 120


def expected_lines(model: GeneratedModel, outputs: Sequence[dict[str, np.ndarray]]) -> list[str]:
    """What the firmware prints for each sample: its outputs' bytes (little-endian) in hex."""
    lines = []
    for s, out in enumerate(outputs):
        raw = b"".join(np.asarray(out[e["name"]], DTYPES[e["dtype"]]).astype(DTYPES[e["dtype"]].newbyteorder("<")).tobytes()
                       for e in model.report["outputs"])
        lines.append(f"tinyc-output {s} {raw.hex()}")
    return lines


def build(model: GeneratedModel, target: Target, build_dir: Path, samples: Sequence[dict[str, np.ndarray]],
          expected: Sequence[dict[str, np.ndarray]]) -> Path:
    """Write and compile the firmware for the target's Renode board, the .resc and the .robot;
    returns the .robot file."""
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
               samples=embedded, line_bytes=len(f"tinyc-output {len(samples)} ") + 2 * out_bytes + 2)
    (build_dir / "main.c").write_text(env.get_template("firmware/main_embedded.c.j2").render(**ctx))
    fw = data_dir("templates") / "firmware"
    for f in ("tinyc_io.h", "io_semihost.c", "startup_cortexm.c"):
        shutil.copy(fw / f, build_dir / f)
    board = dataclasses.replace(target, emulator=dataclasses.replace(
        target.emulator, machine=r.board, flash_origin=r.flash_origin, flash_bytes=r.flash_bytes,
        ram_origin=r.ram_origin, ram_bytes=r.ram_bytes))
    (build_dir / "link.ld").write_text(env.get_template("firmware/cortexm.ld.j2").render(target=board))
    cc = need_tool(target.cc, target)
    cmd = [cc, *target.cflags, *STRICT_CFLAGS, "-I.", "-nostartfiles", "-T", "link.ld", "main.c", f"{model.name}.c",
           "io_semihost.c", "startup_cortexm.c", "-o", "firmware.elf", *target.ldflags]
    res = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    if res.returncode != 0:
        raise TinycError(f"building the Renode firmware failed: {(res.stderr.strip().splitlines() or ['?'])[0]}")
    rctx = dict(name=model.name, target=target, renode=r, expected=expected_lines(model, expected), timeout=ROBOT_TIMEOUT_S)
    (build_dir / f"{model.name}.resc").write_text(env.get_template("renode/model.resc.j2").render(**rctx))
    robot = build_dir / f"{model.name}.robot"
    robot.write_text(env.get_template("renode/model.robot.j2").render(**rctx))
    return robot


def run_robot(robot: Path, timeout: float) -> tuple[bool, str]:
    """Run the .robot file with renode-test; (passed, last lines of its output)."""
    tool = shutil.which("renode-test")
    if tool is None:
        raise TinycError("renode-test not found: Renode is not installed (no Debian, PyPI or npm package ships it; "
                         f"install Renode's own release). The Renode files are in {robot.parent}")
    try:
        r = subprocess.run([tool, robot.name], cwd=robot.parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinycError(f"renode-test did not finish within {timeout:g} s") from None
    return r.returncode == 0, "\n".join((r.stdout + r.stderr).strip().splitlines()[-5:])


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
    if r.returncode != 0:
        raise TinycError(f"the Renode firmware failed in QEMU -M {machine}: exit code {r.returncode}")
    return r.stdout.splitlines()
