"""Slice and Split (a Split is one Slice per output, rewritten at import)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node
from . import Op, c_type, register
from .shape import strided_copy


def resolve_slice(shape, starts, ends, axes, steps) -> tuple[list[int], list[int], list[int]]:
    """ONNX Slice bounds resolved per axis (negative values, clamping): first index, step, count."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise UnsupportedError("Slice starts, ends, axes and steps differ in length")
    first, step, count = [0] * rank, [1] * rank, list(shape)
    seen = set()
    for s, e, a, st in zip(starts, ends, axes, steps):
        if not -rank <= a < rank:
            raise UnsupportedError(f"Slice axis {a} out of range for rank {rank}")
        a %= rank
        if a in seen:
            raise UnsupportedError(f"Slice axis {a} given twice")
        seen.add(a)
        if st == 0:
            raise UnsupportedError("Slice step 0")
        d = shape[a]
        s, e = int(s), int(e)
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        first[a], step[a], count[a] = s, st, max(0, -(-(e - s) // st))
    return first, step, count


@register
class Slice(Op):
    name = "Slice"
    int8_pass_through = True
    int16x8 = True
    limits = "constant starts/ends/axes/steps (any sign); not to an empty tensor at run time"
    quant_transparent = True
    attr_inputs = {1: "starts", 2: "ends", 3: "axes", 4: "steps"}

    def normalize(self, attrs, ins, opset):
        if "starts" not in attrs or "ends" not in attrs:
            raise UnsupportedError("Slice without starts and ends")
        flat = {k: None if attrs.get(k) is None else [int(v) for v in np.asarray(attrs[k]).reshape(-1)]
                for k in ("starts", "ends", "axes", "steps")}
        first, step, count = resolve_slice(ins[0].shape, flat["starts"], flat["ends"], flat["axes"], flat["steps"])
        if 0 in count and not ins[0].is_const:  # (a constant one is folded: shape arithmetic)
            raise UnsupportedError(f"Slice gives an empty tensor (shape {count})")
        return {"first": first, "step": step, "count": count}

    def infer(self, node, ins):
        return [(tuple(node.attrs["count"]), ins[0].dtype)]

    def reference(self, node, xs):
        a = node.attrs
        idx = tuple(slice(f, f + s * c if f + s * c >= 0 else None, s) for f, s, c in zip(a["first"], a["step"], a["count"]))
        return [np.ascontiguousarray(xs[0][idx])]

    def kernel(self, node, ins, outs):
        shape, a = ins[0].shape, node.attrs
        in_strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        dims = list(a["count"])
        src = [s * st for s, st in zip(in_strides, a["step"])]
        dst = [int(np.prod(dims[i + 1:])) for i in range(len(dims))]
        # (input_offset: the caller passes the input from that element: the patch pass's row copies,
        # whose bands then share one function)
        offset = sum(f * s for f, s in zip(a["first"], in_strides)) - a.get("input_offset", 0)
        c_type(node, ins[0].dtype)
        return strided_copy("Slice", dims, src, dst, offset, ins[0].dtype)


@register
class Split(Op):
    name = "Split"
    limits = "constant split sizes, or equal parts (num_outputs); rewritten as one Slice per output"
    quant_transparent = True
    attr_inputs = {1: "split"}

    def expand(self, node, ins, g):
        x = ins[0]
        rank = len(x.shape)
        axis = int(node.attrs.get("axis", 0))
        if not -rank <= axis < rank:
            raise UnsupportedError(f"Split axis {axis} out of range for rank {rank}")
        axis %= rank
        d, n = x.shape[axis], len(node.outputs)
        if node.attrs.get("split") is not None:
            sizes = [int(v) for v in np.asarray(node.attrs["split"]).reshape(-1)]
        elif "num_outputs" in node.attrs:
            n = int(node.attrs["num_outputs"])
            chunk = -(-d // n)
            sizes = [min(chunk, d - i * chunk) for i in range(n)]
        else:
            sizes = [d // n] * n if d % n == 0 else []
        if len(sizes) != len(node.outputs) or sum(sizes) != d or min(sizes, default=0) <= 0:
            raise UnsupportedError(f"Split sizes {sizes} do not cut axis {axis} of {x.shape} into {len(node.outputs)} non-empty parts")
        nodes, start = [], 0
        for i, (out, size) in enumerate(zip(node.outputs, sizes)):
            if out:  # an unused output needs no code
                nodes.append(Node("Slice", f"{node.name}/{i}", [node.inputs[0]], [out],
                                  {"starts": [start], "ends": [start + size], "axes": [axis]}))
            start += size
        return nodes
