"""RAM and flash of a generated model, measured from its object file (ELF sections, symbols and
the compiler's stack usage), checked against a budget, and cross-checked against a linked firmware."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from .codegen import GeneratedModel
from .elf import Elf, Symbol
from .errors import TinycError
from .targets import Target
from .toolchain import compile_object, have_tools, stack_usage


def measure(model: GeneratedModel, target: Target) -> dict[str, Any] | None:
    """Sizes of the compiled model (None when the target's compiler is not installed):
    code, read-only data (weights and tables), data, bss (the arena) and a stack estimate."""
    if not have_tools(target):
        return None
    with tempfile.TemporaryDirectory(prefix="tinyc-measure-") as tmp:
        d = Path(tmp)
        for name, text in model.files.items():
            (d / name).write_text(text)
        obj = compile_object(d, f"{model.name}.c", target, extra=("-fstack-usage",))
        sizes = Elf(obj).bytes_by_kind()
        su = stack_usage(d, model.name)
    run = su.get(f"{model.name}_run", 0)
    layers = [v for k, v in su.items() if re.fullmatch(r"layer\d+_\w+", k)]
    helpers = [v for k, v in su.items() if k != f"{model.name}_run" and not re.fullmatch(r"layer\d+_\w+", k)]
    out = dict(code_bytes=sizes["code"], rodata_bytes=sizes["rodata"], data_bytes=sizes["data"], bss_bytes=sizes["bss"],
               measured_with=target.cc)
    if su:
        # the run function, the deepest layer and the deepest helper a layer may call
        out["stack_bytes_estimate"] = run + max(layers, default=0) + max(helpers, default=0)
    return out


def totals(report: dict[str, Any]) -> tuple[int, int]:
    """(RAM, flash) in bytes from a report: measured when report['measured'] is there."""
    m = report.get("measured")
    blob = report.get("weights_blob", {}).get("bytes", 0)  # its flash partition
    if m is None:
        ram = report["arena_bytes"] + report.get("state_bytes", 0) + report["io_bytes"]  # (state: stateful models)
        return ram, report["weights_bytes"] + (blob and blob - report["weights_bytes"])
    ram = m["bss_bytes"] + m["data_bytes"] + report["io_bytes"] + m.get("stack_bytes_estimate", 0)
    return ram, m["code_bytes"] + m["rodata_bytes"] + m["data_bytes"] + blob


def enforce(report: dict[str, Any], target: Target, ram_budget: int | None, flash_budget: int | None,
            advice: Callable[[int, int], list[str]] | None = None) -> None:
    """A model that does not fit is an error naming what it needs and the budget, and with
    ``advice(ram_budget, flash_budget)`` the options that would make it fit (tinyc/fit.py)."""
    ram, flash = totals(report)
    ram_budget = target.ram_bytes if ram_budget is None else ram_budget
    flash_budget = target.flash_bytes if flash_budget is None else flash_budget
    fix = lambda what: (f"; options: {', '.join(advice(ram_budget, flash_budget))}, or raise it with --{what}-budget"
                        if advice else f"; raise it with --{what}-budget or pick a bigger target")
    where = f" ({target.board})" if target.board else ""
    m = report.get("measured") or {}
    if ram_budget and ram > ram_budget:
        parts = f"arena {report['arena_bytes']:,} + I/O {report['io_bytes']:,}" + \
                (f" + state {report['state_bytes']:,}" if "state_bytes" in report else "") + \
                (f" + stack ~{m['stack_bytes_estimate']:,}" if "stack_bytes_estimate" in m else "")
        raise TinycError(f"the model needs {ram:,} B of RAM ({parts}), more than the RAM budget of {ram_budget:,} B"
                         f"{where}{fix('ram')}")
    if flash_budget and flash > flash_budget:
        parts = f"weights {report['weights_bytes']:,}" + (f", code {m['code_bytes']:,}" if m else "")
        raise TinycError(f"the model needs {flash:,} B of flash ({parts}), more than the flash budget of {flash_budget:,} B"
                         f"{where}{fix('flash')}")


# The test firmware's own functions (startup, file I/O, fault handlers): not part of the model.
HARNESS = re.compile(r"(main|Reset_Handler|\w+_Handler|tinyc_io_\w+|semihost|tinyc_reset|tinyc_trap|_start)")


def model_code_bytes(elf: Elf, model: str) -> int:
    """Bytes of the model's functions in a linked firmware: layers (gcc's clones included), the run
    function, the weights blob's check and tinyc's helpers that were not inlined."""
    return sum(s.size for s in elf.symbols if s.section.startswith(".text") and _is_model_code(s.name, model))


def _is_model_code(name: str, model: str) -> bool:
    return bool(re.fullmatch(r"layer\d+_\w+", name.split(".")[0]) or name in (f"{model}_run", f"{model}_load_weights")
                or name.split(".")[0] == "blob_read32" or (name.startswith("tinyc_") and not HARNESS.fullmatch(name)))


def other_code(firmware: Path, model: str) -> tuple[list[tuple[str, int]], int]:
    """The linked firmware's code beyond the model's, from its symbols: the C library and compiler
    runtime routines (memcpy, soft-float, expf, ...) as (name, bytes), largest first, and the test
    harness's bytes. Aliases (one routine under several names, as __gtsf2 and __gesf2) count once."""
    code: dict[int, Symbol] = {}
    for s in sorted(Elf(firmware).symbols, key=lambda s: s.name):
        if s.section.startswith(".text") and s.size and not _is_model_code(s.name, model):
            code.setdefault(s.value, s)
    library = sorted(((s.name, s.size) for s in code.values() if not HARNESS.fullmatch(s.name)), key=lambda r: (-r[1], r[0]))
    return library, sum(s.size for s in code.values() if HARNESS.fullmatch(s.name))


def weight_bytes(elf: Elf) -> int:
    """Bytes of the weight arrays (w0, w1, ...) in an object or firmware."""
    return sum(s.size for s in elf.symbols if re.fullmatch(r"w\d+", s.name))


def cross_check(report: dict[str, Any], firmware: Path) -> list[tuple[str, int, int]]:
    """(what, report's bytes, the linked ELF's bytes) for the arena, the weights and the code."""
    elf = Elf(firmware)
    arena = elf.symbol("arena")
    rows = [("arena", report["arena_bytes"], arena.size if arena else 0)]
    if "weights_blob" not in report:  # (a blob's weights are not in the ELF)
        rows.append(("weights", report["weights_bytes"], weight_bytes(elf)))
    m = report.get("measured")
    if m is not None:
        rows.append(("code", m["code_bytes"], model_code_bytes(elf, report["model"])))
    return rows
