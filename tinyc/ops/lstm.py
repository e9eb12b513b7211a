"""LSTM (ONNX), float32, one node whose kernel runs the time loop.

Inputs as ONNX stores them, which is also what the kernel reads (gate order i, o, f, c):
  0 X [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1)
  1 W [dirs, 4*hidden, input]: rows i, o, f, c, each hidden rows; row j of a gate is the weights of
    its unit j (the kernel takes dot products with contiguous rows)
  2 R [dirs, 4*hidden, hidden], the same for the recurrent state
  3 B [dirs, 8*hidden]: Wb (i, o, f, c) then Rb; the kernel reads Wb + Rb ([dirs, 4*hidden],
    computed at compile time)
  4 sequence_lens (only all equal to seq), 5 initial_h, 6 initial_c [dirs, batch, hidden] (layout 0)
    or [batch, dirs, hidden], 7 P [dirs, 3*hidden]: peepholes i, o, f
Outputs: Y [seq, dirs, batch, hidden] (layout 0) or [batch, seq, dirs, hidden], Y_h, Y_c as the
initial states. Attributes: direction (forward, reverse, bidirectional: direction 1 runs
backwards), layout, hidden_size, activations (f, g, h per direction; default Sigmoid, Tanh, Tanh)
with activation_alpha/beta, clip (bound of the gates' pre-activations), input_forget (f = 1 - i), and tinyc's own cell_clip
(TFLite's: the bound of the cell state after each update; no ONNX model has it).

Per step and direction:  gates = (x W^T + (Wb + Rb)) + h R^T;  i = f(clip(gi + P_i c));
f = f(clip(gf + P_f c)) or 1 - i;  c' = cell_clip(f c + i g(clip(gc)));  o = f(clip(go + P_o c'));  h' = o h(c').
"""
from __future__ import annotations

import numpy as np

from . import Kernel, register
from .rnn import Recurrent, activate, clip


@register
class LSTM(Recurrent):
    name = "LSTM"
    limits = ("one time-loop kernel; forward/reverse/bidirectional, layout 0/1, peepholes, clip, input_forget, "
              "initial states; activations Sigmoid/Tanh/Relu/LeakyRelu/HardSigmoid/Elu; float32; int8 (--quantize: "
              "TFLite Micro's integer LSTM) forward, layout 0, default activations, output Y only, none of the rest")
    gates = 4
    default_activations = ["Sigmoid", "Tanh", "Tanh"]
    const_inputs = {**Recurrent.const_inputs, 7: "P"}

    @staticmethod
    def bias_sum(b: np.ndarray) -> np.ndarray:
        """Wb + Rb per direction: [dirs, 4*hidden]."""
        h4 = b.shape[1] // 2
        with np.errstate(over="ignore"):  # (to inf, as float32 arithmetic at run time)
            return (b[:, :h4] + b[:, h4:]).astype(np.float32)

    def lower_int8(self, cx, node, out, act):
        from .lstm_quant import lower
        return lower(cx, node, out)

    def internal_ranges(self, node, xs):
        """The cell state's range (int8 quantization gives it a power-of-two int16 scale)."""
        cells: list[np.ndarray] = []
        self.reference(node, xs, cells)
        return {"cell": (min(float(c.min()) for c in cells), max(float(c.max()) for c in cells))} if cells else {}

    def reference(self, node, xs, cells: list | None = None):
        geo = self.geometry_of_values(node, xs)
        H, cl = geo["hidden"], geo["clip"]
        x = self.steps(xs[0], geo)
        input_forget = int(node.attrs.get("input_forget", 0))
        b = self.bias_sum(xs[3]) if len(xs) > 3 and xs[3] is not None else None
        p = xs[7] if len(xs) > 7 and xs[7] is not None else None
        ys, hs, cs = [], [], []
        for d in range(geo["dirs"]):
            f, g, hf = geo["acts"][3 * d: 3 * d + 3]
            xw = np.matmul(x, xs[1][d].T)
            if b is not None:
                xw = xw + b[d]
            rt = xs[2][d].T
            h, c = self.initial(xs, 5, d, geo), self.initial(xs, 6, d, geo)
            y = np.zeros((geo["seq"], geo["batch"], H), np.float32)
            for t in (range(geo["seq"] - 1, -1, -1) if geo["reverse"][d] else range(geo["seq"])):
                pre = xw[t] + np.matmul(h, rt)
                gi, go, gf, gc = (pre[:, k * H:(k + 1) * H] for k in range(4))
                if p is not None:
                    gi = gi + c * p[d, :H]
                    gf = gf + c * p[d, 2 * H:]
                i = activate(f, clip(gi, cl))
                fg = np.float32(1) - i if input_forget else activate(f, clip(gf, cl))
                c = clip(fg * c + i * activate(g, clip(gc, cl)), node.attrs.get("cell_clip"))
                if cells is not None:
                    cells.append(c)
                if p is not None:
                    go = go + c * p[d, H:2 * H]
                h = activate(f, clip(go, cl)) * activate(hf, c)
                y[t] = h
            ys.append(y)
            hs.append(h)
            cs.append(c)
        return self.outputs(node, ys, [hs, cs], geo)

    def kernel(self, node, ins, outs):
        p = self.loop_params(node, ins, outs)
        has_b = len(ins) > 3 and ins[3] is not None
        p.update(has_b=has_b, has_c0=len(ins) > 6 and ins[6] is not None, has_p=len(ins) > 7 and ins[7] is not None,
                 input_forget=int(node.attrs.get("input_forget", 0)), cell_clip=node.attrs.get("cell_clip"))
        B, H = p["B"], p["H"]
        # gates [B, 4H], h [B, H], c [B, H]
        weights = {3: self.bias_sum(ins[3].data)} if has_b else {}
        if len(ins) > 4 and ins[4] is not None:
            weights[4] = None
        return Kernel("f32/lstm.c.j2", p, includes=("math.h",), weights=weights, scratch=4 * B * (4 * H + 2 * H))
