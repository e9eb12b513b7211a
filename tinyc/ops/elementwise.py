"""Elementwise ops: binary with numpy broadcasting (Add, Sub, Mul, Div) and unary (Relu, Clip)."""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from . import Kernel, Op, broadcast_shape, broadcast_strides, collapse_loops, register, require_f32


class _Binary(Op):
    fn: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]
    c_op: ClassVar[str]

    def infer(self, node, ins):
        return [(broadcast_shape(node, ins[0].shape, ins[1].shape), ins[0].dtype)]

    def reference(self, node, xs):
        a, b = xs
        # f32 arithmetic, as in the C kernel: one rounding per element.
        return [type(self).fn(a, b).astype(a.dtype)]

    def kernel(self, node, ins, outs):
        require_f32(node, ins)
        out = outs[0].shape
        dims, (sa, sb, so) = collapse_loops(
            list(out), broadcast_strides(ins[0].shape, out), broadcast_strides(ins[1].shape, out),
            broadcast_strides(out, out),
        )
        return Kernel("f32/binary.c.j2", dict(dims=dims, sa=sa, sb=sb, so=so, op=self.c_op))


@register
class Add(_Binary):
    name, fn, c_op = "Add", np.add, "+"


@register
class Sub(_Binary):
    name, fn, c_op = "Sub", np.subtract, "-"


@register
class Mul(_Binary):
    name, fn, c_op = "Mul", np.multiply, "*"


@register
class Div(_Binary):
    name, fn, c_op = "Div", np.divide, "/"


class _Unary(Op):
    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]


@register
class Relu(_Unary):
    name = "Relu"

    def reference(self, node, xs):
        return [np.maximum(xs[0], 0).astype(xs[0].dtype)]

    def kernel(self, node, ins, outs):
        require_f32(node, ins)
        return Kernel("f32/clamp.c.j2", dict(n=outs[0].size, lo=0.0, hi=None))


@register
class Clip(_Unary):
    name = "Clip"
    attr_inputs = {1: "min", 2: "max"}

    def normalize(self, attrs, ins, opset):
        a = dict(attrs)
        for k in ("min", "max"):
            if k in a:
                a[k] = float(np.asarray(a[k]).reshape(()))
        return a

    def reference(self, node, xs):
        lo = node.attrs.get("min", -np.inf)
        hi = node.attrs.get("max", np.inf)
        return [np.minimum(np.maximum(xs[0], lo), hi).astype(xs[0].dtype)]

    def kernel(self, node, ins, outs):
        require_f32(node, ins)
        return Kernel("f32/clamp.c.j2", dict(n=outs[0].size, lo=node.attrs.get("min"), hi=node.attrs.get("max")), includes=("math.h",))
