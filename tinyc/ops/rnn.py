"""LSTM and GRU, unrolled at import over the model's fixed sequence length into MatMul, Add, Mul,
Slice, activations and Concat. The input projection of all time steps is one matrix product;
each step adds its recurrent product. Every direction, layout, peepholes, clip, input_forget,
linear_before_reset and the activations tinyc has are covered; the reference is the composition."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node
from . import Op, register

# ONNX activation name -> (tinyc op, attribute names fed from activation_alpha / activation_beta)
_ACTIVATIONS = {"Sigmoid": ("Sigmoid", (), ()), "Tanh": ("Tanh", (), ()), "Relu": ("Relu", (), ()),
                "LeakyRelu": ("LeakyRelu", ("alpha",), ()), "HardSigmoid": ("HardSigmoid", ("alpha",), ("beta",)),
                "Elu": ("Elu", ("alpha",), ())}


class _Unroller:
    """Emits the nodes of one unrolled recurrence, with names under the RNN node's name."""

    def __init__(self, node: Node, g):
        self.node, self.g, self.nodes = node, g, []
        self.prefix = node.name

    def name(self, what: str) -> str:
        return self.g.unique_name(f"{self.prefix}/{what}")

    def emit(self, op: str, inputs: list[str], what: str, attrs: dict | None = None, out: str | None = None) -> str:
        out = out or f"{self.prefix}/{what}"
        self.nodes.append(Node(op, f"{self.prefix}/{what}", inputs, [out], attrs or {}))
        return out

    def const(self, what: str, value: np.ndarray) -> str:
        return self.g.add_const(self.name(what), np.asarray(value)).name

    def cols(self, x: str, i: int, h: int, what: str) -> str:
        """Columns [i*h, (i+1)*h) of a [batch, k*h] tensor."""
        return self.emit("Slice", [x], what, {"starts": [i * h], "ends": [(i + 1) * h], "axes": [1]})

    def act(self, fn: tuple[str, dict], x: str, what: str) -> str:
        return self.emit(fn[0], [x], what, dict(fn[1]))

    def clip(self, x: str, clip: float | None, what: str) -> str:
        return x if clip is None else self.emit("Clip", [x], what, {"min": -clip, "max": clip})


def _activations(node: Node, names: list[str], n: int, defaults: list[str]) -> list[tuple[str, dict]]:
    names = [a.decode() if isinstance(a, bytes) else a for a in (names or [])] or defaults * n
    if len(names) != len(defaults) * n:
        raise UnsupportedError(f"{node.op} node '{node.name}': {len(names)} activations for {n} direction(s)")
    alphas = list(node.attrs.get("activation_alpha") or [])
    betas = list(node.attrs.get("activation_beta") or [])
    out = []
    for a in names:
        if a not in _ACTIVATIONS:
            raise UnsupportedError(f"{node.op} node '{node.name}': activation {a} is not supported "
                                   f"(supported: {', '.join(_ACTIVATIONS)})")
        op, takes_alpha, takes_beta = _ACTIVATIONS[a]
        attrs = {}
        for key in takes_alpha:
            if alphas:
                attrs[key] = float(alphas.pop(0))
        for key in takes_beta:
            if betas:
                attrs[key] = float(betas.pop(0))
        out.append((op, attrs))
    return out


# Each step becomes some twenty nodes: a bound on the graph an RNN unrolls into.
MAX_UNROLLED_STEPS = 1024


