"""TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM (float) -> tinyc's LSTM op (see ops/lstm.py), one node.

TFLite's 24 inputs: 0 input [batch, time, input] ([time, batch, input] when time_major);
1-4 input-to-gate weights i, f, c, o [hidden, input]; 5-8 recurrent weights i, f, c, o
[hidden, hidden]; 9-11 peepholes i, f, o [hidden]; 12-15 biases i, f, c, o; 16-17 projection;
18-19 the output and cell state (variables, zero at the start); 20-23 layer-norm coefficients.
They are stacked into ONNX's layout (gate order i, o, f, c; Rb zero): W [1, 4H, I], R [1, 4H, H],
B [1, 8H]. Gates use the sigmoid, the cell candidate and the output the fused activation (TANH;
others are refused); ``cell_clip`` bounds the cell state after each update. Projection, layer
norm, peepholes and CIFG (no input gate) are refused. The state starts from zero at every call
(TFLite Micro keeps it in its variable tensors between calls until reset).
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError

# TFLite's fused activation (ActivationFunctionType) -> the LSTM's cell and output function. Only
# TANH: TFLite Micro's float kernel gives other results for RELU than TFLite's definition.
_ACTIVATIONS = {4: "Tanh"}


def lstm_float(c, op) -> None:
    """The float operator (``c``: tflite_ops._Op) as one LSTM node followed by a view of its output."""
    r = c.r
    opts = c.options("UnidirectionalSequenceLSTMOptions")
    x = c.input(0, rank=3)
    if r.is_quantized(x):  # (int8 input goes to tflite_lstm_int)
        c.fail(f"UNIDIRECTIONAL_SEQUENCE_LSTM with {r.dtype(x)} input is not supported (float32 and int8 are)", UnsupportedError)
    if c.optional(1) is None:
        c.fail("CIFG (no input gate) is not supported", UnsupportedError)
    if any(c.optional(k) is not None for k in (16, 17)):
        c.fail("projection is not supported", UnsupportedError)
    if any(c.optional(k) is not None for k in (20, 21, 22, 23)):
        c.fail("layer normalization is not supported", UnsupportedError)
    if opts.FusedActivationFunction() not in _ACTIVATIONS:
        c.fail(f"fused activation {opts.FusedActivationFunction()} is not supported (only TANH)", UnsupportedError)
    if opts.DiagonalRecurrentTensors():
        c.fail("diagonal recurrent weights are not supported", UnsupportedError)
    if any(r.dtype(c.input(k)) != "f32" for k in range(1, 9)):
        c.fail("hybrid LSTM (integer weights, float activations) is not supported", UnsupportedError)
    if any(c.optional(k) is not None for k in (9, 10, 11)):
        c.fail("peepholes are not supported (TFLite Micro's kernel refuses them too)", UnsupportedError)
    xs = r.shape(x)
    hidden = r.shape(c.input(5))[0] if r.shape(c.input(5)) else 0
    for ks, shape in ((range(1, 5), (hidden, xs[2])), (range(5, 9), (hidden, hidden)), (range(12, 16), (hidden,))):
        for k in ks:
            if r.shape(c.input(k)) != shape or hidden < 1:
                c.fail(f"input {k} '{r.tname(c.input(k))}' has shape {list(r.shape(c.input(k)))}, expected {list(shape)} "
                       f"(input {list(xs)}, hidden size {hidden})")
    i_order = (0, 3, 1, 2)  # ONNX's i, o, f, c from TFLite's i, f, c, o
    w = np.concatenate([r.const(c.input(1 + k)) for k in i_order])[None]
    rr = np.concatenate([r.const(c.input(5 + k)) for k in i_order])[None]
    bias = np.concatenate([r.const(c.input(12 + k)) for k in i_order] + [np.zeros(4 * hidden, np.float32)])[None]
    time_major = bool(opts.TimeMajor())
    g = r.g
    ins = [r.value(x)] + [g.add_const(g.unique_name(f"{c.name}/{what}"), v).name
                          for what, v in (("W", w), ("R", rr), ("B", bias))]
    act = _ACTIVATIONS[opts.FusedActivationFunction()]
    attrs = {"hidden_size": hidden, "layout": 0 if time_major else 1, "activations": ["Sigmoid", act, act]}
    if opts.CellClip() > 0:
        attrs["cell_clip"] = float(opts.CellClip())
    y = g.unique_name(f"{c.name}/Y")
    r.node("LSTM", c.name, ins, [y], attrs)
    c.reshape_to_output(y)
