"""fuse-transformer: the decomposed LayerNorm and GELU of PyTorch's TorchScript exports (opset <= 16,
or a tanh GELU at any opset) become the LayerNormalization and Gelu ops they compute.

- LayerNorm: ReduceMean(x) (or the GlobalAveragePool canonicalize made of it) -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div [-> Mul scale
  [-> Add bias]], both means over the same trailing axes with keepdims, eps a constant read from
  the graph, scale and bias constants over the normalized axes;
- erf GELU: Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5 (PyTorch's order);
- tanh GELU: Mul(x, x) -> Mul x -> Mul 0.044715 -> Add x -> Mul sqrt(2/pi) -> Tanh -> Add 1 -> Mul x
  -> Mul 0.5.

Constants are checked within 1e-6 (the exporters write them in float32); every intermediate
value must be read only inside the pattern. Float only; the values are those of the fused op
(within float rounding of the decomposed form)."""
from __future__ import annotations

import os

import numpy as np

from ..ir import Graph, Node
from ..ops import get_op
from . import Pass, register
from .rewrite import consumers, only_use, rounds

_TOL = 1e-6
_SQRT2 = float(np.sqrt(2.0))
_SQRT_2_PI = float(np.sqrt(2.0 / np.pi))


def _scalar(g: Graph, name: str | None) -> float | None:
    t = g.tensors.get(name) if name is not None else None
    if t is None or not t.is_const or t.data.size != 1 or t.dtype != "f32":
        return None
    return float(t.data.reshape(-1)[0])


def _is(g: Graph, name: str | None, value: float) -> bool:
    v = _scalar(g, name)
    return v is not None and abs(v - value) <= _TOL * max(1.0, abs(value))


def _other(n: Node | None, op: str, x: str) -> str | None:
    """For a binary ``op`` node reading ``x``: its other input (None when it is not that op)."""
    if n is None or n.op != op or len(n.inputs) != 2 or x not in n.inputs:
        return None
    return n.inputs[1] if n.inputs[0] == x else n.inputs[0]


def _next(g: Graph, cons, n: Node | None, op: str, const: float | None = None) -> Node | None:
    """The only reader of ``n``'s output if it is ``op`` (with the other operand ``const``)."""
    if n is None:
        return None
    m = only_use(g, n.outputs[0], cons)
    other = _other(m, op, n.outputs[0]) if m is not None and len(m.inputs) == 2 else None
    if m is None or m.op != op or (const is not None and not _is(g, other, const)):
        return None
    return m


def _replace(g: Graph, old: list[Node], op: str, inputs: list[str], attrs: dict) -> None:
    """``old`` (a chain whose last node writes the result) becomes one ``op`` node."""
    prefix = os.path.commonprefix([n.name for n in old])
    prefix = prefix[:prefix.rfind("/") + 1] if "/" in prefix else ""
    name = f"{prefix}{op}" if prefix else old[-1].name
    taken = {n.name for n in g.nodes if n is not old[-1]}
    base, i = name, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    g.nodes[g.nodes.index(old[-1])] = Node(op, name, inputs, [old[-1].outputs[0]], attrs)
    for n in old[:-1]:
        g.nodes.remove(n)
        for o in n.outputs:
            g.tensors.pop(o, None)


def _trailing(n: Node | None, rank: int) -> int | None:
    """The first axis of a mean with kept dimensions over trailing axes (canonicalize has made a
    mean over all axes after the second a GlobalAveragePool), else None."""
    if n is not None and n.op == get_op("ReduceMean").global_pool and rank > 2:
        return 2
    if n is None or n.op != "ReduceMean":
        return None
    axes = n.attrs.get("axes", [])
    if n.attrs.get("keepdims", 1) != 1 or not axes or list(axes) != list(range(axes[0], rank)):
        return None
    return axes[0]


def _per_axes(g: Graph, name: str | None, inner: tuple[int, ...]) -> str | None:
    """A constant broadcasting over the normalized axes only, as a tensor of at most their rank."""
    t = g.tensors.get(name) if name is not None else None
    if t is None or not t.is_const or t.dtype != "f32":
        return None
    shape = list(t.shape)
    while len(shape) > len(inner) and shape[0] == 1:
        shape.pop(0)
    try:
        if len(shape) > len(inner) or np.broadcast_shapes(tuple(shape), inner) != inner:
            return None
    except ValueError:
        return None
    if tuple(shape) == tuple(t.shape):
        return name
    return g.add_const(g.unique_name(f"{name}/per_axes"), t.data.reshape(shape)).name


