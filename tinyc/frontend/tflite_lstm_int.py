"""UNIDIRECTIONAL_SEQUENCE_LSTM with int8 activations -> one LstmInt8 node (tinyc/ops/lstm_int.py).

TFLite Micro's integer LSTM: int8 input, output and hidden state, int8 weights per tensor, int32 gate
biases, int16 cell state. The variants TFLite Micro refuses (CIFG, peephole, projection, layer
norm) are refused here too, naming the operator. Its intermediate tensors carry no scale TFLite
Micro uses: the gates' scales are fixed (2^-12 in, 2^-15 out).
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import QuantParams
from ..ops.lstm_int import lstm_int8_attrs

# the operator's 24 inputs (TFLite's kLstm*Tensor indices)
X, WX, WH, PEEPHOLE, BIAS, PROJECTION, H_STATE, C_STATE, LAYER_NORM = 0, 1, 5, 9, 12, 16, 18, 19, 20
# the cell gate's nonlinearity: TFLite Micro also has sigmoid, but a .tflite file cannot say so (the
# schema's activations stop at SIGN_BIT; what it does not know reads as none, which TFLite Micro refuses)
_ACTIVATIONS = {4: "tanh"}


def _per_tensor(c, i: int, what: str) -> QuantParams:
    q = c.r.quant(i)
    if q is None or q.axis is not None:
        c.fail(f"{what} '{c.r.tname(i)}' must be quantized per tensor", UnsupportedError)
    return q


def import_lstm_int8(c, op) -> None:
    r = c.r
    opts = c.options("UnidirectionalSequenceLSTMOptions")
    for first, count, what in ((PEEPHOLE, 3, "peephole weights"), (PROJECTION, 2, "a projection"),
                               (LAYER_NORM, 4, "layer normalization")):
        if any(c.optional(k) is not None for k in range(first, first + count)):
            c.fail(f"LSTM with {what} is not supported (TFLite Micro's integer LSTM has none)", UnsupportedError)
    needed = [X] + list(range(WX, WX + 8)) + list(range(BIAS, BIAS + 4)) + [H_STATE, C_STATE]
    missing = [k for k in needed if c.optional(k) is None]
    if missing:
        c.fail(f"inputs {missing} are absent (CIFG LSTM is not supported)", UnsupportedError)
    if opts.DiagonalRecurrentTensors():
        c.fail("diagonal recurrent weights are not supported", UnsupportedError)
    act = _ACTIVATIONS.get(opts.FusedActivationFunction())
    if act is None:
        c.fail(f"cell activation {opts.FusedActivationFunction()} is not TANH (4), the one TFLite Micro runs",
               UnsupportedError)
    x, h, cs = c.ins[X], c.ins[H_STATE], c.ins[C_STATE]
    if len(r.shape(x)) != 3:
        c.fail(f"input '{r.tname(x)}' has shape {list(r.shape(x))}, expected rank 3")
    if r.ttype(h) != 9 or r.ttype(cs) != 7:
        c.fail("the integer LSTM needs an int8 hidden state and an int16 cell state", UnsupportedError)
    qx, qh, qc = _per_tensor(c, x, "input"), _per_tensor(c, h, "hidden state"), _per_tensor(c, cs, "cell state")
    ws = [r.const(c.ins[WX + k]) for k in range(8)]
    if any(r.ttype(c.ins[WX + k]) != 9 for k in range(8)) or any(r.ttype(c.ins[BIAS + k]) != 2 for k in range(4)):
        c.fail("the integer LSTM needs int8 weights and int32 biases", UnsupportedError)
    qw = [_per_tensor(c, c.ins[WX + k], "weights") for k in range(8)]
    if any(int(q.zero_point) != 0 for q in qw):
        c.fail("weights must be symmetric (zero point 0)", UnsupportedError)
    hidden = ws[4].shape[1] if ws[4].ndim == 2 else -1
    inputs = r.shape(x)[2]
    if any(w.shape != (hidden, inputs) for w in ws[:4]) or any(w.shape != (hidden, hidden) for w in ws[4:]):
        c.fail(f"weights of shapes {[list(w.shape) for w in ws]} do not fit {inputs} inputs")
    bias = [r.const(c.ins[BIAS + k]) for k in range(4)]
    if any(b.shape != (hidden,) for b in bias):
        c.fail(f"biases must have {hidden} values")
    attrs = lstm_int8_attrs(float(qx.scale), int(qx.zero_point), [(float(qw[k].scale), float(qw[k + 4].scale))
                                                                  for k in range(4)],
                            float(qh.scale), int(qh.zero_point), float(qc.scale), float(opts.CellClip()), act,
                            bool(opts.TimeMajor()))
    g = r.g
    base = r.tname(c.outs[0])
    row_scales = np.repeat([np.float32(q.scale) for q in qw[:4]], hidden)
    wx = g.add_const(g.unique_name(f"{base}/input_weights"), np.concatenate(ws[:4]).astype(np.int8))
    wx.quant = QuantParams(row_scales, np.zeros(4 * hidden, np.int32), 0)
    wh = g.add_const(g.unique_name(f"{base}/recurrent_weights"), np.concatenate(ws[4:]).astype(np.int8))
    wh.quant = QuantParams(np.repeat([np.float32(q.scale) for q in qw[4:]], hidden), np.zeros(4 * hidden, np.int32), 0)
    bx = g.add_const(g.unique_name(f"{base}/bias"), np.concatenate(bias).astype(np.int32))
    bh = g.add_const(g.unique_name(f"{base}/recurrent_bias"), np.zeros(4 * hidden, np.int32))
    zeros = np.zeros(4 * hidden, np.int32)  # the biases' units: the input's (hidden state's) scale x the weights'
    bx.quant = QuantParams((np.float64(qx.scale) * wx.quant.scale).astype(np.float32), zeros, 0)
    bh.quant = QuantParams((np.float64(qh.scale) * wh.quant.scale).astype(np.float32), zeros, 0)
    out = g.unique_name(base)
    r.node("LstmInt8", c.name, [r.define(x), wx.name, wh.name, bx.name, bh.name], [out], attrs, normalized=True)
    o = c.outs[0]
    if g.tensors[out].shape != r.shape(o):
        c.fail(f"output '{r.tname(o)}' has shape {list(r.shape(o))}, tinyc computes {list(g.tensors[out].shape)}")
    g.tensors[out].quant = _per_tensor(c, o, "output")
    r.names[o] = out
