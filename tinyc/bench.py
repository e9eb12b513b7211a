"""`tinyc bench`: exact instruction counts of one inference in QEMU, per layer and in total.

QEMU runs the test firmware with tinyc's TCG plugin (templates/bench/insn_count.c, built with the
host gcc into the build folder), which counts every executed translated block. The blocks are
attributed to functions with the firmware ELF's symbols: each layer is its own (never inlined)
function; C library routines the layers call (memcpy, soft-float helpers, expf, ...) are counted
in the total as "library". The test harness (startup, main's file I/O) is left out. The firmware is
built with gcc's -fno-ipa-icf so that layers with identical code stay separate functions; its code
bytes are therefore an upper bound of a production build's, which may fold them."""
from __future__ import annotations

import bisect
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .codegen import GeneratedModel
from .codegen.cnames import c_identifier
from . import latency
from .budget import HARNESS, model_code_bytes, weight_bytes
from .elf import Elf
from .emulator.runner import build_firmware, build_plugin, run_firmware
from .errors import TinycError
from .resources import data_dir
from .targets import Target
from .traffic import Traffic, estimate_note, plugin_args, read_blocks

# The test firmware's own functions (not part of an inference).


def _functions(elf: Elf, thumb: bool) -> tuple[list[int], list[tuple[int, int, str]]]:
    funcs = sorted({(s.value & ~1 if thumb else s.value, s.size, s.name) for s in elf.symbols
                    if s.section.startswith(".text") and s.size > 0})
    return [f[0] for f in funcs], funcs


def count(model: GeneratedModel, target: Target, build_dir: Path, sample: dict[str, np.ndarray],
          timeout: float = 600.0) -> dict[str, Any]:
    if target.emulator.kind != "qemu":
        raise TinycError(f"tinyc bench needs a QEMU target; {target.name} is {'run natively' if target.emulator.kind == 'native' else 'compiled only'}")
    # gcc folds layers whose code is identical (same kernel and constants, different weights) into
    # one function; the benchmark keeps them apart so that each layer's instructions are its own
    # (the executed instructions are the same; the folded production build has less code)
    icf = ("-fno-ipa-icf",) if "gcc" in Path(target.cc).name else ()
    program = build_firmware(model, target, build_dir, extra_cflags=icf)
    plugin = build_plugin(build_dir, "insn_count")
    counts_file = build_dir / "insn_counts.txt"
    if counts_file.exists():
        counts_file.unlink()
    result = run_firmware(model, target, program, [sample], timeout,
                          emulator_args=["-plugin", f"{plugin.resolve()},{plugin_args(target, counts_file)}"])
    if not counts_file.exists():
        raise TinycError("the QEMU plugin wrote no counts (does this QEMU accept -plugin?)")
    elf = Elf(program)
    starts, funcs = _functions(elf, thumb=target.arch == "arm")
    cores = latency.model_for(target.emulator.cpu)
    per_fn: dict[str, int] = {}
    traffic: dict[str, Traffic] = {}  # memory traffic and estimated cycles per function
    for block in read_blocks(counts_file):
        addr = block.vaddr
        i = bisect.bisect_right(starts, addr) - 1
        name = funcs[i][2] if i >= 0 and addr < funcs[i][0] + funcs[i][1] else "?"
        name = name.split(".")[0]  # gcc's clones: layer3_conv.constprop.0 is layer3_conv
        per_fn[name] = per_fn.get(name, 0) + block.insns * block.executions
        traffic.setdefault(name, Traffic()).add_block(block, cores)
    counted = Traffic()  # the inference: layers, the run function, the library
    layers = []
    for i, entry in enumerate(model.report["layers"]):
        fn = f"layer{i}_{c_identifier(entry['op'])}"
        t = traffic.pop(fn, Traffic())
        counted += t
        layers.append(dict(name=entry["name"], op=entry["op"], macs=entry["macs"], instructions=per_fn.pop(fn, 0),
                           view=bool(entry.get("view")), **t.keys(target, cores)))
    run_fn = f"{model.name}_run"
    run_insns = per_fn.pop(run_fn, 0)
    harness = sum(v for k, v in per_fn.items() if HARNESS.fullmatch(k))
    library = {k: v for k, v in per_fn.items() if not HARNESS.fullmatch(k)}
    outside = Traffic()  # the run function and the library
    for k, t in traffic.items():
        if k == run_fn or not HARNESS.fullmatch(k):
            outside += t
    counted += outside
    total = sum(l["instructions"] for l in layers) + run_insns + sum(library.values())
    code = model_code_bytes(elf, model.name)
    weights = weight_bytes(elf)
    macs = model.report["macs_total"]
    return dict(
        model=model.name, target=target.name, machine=target.emulator.machine,
        instructions_total=total, macs_total=macs,
        instructions_per_mac=round(total / macs, 3) if macs else None,
        run_function_instructions=run_insns, library_instructions=dict(sorted(library.items(), key=lambda kv: -kv[1])),
        harness_instructions=harness,
        arena_bytes=model.report["arena_bytes"], code_bytes=code, weights_bytes=weights,
        layers=[dict(l, instructions_per_mac=round(l["instructions"] / l["macs"], 3) if l["macs"] else None) for l in layers],
        **counted.keys(target, cores), outside_layers=dict(instructions=outside.instructions, **outside.keys(target, cores)),
        estimate=estimate_note(target, cores),
        outputs=result.outputs[0],
    )
