"""What ONNX's recurrent ops (LSTM in lstm.py, GRU in gru.py) share: the checks of their inputs and
attributes, the gate activations, the time and direction geometry, and the template parameters of
their time-loop kernels.

Each stays one node: its kernel runs the time loop with the weights read in place from their
constant arrays (ONNX's layout, see the ops' docstrings) and the gates of one step, the state and
the step's input projection in the node's arena scratch. The projection of the input is computed
per step, not for all steps at once: that would need seq x gates x hidden floats of arena instead
of gates x hidden, for the same arithmetic.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node, Tensor
from . import Op
from .activations import apply, c_expression

# ONNX activation name -> (attribute names fed from activation_alpha, from activation_beta, defaults)
ACTIVATIONS = {"Sigmoid": ((), (), {}), "Tanh": ((), (), {}), "Relu": ((), (), {}),
               "LeakyRelu": (("alpha",), (), {"alpha": 0.01}),
               "HardSigmoid": (("alpha",), ("beta",), {"alpha": 0.2, "beta": 0.5}),
               "Elu": (("alpha",), (), {"alpha": 1.0})}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def gate_functions(node: Node, dirs: int, defaults: list[str]) -> list[tuple[str, float, float]]:
    """The node's activations as (name, alpha, beta), len(defaults) per direction: ONNX's
    ``activations`` with ``activation_alpha``/``activation_beta`` consumed in order by the
    functions that take them, each op's own default where the lists end."""
    names = [_text(a) for a in (node.attrs.get("activations") or [])] or defaults * dirs
    if len(names) != len(defaults) * dirs:
        raise UnsupportedError(f"{node.op} node '{node.name}': {len(names)} activations for {dirs} direction(s)")
    alphas = list(node.attrs.get("activation_alpha") or [])
    betas = list(node.attrs.get("activation_beta") or [])
    out = []
    for a in names:
        if a not in ACTIVATIONS:
            raise UnsupportedError(f"{node.op} node '{node.name}': activation {a} is not supported "
                                   f"(supported: {', '.join(ACTIVATIONS)})")
        takes_alpha, takes_beta, defaults_ab = ACTIVATIONS[a]
        alpha = float(alphas.pop(0)) if takes_alpha and alphas else defaults_ab.get("alpha", 0.0)
        beta = float(betas.pop(0)) if takes_beta and betas else defaults_ab.get("beta", 0.0)
        out.append((a, alpha, beta))
    return out


def activate(fn: tuple[str, float, float], x: np.ndarray) -> np.ndarray:
    name, alpha, beta = fn
    if name == "Relu":
        return np.where(x < 0, np.float32(0), x).astype(np.float32)
    with np.errstate(over="ignore"):  # (exp overflowing to inf, as in C)
        return apply(name, x, alpha, beta)


def activation_c(fn: tuple[str, float, float]) -> dict:
    """A gate function for the template: its name and its C expression of ``v``."""
    name, alpha, beta = fn
    return dict(name=name, expr="v < 0.0f ? 0.0f : v" if name == "Relu" else c_expression(name, "v", alpha, beta))


def clip(x: np.ndarray, c: float | None) -> np.ndarray:
    return x if c is None else np.clip(x, np.float32(-c), np.float32(c))


