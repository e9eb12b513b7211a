"""GruInt8: an integer GRU of the design of TFLite Micro's integer LSTM (lstm_int.py), one node with
the time loop inside; what tinyc's quantizer makes of an ONNX GRU (``--quantize int8``; TFLite has
no GRU, so there is no TFLite Micro oracle: tests compare with the float model).

Inputs: x int8 [T,B,I] (ONNX layout 0), w_x int8 [3H,I], w_h int8 [3H,H] (rows z, r, h as ONNX),
b_x int32 [3H], b_h int32 [3H] (ONNX's Wb and Rb). Weights per tensor for each gate matrix (the
rows' scales repeat per gate). Output: int8 [T,1,B,H] (ONNX's Y), the hidden state after each step.
Every call starts from h = 0.

One step (linear_before_reset=1, PyTorch's GRU), per unit:
- ``gx[g] = clamp16(mbqm(sum w_x*(x - zp_x) + b_x, mx[g], sx[g]))`` and ``gh[g]`` likewise from the int8
  hidden state: the gates' inputs in Q3.12 (scale 2^-12), as TFLite Micro's LSTM;
- ``z = sigmoid16(clamp16(gx[z] + gh[z]))``, r likewise: TFLite's int16 LOGISTIC, Q0.15;
- ``n = tanh16(clamp16(gx[h] + ((r * gh[h] + 2^14) >> 15)))``: TFLite's int16 TANH, Q0.15;
- the state ``s`` (int16, Q0.15, kept between steps): ``s = ((32768 - z) * n + z * s + 2^14) >> 15``
  (a convex combination: never outside int16), and the int8 hidden state
  ``h = clamp8(mbqm(s, m_h, s_h) + zp_h)`` (the output, and the next step's recurrent input).
Keeping ``s`` in int16 lets updates smaller than the int8 step accumulate, as the LSTM's cell state.
"""
from __future__ import annotations

import numpy as np

from ..ir import Node
from . import FIXEDPOINT, Kernel, register
from .lstm_int import ACT_SCALE, IntegerRecurrence, GATE_SCALE, SIGMOID_TABLE, _c16, _mbqm, _mult, _requant_c, sigmoid16, tanh16


def gru_int8_attrs(x_scale: float, x_zp: int, w_scales: list[tuple[float, float]], h_scale: float, h_zp: int) -> dict:
    """The node's real multipliers from the float32 scales; ``w_scales``: per gate (z, r, h) the
    scales of its input and recurrent weights."""
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    return dict(gate_x=[f32(x_scale) * f32(wx) / GATE_SCALE for wx, _ in w_scales],
                gate_h=[f32(h_scale) * f32(wh) / GATE_SCALE for _, wh in w_scales],
                hid=ACT_SCALE / f32(h_scale), x_zp=int(x_zp), h_zp=int(h_zp))


def constants(node: Node) -> dict:
    a = node.attrs
    return dict(gx=[_mult(r) for r in a["gate_x"]], gh=[_mult(r) for r in a["gate_h"]], hid=_mult(a["hid"]))


def gru_int8(node: Node, x, wx, wh, bx, bh) -> np.ndarray:
    a, k = node.attrs, constants(node)
    T, B, _ = x.shape
    H = wh.shape[1]
    wx, wh = wx.astype(np.int64), wh.astype(np.int64)
    out = np.zeros((T, 1, B, H), np.int8)
    h = np.full((B, H), a["h_zp"], np.int64)
    s = np.zeros((B, H), np.int64)
    for t in range(T):
        accx = (x[t].astype(np.int64) - a["x_zp"]) @ wx.T + bx.astype(np.int64)
        acch = (h - a["h_zp"]) @ wh.T + bh.astype(np.int64)
        gx = [_c16(_mbqm(accx[:, g * H:(g + 1) * H], k["gx"][g])) for g in range(3)]
        gh = [_c16(_mbqm(acch[:, g * H:(g + 1) * H], k["gh"][g])) for g in range(3)]
        z, r = sigmoid16(_c16(gx[0] + gh[0])), sigmoid16(_c16(gx[1] + gh[1]))
        n = tanh16(_c16(gx[2] + ((r * gh[2] + (1 << 14)) >> 15)), 3, 0)
        s = ((32768 - z) * n + z * s + (1 << 14)) >> 15
        h = np.clip(_mbqm(s, k["hid"]) + a["h_zp"], -128, 127)
        out[t, 0] = h
    return out


def gru_float(x, wx, wh, bx, bh) -> np.ndarray:
    """The float meaning (ONNX GRU, linear_before_reset=1) on dequantized weights."""
    T, B, _ = x.shape
    H = wh.shape[1]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    h = np.zeros((B, H), np.float32)
    out = np.zeros((T, 1, B, H), np.float32)
    for t in range(T):
        gx, gh = x[t] @ wx.T + bx, h @ wh.T + bh
        z, r = sig(gx[:, :H] + gh[:, :H]), sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        h = n + z * (h - n)
        out[t, 0] = h
    return out.astype(np.float32)


@register
class GruInt8(IntegerRecurrence):
    name = "GruInt8"
    limits = "int8 GRU (tinyc's --quantize int8 of an ONNX GRU): forward, layout 0, linear_before_reset=1"

    def infer(self, node, ins):
        x, wh = ins[0], ins[2]
        return [((x.shape[0], 1, x.shape[1], wh.shape[1]), "s8")]

    def reference(self, node, xs):
        return [gru_float(*xs[:5])]

    def qreference(self, node, xs, ins, outs):
        return [gru_int8(node, *xs[:5])]

    def kernel(self, node, ins, outs):
        a, k = node.attrs, constants(node)
        x, wx, wh = ins[:3]
        bxf, bhf = self.folded_biases(node, ins)
        T, B, I = x.shape
        H = wh.shape[1]

        def bound(w, bias, g):
            rows = slice(g * H, (g + 1) * H)
            return int(np.max(np.abs(bias[rows].astype(np.int64)) + 128 * np.abs(w[rows].astype(np.int64)).sum(axis=1)))
        p = dict(T=T, B=B, I=I, H=H, h_zp=a["h_zp"], table=SIGMOID_TABLE.tolist(),
                 gx=[_requant_c(k["gx"][g], bound(wx.data, bxf, g)) for g in range(3)],
                 gh=[_requant_c(k["gh"][g], bound(wh.data, bhf, g)) for g in range(3)],
                 hid=_requant_c(k["hid"], 32768))
        # scratch: z, r, the input part of the candidate, its recurrent part (int16 [4H]), the state
        # s (int16 [H]), the initial hidden state (int8 [H])
        return Kernel("s8/gru.c.j2", p, includes=("stdint.h", "string.h"), preamble=FIXEDPOINT + ("s8/lstm_helpers.c.j2",),
                      weights={3: bxf, 4: bhf}, scratch=11 * H)
