"""Softmax. Opset >= 13 normalises along one axis; older opsets flatten to 2-D at ``axis``
(recorded as ``flatten=1``)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..quant.fixedpoint import softmax_params, softmax_s8
from . import FIXEDPOINT, Kernel, Op, is_quantized, register, require_f32


@register
class Softmax(Op):
    name = "Softmax"
    limits = "any axis, opset < 13 flattening too; int8 output scale 1/256, zero point -128"

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

    def qreference(self, node, xs, ins, outs):
        """TFLite int8 softmax (gemmlowp fixed point), output scale 1/256 and zero point -128."""
        x = xs[0]
        outer, n, inner = self._split(node, x.shape)
        v = np.moveaxis(x.reshape(outer, n, inner), 1, 2)  # softmax axis last
        m, shift, diff_min = softmax_params(float(ins[0].quant.scale))
        y = softmax_s8(v, m, shift, diff_min)
        return [np.moveaxis(y, 2, 1).reshape(x.shape)]

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            outer, n, inner = self._split(node, ins[0].shape)
            m, shift, diff_min = softmax_params(float(ins[0].quant.scale))
            return Kernel("s8/softmax.c.j2", dict(outer=outer, n=n, inner=inner, mult=m, left_shift=shift, diff_min=diff_min),
                          preamble=FIXEDPOINT + ("s8/softmax_helpers.c.j2",))
        require_f32(node, ins)
        outer, n, inner = self._split(node, ins[0].shape)
        if n == 0:
            raise UnsupportedError(f"Softmax node '{node.name}' over an empty axis")
        return Kernel("f32/softmax.c.j2", dict(outer=outer, n=n, inner=inner), includes=("math.h",))


@register
class LogSoftmax(Softmax):
    """log(softmax(x)) = x - max - log(sum(exp(x - max))), along the same axis rules as Softmax."""

    name = "LogSoftmax"
    limits = "any axis, opset < 13 flattening too; float32"

    def reference(self, node, xs):
        x = xs[0]
        outer, n, inner = self._split(node, x.shape)
        v = x.astype(np.float64).reshape(outer, n, inner)
        shifted = v - v.max(axis=1, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return [out.reshape(x.shape).astype(x.dtype)]

    def qreference(self, node, xs, ins, outs):
        raise UnsupportedError(f"LogSoftmax node '{node.name}' has no int8 version")

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            raise UnsupportedError(f"LogSoftmax node '{node.name}' has no int8 kernel")
        require_f32(node, ins)
        outer, n, inner = self._split(node, ins[0].shape)
        return Kernel("f32/logsoftmax.c.j2", dict(outer=outer, n=n, inner=inner), includes=("math.h",))
