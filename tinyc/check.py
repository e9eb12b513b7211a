"""`tinyc check`: everything that stands between a model and a target, in one run.

1. every unsupported op, attribute variant or missing kernel, with node names (and a hint where a
   rewrite exists);
2. when the model compiles (quantized first with --quantize int8): RAM (arena + I/O buffers) and flash (code + weights) against the
   target's board budget. With the target's cross compiler on the machine, code and data bytes
   are measured from the compiled object's ELF sections; otherwise flash counts the weights
   only, and says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UnsupportedError
from .ir import Graph
from .pipeline import Build
from .targets import Target

HINTS = {
    "Upsample": "deprecated since opset 10; re-export with Resize",
    "Dropout": "export the model in eval mode",
    "BatchNormalization": "export the model in eval mode (inference form)",
    "u8": "quantize activations as int8 (onnxruntime: activation_type=QInt8)",
}


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    flash_measured: bool = False
    details: dict = field(default_factory=dict)

    def fits(self, target: Target) -> bool:
        ram_ok = not target.ram_bytes or (self.ram_bytes or 0) <= target.ram_bytes
        flash_ok = not target.flash_bytes or (self.flash_bytes or 0) <= target.flash_bytes
        return ram_ok and flash_ok


def _hint(problem: str) -> str:
    for key, hint in HINTS.items():
        if key in problem:
            return f" (hint: {hint})"
    return ""


def _kernel_problems(g: Graph, lowered: bool) -> list[str]:
    """Every node without a kernel (not only the first). Before the passes (not ``lowered``),
    QuantizeLinear and DequantizeLinear are left out: the passes lower them with the whole graph
    in view."""
    from .ops import get_op

    problems = []
    for n in g.nodes:
        if not lowered and n.op in ("QuantizeLinear", "DequantizeLinear"):
            continue
        try:
            get_op(n.op).kernel(n, [g.tensors[x] if x else None for x in n.inputs], [g.tensors[o] for o in n.outputs])
        except UnsupportedError as e:
            problems.append(str(e))
    return problems


def check(build: Build) -> CheckResult:
    """The problems of a build made with ``problems=[]`` (every one its import meets), or its
    RAM and flash when it compiles."""
    res = CheckResult()
    g = build.imported
    if build.problems:  # still look for missing kernels among the nodes that did import
        res.problems = [p + _hint(p) for p in build.problems + _kernel_problems(g, lowered=False)]
        return res
    try:
        g = build.graph
    except UnsupportedError as e:
        res.problems.append(str(e) + _hint(str(e)))
        return res
    res.problems = [p + _hint(p) for p in _kernel_problems(g, lowered=True)]
    if res.problems:
        return res
    r = build.report
    res.details = dict(arena_bytes=r["arena_bytes"], io_bytes=r["io_bytes"], weights_bytes=r["weights_bytes"],
                       **({"state_bytes": r["state_bytes"]} if "state_bytes" in r else {}))
    m = build.sizes
    if m is not None:
        res.details.update(code_and_rodata_bytes=m["code_bytes"] + m["rodata_bytes"], data_bytes=m["data_bytes"],
                           bss_bytes=m["bss_bytes"], stack_bytes_estimate=m.get("stack_bytes_estimate"))
        res.flash_measured = True
    res.ram_bytes, res.flash_bytes = r["ram_bytes"], r["flash_bytes"]
    return res
