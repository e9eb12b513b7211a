"""Mixed precision: layers of an int8 model that stay float (--keep-float LAYER,...).

A kept node gets the attribute ``keep_float`` (so the IR shows the decision); the quantizer leaves
its weights float and does not rewrite it into an int8 form, and lower-qdq leaves the
DequantizeLinear before it and the QuantizeLinear after it in place: the float kernel runs between
a dequantize of its int8 input and a quantize of its output. A clamp (Relu, Clip) fused into a
kept node stays float with it.
"""
from __future__ import annotations

from ..errors import TinycError
from ..ir import Graph
from ..ops import get_op


def mark_keep_float(g: Graph, names: tuple[str, ...] | list[str]) -> None:
    """Set ``keep_float`` on the nodes named; an unknown name is an error listing valid ones."""
    by_name = {n.name: n for n in g.nodes}
    unknown = [x for x in names if x not in by_name]
    if unknown:
        valid = [n.name for n in g.nodes if get_op(n.op).lowers_to_int8 and not get_op(n.op).view][:6]
        raise TinycError(f"--keep-float: no layer named {', '.join(repr(x) for x in unknown)}; layers are e.g. "
                         f"{', '.join(valid)}")
    uses: dict[str, list] = {}
    for n in g.nodes:
        for x in n.inputs:
            if x is not None:
                uses.setdefault(x, []).append(n)
    for x in names:
        n = by_name[x]
        n.attrs["keep_float"] = 1
        users = uses.get(n.outputs[0], [])
        if get_op(n.op).hosts_activation and len(users) == 1 and get_op(users[0].op).activation == "clamp":
            users[0].attrs["keep_float"] = 1  # its fused activation stays with it


def is_kept(n) -> bool:
    """Whether the node stays float in an int8 model."""
    return n is not None and bool(n.attrs.get("keep_float"))
