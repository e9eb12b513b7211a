"""Row bands: what the patch pass (tinyc/passes/patch.py) needs from an op, and its three internal ops.

An op that can compute a band of its output rows (axis 1 of an N=1 tensor: H in NHWC) from a band
of each input's rows says how in ``Op.band`` (a :class:`Band`: the rows of every input it reads,
and the attributes of the band node, e.g. a convolution's pads, which stay only at the image's
true border). The pass then runs the first stage of a network band by band, every intermediate
tensor kept as a window of rows (its producer writes the new rows below the ones its readers still
need), with three ops of its own:

- ``RowView``: rows ``first .. first + count`` of its input: a view (the same bytes, no code);
- ``RowJoin``: its inputs one after another along the rows: also no code, the inputs were written
  where the output's rows are (the planner's ``at`` placement, tinyc/memory.py);
- ``RowMove``: the same values at another place of the same window (the rows a window keeps for
  the next band move to its top): one memmove.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir import Node, Tensor
from . import Kernel, Op, copy_kernel, register

ROW_AXIS = 1


@dataclass
class Band:
    """How a node computes output rows ``start .. stop``: per input, ``(axis, first, stop)`` of the
    rows it reads, or None for an input read whole (a constant, a broadcast operand); ``attrs``:
    the band node's attributes."""

    rows: list[tuple[int, int, int] | None]
    attrs: dict[str, Any] = field(default_factory=dict)


def rows_tensor(t: Tensor | None) -> bool:
    """A tensor the pass can cut into row bands: an activation of rank 4 with N = 1."""
    return t is not None and not t.is_const and len(t.shape) == 4 and t.shape[0] == 1


def pointwise_band(node: Node, ins: list[Tensor | None], outs: list[Tensor], start: int, stop: int) -> Band | None:
    """An elementwise op: each input's same rows; a constant, or an input broadcast along the rows,
    is read whole."""
    if len(outs) != 1 or not rows_tensor(outs[0]):
        return None
    rows: list[tuple[int, int, int] | None] = []
    for t in ins:
        if t is None or t.is_const:
            rows.append(None)
        elif rows_tensor(t) and t.shape[ROW_AXIS] == outs[0].shape[ROW_AXIS]:
            rows.append((ROW_AXIS, start, stop))
        elif len(t.shape) < 3 or (len(t.shape) == 4 and t.shape[ROW_AXIS] == 1):
            rows.append(None)
        else:
            return None
    return Band(rows, dict(node.attrs))


def window_band(node: Node, ins: list[Tensor | None], outs: list[Tensor], start: int, stop: int) -> Band | None:
    """A 2-D sliding window in NHWC (Conv, pooling): the input rows under the output rows' windows,
    clipped to the image; the band's top and bottom pads are the image border's where the band
    touches it and zero inside."""
    a = node.attrs
    x = ins[0]
    if (a.get("layout") != "NHWC" or len(a.get("kernel_shape", ())) != 2 or a.get("ceil_mode")
            or not rows_tensor(x) or not rows_tensor(outs[0])):
        return None
    k, s, d = a["kernel_shape"][0], a["strides"][0], a["dilations"][0]
    pt = a["pads"][0]
    lo = start * s - pt
    hi = (stop - 1) * s - pt + (k - 1) * d + 1
    h = x.shape[ROW_AXIS]
    first, last = max(lo, 0), min(hi, h)
    pads = list(a["pads"])
    pads[0], pads[2] = first - lo, hi - last
    rows = [(ROW_AXIS, first, last)] + [None] * (len(ins) - 1)
    return Band(rows, dict(a, pads=pads))


def _rows(x: np.ndarray, first: int, count: int) -> np.ndarray:
    return np.ascontiguousarray(x[:, first:first + count])


@register
class RowView(Op):
    name = "RowView"
    internal = True
    view = True
    quant_transparent = True
    int8_pass_through = True
    limits = "the patch pass's: rows of a window (a view)"

    def infer(self, node, ins):
        first, count = node.attrs["rows"]
        shape = list(ins[0].shape)
        shape[ROW_AXIS] = count
        return [(tuple(shape), ins[0].dtype)]

    def reference(self, node, xs):
        return [_rows(xs[0], *node.attrs["rows"])]

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)  # (never printed: the planner places it as a view)


@register
class RowJoin(Op):
    name = "RowJoin"
    internal = True
    view = True
    quant_transparent = True
    int8_pass_through = True
    limits = "the patch pass's: a window's rows written by several nodes (no code)"

    def is_no_op(self, node, ins, outs):
        return False

    def infer(self, node, ins):
        shape = list(ins[0].shape)
        shape[ROW_AXIS] = sum(t.shape[ROW_AXIS] for t in ins)
        return [(tuple(shape), ins[0].dtype)]

    def reference(self, node, xs):
        return [np.concatenate(xs, axis=ROW_AXIS)]

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)  # (never printed: the planner places it as a view)


@register
class RowMove(Op):
    name = "RowMove"
    internal = True
    quant_transparent = True
    int8_pass_through = True
    limits = "the patch pass's: rows a window keeps, moved to its top (memmove)"

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]

    def reference(self, node, xs):
        return [xs[0].copy()]

    def inplace_params(self, node, params):
        return params

    def kernel(self, node, ins, outs):
        return Kernel("row_move.c.j2", dict(nbytes=outs[0].nbytes), includes=("string.h",))
