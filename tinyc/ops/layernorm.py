"""LayerNormalization (ONNX opset 17): each row over the axes from ``axis`` to the last is
normalized, (x - mean) / sqrt(var + epsilon), then scaled by Scale and shifted by B (broadcast to
those axes). The optional Mean and InvStdDev outputs (float32, the normalized axes kept as 1s)
are written by the float kernel; int8 has output Y only.

float: two passes over each row in float32 (mean, then the centered variance).
int8 (per-tensor input and output): tinyc's integer design, tinyc/quant/layernorm_int.py (integer
sums, a fixed-point reciprocal square root, Scale/B folded into per-position multipliers)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..quant import layernorm_int
from . import Kernel, Op, axes_in_range, is_quantized, register, require_f32


@register
class LayerNormalization(Op):
    name = "LayerNormalization"
    limits = ("axis (negative too), epsilon, stash_type 1; Scale and optional B broadcast over the normalized axes; "
              "Mean/InvStdDev outputs in float; int8 (per tensor, output Y only) by an integer design with a fixed-point rsqrt, Scale and B constant, at "
              "most 4096 values per row")

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = axes_in_range("LayerNormalization axis", [attrs.get("axis", -1)], max(rank, 1))[0]
        if int(attrs.get("stash_type", 1)) != 1:
            raise UnsupportedError(f"LayerNormalization stash_type {attrs['stash_type']} (only 1: float32)")
        return {"axis": axis, "epsilon": float(attrs.get("epsilon", 1e-5))}

    def infer(self, node, ins):
        shape = ins[0].shape
        inner = tuple(shape[node.attrs["axis"]:])
        for t in ins[1:]:
            if t is not None and np.broadcast_shapes(t.shape, inner) != inner:
                raise UnsupportedError(f"LayerNormalization node '{node.name}': {t.name} {list(t.shape)} does not "
                                       f"broadcast to the normalized axes {list(inner)}")
        stats = tuple(shape[:node.attrs["axis"]]) + (1,) * len(inner)  # Mean, InvStdDev
        return [(shape, ins[0].dtype)] + [(stats, "f32")] * (len(node.outputs) - 1)

    def reference(self, node, xs):
        x = xs[0]
        inner = x.shape[node.attrs["axis"]:]
        v = x.astype(np.float64).reshape(-1, int(np.prod(inner)))
        mean = v.mean(axis=1, keepdims=True)
        var = ((v - mean) ** 2).mean(axis=1, keepdims=True)
        inv = 1.0 / np.sqrt(var + node.attrs["epsilon"])
        y = (v - mean) * inv
        y = y * _per_position(xs[1], inner, 1.0) + _per_position(xs[2] if len(xs) > 2 else None, inner, 0.0)
        stats = x.shape[:node.attrs["axis"]] + (1,) * len(inner)
        return [y.reshape(x.shape).astype(x.dtype)] + [s.reshape(stats).astype(np.float32)
                                                        for s in (mean, inv)][:len(node.outputs) - 1]

    def lower_int8(self, cx, node, out, act):
        if len(node.outputs) > 1:
            raise UnsupportedError(f"LayerNormalization node '{node.name}': int8 has output Y only (not Mean, InvStdDev)")
        x = cx.activation(node.inputs[0], node)
        consts = [None if i is None else cx.float_const(i, node, what) for i, what in zip(node.inputs[1:], ("Scale", "B"))]
        return type(node)(node.op, node.name, [x.name, *consts], out, dict(node.attrs))

    def _int8_params(self, node, ins, outs) -> dict:
        n = int(np.prod(ins[0].shape[node.attrs["axis"]:]))
        what = f"LayerNormalization node '{node.name}'"
        if ins[0].dtype != "s8" or outs[0].dtype != "s8" or np.size(ins[0].quant.scale) != 1:
            raise UnsupportedError(f"{what}: integer only as int8 per tensor")
        inner = ins[0].shape[node.attrs["axis"]:]
        gamma = _per_position(ins[1].data, inner, 1.0)
        beta = _per_position(ins[2].data if len(ins) > 2 and ins[2] is not None else None, inner, 0.0)
        return layernorm_int.params(what, n, node.attrs["epsilon"], float(ins[0].quant.scale),
                                    float(outs[0].quant.scale), int(outs[0].quant.zero_point), gamma, beta)

    def qreference(self, node, xs, ins, outs):
        p = self._int8_params(node, ins, outs)
        return [layernorm_int.layernorm_s8(xs[0].reshape(-1, p["n"]), p).reshape(xs[0].shape)]

    def kernel(self, node, ins, outs):
        n = int(np.prod(ins[0].shape[node.attrs["axis"]:]))
        rows = int(np.prod(ins[0].shape[:node.attrs["axis"]]))
        if is_quantized(ins, outs):
            p = self._int8_params(node, ins, outs)
            return Kernel("s8/layernorm.c.j2", dict(p, rows=rows), includes=("stdint.h",),
                          weights={i: None for i in range(1, len(ins)) if ins[i] is not None})
        require_f32(node, ins)
        inner = ins[0].shape[node.attrs["axis"]:]
        weights, steps = {}, []
        for i in (1, 2):
            t = ins[i] if i < len(ins) else None
            if t is not None and t.size not in (1, n):  # a partial broadcast: the kernel reads it expanded
                if not t.is_const:
                    raise UnsupportedError(f"LayerNormalization node '{node.name}': {t.name} {list(t.shape)} "
                                           "broadcast over part of the normalized axes must be constant")
                weights[i] = _per_position(t.data, inner, 0.0).astype(np.float32)
            steps.append(int(t is not None and (i in weights or t.size == n)))
        bias = len(ins) > 2 and ins[2] is not None
        return Kernel("f32/layernorm.c.j2", dict(rows=rows, n=n, epsilon=node.attrs["epsilon"], bias=bias,
                                                 scale_step=steps[0], bias_step=steps[1], stats=len(outs) - 1),
                      includes=("math.h",), weights=weights)


def _per_position(v, inner, default: float) -> np.ndarray:
    """Scale or B (None: ``default``) broadcast to the normalized axes, one value per position."""
    if v is None:
        return np.full(int(np.prod(inner)), default)
    return np.broadcast_to(np.asarray(v, np.float64), tuple(inner)).reshape(-1)
