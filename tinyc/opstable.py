"""The supported-ops table, generated from the op registry (README.md embeds it; a test checks
that it is current): `python -m tinyc.opstable`."""
from __future__ import annotations

from .ops import REGISTRY, Op


def _overrides(op: Op, method: str) -> bool:
    return getattr(type(op), method) is not getattr(Op, method)


def table() -> str:
    rows = ["| op | float32 | int8 | attribute limits and notes |", "|---|---|---|---|"]
    for name in sorted(REGISTRY):
        op = REGISTRY[name]
        if op.internal:
            continue
        f32 = "yes" if _overrides(op, "kernel") or name == "BatchNormalization" else "folded only"
        if name.startswith("QLinear"):
            f32 = "-"
        int8 = "yes" if (_overrides(op, "qreference") or op.quant_transparent or name.startswith("QLinear")
                         or name == "MatMul") else "-"
        rows.append(f"| {name} | {f32} | {int8} | {op.limits} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