class _RNN(Op):
    gates: int
    default_activations: list[str]
    const_inputs = {1: "W", 2: "R", 3: "B", 4: "sequence_lens"}  # and LSTM's 7: "P"

    def _common(self, node: Node, ins):
        a = node.attrs
        x, w = ins[0], ins[1]
        direction = a.get("direction", "forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "reverse", "bidirectional"):
            raise UnsupportedError(f"{self.name} node '{node.name}': direction '{direction}'")
        dirs = 2 if direction == "bidirectional" else 1
        layout = int(a.get("layout", 0))
        if len(x.shape) != 3 or layout not in (0, 1):
            raise UnsupportedError(f"{self.name} node '{node.name}': input must be 3-D, layout 0 or 1")
        seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
        if seq * dirs > MAX_UNROLLED_STEPS:
            raise UnsupportedError(f"{self.name} node '{node.name}': {seq} steps x {dirs} direction(s) to unroll; tinyc "
                                   f"unrolls at most {MAX_UNROLLED_STEPS}")
        if len(w.shape) != 3:
            raise UnsupportedError(f"{self.name} node '{node.name}': W shape {w.shape} is not 3-D")
        hidden = int(a.get("hidden_size", w.shape[1] // self.gates))
        if hidden < 1 or w.shape != (dirs, self.gates * hidden, x.shape[2]):
            raise UnsupportedError(f"{self.name} node '{node.name}': W shape {w.shape} does not fit")
        for idx, what, shape in ((2, "R", (dirs, self.gates * hidden, hidden)), (3, "B", (dirs, 2 * self.gates * hidden)),
                                 (7, "P", (dirs, 3 * hidden))):
            if idx < len(ins) and ins[idx] is not None and ins[idx].shape != shape:
                raise UnsupportedError(f"{self.name} node '{node.name}': {what} shape {ins[idx].shape} is not {shape}")
        if len(ins) > 4 and ins[4] is not None:
            lens = ins[4].data
            if np.any(lens != seq):
                raise UnsupportedError(f"{self.name} node '{node.name}': sequence_lens {lens.tolist()} differ from the "
                                       f"sequence length {seq}; only full-length sequences are supported")
        for i in range(1, 4):
            if i < len(ins) and ins[i] is not None and not ins[i].is_const:
                raise UnsupportedError(f"{self.name} node '{node.name}': input {i} must be a constant")
        if x.dtype != "f32":
            raise UnsupportedError(f"{self.name} node '{node.name}': only float32")
        acts = _activations(node, a.get("activations"), dirs, self.default_activations)
        clip = a.get("clip")
        return direction, dirs, layout, seq, batch, hidden, acts, None if clip is None else float(clip)

    def _state0(self, u: _Unroller, ins, idx: int, d: int, batch: int, hidden: int, what: str) -> str:
        """Initial state [batch, hidden] of direction d: a slice of the input, or zeros."""
        if idx < len(ins) and ins[idx] is not None:
            s = u.emit("Slice", [ins[idx].name], f"{what}_d{d}/slice", {"starts": [d], "ends": [d + 1], "axes": [0]})
            return u.emit("Reshape", [s], f"{what}_d{d}", {"shape": [batch, hidden]})
        return u.const(f"{what}_d{d}", np.zeros((batch, hidden), np.float32))

    def _projection(self, u: _Unroller, ins, d: int, bias: np.ndarray | None) -> str:
        """X W^T + bias for all steps at once: [seq*batch (layout 0) or batch*seq (layout 1), gates*H]."""
        x, w = ins[0], ins[1].data[d]
        flat = u.emit("Reshape", [x.name], f"x_rows_d{d}", {"shape": [-1, x.shape[2]]})
        xw = u.emit("MatMul", [flat, u.const(f"W_T_d{d}", np.ascontiguousarray(w.T))], f"xw_d{d}")
        if bias is not None:
            xw = u.emit("Add", [xw, u.const(f"bias_d{d}", bias.astype(np.float32))], f"xwb_d{d}")
        return xw

    @staticmethod
    def _bias(ins, d: int) -> np.ndarray | None:
        return ins[3].data[d] if len(ins) > 3 and ins[3] is not None else None

    def _step_rows(self, u: _Unroller, xw: str, t: int, d: int, seq: int, batch: int, layout: int) -> str:
        if layout == 0:
            return u.emit("Slice", [xw], f"d{d}/t{t}/xw", {"starts": [t * batch], "ends": [(t + 1) * batch], "axes": [0]})
        return u.emit("Slice", [xw], f"d{d}/t{t}/xw", {"starts": [t], "ends": [seq * batch], "axes": [0], "steps": [seq]})

    def _outputs(self, u: _Unroller, node: Node, hs: list[list[str]], finals: list[list[str]], seq, batch, hidden, layout):
        """Y from every step's H (hs[d][t]); Y_h (and Y_c) from the last states (finals[k][d])."""
        outs = list(node.outputs) + [""] * 3
        if outs[0]:
            per_dir = []
            for d, steps in enumerate(hs):
                shape = [1, 1, batch, hidden] if layout == 0 else [batch, 1, 1, hidden]
                parts = [u.emit("Reshape", [h], f"d{d}/t{t}/y", {"shape": shape}) for t, h in enumerate(steps)]
                per_dir.append(u.emit("Concat", parts, f"y_d{d}", {"axis": 0 if layout == 0 else 1}) if len(parts) > 1 else parts[0])
            self._join(u, per_dir, 1 if layout == 0 else 2, outs[0], "y")
        for k, states in enumerate(finals):
            if outs[k + 1]:
                shape = [1, batch, hidden] if layout == 0 else [batch, 1, hidden]
                parts = [u.emit("Reshape", [s], f"final{k}_d{d}", {"shape": shape}) for d, s in enumerate(states)]
                self._join(u, parts, 0 if layout == 0 else 1, outs[k + 1], f"final{k}")

    @staticmethod
    def _join(u, parts, axis, out, what):
        if len(parts) > 1:
            u.emit("Concat", parts, what, {"axis": axis}, out=out)
        else:
            u.emit("Identity", parts, what, out=out)

    def infer(self, node, ins):
        raise UnsupportedError(f"{self.name} node '{node.name}' is unrolled at import")


@register
class LSTM(_RNN):
    name = "LSTM"
    limits = ("unrolled over the fixed sequence length; forward/reverse/bidirectional, layout 0/1, peepholes, "
              "clip, input_forget, initial states; activations Sigmoid/Tanh/Relu/LeakyRelu/HardSigmoid/Elu; float32")
    gates = 4
    default_activations = ["Sigmoid", "Tanh", "Tanh"]
    const_inputs = {**_RNN.const_inputs, 7: "P"}

    def expand(self, node, ins, g):
        direction, dirs, layout, seq, batch, H, acts, clip = self._common(node, ins)
        u = _Unroller(node, g)
        input_forget = int(node.attrs.get("input_forget", 0))
        peep = ins[7].data if len(ins) > 7 and ins[7] is not None else None
        if len(ins) > 7 and ins[7] is not None and not ins[7].is_const:
            raise UnsupportedError(f"LSTM node '{node.name}': peepholes P must be a constant")
        hs, final_h, final_c = [], [], []
        one = u.const("one", np.ones((), np.float32)) if input_forget else None
        for d in range(dirs):
            f, gf, hf = acts[3 * d: 3 * d + 3]
            reverse = direction == "reverse" or d == 1
            b = self._bias(ins, d)
            xw = self._projection(u, ins, d, None if b is None else b[:4 * H] + b[4 * H:])
            r_t = u.const(f"R_T_d{d}", np.ascontiguousarray(ins[2].data[d].T))
            p = None if peep is None else [u.const(f"P{k}_d{d}", peep[d, k * H:(k + 1) * H].astype(np.float32)) for k in range(3)]
            h, c = self._state0(u, ins, 5, d, batch, H, "h0"), self._state0(u, ins, 6, d, batch, H, "c0")
            steps = [None] * seq
            for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
                s = f"d{d}/t{t}"
                pre = u.emit("Add", [self._step_rows(u, xw, t, d, seq, batch, layout), u.emit("MatMul", [h, r_t], f"{s}/hr")], f"{s}/gates")
                gi, go, gfo, gc = (u.cols(pre, k, H, f"{s}/{n}_pre") for k, n in enumerate("iofc"))
                if p is not None:
                    gi = u.emit("Add", [gi, u.emit("Mul", [c, p[0]], f"{s}/pi")], f"{s}/i_peep")
                    gfo = u.emit("Add", [gfo, u.emit("Mul", [c, p[2]], f"{s}/pf")], f"{s}/f_peep")
                i = u.act(f, u.clip(gi, clip, f"{s}/i_clip"), f"{s}/i")
                if input_forget:
                    fg = u.emit("Sub", [one, i], f"{s}/f")
                else:
                    fg = u.act(f, u.clip(gfo, clip, f"{s}/f_clip"), f"{s}/f")
                cand = u.act(gf, u.clip(gc, clip, f"{s}/c_clip"), f"{s}/c_cand")
                c = u.emit("Add", [u.emit("Mul", [fg, c], f"{s}/fc"), u.emit("Mul", [i, cand], f"{s}/ic")], f"{s}/c")
                if p is not None:
                    go = u.emit("Add", [go, u.emit("Mul", [c, p[1]], f"{s}/po")], f"{s}/o_peep")
                o = u.act(f, u.clip(go, clip, f"{s}/o_clip"), f"{s}/o")
                h = u.emit("Mul", [o, u.act(hf, c, f"{s}/hc")], f"{s}/h")
                steps[t] = h
            hs.append(steps)
            final_h.append(h)
            final_c.append(c)
        self._outputs(u, node, hs, [final_h, final_c], seq, batch, H, layout)
        return u.nodes


@register
class GRU(_RNN):
    name = "GRU"
    limits = ("unrolled over the fixed sequence length; forward/reverse/bidirectional, layout 0/1, "
              "linear_before_reset, clip, initial state; activations as LSTM; float32")
    gates = 3
    default_activations = ["Sigmoid", "Tanh"]

    def expand(self, node, ins, g):
        direction, dirs, layout, seq, batch, H, acts, clip = self._common(node, ins)
        u = _Unroller(node, g)
        lbr = int(node.attrs.get("linear_before_reset", 0))
        hs, final_h = [], []
        for d in range(dirs):
            f, gf = acts[2 * d: 2 * d + 2]
            reverse = direction == "reverse" or d == 1
            # z and r take Wb + Rb up front; the candidate gate's Rb sits inside the reset product
            b = self._bias(ins, d)
            xw = self._projection(u, ins, d, None if b is None else b[:3 * H])
            r_full = ins[2].data[d]
            rb = b[3 * H:] if b is not None else np.zeros(3 * H, np.float32)
            r_zr = u.const(f"R_zr_T_d{d}", np.ascontiguousarray(r_full[:2 * H].T))
            r_h = u.const(f"R_h_T_d{d}", np.ascontiguousarray(r_full[2 * H:].T))
            rb_zr = u.const(f"Rb_zr_d{d}", rb[:2 * H].astype(np.float32))
            rb_h = u.const(f"Rb_h_d{d}", rb[2 * H:].astype(np.float32))
            h = self._state0(u, ins, 5, d, batch, H, "h0")
            steps = [None] * seq
            for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
                s = f"d{d}/t{t}"
                xt = self._step_rows(u, xw, t, d, seq, batch, layout)
                x_zr = u.emit("Slice", [xt], f"{s}/x_zr", {"starts": [0], "ends": [2 * H], "axes": [1]})
                x_h = u.cols(xt, 2, H, f"{s}/x_h")
                zr = u.emit("Add", [x_zr, u.emit("Add", [u.emit("MatMul", [h, r_zr], f"{s}/hr_zr"), rb_zr], f"{s}/hr_zr_b")], f"{s}/zr_pre")
                z = u.act(f, u.clip(u.cols(zr, 0, H, f"{s}/z_pre"), clip, f"{s}/z_clip"), f"{s}/z")
                r = u.act(f, u.clip(u.cols(zr, 1, H, f"{s}/r_pre"), clip, f"{s}/r_clip"), f"{s}/r")
                if lbr:
                    hr = u.emit("Add", [u.emit("MatMul", [h, r_h], f"{s}/hr_h"), rb_h], f"{s}/hr_hb")
                    rec = u.emit("Mul", [r, hr], f"{s}/r_hr")
                else:
                    rec = u.emit("Add", [u.emit("MatMul", [u.emit("Mul", [r, h], f"{s}/rh"), r_h], f"{s}/rh_r"), rb_h], f"{s}/rh_rb")
                cand_pre = u.emit("Add", [x_h, rec], f"{s}/h_pre")
                cand = u.act(gf, u.clip(cand_pre, clip, f"{s}/h_clip"), f"{s}/h_cand")
                # H = (1 - z) * cand + z * H_prev = cand + z * (H_prev - cand)
                h = u.emit("Add", [cand, u.emit("Mul", [z, u.emit("Sub", [h, cand], f"{s}/diff")], f"{s}/zd")], f"{s}/h")
                steps[t] = h
            hs.append(steps)
            final_h.append(h)
        self._outputs(u, node, hs, [final_h], seq, batch, H, layout)
        return u.nodes
