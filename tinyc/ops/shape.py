"""Ops that only move data: Reshape, Flatten, Transpose."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from . import Kernel, Op, collapse_loops, register


def _copy_kernel(outs) -> Kernel:
    return Kernel("copy.c.j2", dict(nbytes=outs[0].nbytes), includes=("string.h",))


@register
class Reshape(Op):
    name = "Reshape"
    quant_transparent = True
    attr_inputs = {1: "shape"}

    def normalize(self, attrs, ins, opset):
        if "shape" not in attrs:
            raise UnsupportedError("Reshape without a constant shape")
        spec = [int(d) for d in np.asarray(attrs["shape"]).reshape(-1)]
        allowzero = int(attrs.get("allowzero", 0))
        src = ins[0].shape
        out = [src[i] if d == 0 and not allowzero and i < len(src) else d for i, d in enumerate(spec)]
        if out.count(-1) > 1:
            raise UnsupportedError(f"Reshape shape {spec} has more than one -1")
        size = int(np.prod(src))
        if -1 in out:
            rest = int(np.prod([d for d in out if d != -1]))
            if rest == 0 or size % rest:
                raise UnsupportedError(f"Reshape cannot infer -1 in {spec} for input {src}")
            out[out.index(-1)] = size // rest
        return {"shape": out}

    def infer(self, node, ins):
        out = tuple(node.attrs["shape"])
        if int(np.prod(out)) != ins[0].size:
            raise UnsupportedError(f"Reshape node '{node.name}': {ins[0].shape} cannot become {out}")
        return [(out, ins[0].dtype)]

    def reference(self, node, xs):
        return [xs[0].reshape(node.attrs["shape"])]

    def kernel(self, node, ins, outs):
        return _copy_kernel(outs)


@register
class Flatten(Op):
    name = "Flatten"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = int(attrs.get("axis", 1))
        if not -rank <= axis <= rank:
            raise UnsupportedError(f"Flatten axis {axis} out of range for rank {rank}")
        return {"axis": axis + rank if axis < 0 else axis}

    def infer(self, node, ins):
        s, a = ins[0].shape, node.attrs["axis"]
        return [((int(np.prod(s[:a])), int(np.prod(s[a:]))), ins[0].dtype)]

    def reference(self, node, xs):
        s, a = xs[0].shape, node.attrs["axis"]
        return [xs[0].reshape(int(np.prod(s[:a])), int(np.prod(s[a:])))]

    def kernel(self, node, ins, outs):
        return _copy_kernel(outs)


@register
class Transpose(Op):
    name = "Transpose"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        perm = [int(p) for p in attrs.get("perm", list(range(rank))[::-1])]
        if len(perm) != rank or sorted(p % max(rank, 1) for p in perm) != list(range(rank)):
            raise UnsupportedError(f"Transpose perm {perm} is not a permutation of {rank} axes")
        return {"perm": [p % rank for p in perm]}

    def infer(self, node, ins):
        return [(tuple(ins[0].shape[p] for p in node.attrs["perm"]), ins[0].dtype)]

    def reference(self, node, xs):
        return [np.ascontiguousarray(np.transpose(xs[0], node.attrs["perm"]))]

    def kernel(self, node, ins, outs):
        shape, perm = ins[0].shape, node.attrs["perm"]
        in_strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        dims = [shape[p] for p in perm]
        src = [in_strides[p] for p in perm]
        dst = [int(np.prod(dims[i + 1:])) for i in range(len(dims))]
        dims, (src, dst) = collapse_loops(dims, src, dst)
        return Kernel("transpose.c.j2", dict(dims=dims, src=src, dst=dst, ctype=_CTYPES[ins[0].dtype]))


_CTYPES = {"f32": "float", "s8": "int8_t", "u8": "uint8_t", "s16": "int16_t", "s32": "int32_t"}


@register
class Concat(Op):
    name = "Concat"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        if "axis" not in attrs:
            raise UnsupportedError("Concat without axis")
        rank = len(ins[0].shape)
        axis = int(attrs["axis"])
        if not -rank <= axis < rank:
            raise UnsupportedError(f"Concat axis {axis} out of range for rank {rank}")
        return {"axis": axis % rank}

    def infer(self, node, ins):
        axis = node.attrs["axis"]
        base = ins[0].shape
        for t in ins[1:]:
            if len(t.shape) != len(base) or any(a != b for i, (a, b) in enumerate(zip(t.shape, base)) if i != axis):
                raise UnsupportedError(f"Concat node '{node.name}': shapes {base} and {t.shape} differ off axis {axis}")
            if t.dtype != ins[0].dtype:
                raise UnsupportedError(f"Concat node '{node.name}': mixed dtypes")
        out = list(base)
        out[axis] = sum(t.shape[axis] for t in ins)
        return [(tuple(out), ins[0].dtype)]

    def reference(self, node, xs):
        return [np.concatenate(xs, axis=node.attrs["axis"])]

    def kernel(self, node, ins, outs):
        axis = node.attrs["axis"]
        shape = outs[0].shape
        outer = int(np.prod(shape[:axis]))
        inner = int(np.prod(shape[axis + 1:]))
        item = 4 if ins[0].dtype in ("f32", "s32") else 1
        parts = [dict(chunk=t.shape[axis] * inner * item) for t in ins]
        return Kernel("concat.c.j2", dict(outer=outer, parts=parts, row=shape[axis] * inner * item),
                      includes=("string.h",))