def _layernorm(g: Graph, cons, m1: Node) -> bool:
    if not m1.inputs or m1.inputs[0] is None:
        return False
    x = m1.inputs[0]
    shape = g.tensors[x].shape
    axis = _trailing(m1, len(shape))
    sub = only_use(g, m1.outputs[0], cons)
    if axis is None or g.tensors[x].dtype != "f32" or sub is None or sub.op != "Sub" or sub.inputs != [x, m1.outputs[0]]:
        return False
    d = sub.outputs[0]
    users = cons.get(d, [])
    pw = next((u for u in users if u.op == "Pow"), None)
    div = next((u for u in users if u.op == "Div"), None)
    if len(users) != 2 or d in g.outputs or pw is None or div is None or pw.inputs[0] != d or not _is(g, pw.inputs[1], 2.0):
        return False
    m2 = only_use(g, pw.outputs[0], cons)
    if _trailing(m2, len(shape)) != axis:
        return False
    add = _next(g, cons, m2, "Add")
    eps = _scalar(g, _other(add, "Add", m2.outputs[0]))
    sq = _next(g, cons, add, "Sqrt")
    if eps is None or eps < 0 or sq is None or only_use(g, sq.outputs[0], cons) is not div or div.inputs != [d, sq.outputs[0]]:
        return False
    chain, last = [m1, sub, pw, m2, add, sq, div], div
    inner = tuple(shape[axis:])
    mul = _next(g, cons, div, "Mul")
    scale = _per_axes(g, _other(mul, "Mul", div.outputs[0]), inner) if mul is not None else None
    if scale is not None:
        chain, last = chain + [mul], mul
    bias_add = _next(g, cons, last, "Add")
    bias = _per_axes(g, _other(bias_add, "Add", last.outputs[0]), inner) if bias_add is not None else None
    if bias is not None:
        chain.append(bias_add)
    if scale is None:
        scale = g.add_const(g.unique_name(f"{x}/layernorm_scale"), np.ones(inner, np.float32)).name
    _replace(g, chain, "LayerNormalization", [x, scale] + ([bias] if bias is not None else []),
             {"axis": axis, "epsilon": eps})
    return True


def _gelu_tail(g: Graph, cons, n: Node, x: str) -> list[Node] | None:
    """Add 1 -> Mul x -> Mul 0.5 after ``n``."""
    one = _next(g, cons, n, "Add", 1.0)
    mx = _next(g, cons, one, "Mul")
    if mx is None or _other(mx, "Mul", one.outputs[0]) != x:
        return None
    half = _next(g, cons, mx, "Mul", 0.5)
    return None if half is None else [one, mx, half]


def _gelu_erf(g: Graph, cons, erf: Node) -> bool:
    if erf.op != "Erf":
        return False
    p = next((n for n in g.nodes if erf.inputs[0] in n.outputs), None)
    if p is None or p.op != "Div" or only_use(g, p.outputs[0], cons) is not erf or not _is(g, p.inputs[1], _SQRT2):
        return False
    x = p.inputs[0]
    tail = _gelu_tail(g, cons, erf, x)
    if tail is None or g.tensors[x].dtype != "f32":
        return False
    _replace(g, [p, erf] + tail, "Gelu", [x], {"approximate": "none"})
    return True


def _gelu_tanh(g: Graph, cons, sq: Node) -> bool:
    x = sq.inputs[0]
    if sq.op != "Mul" or sq.inputs != [x, x] or g.tensors[x].dtype != "f32":
        return False
    cube = _next(g, cons, sq, "Mul")
    if cube is None or _other(cube, "Mul", sq.outputs[0]) != x:
        return False
    k = _next(g, cons, cube, "Mul", 0.044715)
    ax = _next(g, cons, k, "Add")
    if ax is None or _other(ax, "Add", k.outputs[0]) != x:
        return False
    inner = _next(g, cons, ax, "Mul", _SQRT_2_PI)
    th = _next(g, cons, inner, "Tanh")
    tail = _gelu_tail(g, cons, th, x) if th is not None else None
    if tail is None:
        return False
    _replace(g, [sq, cube, k, ax, inner, th] + tail, "Gelu", [x], {"approximate": "tanh"})
    return True


_MATCHERS = (_layernorm, _gelu_erf, _gelu_tanh)  # each checks the op it starts from


@register
class FuseTransformer(Pass):
    name = "fuse-transformer"
    description = "decomposed LayerNorm and GELU (erf and tanh forms) of older exports -> LayerNormalization, Gelu"

    def run(self, g: Graph) -> Graph:
        for _ in rounds(g, self.name):
            cons = consumers(g)
            if not any(match(g, cons, n) for n in list(g.nodes) for match in _MATCHERS):
                return g
        return g
