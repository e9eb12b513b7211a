"""Elementwise ops: binary with numpy broadcasting (Add, Sub, Mul, Div, Max, Min, Pow, PRelu) and
unary (Relu, Clip). A binary op is its numpy function and its C expression of ``a`` and ``b``."""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from ..codegen.cnames import CTYPES, c_float
from ..errors import UnsupportedError
from ..ir import DTYPES, Node
from ..quant.fixedpoint import multiply_by_quantized_multiplier, requantize
from ..quant.requant import Requant
from ..quant.requant16 import Requant32To16
from ..quant.rounding import active as active_rounding
from ..quant.params import ADD_LEFT_SHIFT_16, add_params, mul_params, rescale_params
from .dot_s8 import REQUANT_FAST
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, int8_act_range, int8_clamp, act_params, float_activation, broadcast_shape, broadcast_strides, collapse_loops, is_quantized, register, require_f32


INTEGER_CTYPES = {"s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64"}


class _Binary(Op):
    pointwise = True
    fn: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]
    c_expr: ClassVar[str]  # C expression of a and b
    float_only: ClassVar[bool] = False  # C kernel for float32 only (e.g. Pow: powf)

    def normalize(self, attrs, ins, opset):
        if len(ins) != 2 or any(t is None for t in ins):
            raise UnsupportedError(f"{self.name} needs exactly two inputs")
        return attrs

    def infer(self, node, ins):
        return [(broadcast_shape(node, ins[0].shape, ins[1].shape), ins[0].dtype)]

    def reference(self, node, xs):
        a, b = xs
        # f32 arithmetic, as in the C kernel: one rounding per element.
        return [float_activation(node, type(self).fn(a, b).astype(a.dtype))]

    @staticmethod
    def loops(ins, outs) -> dict:
        out = outs[0].shape
        dims, (sa, sb, so) = collapse_loops(
            list(out), broadcast_strides(ins[0].shape, out), broadcast_strides(ins[1].shape, out),
            broadcast_strides(out, out),
        )
        return dict(dims=dims, sa=sa, sb=sb, so=so)

    def kernel(self, node, ins, outs):
        loops = self.loops(ins, outs)
        if is_quantized(ins, outs):
            return self.kernel_s8(node, ins, outs, loops)
        dt = ins[0].dtype
        if dt == "f32" or (dt in INTEGER_CTYPES | {"f64"} and ins[1].dtype == dt and "act" not in node.attrs
                           and (not self.float_only or dt == "f64")):
            # integers: C's arithmetic (wrapping on store, division truncating) is numpy's here
            expr = self.c_expr.replace("powf", "pow") if dt == "f64" else self.c_expr
            return Kernel("f32/binary.c.j2", dict(loops, op=self.name, expr=expr, ctype=CTYPES[dt],
                                                  **act_params(node)), includes=("math.h",))
        require_f32(node, ins)

    def kernel_s8(self, node, ins, outs, loops) -> Kernel:
        raise UnsupportedError(f"{self.name} node '{node.name}' has no int8 kernel")

    def lower_arithmetic_int8(self, cx, node, out, act) -> Node:
        """The int8 op on both operands (int8 activations or per-tensor int8 constants), with the
        fused clamp."""
        a, b = (cx.operand(x, node) for x in node.inputs)
        return Node(node.op, node.name, [a.name, b.name], out, dict(node.attrs, act_min=act[0], act_max=act[1]))


