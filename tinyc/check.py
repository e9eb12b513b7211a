"""`tinyc check`: everything that stands between a model and a target, in one run.

1. every unsupported op, attribute variant or missing kernel, with node names (and a hint where a
   rewrite exists);
2. when the model compiles: RAM (arena + I/O buffers) and flash (code + weights) against the
   target's board budget. With the target's cross compiler on the machine, code and data bytes
   are measured from the compiled object's ELF sections; otherwise flash counts the weights
   only, and says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import UnsupportedError
from .frontend.onnx import import_model, load_model_proto
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


def check(model_path: str | Path, target: Target, input_shapes=None, bind=None) -> CheckResult:
    from .codegen import generate
    from .ops import get_op
    from .passes import run_passes
    from .passes.pipeline import DEFAULT

    res = CheckResult()
    m = load_model_proto(model_path)
    g = import_model(m, input_shapes, name=Path(model_path).stem, problems=res.problems, bind=bind)
    if res.problems:  # still look for missing kernels among the nodes that did import
        for n in g.nodes:
            if n.op in ("QuantizeLinear", "DequantizeLinear"):
                continue  # lowered by the passes, which need the whole graph
            try:
                get_op(n.op).kernel(n, [g.tensors[x] if x else None for x in n.inputs], [g.tensors[o] for o in n.outputs])
            except UnsupportedError as e:
                res.problems.append(str(e))
        res.problems = [p + _hint(p) for p in res.problems]
        return res
    try:
        g = run_passes(g, DEFAULT)
    except UnsupportedError as e:
        res.problems.append(str(e) + _hint(str(e)))
        return res
    for n in g.nodes:  # every kernel, not only the first that fails
        try:
            get_op(n.op).kernel(n, [g.tensors[x] if x else None for x in n.inputs], [g.tensors[o] for o in n.outputs])
        except UnsupportedError as e:
            res.problems.append(str(e) + _hint(str(e)))
    if res.problems:
        return res
    model = generate(g, target, name="model")
    r = model.report
    res.details = dict(arena_bytes=r["arena_bytes"], io_bytes=r["io_bytes"], weights_bytes=r["weights_bytes"])
    from .budget import measure, totals

    m = measure(model, target) if target.emulator.kind != "native" else None
    if m is not None:
        r["measured"] = m
        res.details.update(code_and_rodata_bytes=m["code_bytes"] + m["rodata_bytes"], data_bytes=m["data_bytes"],
                           bss_bytes=m["bss_bytes"], stack_bytes_estimate=m.get("stack_bytes_estimate"))
        res.flash_measured = True
    res.ram_bytes, res.flash_bytes = totals(r)
    return res