class Recurrent(Op):
    """An ONNX recurrent op kept as one node. Inputs: X, W, R, B, sequence_lens, initial_h (and LSTM's
    initial_c, P); outputs Y, Y_h (and LSTM's Y_c)."""

    gates: int
    default_activations: list[str]
    const_inputs = {1: "W", 2: "R", 3: "B", 4: "sequence_lens"}

    def normalize(self, attrs, ins, opset):
        a = dict(attrs)
        a["direction"] = _text(a.get("direction", "forward"))
        a["layout"] = int(a.get("layout", 0))
        if a.get("activations"):
            a["activations"] = [_text(x) for x in a["activations"]]
        if a.get("clip") is not None:
            a["clip"] = float(a["clip"])
        return a

    def expand(self, node, ins, g):
        """Names the unused outputs before a used one (Y of a node whose Y_h is read): the kernel
        writes all of them."""
        outs = list(node.outputs)
        while outs and not outs[-1]:
            outs.pop()
        if "" not in outs:
            return None
        outs = [o or g.unique_name(f"{node.name}/unused{j}") for j, o in enumerate(outs)]
        return [Node(node.op, node.name, list(node.inputs), outs, dict(node.attrs))]

    def geometry(self, node: Node, ins) -> dict:
        """Checks the inputs; returns direction count, reverse flags, layout, seq, batch, input, hidden."""
        a = node.attrs
        x, w = ins[0], ins[1]
        direction = _text(a.get("direction", "forward"))
        if direction not in ("forward", "reverse", "bidirectional"):
            raise UnsupportedError(f"{self.name} node '{node.name}': direction '{direction}'")
        dirs = 2 if direction == "bidirectional" else 1
        layout = int(a.get("layout", 0))
        if len(x.shape) != 3 or layout not in (0, 1):
            raise UnsupportedError(f"{self.name} node '{node.name}': input must be 3-D, layout 0 or 1")
        seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
        if len(w.shape) != 3:
            raise UnsupportedError(f"{self.name} node '{node.name}': W shape {w.shape} is not 3-D")
        hidden = int(a.get("hidden_size", w.shape[1] // self.gates))
        if hidden < 1 or w.shape != (dirs, self.gates * hidden, x.shape[2]):
            raise UnsupportedError(f"{self.name} node '{node.name}': W shape {w.shape} does not fit")
        state = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
        for idx, what, shape in ((2, "R", (dirs, self.gates * hidden, hidden)), (3, "B", (dirs, 2 * self.gates * hidden)),
                                 (5, "initial_h", state), (6, "initial_c", state), (7, "P", (dirs, 3 * hidden))):
            if idx < len(ins) and ins[idx] is not None and ins[idx].shape != shape:
                raise UnsupportedError(f"{self.name} node '{node.name}': {what} shape {ins[idx].shape} is not {shape}")
        if len(ins) > 4 and ins[4] is not None:
            lens = ins[4].data
            if np.any(lens != seq):
                raise UnsupportedError(f"{self.name} node '{node.name}': sequence_lens {lens.tolist()} differ from the "
                                       f"sequence length {seq}; only full-length sequences are supported")
        for i, t in enumerate(ins):
            if t is not None and i != 4 and t.dtype != "f32":
                raise UnsupportedError(f"{self.name} node '{node.name}': only float32")
        if seq < 1 or batch < 1 or x.shape[2] < 1:
            raise UnsupportedError(f"{self.name} node '{node.name}': input shape {list(x.shape)} is empty")
        return dict(dirs=dirs, reverse=[direction == "reverse" or d == 1 for d in range(dirs)], layout=layout,
                    seq=seq, batch=batch, input=x.shape[2], hidden=hidden, clip=a.get("clip"),
                    acts=gate_functions(node, dirs, self.default_activations))

    def geometry_of_values(self, node: Node, xs) -> dict:
        """geometry() for the reference, from the input values."""
        ins = [None if v is None else Tensor(f"in{j}", tuple(np.shape(v)), "s64" if j == 4 else "f32",
                                             np.asarray(v) if j == 4 else None) for j, v in enumerate(xs)]
        return self.geometry(node, ins)

    def infer(self, node, ins):
        geo = self.geometry(node, ins)
        dirs, seq, batch, hidden = geo["dirs"], geo["seq"], geo["batch"], geo["hidden"]
        y = (seq, dirs, batch, hidden) if geo["layout"] == 0 else (batch, seq, dirs, hidden)
        state = (dirs, batch, hidden) if geo["layout"] == 0 else (batch, dirs, hidden)
        return [(y, "f32")] + [(state, "f32")] * (len(node.outputs) - 1)

    def macs(self, node, ins, outs):
        geo = self.geometry(node, ins)
        return geo["dirs"] * geo["seq"] * geo["batch"] * self.gates * geo["hidden"] * (geo["input"] + geo["hidden"])

    # -- the time loop in numpy (x and states as [seq, batch, ...] per direction)

    @staticmethod
    def steps(x: np.ndarray, geo: dict) -> np.ndarray:
        """X as [seq, batch, input]."""
        return x if geo["layout"] == 0 else np.transpose(x, (1, 0, 2))

    @staticmethod
    def initial(xs, idx: int, d: int, geo: dict) -> np.ndarray:
        if idx < len(xs) and xs[idx] is not None:
            s = xs[idx] if geo["layout"] == 0 else np.transpose(xs[idx], (1, 0, 2))
            return s[d].astype(np.float32)
        return np.zeros((geo["batch"], geo["hidden"]), np.float32)

    @staticmethod
    def outputs(node: Node, ys: list[np.ndarray], finals: list[list[np.ndarray]], geo: dict) -> list[np.ndarray]:
        """Y from ys[d] [seq, batch, hidden]; Y_h (Y_c) from finals[k][d] [batch, hidden]."""
        y = np.stack(ys, axis=1)  # [seq, dirs, batch, hidden]
        states = [np.stack(f, axis=0) for f in finals]  # [dirs, batch, hidden]
        if geo["layout"] == 1:
            y = np.transpose(y, (2, 0, 1, 3))
            states = [np.transpose(s, (1, 0, 2)) for s in states]
        return [y.astype(np.float32)] + [s.astype(np.float32) for s in states][:len(node.outputs) - 1]

    # -- the kernel's parameters

    def loop_params(self, node: Node, ins, outs) -> dict:
        """Strides and sizes the time-loop templates share (element strides of X, Y and the states)."""
        geo = self.geometry(node, ins)
        dirs, seq, batch, H, I = geo["dirs"], geo["seq"], geo["batch"], geo["hidden"], geo["input"]
        lay0 = geo["layout"] == 0
        acts = [activation_c(f) for f in geo["acts"]]
        n = len(self.default_activations)
        per_dir = [acts[n * d: n * d + n] for d in range(dirs)]
        return dict(
            op=self.name, DIRS=dirs, SEQ=seq, B=batch, I=I, H=H,
            # reverse: the direction's steps run t = SEQ-1 .. 0
            reverse=[int(r) for r in geo["reverse"]],
            X_ST=batch * I if lay0 else I, X_SB=I if lay0 else seq * I,
            Y_ST=dirs * batch * H if lay0 else dirs * H, Y_SD=batch * H if lay0 else H, Y_SB=H if lay0 else seq * dirs * H,
            S_SD=batch * H if lay0 else H, S_SB=H if lay0 else dirs * H,
            has_y=bool(outs), n_states=len(outs) - 1,
            # one loop over the directions when they use the same functions, else one per direction
            acts=per_dir, same_acts=all(a == per_dir[0] for a in per_dir),
            clip=geo["clip"],
            has_h0=len(ins) > 5 and ins[5] is not None,
        )
