"""GRU (ONNX), float32, one node whose kernel runs the time loop.

Inputs as ONNX stores them, which is also what the kernel reads (gate order z, r, h):
  0 X [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1)
  1 W [dirs, 3*hidden, input]: rows z, r, h, each hidden rows (row j: the weights of unit j)
  2 R [dirs, 3*hidden, hidden], the same for the recurrent state
  3 B [dirs, 6*hidden]: Wb (z, r, h) then Rb
  4 sequence_lens (only all equal to seq), 5 initial_h [dirs, batch, hidden] (layout 0) or
    [batch, dirs, hidden]
Outputs: Y [seq, dirs, batch, hidden] (layout 0) or [batch, seq, dirs, hidden], Y_h as initial_h.
Attributes: direction, layout, hidden_size, activations (f, g per direction; default Sigmoid,
Tanh) with activation_alpha/beta, clip, linear_before_reset.

Per step and direction:  z, r = f(clip((x W^T + Wb) + (h R^T + Rb)))  for their rows;
n = g(clip((x W_h^T + Wb_h) + (r h) R_h^T + Rb_h)), or with linear_before_reset
g(clip((x W_h^T + Wb_h) + r (h R_h^T + Rb_h)));  h' = n + z (h - n).
"""
from __future__ import annotations

import numpy as np

from . import Kernel, register
from .rnn import Recurrent, activate, clip


@register
class GRU(Recurrent):
    name = "GRU"
    limits = ("one time-loop kernel; forward/reverse/bidirectional, layout 0/1, linear_before_reset, clip, "
              "initial state; activations as LSTM; float32")
    gates = 3
    default_activations = ["Sigmoid", "Tanh"]

    def reference(self, node, xs):
        geo = self.geometry_of_values(node, xs)
        H, cl = geo["hidden"], geo["clip"]
        x = self.steps(xs[0], geo)
        lbr = int(node.attrs.get("linear_before_reset", 0))
        has_b = len(xs) > 3 and xs[3] is not None
        ys, hs = [], []
        for d in range(geo["dirs"]):
            f, g = geo["acts"][2 * d: 2 * d + 2]
            xw = np.matmul(x, xs[1][d].T)
            rb = xs[3][d, 3 * H:] if has_b else np.zeros(3 * H, np.float32)
            if has_b:
                xw = xw + xs[3][d, :3 * H]
            r_zr, r_h = xs[2][d, :2 * H].T, xs[2][d, 2 * H:].T
            h = self.initial(xs, 5, d, geo)
            y = np.zeros((geo["seq"], geo["batch"], H), np.float32)
            for t in (range(geo["seq"] - 1, -1, -1) if geo["reverse"][d] else range(geo["seq"])):
                zr = xw[t, :, :2 * H] + (np.matmul(h, r_zr) + rb[:2 * H])
                z = activate(f, clip(zr[:, :H], cl))
                r = activate(f, clip(zr[:, H:], cl))
                if lbr:
                    rec = r * (np.matmul(h, r_h) + rb[2 * H:])
                else:
                    rec = np.matmul(r * h, r_h) + rb[2 * H:]
                n = activate(g, clip(xw[t, :, 2 * H:] + rec, cl))
                h = n + z * (h - n)
                y[t] = h
            ys.append(y)
            hs.append(h)
        return self.outputs(node, ys, [hs], geo)

    def kernel(self, node, ins, outs):
        p = self.loop_params(node, ins, outs)
        p.update(has_b=len(ins) > 3 and ins[3] is not None, lbr=int(node.attrs.get("linear_before_reset", 0)))
        B, H = p["B"], p["H"]
        # gates [B, 3H] (x projection, then z and r), h [B, H], r*h or the recurrent product [B, H]
        weights = {4: None} if len(ins) > 4 and ins[4] is not None else {}
        return Kernel("f32/gru.c.j2", p, includes=("math.h",), weights=weights, scratch=4 * B * (3 * H + 2 * H))
