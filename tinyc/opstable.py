"""The supported-ops table, generated from the op registry (README.md embeds it; a test checks
that it is current): `python -m tinyc.opstable [--write README.md]`."""
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
        f32 = "yes" if _overrides(op, "kernel") or _overrides(op, "expand") or name == "BatchNormalization" else "folded only"
        if name.startswith("QLinear"):
            f32 = "-"
        int8 = "yes" if (_overrides(op, "qreference") or op.quant_transparent or name.startswith("QLinear")
                         or name == "MatMul") and not (op.int16x8 and not op.lowers_to_int8) else "-"  # (16x8 only: -)
        rows.append(f"| {name} | {f32} | {int8} | {op.limits} |")
    return "\n".join(rows) + "\n"


def write_readme(path) -> None:
    """Replace the table between README's markers."""
    import re
    from pathlib import Path

    text = Path(path).read_text()
    new = re.sub(r"(<!-- ops table:.*?-->\n)(.*?)(<!-- end ops table -->)", lambda m: m.group(1) + table() + m.group(3),
                 text, flags=re.S)
    Path(path).write_text(new)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        write_readme(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        print(table(), end="")
