"""Softmax. Opset >= 13 normalises along one axis; older opsets flatten to 2-D at ``axis``
(recorded as ``flatten=1``)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from . import Kernel, Op, register, require_f32


@register
class Softmax(Op):
    name = "Softmax"

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
        if not -rank <= axis < max(rank, 1):
            raise UnsupportedError(f"Softmax axis {axis} out of range for rank {rank}")
        axis %= max(rank, 1)
        flatten = int(opset < 13 and axis < rank - 1)
        return {"axis": axis, "flatten": flatten} if flatten else {"axis": axis}

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]

    def _split(self, node, shape):
        axis = node.attrs["axis"]
        outer = int(np.prod(shape[:axis]))
        if node.attrs.get("flatten"):
            return outer, int(np.prod(shape[axis:])), 1
        return outer, shape[axis], int(np.prod(shape[axis + 1:]))

    def reference(self, node, xs):
        x = xs[0]
        outer, n, inner = self._split(node, x.shape)
        v = x.astype(np.float64).reshape(outer, n, inner)
        e = np.exp(v - v.max(axis=1, keepdims=True))
        return [(e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(x.dtype)]

    def kernel(self, node, ins, outs):
        require_f32(node, ins)
        outer, n, inner = self._split(node, ins[0].shape)
        if n == 0:
            raise UnsupportedError(f"Softmax node '{node.name}' over an empty axis")
        return Kernel("f32/softmax.c.j2", dict(outer=outer, n=n, inner=inner), includes=("math.h",))