@register
class Add(_Binary):
    name, fn, c_expr = "Add", np.add, "a + b"
    limits = "numpy broadcasting; C for float32 and int8"
    sign = 1
    inplace = True
    hosts_activation = True
    int16x8 = True
    quantizes_const_operands = True

    def lower_int8(self, cx, node, out, act):
        """MatMul + constant bias is a fully connected layer; otherwise the int8 Add/Sub."""
        return cx.fully_connected_with_bias(node, out, act) or self.lower_arithmetic_int8(cx, node, out, act)

    def qreference(self, node, xs, ins, outs):
        """TFLite int8 Add/Sub (see quant.params.add_params): both operands rescaled to a common
        scale, added (or subtracted), rescaled to the output."""
        r = active_rounding()
        p = self._params(ins, outs, r)
        a = (xs[0].astype(np.int64) - p["zp1"]) << p["left_shift"]
        b = (xs[1].astype(np.int64) - p["zp2"]) << p["left_shift"]
        raw = multiply_by_quantized_multiplier(a, p["m1"], p["s1"], r) + self.sign * multiply_by_quantized_multiplier(b, p["m2"], p["s2"], r)
        return [self._output(node, p, r, outs[0].dtype).apply(raw)]

    def _params(self, ins, outs, rounding: str) -> dict:
        """add_params, for int16 (16x8) with TFLite's left shift of 15."""
        if outs[0].dtype != "s16":
            return add_params(ins[0].quant, ins[1].quant, outs[0].quant, rounding)
        return add_params(ins[0].quant, ins[1].quant, outs[0].quant, rounding, ADD_LEFT_SHIFT_16)

    @staticmethod
    def _output(node, p: dict, rounding: str, dtype: str = "s8") -> Requant:
        """The requantization of the sum to the output (add_params' mo, so, zpo)."""
        cls = Requant32To16 if dtype == "s16" else Requant
        return cls((p["mo"],), (p["so"],), p["zpo"], *int8_act_range(node), rounding)

    def kernel_s16(self, node, ins, outs, loops) -> Kernel:
        """16x8: each operand rescaled per element (no tables: 65,536 values each)."""
        r = active_rounding()
        p = self._params(ins, outs, r)
        out = self._output(node, p, r, "s16")
        q = dict(p, **loops, out_shift=p["so"], op=self.name, sign="+" if self.sign > 0 else "-", act_min=out.lo,
                 act_max=out.hi)  # (add_params' "so" is the output shift, loops' the output strides)
        return Kernel("s16/add.c.j2", q, preamble=FIXEDPOINT + FIXEDPOINT16)

    def kernel_for(self, node, ins, outs, variants=(), weights="wide"):
        """16x8 on Helium: four elements per step (templates/mve/s16/add_vec.c.j2) along rows that
        both operands and the output walk contiguously (an operand may repeat one row: a broadcast
        bias), with TFLite's default rounding (double), else the portable kernel."""
        k = self.kernel(node, ins, outs)
        p = k.params
        if "mve" not in variants or k.template != "s16/add.c.j2" or active_rounding() != "double" \
                or len(p["dims"]) > 2 or not p["sa"][-1] == p["sb"][-1] == p["so"][-1] == 1:
            return k
        rows = dict(ROWS=p["dims"][0], SA=p["sa"][0], SB=p["sb"][0], SO=p["so"][0]) if len(p["dims"]) == 2 \
            else dict(ROWS=1, SA=0, SB=0, SO=0)
        return Kernel("s16/add_vec.c.j2", dict(p, N=p["dims"][-1], **rows))

    def kernel_s8(self, node, ins, outs, loops):
        """Each operand's rescaled value depends on its int8 value only: two 256-entry tables
        (computed here with the reference arithmetic, indexed by the byte), one add, one
        requantization per element."""
        if outs[0].dtype == "s16":
            return self.kernel_s16(node, ins, outs, loops)
        r = active_rounding()
        p = add_params(ins[0].quant, ins[1].quant, outs[0].quant, r)
        x = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)  # by byte value
        ta = multiply_by_quantized_multiplier((x - p["zp1"]) << p["left_shift"], p["m1"], p["s1"], r)
        tb = self.sign * multiply_by_quantized_multiplier((x - p["zp2"]) << p["left_shift"], p["m2"], p["s2"], r)
        out = self._output(node, p, r)
        rq = out.fast_form(int(np.abs(ta).max() + np.abs(tb).max()))
        q = dict(loops, **out.params(), op=self.name, sign="+" if self.sign > 0 else "-")
        if rq is not None:
            q.update(rq, doubled=True)
            ta, tb = 2 * ta, 2 * tb
        q.update(table_a=ta.tolist(), table_b=tb.tolist())
        return Kernel("s8/add.c.j2", q, preamble=FIXEDPOINT + (REQUANT_FAST if rq else ()))


@register
class Sub(Add):
    name, fn, c_expr = "Sub", np.subtract, "a - b"
    limits = "numpy broadcasting; C for float32 and int8"
    sign = -1


