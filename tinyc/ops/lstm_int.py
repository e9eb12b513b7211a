"""LstmInt8: TFLite Micro's integer LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM with int8 activations and
weights, int16 gates and cell state), one node with the time loop inside.

Inputs: x int8 [B,T,I] (or [T,B,I] with ``time_major``), w_x int8 [4H,I], w_h int8 [4H,H], b_x int32
[4H], b_h int32 [4H] (zeros from TFLite, which has no recurrent bias), rows in gate order input,
forget, cell, output. Output: int8 [B,T,H] (or [T,B,H]), the hidden state after each step. Every
call starts from TFLite Micro's reset state: hidden = its zero point, cell = 0.

One step, per gate g (TFLite Micro's lstm_eval, reference kernels):
- ``a = clamp16(mbqm(sum w_x*(x - zp_x) + b_x, mx[g], sx[g])) + clamp16(mbqm(sum w_h*(h - zp_h) + b_h,
  mh[g], sh[g]))`` saturated to int16: the gate's input in Q3.12 (scale 2^-12);
- sigmoid (input, forget, output) or tanh (cell gate, ``cell_act``) on it: TFLite's int16 LOGISTIC /
  TANH (a 256-entry table of sigmoid(i/24), interpolated), result in Q0.15;
- ``c = clamp16(clamp16(mbqm(f*c, m_fc, s_fc)) + clamp16(mbqm(i*g, m_ig, s_ig)))``, clipped to
  +-``clip`` when the model sets a cell clip;
- ``h = clamp8(mbqm(tanh(c) * o, m_h, s_h) + zp_h)`` with tanh's input scaled from the cell state's
  power-of-two scale (``tanh_mult``, ``tanh_shift``).

The attributes hold every constant (computed by :func:`lstm_int8_attrs` from the TFLite tensors'
scales); mbqm is MultiplyByQuantizedMultiplier in the graph's rounding mode.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node, Tensor
from ..quant.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..quant.requant import Requant
from ..quant.rounding import active as active_rounding
from . import FIXEDPOINT, Kernel, Op, offset_term, register

GATES = ("input", "forget", "cell", "output")
GATE_SCALE = 2.0 ** -12  # TFLite Micro: the gates' fixed-point input, Q3.12
ACT_SCALE = 2.0 ** -15  # the sigmoid/tanh output, Q0.15

# TFLite's sigmoid(i/24) in unsigned Q0.16 for i = 0..255 (the table its int16 LOGISTIC and TANH
# interpolate; the values are not exactly rounded sigmoid, so they are data, not a formula)
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], np.int64)


def _mult(real: float) -> list[int]:
    m, s = quantize_multiplier(real, active_rounding())
    return [m, s]


def lstm_int8_attrs(x_scale: float, x_zp: int, w_scales: list[tuple[float, float]], h_scale: float, h_zp: int,
                    cell_scale: float, cell_clip: float, cell_act: str, time_major: bool) -> dict:
    """The node's constants from the tensors' float32 scales, as TFLite Micro's Prepare computes them
    (lstm_eval_common: PrepareGateParametersInteger, CreateLstmCellStateInfo). ``w_scales``: per
    gate (input, forget, cell, output) the scales of its input and recurrent weights. The
    multipliers are kept as reals here and quantized in the active rounding mode by the users."""
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    gx = [f32(x_scale) * f32(wx) / GATE_SCALE for wx, _ in w_scales]
    gh = [f32(h_scale) * f32(wh) / GATE_SCALE for _, wh in w_scales]
    # CheckedLog2 (float32 log, rounded; TFLite Micro does not check that the scale is a power of 2)
    log2 = np.float32(np.log(np.float32(cell_scale))) * np.float32(1.0 / np.log(np.float32(2.0)))
    power = int(np.round(log2))
    lshift = 15 + power - 3  # tanh's input shift from the cell's Q format to Q3.12 (times 3, see _tanh)
    tanh_mult, tanh_shift = (3, -lshift) if lshift < 0 else (3 << lshift, 0)
    clip = int(np.clip(f32(cell_clip) / f32(cell_scale), -32768.0, 32767.0)) if cell_clip > 0 else 0
    return dict(gate_x=gx, gate_h=gh, fc=ACT_SCALE * f32(cell_scale) / f32(cell_scale),
                ig=ACT_SCALE * ACT_SCALE / f32(cell_scale), hid=ACT_SCALE * ACT_SCALE / f32(h_scale),
                x_zp=int(x_zp), h_zp=int(h_zp), tanh_mult=tanh_mult, tanh_shift=tanh_shift, clip=clip,
                cell_act=cell_act, cell_clip=f32(cell_clip), time_major=int(bool(time_major)))


def constants(node: Node) -> dict:
    """Q31 multipliers and shifts (in the active rounding) of the node's real multipliers."""
    a = node.attrs
    return dict(gx=[_mult(r) for r in a["gate_x"]], gh=[_mult(r) for r in a["gate_h"]], fc=_mult(a["fc"]),
                ig=_mult(a["ig"]), hid=_mult(a["hid"]))


