"""Fit advice: when a model is over the board's RAM or flash budget, the options that would make
it fit, each with its effect in bytes computed by building the model that way (quantization with
placeholder ranges: arena and I/O do not depend on them, weights and code barely) rather than estimated."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .budget import totals
from .errors import TinycError

if TYPE_CHECKING:
    from .pipeline import Build


def _is_int8(build: "Build") -> bool:
    return any(t.quant is not None for t in build.graph.tensors.values())


def _float_io(build: "Build") -> bool:
    g = build.graph
    return any(g.tensors[n].dtype.startswith("f") for n in (*g.inputs, *g.outputs))


def _candidates(build: "Build") -> list[tuple[str, dict]]:
    """(flag, Build changes) of the options that apply to this build."""
    out = []
    if not build.quantize and not _is_int8(build):
        out.append(("--quantize int8", dict(quantize="int8", calib=None, placeholder_calib=True, progress=False)))
        out.append(("--quantize int8 --io int8",
                    dict(quantize="int8", io="int8", calib=None, placeholder_calib=True, progress=False)))
    elif build.io != "int8" and _is_int8(build) and _float_io(build):
        changes = dict(calib=None, placeholder_calib=True, progress=False) if build.quantize else {}
        out.append(("--io int8", dict(io="int8", **changes)))
    if build.report.get("optimize", {}).get("mode", "size") != "size":
        out.append(("--optimize size", dict(optimize="size")))
    return out


def options(build: "Build", ram_budget: int, flash_budget: int) -> list[str]:
    """The options that lower the RAM or flash the model is over budget in, each with its totals and
    savings and whether the model then fits; then the targets whose boards hold the model as it is (or, with none,
    a smaller model variant)."""
    from .targets import all_targets

    ram, flash = totals(build.report)
    fits = lambda r, f: (not ram_budget or r <= ram_budget) and (not flash_budget or f <= flash_budget)
    out, alone = [], False
    for flag, changes in _candidates(build):
        if alone and flag.startswith("--quantize int8 --io"):
            continue  # --quantize int8 alone fits
        try:
            r, f = totals(build.variant(**changes).report)
        except TinycError:
            continue
        if not ((ram_budget and ram > ram_budget and r < ram) or (flash_budget and flash > flash_budget and f < flash)):
            continue  # no help where the model is over
        alone = alone or (flag == "--quantize int8" and fits(r, f))
        delta = ", ".join(f"{what} {d:+,} B" for what, d in (("RAM", r - ram), ("flash", f - flash)) if d)
        out.append(f"{flag} (RAM {r:,} B, flash {f:,} B: {delta}; {'fits' if fits(r, f) else 'does not fit'})")
    t = build.target
    bigger = sorted((x for x in all_targets().values() if x.name != t.name and x.ram_bytes and x.cc == t.cc
                     and x.ram_bytes >= ram and x.flash_bytes >= flash), key=lambda x: (x.ram_bytes, x.flash_bytes))
    if bigger:
        out.append("a target with a bigger board: " + ", ".join(
            f"{x.name} ({x.ram_bytes // 1024:,} KiB RAM, {x.flash_bytes // 1024:,} KiB flash)" for x in bigger[:3]))
    elif not any("fits)" in o for o in out):
        out.append("a smaller model variant")
    return out