@register
class Mul(_Binary):
    name, fn, c_expr = "Mul", np.multiply, "a * b"
    limits = "numpy broadcasting; C for float32 and int8"
    inplace = True
    hosts_activation = True
    quantizes_const_operands = True
    int16x8 = True

    def lower_int8(self, cx, node, out, act):
        return self.lower_arithmetic_int8(cx, node, out, act)

    def qreference(self, node, xs, ins, outs):
        """TFLite int8 (and 16x8) Mul: (a - a_zp) * (b - b_zp) scaled by a_scale * b_scale / y_scale."""
        r = active_rounding()
        p = mul_params(ins[0].quant, ins[1].quant, outs[0].quant, r)
        prod = (xs[0].astype(np.int64) - p["zp1"]) * (xs[1].astype(np.int64) - p["zp2"])
        return [requantize(prod, p["m"], p["s"], p["zpo"], *int8_act_range(node), r, DTYPES[outs[0].dtype])]

    def kernel_s8(self, node, ins, outs, loops):
        p = mul_params(ins[0].quant, ins[1].quant, outs[0].quant, active_rounding())
        if outs[0].dtype == "s16":
            return Kernel("s8/mul.c.j2", dict(loops, **p, **int8_clamp(node), s16=True), preamble=FIXEDPOINT + FIXEDPOINT16)
        return Kernel("s8/mul.c.j2", dict(loops, **p, **int8_clamp(node)), preamble=FIXEDPOINT)


@register
class Div(_Binary):
    name, fn, c_expr = "Div", np.divide, "a / b"
    limits = "numpy broadcasting; C for float32"
    inplace = True
    hosts_activation = True


class _Extremum(_Binary):
    """Max and Min: any number of inputs; on int8 the lowering has requantized every input to the
    output's parameters, so the integer max/min is the answer."""

    limits = "any number of inputs (a chain of two-input ops), numpy broadcasting; C for float32, integers and int8"
    int8_pass_through = True
    requantizes_inputs = True
    quantizes_const_operands = True

    def expand(self, node, ins, g):
        return variadic_chain(node, g)

    def qreference(self, node, xs, ins, outs):
        return [self.reference(node, xs)[0]]

    def kernel_s8(self, node, ins, outs, loops):
        return Kernel("f32/binary.c.j2", dict(loops, op=self.name, expr=self.c_expr, ctype="int8_t", **act_params(node)))


@register
class Max(_Extremum):
    name, fn, c_expr = "Max", np.maximum, "a > b ? a : b"


@register
class Min(_Extremum):
    name, fn, c_expr = "Min", np.minimum, "a < b ? a : b"


def variadic_chain(node: Node, g) -> list[Node] | None:
    """op(x1, ..., xn) as op(op(x1, x2), x3)...; one input is a copy."""
    xs = [x for x in node.inputs if x is not None]
    if len(xs) == 2:
        return None
    if not xs:
        raise UnsupportedError(f"{node.op} node '{node.name}' has no inputs")
    if len(xs) == 1:
        return [Node("Identity", node.name, xs, list(node.outputs))]
    nodes, acc = [], xs[0]
    for i, x in enumerate(xs[1:], 1):
        out = node.outputs[0] if i == len(xs) - 1 else g.unique_name(f"{node.name}/{i}")
        nodes.append(Node(node.op, node.name if i == len(xs) - 1 else f"{node.name}/{i}", [acc, x], [out], dict(node.attrs)))
        acc = out
    return nodes


@register
class Pow(_Binary):
    name, fn, c_expr, float_only = "Pow", np.power, "powf(a, b)", True
    limits = "numpy broadcasting; C for float32, and integer or float64 bases with any numeric exponent (in double)"

    def kernel(self, node, ins, outs):
        a, b = ins[0].dtype, ins[1].dtype
        numeric = INTEGER_CTYPES | {"f32", "f64"}
        if is_quantized(ins, outs) or (a == "f32" and b == "f32") or a not in numeric or b not in numeric:
            return super().kernel(node, ins, outs)
        if "act" in node.attrs or "act_min" in node.attrs or "act_max" in node.attrs:
            raise UnsupportedError(f"Pow node '{node.name}': a fused activation needs float32")
        return Kernel("f32/binary.c.j2", dict(self.loops(ins, outs), op=self.name, expr="pow((double)a, (double)b)",
                                              ctype=CTYPES[a], ctype_b=CTYPES[b], **act_params(node)), includes=("math.h",))


@register
class PRelu(_Binary):
    name, c_expr, float_only = "PRelu", "a < 0 ? a * b : a", True
    limits = "slope broadcast to the input; C for float32"

    @staticmethod
    def fn(a, b):
        return np.where(a < 0, a * b, a)


