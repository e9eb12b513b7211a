"""SVDF (TFLite's singular value decomposition filter, keyword spotting): the integer form with
TFLite Micro's arithmetic. Internal op: the TFLite frontend makes it from SVDF.

Inputs: x int8 [batch, input], weights_feature int8 [filters, input], weights_time int16 or int8
[filters, memory], bias int32 [units] (optional: none), the activation state (int16 or int8, like
weights_time) [batch, memory * filters]: a model state tensor (``Graph.states``), updated in place.
Output int8 [batch, units], units = filters / rank. One run:

1. the state, all batch * filters * memory values, moves left by one element;
2. feature matmul: each filter's dot of (x - zp_in) with its weights, requantized by
   ``scale_in * scale_feature / scale_state`` (float32 arithmetic, as TFLite Micro computes it),
   clamped to the state type, plus the state's zero point (stored with C's conversion), goes to
   the filter's newest (last) memory slot;
3. time: each filter's dot of its weights_time with (state - zp_state) over its memory;
4. rank reduction: each unit sums its ``rank`` consecutive filters, plus the bias;
5. requantized by ``scale_state * scale_time / scale_out``, plus zp_out, clamped to int8.

TFLite Micro's integer SVDF applies no fused activation (the int8 clamp only; a RELU model has an
output range that starts at 0 anyway), and neither does this op. Both multipliers are computed at
compile time (TFLite Micro: at Prepare)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..quant.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..quant.rounding import active as active_rounding
from . import FIXEDPOINT, Kernel, Op, act_params, c_type, float_activation, int8_clamp, offset_term, register

_RANGE = {"s8": (-128, 127), "s16": (-32768, 32767)}


def _scale(node, t, what: str) -> np.float32:
    q = t.quant
    if q is None or q.axis is not None:
        raise UnsupportedError(f"SVDF node '{node.name}': {what} '{t.name}' must be quantized per tensor")
    return np.float32(q.scale)


def svdf_params(node, ins, outs) -> dict:
    """Every constant of the integer SVDF: sizes, zero points, the two requantizations."""
    x, wf, wt, b, st = ins
    y = outs[0]
    batch, n_in = x.shape
    filters, memory = wt.shape
    rank = int(node.attrs["rank"])
    s_in, s_wf, s_wt = _scale(node, x, "input"), _scale(node, wf, "weights_feature"), _scale(node, wt, "weights_time")
    s_st, s_out = _scale(node, st, "activation state"), _scale(node, y, "output")
    if b is not None and abs(float(_scale(node, b, "bias")) - float(s_st * s_wt)) >= 1e-5:
        raise UnsupportedError(f"SVDF node '{node.name}': bias scale {float(b.quant.scale)} is not the state scale "
                               f"times the time weights' ({float(s_st * s_wt)}), as TFLite Micro requires")
    r = active_rounding()
    m1, sh1 = quantize_multiplier(float(s_in * s_wf / s_st), r)  # float32 products, as TFLite Micro
    m2, sh2 = quantize_multiplier(float(s_st * s_wt / s_out), r)
    lo, hi = _RANGE[st.dtype]
    return dict(batch=batch, n_in=n_in, filters=filters, memory=memory, rank=rank, units=filters // rank,
                zp_in=int(x.quant.zero_point), zp_state=int(st.quant.zero_point), zp_out=int(y.quant.zero_point),
                m1=m1, s1=sh1, m2=m2, s2=sh2, state_min=lo, state_max=hi, has_bias=b is not None,
                **int8_clamp(node))  # (the int8 range unless a clamp was fused: TFLite Micro's kernel has none)


@register
class SVDF(Op):
    name = "SVDF"
    internal = True
    state_inputs = (4,)
    limits = ("int8 input/output, int8 feature weights, int16 or int8 time weights and state (TFLite Micro's kernel); "
              "float32 with a fused clamp (act_min/act_max)")
    hosts_activation = True

    def infer(self, node, ins):
        x, wf, wt, b, st = ins
        rank = int(node.attrs.get("rank", 0))
        if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2:
            raise UnsupportedError(f"SVDF node '{node.name}': input, weights_feature and weights_time must be 2-D")
        batch, n_in = x.shape
        filters, memory = wt.shape
        if rank < 1 or filters % rank or wf.shape != (filters, n_in):
            raise UnsupportedError(f"SVDF node '{node.name}': {filters} filters, rank {rank}, weights_feature "
                                   f"{list(wf.shape)} for input {list(x.shape)}")
        floats = x.dtype == "f32"
        if st.shape != (batch, memory * filters) or st.dtype != wt.dtype or st.dtype not in (("f32",) if floats else _RANGE):
            raise UnsupportedError(f"SVDF node '{node.name}': state {st.dtype}{list(st.shape)} must be "
                                   f"{wt.dtype}[{batch},{memory * filters}], " + ("float32" if floats else "int16 or int8"))
        if floats and (wf.dtype, wt.dtype, b.dtype if b is not None else "f32") != ("f32",) * 3:
            raise UnsupportedError(f"SVDF node '{node.name}': a float32 SVDF needs float32 weights and bias")
        if b is not None and b.shape != (filters // rank,):
            raise UnsupportedError(f"SVDF node '{node.name}': bias {list(b.shape)}, expected [{filters // rank}]")
        return [((batch, filters // rank), "f32" if floats else "s8")]

    def reference(self, node, xs):
        """TFLite Micro's float SVDF: the same steps in float32, then the fused clamp."""
        x, wf, wt, b, st = xs
        batch, filters, memory = x.shape[0], wt.shape[0], wt.shape[1]
        rank = int(node.attrs["rank"])
        flat = st.reshape(-1)
        state = np.concatenate([flat[1:], flat[-1:]]).reshape(batch, filters, memory)
        state[:, :, memory - 1] = x.astype(np.float32) @ wf.T.astype(np.float32)
        y = np.einsum("bfm,fm->bf", state, wt).astype(np.float32).reshape(batch, -1, rank).sum(axis=2)
        if b is not None:
            y = y + b
        return [float_activation(node, y.astype(np.float32)), state.reshape(st.shape).astype(np.float32)]

    def qreference(self, node, xs, ins, outs):
        p = svdf_params(node, ins, outs)
        x, wf, wt, b, st = (None if v is None else np.asarray(v, np.int64) for v in xs)
        r = active_rounding()
        batch, filters, memory = p["batch"], p["filters"], p["memory"]
        flat = st.reshape(-1)
        flat = np.concatenate([flat[1:], flat[-1:]])  # 1. shift left by one element
        acc = (x - p["zp_in"]) @ wf.T  # 2. [batch, filters]
        acc = multiply_by_quantized_multiplier(acc, p["m1"], p["s1"], r)
        newest = np.clip(acc, p["state_min"], p["state_max"]) + p["zp_state"]
        state = flat.reshape(batch, filters, memory)
        state[:, :, memory - 1] = newest
        state = state.astype(_np(ins[4].dtype)).astype(np.int64)  # C's conversion to the state type
        dots = np.einsum("bfm,fm->bf", state - p["zp_state"], wt)  # 3.
        sums = dots.reshape(batch, p["units"], p["rank"]).sum(axis=2)  # 4.
        if b is not None:
            sums = sums + b
        sums = (sums + 2**31) % 2**32 - 2**31  # int32 as in C
        y = multiply_by_quantized_multiplier(sums, p["m2"], p["s2"], r) + p["zp_out"]  # 5.
        return [np.clip(y, p["act_min"], p["act_max"]).astype(np.int8), state.reshape(batch, -1).astype(_np(ins[4].dtype))]

    def macs(self, node, ins, outs):
        batch, n_in = ins[0].shape
        filters, memory = ins[2].shape
        return batch * filters * (n_in + memory)

    def kernel(self, node, ins, outs):
        if ins[0].dtype == "f32":
            batch, n_in = ins[0].shape
            filters, memory = ins[2].shape
            rank = int(node.attrs["rank"])
            return Kernel("f32/svdf.c.j2", dict(batch=batch, n_in=n_in, filters=filters, memory=memory, rank=rank,
                                                units=filters // rank, has_bias=ins[3] is not None, **act_params(node)))
        p = svdf_params(node, ins, outs)
        # the feature dot as dot(x, w) + a per-filter constant, two filters at a time (s8/_dot2.j2)
        term = offset_term(-p["zp_in"], ins[1].data) if ins[1].data is not None else None
        return Kernel("s8/svdf.c.j2", dict(p, state_ctype=c_type(node, ins[4].dtype), offset_term=term),
                      preamble=FIXEDPOINT, includes=("string.h",))


def _np(dtype: str) -> np.dtype:
    from ..ir import DTYPES

    return DTYPES[dtype]
