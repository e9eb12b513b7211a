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

from ..errors import UnsupportedError
from ..ir import Node, QuantParams
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

    # -- int8: tinyc's quantizer makes a GruInt8 (gru_int.py) of a float GRU

    def int8_form(self, node, g):
        """Refuses in one line what GruInt8 lacks; Y_h (the last step of Y) becomes a Gather of Y,
        so that it shares Y's quantization and the GRU keeps one output."""
        a, why = node.attrs, None
        h0 = node.inputs[5] if len(node.inputs) > 5 else None
        consts = [g.tensors[x] for x in node.inputs[1:4] if x is not None]
        if a.get("direction", "forward") != "forward":
            why = f"direction {a['direction']} (only forward)"
        elif int(a.get("layout", 0)) != 0:
            why = "layout 1 (only 0)"
        elif int(a.get("linear_before_reset", 0)) != 1:
            why = "linear_before_reset=0 (only 1, PyTorch's GRU)"
        elif a.get("activations") and list(a["activations"]) != self.default_activations:
            why = f"activations {list(a['activations'])} (only Sigmoid, Tanh)"
        elif a.get("clip") is not None:
            why = "clip"
        elif len(node.inputs) > 4 and node.inputs[4] is not None:
            why = "sequence_lens"
        elif h0 is not None and (g.tensors[h0].data is None or np.any(g.tensors[h0].data != 0)):
            why = "initial_h (only zero)"
        elif any(t.data is None for t in consts) or len(consts) < 2:
            why = "W, R and B must be constants"
        elif g.tensors[node.inputs[0]].shape[1] < 1:
            why = "empty batch"
        if why:
            raise UnsupportedError(f"GRU node '{node.name}': int8 quantization does not support {why}")
        outs = [o for o in node.outputs]
        if len(outs) < 2 or not outs[1]:
            return None
        seq = g.tensors[node.inputs[0]].shape[0]
        idx = g.add_const(g.unique_name(f"{node.name}/last_step"), np.array(seq - 1, np.int64))
        return [Node(node.op, node.name, list(node.inputs), outs[:1], dict(node.attrs)),
                Node("Gather", f"{node.name}/Y_h", [outs[0], idx.name], [outs[1]], {"axis": 0})]

    def lower_int8(self, cx, node, out, act):
        from ..quant.affine import quantize
        from .gru_int import gru_int8_attrs

        g, y = cx.g, cx.y
        x = cx.activation(node.inputs[0], node)
        w, r = g.tensors[node.inputs[1]].data[0], g.tensors[node.inputs[2]].data[0]
        H = r.shape[1]
        b = g.tensors[node.inputs[3]].data[0] if len(node.inputs) > 3 and node.inputs[3] else np.zeros(6 * H, np.float32)
        # weights symmetric per gate matrix, biases int32 at (input scale) x (weight scale)
        scales, qs = [], []
        for m, in_scale, b_part in ((w, float(x.quant.scale), b[:3 * H]), (r, float(y.quant.scale), b[3 * H:])):
            gs = [float(np.float32(max(np.abs(m[k * H:(k + 1) * H]).max(), 1e-30) / 127.0)) for k in range(3)]
            row = np.repeat(np.array(gs, np.float32), H)
            wq = quantize(m.astype(np.float64), row[:, None].astype(np.float64), 0, lo=-127)
            bs = (np.float64(np.float32(in_scale)) * row.astype(np.float64))
            bq = np.round(b_part.astype(np.float64) / bs)
            if np.any(np.abs(bq) > 2**31 - 1):
                raise UnsupportedError(f"GRU node '{node.name}': bias does not fit int32 at this scale")
            wt = g.add_const(g.unique_name(f"{node.name}/int8_weights"), wq)
            wt.quant = QuantParams(row, np.zeros(3 * H, np.int32), 0)
            bt = g.add_const(g.unique_name(f"{node.name}/bias_s32"), bq.astype(np.int32))
            bt.quant = QuantParams(bs.astype(np.float32), np.zeros(3 * H, np.int32), 0)
            scales.append(gs)
            qs += [wt.name, bt.name]
        attrs = gru_int8_attrs(float(x.quant.scale), int(x.quant.zero_point), list(zip(*scales)),
                               float(y.quant.scale), int(y.quant.zero_point))
        return Node("GruInt8", node.name, [x.name, qs[0], qs[2], qs[1], qs[3]], out, attrs)
