"""Ops of shape arithmetic (Mod, Equal, Less, Greater, Not, And, Where, Range, ConstantOfShape).

PyTorch's exports of ``nn.MultiheadAttention`` compute reshape targets with them from ``Shape``.
Shapes are static, so their inputs are constants and the frontend folds them through
``reference``; only Mod has a C kernel for run-time data (the others name themselves in the
"has no C kernel" error when a model computes them on activations).
"""
from __future__ import annotations

import numpy as np

from ..codegen.cnames import CTYPES
from ..errors import UnsupportedError
from ..ir import DTYPES
from . import Kernel, Op, act_params, broadcast_shape, register
from .elementwise import INTEGER_CTYPES, _Binary


@register
class Mod(_Binary):
    """ONNX Mod: ``fmod=0`` the remainder takes the divisor's sign (numpy's ``mod``), ``fmod=1``
    the dividend's (C's ``%`` and ``fmodf``)."""

    name = "Mod"
    limits = "folded when constant; C for integers, float32 and float64"
    inplace = True

    def normalize(self, attrs, ins, opset):
        attrs = super().normalize(attrs, ins, opset)
        fmod = int(attrs.get("fmod", 0))
        if fmod not in (0, 1):
            raise UnsupportedError(f"Mod fmod={fmod} (0 or 1)")
        if fmod == 0 and ins[0].dtype.startswith("f") and opset < 28:
            raise UnsupportedError(f"Mod of floats with fmod=0 needs opset 28 (the model's is {opset}); set fmod=1")
        return {"fmod": fmod}

    def reference(self, node, xs):
        a, b = (np.asarray(x) for x in xs)
        with np.errstate(all="ignore"):
            y = np.fmod(a, b) if node.attrs["fmod"] else np.mod(a, b)
        return [np.asarray(y).astype(a.dtype)]

    def kernel(self, node, ins, outs):
        dt = ins[0].dtype
        if ins[1].dtype != dt or (dt not in INTEGER_CTYPES | {"f32", "f64"}) or "act" in node.attrs:
            raise UnsupportedError(f"Mod node '{node.name}': no C kernel for {dt} % {ins[1].dtype}")
        r = "fmodf(a, b)" if dt == "f32" else "fmod(a, b)"
        if dt.startswith("f") and node.attrs["fmod"]:
            expr = r
        elif dt.startswith("f"):  # (the divisor's sign, as numpy's mod)
            expr = f"{r} != 0 && (({r} < 0) != (b < 0)) ? {r} + b : {r}"
        elif dt.startswith("u"):
            expr = "b == 0 ? 0 : a % b"  # (numpy: 0 for a zero divisor)
        elif node.attrs["fmod"]:  # (b = -1 too: the minimum % -1 overflows in C; the remainder is 0)
            expr = "b == 0 || b == -1 ? 0 : a % b"
        else:
            expr = "b == 0 || b == -1 ? 0 : (a % b != 0 && ((a % b < 0) != (b < 0)) ? a % b + b : a % b)"
        return Kernel("f32/binary.c.j2", dict(self.loops(ins, outs), op=self.name, expr=expr, ctype=CTYPES[dt],
                                                  **act_params(node)),
                      includes=("math.h",))


class _Logical(Op):
    """Comparisons and boolean logic: numpy broadcasting, a bool output."""

    pointwise = True
    arity = 2

    def normalize(self, attrs, ins, opset):
        if len(ins) != self.arity or any(t is None for t in ins):
            raise UnsupportedError(f"{self.name} needs exactly {self.arity} input(s)")
        return {}

    def infer(self, node, ins):
        return [(broadcast_shape(node, *(t.shape for t in ins)), "bool")]

    def reference(self, node, xs):
        return [np.asarray(self.fn(*xs)).astype(np.bool_)]


# Equal, Less, Greater, And, Not: one class each, made from the numpy function
for _name, _fn, _arity in (("Equal", np.equal, 2), ("Less", np.less, 2), ("Greater", np.greater, 2),
                           ("And", np.logical_and, 2), ("Not", np.logical_not, 1)):
    register(type(_name, (_Logical,), dict(name=_name, fn=staticmethod(_fn), arity=_arity, limits="folded when constant")))


@register
class Where(Op):
    name = "Where"
    limits = "folded when constant"

    def normalize(self, attrs, ins, opset):
        if len(ins) != 3 or any(t is None for t in ins):
            raise UnsupportedError("Where needs exactly three inputs")
        return {}

    def infer(self, node, ins):
        return [(broadcast_shape(node, *(t.shape for t in ins)), ins[1].dtype)]

    def reference(self, node, xs):
        return [np.where(np.asarray(xs[0], np.bool_), xs[1], xs[2]).astype(xs[1].dtype)]


@register
class Range(Op):
    """start, start + delta, ... up to limit: the output's length depends on the values."""

    name = "Range"
    limits = "constant start, limit and delta (folded)"
    const_inputs = {0: "start", 1: "limit", 2: "delta"}

    def infer(self, node, ins):
        if len(ins) != 3 or any(t is None or t.data is None or t.data.size != 1 for t in ins):
            raise UnsupportedError("Range needs three constant scalars")
        return [((self._count([t.data for t in ins]),), ins[0].dtype)]

    @staticmethod
    def _count(xs) -> int:
        start, limit, delta = (np.asarray(x, np.float64).reshape(()) for x in xs)
        if delta == 0 or not np.isfinite([start, limit, delta]).all():
            raise UnsupportedError("Range needs a nonzero delta and finite bounds")
        return max(int(np.ceil((limit - start) / delta)), 0)

    def reference(self, node, xs):
        start, delta = (np.asarray(x).reshape(()) for x in (xs[0], xs[2]))
        return [(start + np.arange(self._count(xs), dtype=start.dtype) * delta).astype(start.dtype)]


@register
class ConstantOfShape(Op):
    """A tensor of the constant shape filled with ``value`` (0.0 float32 by default)."""

    name = "ConstantOfShape"
    limits = "constant shape (folded)"
    attr_inputs = {0: "shape"}

    def normalize(self, attrs, ins, opset):
        if "shape" not in attrs:
            raise UnsupportedError("ConstantOfShape without a constant shape")
        value = np.asarray(attrs.get("value", np.zeros(1, np.float32))).reshape(-1)
        if value.size != 1:
            raise UnsupportedError("ConstantOfShape value must have one element")
        dtype = next((k for k, v in DTYPES.items() if v == value.dtype), None)
        if dtype is None:
            raise UnsupportedError(f"ConstantOfShape of {value.dtype}")
        return {"shape": [int(d) for d in np.asarray(attrs["shape"]).reshape(-1)], "value": value.tolist()[0], "dtype": dtype}

    def infer(self, node, ins):
        if any(d < 0 for d in node.attrs["shape"]):
            raise UnsupportedError(f"ConstantOfShape shape {node.attrs['shape']} is negative")
        return [(tuple(node.attrs["shape"]), node.attrs["dtype"])]

    def reference(self, node, xs):
        return [np.full(tuple(node.attrs["shape"]), node.attrs["value"], DTYPES[node.attrs["dtype"]])]
