"""MatMul (numpy matmul semantics) and Gemm (alpha * A' B' + beta * C)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import UnsupportedError
from ..quant.requant16 import product_requant
from ..quant.rounding import active as active_rounding
from .dot_s8 import dot_variant, fc_wide_kernel, gemm_geometry, gemm_kernel
from ..ir import Node
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, offset_term, int8_act_range, act_params, broadcast_strides, collapse_loops, float_activation, is_quantized, register, require_f32


@register
class MatMul(Op):
    name = "MatMul"
    limits = ("numpy rules, second operand 2-D or same batch; int8 as fully connected (2-D, constant weights) "
              "or activation x activation (TFLite BATCH_MATMUL, batch broadcast)")
    hosts_activation = True

    def lower_int8(self, cx, node, out, act):
        w = cx.dq_source(node.inputs[1])
        if (w is not None and w.is_const) or cx.g.tensors[node.inputs[1]].is_const:  # (a float one: its error)
            return cx.fully_connected(node, node.inputs[0], node.inputs[1], None, out, act, trans_b=0)
        # both operands int8 per tensor (TFLite BATCH_MATMUL): sum (a - a_zp) (b - b_zp), requantized
        a, b = (cx.activation(x, node) for x in node.inputs)
        return Node(node.op, node.name, [a.name, b.name], out, dict(node.attrs, act_min=act[0], act_max=act[1]))

    def qreference(self, node, xs, ins, outs):
        """TFLite BATCH_MATMUL int8: int32 sums of (a - a_zp) (b - b_zp) over K, requantized per
        tensor by a_scale * b_scale / y_scale (double product, as fully connected), + y_zp,
        clamped (to the fused activation; BATCH_MATMUL itself has none)."""
        a = xs[0].astype(np.int64) - int(ins[0].quant.zero_point)
        b = xs[1].astype(np.int64) - int(ins[1].quant.zero_point)
        acc = np.matmul(a, b).astype(np.int32).astype(np.int64)  # (int32 accumulator)
        return [product_requant(ins, outs, 1, int8_act_range(node), active_rounding()).apply(acc)]

    def int8_weight(self, node, ins):
        return (1, 1) if ins[1].is_const else None

    def infer(self, node, ins):
        a, b = ins[0], ins[1]
        try:
            shape = _matmul_shape(a.shape, b.shape)
        except ValueError:
            raise UnsupportedError(f"MatMul node '{node.name}': shapes {a.shape} and {b.shape} do not multiply") from None
        return [(tuple(shape), a.dtype)]

    def reference(self, node, xs):
        a, b = xs
        return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]

    def macs(self, node, ins, outs):
        k = ins[0].shape[-1]
        return int(np.prod(outs[0].shape)) * k

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            return _batch_matmul_s8(node, ins, outs)
        require_f32(node, ins)
        a, b = ins[0].shape, ins[1].shape
        if len(a) < 1 or len(b) < 1:
            raise UnsupportedError(f"MatMul node '{node.name}': scalar operands")
        a2 = (1,) + a if len(a) == 1 else a
        b2 = b + (1,) if len(b) == 1 else b
        m, k, n = a2[-2], a2[-1], b2[-1]
        batch_shape = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
        batch = int(np.prod(batch_shape))
        if tuple(a2[:-2]) != batch_shape and int(np.prod(a2[:-2])) != 1:
            raise UnsupportedError(f"MatMul node '{node.name}': broadcasting the first operand's batch is not supported")
        if tuple(b2[:-2]) != batch_shape and int(np.prod(b2[:-2])) != 1:
            raise UnsupportedError(f"MatMul node '{node.name}': partial broadcasting of the second operand is not supported")
        a_bs = m * k if int(np.prod(a2[:-2])) != 1 else 0
        b_bs = k * n if int(np.prod(b2[:-2])) != 1 else 0
        return Kernel("f32/gemm.c.j2", dict(
            BATCH=batch, M=m, N=n, K=k, A_BS=a_bs, B_BS=b_bs, Y_BS=m * n,
            A_SM=k, A_SK=1, B_SK=n, B_SN=1, alpha=1.0, has_c=False, act_min=None, act_max=None, act_expr=None,
        ))


def _batch_matmul_s8(node, ins, outs) -> Kernel:
    """int8 x int8 batched product: loops over the output's batch dimensions with each operand's
    (broadcast) batch strides, then (M x K) * (K x N) with per-tensor requantization."""
    a, b, y = ins[0], ins[1], outs[0]
    if {a.dtype, b.dtype, y.dtype} != {"s8"} or len(a.shape) < 2 or len(b.shape) < 2:
        raise UnsupportedError(f"MatMul node '{node.name}': int8 needs int8 operands of rank 2 or more, "
                               f"got {a.dtype}{list(a.shape)} x {b.dtype}{list(b.shape)} -> {y.dtype}")
    if a.quant.axis is not None or b.quant.axis is not None:
        raise UnsupportedError(f"MatMul node '{node.name}': int8 operands must be quantized per tensor")
    (m, k), n = a.shape[-2:], b.shape[-1]
    batch = list(y.shape[:-2])
    dims, (sa, sb, sy) = collapse_loops(batch, broadcast_strides(a.shape[:-2], tuple(batch)),
                                        broadcast_strides(b.shape[:-2], tuple(batch)), broadcast_strides(tuple(batch), tuple(batch)))
    rq = product_requant(ins, outs, 1, int8_act_range(node), active_rounding())
    return Kernel("s8/batch_matmul.c.j2", dict(
        dims=dims, sa=[s * m * k for s in sa], sb=[s * k * n for s in sb], sy=[s * m * n for s in sy], M=m, K=k, N=n,
        a_offset=-int(a.quant.zero_point), b_offset=-int(b.quant.zero_point), **rq.params()), preamble=FIXEDPOINT)


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        raise ValueError("scalar operand")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError("inner dimensions differ")
    out = tuple(np.broadcast_shapes(a2[:-2], b2[:-2])) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@register
class Gemm(Op):
    name = "Gemm"
    limits = "transA/transB/alpha/beta, C broadcast; int8 and 16x8: alpha = beta = 1, transA = 0"
    hosts_activation = True
    int16x8 = True
    weight_forms = ("wide", "int8")

    def lower_int8(self, cx, node, out, act):
        a = node.attrs
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or (len(node.inputs) > 2 and a.get("beta", 1.0) != 1.0):
            raise UnsupportedError(f"Gemm node '{node.name}': int8 needs alpha=1, beta=1, transA=0")
        return cx.fully_connected(node, node.inputs[0], node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None,
                                  out, act, trans_b=int(a.get("transB", 0)))

    def int8_weight(self, node, ins):
        return 1, 0 if node.attrs.get("transB", 0) else 1

    def channel_axes(self, node):
        a = node.attrs
        if a.get("transA") or a.get("alpha", 1.0) != 1.0 or \
                (len(node.inputs) > 2 and node.inputs[2] is not None and a.get("beta", 1.0) != 1.0):
            return None
        return (0, 1) if a.get("transB") else (1, 0)

    def normalize(self, attrs, ins, opset):
        a = {k: v for k, v in attrs.items() if k != "broadcast"}
        a.setdefault("alpha", 1.0)
        a.setdefault("beta", 1.0)
        a.setdefault("transA", 0)
        a.setdefault("transB", 0)
        return a

    def _mkn(self, node, ins):
        a, b = ins[0].shape, ins[1].shape
        if len(a) != 2 or len(b) != 2:
            raise UnsupportedError(f"Gemm node '{node.name}': operands must be 2-D, got {a} and {b}")
        m, k = (a[1], a[0]) if node.attrs["transA"] else a
        k2, n = (b[1], b[0]) if node.attrs["transB"] else b
        if k != k2:
            raise UnsupportedError(f"Gemm node '{node.name}': inner dimensions {k} and {k2} differ")
        return m, k, n

    def infer(self, node, ins):
        m, _, n = self._mkn(node, ins)
        if len(ins) > 2 and ins[2] is not None:
            try:
                np.broadcast_shapes(ins[2].shape, (m, n))
            except ValueError:
                raise UnsupportedError(f"Gemm node '{node.name}': C {ins[2].shape} does not broadcast to {(m, n)}") from None
        return [((m, n), ins[0].dtype)]

    def reference(self, node, xs):
        at = node.attrs
        a = xs[0].astype(np.float64)
        b = xs[1].astype(np.float64)
        a = a.T if at["transA"] else a
        b = b.T if at["transB"] else b
        y = at["alpha"] * (a @ b)
        if len(xs) > 2 and xs[2] is not None:
            y = y + at["beta"] * xs[2].astype(np.float64)
        return [float_activation(node, y.astype(xs[0].dtype))]

    def qreference(self, node, xs, ins, outs):
        """TFLite FullyConnected: sum (x - x_zp) * w + int32 bias, requantized per tensor or per
        output channel, + y_zp, clamp to the fused activation."""
        at = node.attrs
        a = xs[0].astype(np.int64) - int(ins[0].quant.zero_point)
        w = xs[1].astype(np.int64)
        w = w.T if at["transB"] else w
        acc = a @ w
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2].astype(np.int64).reshape(1, -1)
        return [product_requant(ins, outs, w.shape[1], int8_act_range(node), active_rounding()).apply(acc, 1)]

    def macs(self, node, ins, outs):
        m, k, n = self._mkn(node, ins)
        return m * k * n

    def kernel_for(self, node, ins, outs, variants=(), weights="wide"):
        """int8 with constant weights on a core with dot-product instructions: the matrix-product
        kernel of tinyc/ops/dot_s8.py (weights in its own layout)."""
        kind = dot_variant(variants)
        bias = ins[2] if len(ins) > 2 else None
        portable = self.kernel(node, ins, outs)
        if weights == "int8" and kind == "dsp":  # (where no DSP kernel applies: the portable one)
            portable = dataclasses.replace(portable, form="int8")
        if kind is None or not is_quantized(ins, outs) or not ins[1].is_const or node.attrs["transA"] \
                or (bias is not None and not bias.is_const) or {ins[0].dtype, ins[1].dtype, outs[0].dtype} != {"s8"}:
            return portable
        p = portable.params
        m, k, n = self._mkn(node, ins)
        w2d = ins[1].data if node.attrs["transB"] else ins[1].data.T
        if kind == "dsp" and m == 1:  # every weight used once: widen the inputs in registers, no scratch
            g = fc_wide_kernel(p, w2d, None if bias is None else bias.data, m, weights)
            if g is not None:
                return g
        g = gemm_kernel(kind, p, w2d, None if bias is None else bias.data, gemm_geometry(k, k, pointwise=True),
                        dict(gather="direct" if kind == "mve" and m == 1 else "row", ROW=k, P=m), weights)
        return g if g is not None else portable

    def kernel(self, node, ins, outs):
        at = node.attrs
        m, k, n = self._mkn(node, ins)
        if is_quantized(ins, outs):
            x, w, y = ins[0], ins[1], outs[0]
            rq = product_requant(ins, outs, n, int8_act_range(node), active_rounding())
            p = dict(M=m, K=k, N=n, W_SK=1 if at["transB"] else n, W_SN=k if at["transB"] else 1,
                     has_bias=len(ins) > 2 and ins[2] is not None, in_offset=-int(x.quant.zero_point),
                     **rq.params(), requant=rq)
            if x.dtype == "s16":  # 16x8: int16 activations, 64-bit sums unless the bias is int32
                p.update(offset_term=None, xt="int16_t", acct="int64_t" if p.get("rq64") else "int32_t")
                # (named from the templates' root: the DSP/Helium folders' fully connected is int8 only)
                return Kernel("portable/s8/fully_connected.c.j2", p, preamble=FIXEDPOINT + FIXEDPOINT16)
            p["offset_term"] = offset_term(p["in_offset"], w.data) if at["transB"] and w.is_const else None
            return Kernel("s8/fully_connected.c.j2", p, preamble=FIXEDPOINT)
        require_f32(node, ins)
        has_c = len(ins) > 2 and ins[2] is not None and at["beta"] != 0.0
        c_s = broadcast_strides(ins[2].shape, (m, n)) if has_c else [0, 0]
        return Kernel("f32/gemm.c.j2", dict(
            BATCH=1, M=m, N=n, K=k, A_BS=0, B_BS=0, Y_BS=0,
            A_SM=1 if at["transA"] else k, A_SK=m if at["transA"] else 1,
            B_SK=1 if at["transB"] else n, B_SN=k if at["transB"] else 1,
            alpha=float(at["alpha"]), beta=float(at["beta"]), has_c=has_c, C_SM=c_s[0], C_SN=c_s[1],
            **act_params(node),
        ), includes=("math.h",))