def _requant_c(ms: list[int], bound: int) -> dict:
    """How the kernel requantizes with (multiplier, shift) ``ms`` accumulators up to ``bound``:
    the fast form (tinyc/quant/requant.py: one 64-bit multiply, an add and a shift) where it gives
    the same integers, tinyc_mbqm otherwise."""
    rq = Requant((ms[0],), (ms[1],), 0, -32768, 32767, active_rounding())
    fast = rq.fast_form(bound)
    if fast is None:
        return dict(fast=False, m=ms[0], s=ms[1])
    return dict(fast=True, m=fast["mult"][0], rnd=fast["rnd"][0], r=fast["rshift"][0])


def _mbqm(x, ms):
    return multiply_by_quantized_multiplier(x, ms[0], ms[1], active_rounding())


def _c16(x):
    return np.clip(x, -32768, 32767)


def sigmoid16(x: np.ndarray) -> np.ndarray:
    """TFLite's int16 LOGISTIC for a Q3.12 input (input multiplier 3, no shift)."""
    v = np.asarray(x, np.int64) * 3
    a = np.abs(v)
    uh = a >> 9
    i = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[i], SIGMOID_TABLE[i + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return r >> 10


def tanh16(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """TFLite's int16 TANH: input scaled by ``mult`` and a rounding right shift, to 3/4 of Q3.12."""
    v = np.asarray(x, np.int64) * mult
    if shift > 0:
        v = (v + (1 << (shift - 1))) >> shift
    a = np.abs(v)
    uh = a >> 8
    i = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[i], SIGMOID_TABLE[i + 1]
    r = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return r >> 8


def _activate(pre: np.ndarray, k: int, cell_act: str) -> np.ndarray:
    return tanh16(pre, 3, 0) if k == 2 and cell_act == "tanh" else sigmoid16(pre)


def lstm_int8(node: Node, x: np.ndarray, wx: np.ndarray, wh: np.ndarray, bx: np.ndarray, bh: np.ndarray) -> np.ndarray:
    a, k = node.attrs, constants(node)
    tm = a["time_major"]
    xs = np.swapaxes(x, 0, 1) if tm else x  # [B, T, I]
    B, T, _ = xs.shape
    H = wh.shape[1]
    wx, wh = wx.astype(np.int64), wh.astype(np.int64)
    out = np.zeros((B, T, H), np.int8)
    h = np.full((B, H), a["h_zp"], np.int64)
    c = np.zeros((B, H), np.int64)
    for t in range(T):
        xt = xs[:, t].astype(np.int64) - a["x_zp"]
        accx = xt @ wx.T + bx.astype(np.int64)
        acch = (h - a["h_zp"]) @ wh.T + bh.astype(np.int64)
        gates = []
        for g in range(4):
            sl = slice(g * H, (g + 1) * H)
            pre = _c16(_c16(_mbqm(accx[:, sl], k["gx"][g])) + _c16(_mbqm(acch[:, sl], k["gh"][g])))
            gates.append(_activate(pre, g, a["cell_act"]))
        i, f, gc, o = gates
        c = _c16(_c16(_mbqm(f * c, k["fc"])) + _c16(_mbqm(i * gc, k["ig"])))
        if a["clip"]:
            c = np.clip(c, -a["clip"], a["clip"])
        h = np.clip(_mbqm(tanh16(c, a["tanh_mult"], a["tanh_shift"]) * o, k["hid"]) + a["h_zp"], -128, 127)
        out[:, t] = h
    return np.swapaxes(out, 0, 1) if tm else out


def lstm_float(node: Node, x, wx, wh, bx, bh) -> np.ndarray:
    a = node.attrs
    xs = np.swapaxes(x, 0, 1) if a["time_major"] else x
    B, T, _ = xs.shape
    H = wh.shape[1]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    h, c = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    out = np.zeros((B, T, H), np.float32)
    for t in range(T):
        z = xs[:, t] @ wx.T + bx + h @ wh.T + bh
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c = sig(f) * c + sig(i) * (np.tanh(g) if a["cell_act"] == "tanh" else sig(g))
        if a["cell_clip"] > 0:
            c = np.clip(c, -a["cell_clip"], a["cell_clip"])
        h = sig(o) * np.tanh(c)
        out[:, t] = h
    out = out.astype(np.float32)
    return np.swapaxes(out, 0, 1) if a["time_major"] else out


class IntegerRecurrence(Op):
    """What the integer LSTM and GRU share: the multiply-accumulates of the input and recurrent
    products over all steps, and the biases with the zero-point terms folded in (the kernels then
    accumulate the raw int8 values)."""

    internal = True

    def macs(self, node, ins, outs):
        x, wx, wh = ins[0], ins[1], ins[2]
        return x.shape[0] * x.shape[1] * (wx.shape[0] * wx.shape[1] + wh.shape[0] * wh.shape[1])

    def folded_biases(self, node, ins) -> tuple[np.ndarray, np.ndarray]:
        """(input bias, recurrent bias) as int32 with -zp * sum(weights) added per row."""
        a = node.attrs
        wx, wh, bx, bh = ins[1:5]
        if any(t.data is None for t in (wx, wh, bx, bh)):
            raise UnsupportedError(f"{node.op} node '{node.name}': weights and biases must be constants")
        tx, th = offset_term(-a["x_zp"], wx.data), offset_term(-a["h_zp"], wh.data)
        if tx is None or th is None:
            raise UnsupportedError(f"{node.op} node '{node.name}': the zero-point terms overflow int32")
        return ((bx.data.astype(np.int64) + np.asarray(tx)).astype(np.int32),
                (bh.data.astype(np.int64) + np.asarray(th)).astype(np.int32))


@register
class LstmInt8(IntegerRecurrence):
    name = "LstmInt8"
    limits = "TFLite Micro's int8 LSTM: no peephole, projection, layer norm or CIFG; per-tensor weights"

    def infer(self, node, ins):
        x, wh = ins[0], ins[2]
        return [((x.shape[0], x.shape[1], wh.shape[1]), "s8")]

    def reference(self, node, xs):
        """The float meaning (tinyc diff's float twin: weights and biases dequantized)."""
        return [lstm_float(node, *xs[:5])]

    def qreference(self, node, xs, ins, outs):
        return [lstm_int8(node, *xs[:5])]

    def kernel(self, node, ins, outs):
        a, k = node.attrs, constants(node)
        x, wx, wh = ins[:3]
        bxf, bhf = self.folded_biases(node, ins)
        H, I = wh.shape[1], wx.shape[1]
        tm = a["time_major"]
        B, T = (x.shape[1], x.shape[0]) if tm else (x.shape[0], x.shape[1])
        # the largest |accumulator| per gate (inputs in [-128, 127]); the products of two int16 gate
        # values (one a sigmoid in [0, 32767]) stay below 32767 * 32768
        def bound(w, bias, g):
            rows = slice(g * H, (g + 1) * H)
            return int(np.max(np.abs(bias[rows].astype(np.int64)) + 128 * np.abs(w[rows].astype(np.int64)).sum(axis=1)))
        prod = 32767 * 32768
        p = dict(B=B, T=T, I=I, H=H, time_major=tm,
                 gx=[_requant_c(k["gx"][g], bound(wx.data, bxf, g)) for g in range(4)],
                 gh=[_requant_c(k["gh"][g], bound(wh.data, bhf, g)) for g in range(4)],
                 fc=_requant_c(k["fc"], prod), ig=_requant_c(k["ig"], prod), hid=_requant_c(k["hid"], prod),
                 h_zp=a["h_zp"], tanh_mult=a["tanh_mult"], tanh_shift=a["tanh_shift"], clip=a["clip"],
                 cell_tanh=a["cell_act"] == "tanh", table=SIGMOID_TABLE.tolist(),
                 x_step=(B * I if tm else I), y_step=(B * H if tm else H), x_batch=(I if tm else T * I),
                 y_batch=(H if tm else T * H))
        # scratch: the gates of one step (int16 [4H]), the cell state (int16 [H]), the initial hidden state
        # (int8 [H]); later steps read the hidden state from the previous step's output
        p["wide"] = False
        return Kernel("s8/lstm.c.j2", p, includes=("stdint.h", "string.h"), preamble=FIXEDPOINT + ("s8/lstm_helpers.c.j2",),
                      weights={3: bxf, 4: bhf}, scratch=11 * H)

    def kernel_for(self, node, ins, outs, variants=(), weights="wide"):
        """On cores with the DSP extension (without Helium, whose dot2 path takes 16 products an
        instruction): weights widened to int16 (rows padded to an even length), the step's input and
        hidden state widened once into scratch, two products per SMLAD with no unpacking."""
        k = self.kernel(node, ins, outs)
        if "dsp" not in variants or "mve" in variants:
            return k
        p = k.params
        ie, he = p["I"] + p["I"] % 2, p["H"] + p["H"] % 2

        def wide(w, cols):
            out = np.zeros((w.shape[0], cols), np.int16)
            out[:, :w.shape[1]] = w
            return out
        p.update(wide=True, Ie=ie, He=he)
        k.weights.update({1: wide(ins[1].data, ie), 2: wide(ins[2].data, he)})
        k.scratch += 2 * (ie + he)
        return k