class _Unary(Op):
    pointwise = True
    inplace = True
    activation = "clamp"

    def lower_int8(self, cx, node, out, act):
        """A clamp on its own: rescales to the output's parameters within the clamp."""
        x = cx.activation(node.inputs[0], node)
        act_min, act_max = cx.act_range(*self.clamp_range(node.attrs))
        return Node(node.op, node.name, [x.name], out, dict(node.attrs, act_min=act_min, act_max=act_max))

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]

    def qreference(self, node, xs, ins, outs):
        """TFLite int8 Relu/Relu6/Clip: rescale x_scale / y_scale, + y_zp, clamp."""
        r = active_rounding()
        m, s = rescale_params(ins[0].quant, outs[0].quant, r)
        x = xs[0].astype(np.int64) - int(ins[0].quant.zero_point)
        return [requantize(x, m, s, int(outs[0].quant.zero_point), node.attrs["act_min"], node.attrs["act_max"], r)]

    def kernel_s8(self, node, ins, outs) -> Kernel:
        m, s = rescale_params(ins[0].quant, outs[0].quant, active_rounding())
        return Kernel("s8/rescale.c.j2", dict(n=outs[0].size, m=m, s=s, zp_in=int(ins[0].quant.zero_point),
                                              zp=int(outs[0].quant.zero_point), act_min=node.attrs["act_min"],
                                              act_max=node.attrs["act_max"]), preamble=FIXEDPOINT)


@register
class Relu(_Unary):
    name = "Relu"
    limits = "fused into the op before it where possible"

    def reference(self, node, xs):
        return [np.maximum(xs[0], 0).astype(xs[0].dtype)]

    def clamp_range(self, attrs):
        return 0.0, None

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            return self.kernel_s8(node, ins, outs)
        return clamp_kernel(node, ins, outs, 0, None)


@register
class Clip(_Unary):
    name = "Clip"
    limits = "constant min/max fuse into the op before where possible; run-time bounds become Max/Min"
    attr_inputs = {1: "min", 2: "max"}
    expands_runtime_inputs = True

    def expand(self, node, ins, g):
        """Bounds known only at run time: Min(Max(x, min), max)."""
        if all(t is None or t.is_const for t in ins[1:]):
            return None
        nodes, acc = [], node.inputs[0]
        for op, idx in (("Max", 1), ("Min", 2)):
            if idx < len(node.inputs) and node.inputs[idx] is not None:
                last = not (idx == 1 and len(node.inputs) > 2 and node.inputs[2] is not None)
                out = node.outputs[0] if last else g.unique_name(f"{node.name}/lo")
                nodes.append(Node(op, node.name if last else f"{node.name}/lo", [acc, node.inputs[idx]], [out]))
                acc = out
        return nodes

    def normalize(self, attrs, ins, opset):
        a = dict(attrs)
        for k in ("min", "max"):
            if k in a:
                v = np.asarray(a[k])
                if v.size != 1:
                    raise UnsupportedError(f"Clip {k} must be one value, not {v.size}")
                v = v.reshape(())
                a[k] = int(v) if v.dtype.kind in "iub" else float(v)
        return a

    def clamp_range(self, attrs):
        return attrs.get("min"), attrs.get("max")

    def reference(self, node, xs):
        lo = node.attrs.get("min", -np.inf)
        hi = node.attrs.get("max", np.inf)
        return [np.minimum(np.maximum(xs[0], lo), hi).astype(xs[0].dtype)]

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            return self.kernel_s8(node, ins, outs)
        return clamp_kernel(node, ins, outs, node.attrs.get("min"), node.attrs.get("max"))


def clamp_kernel(node, ins, outs, lo, hi) -> Kernel:
    """Relu and Clip outside a fused op: float32 or integer tensors."""
    dt = ins[0].dtype
    if dt in INTEGER_CTYPES:
        info = np.iinfo(DTYPES[dt])  # a bound at the type's limit would be an always-false compare
        lo = None if lo is None or lo <= info.min else lo
        hi = None if hi is None or hi >= info.max else hi
        lit = lambda v: None if v is None else str(int(v))  # noqa: E731
    else:
        require_f32(node, ins)
        lit = lambda v: None if v is None else c_float(v)  # noqa: E731
    return Kernel("f32/clamp.c.j2", dict(n=outs[0].size, ctype=CTYPES[dt], lo=lit(lo), hi=lit(hi)), includes=("math.h",))
