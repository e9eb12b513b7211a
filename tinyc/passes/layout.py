"""NHWC layout.

- layout-nhwc: every 4-D Conv, MaxPool, AveragePool and GlobalAveragePool switches to NHWC (the
  layout MCU kernels want: channels contiguous), between a Transpose to NHWC before it and one back
  to NCHW after it; a Conv's constant weights are stored OHWI.
- cancel-transposes: then removes those Transposes wherever the graph allows:
  * two Transposes in a row compose (and vanish when they undo each other);
  * a Transpose sinks below every op that runs in any layout (``Op.permuted_attrs``: the pointwise
    ops, Relu, Add, Mul, Sigmoid, Requantize, ...; Resize and Concat with their per-axis
    attributes permuted) when its other data inputs can follow: through the same permutation,
    constants (permuted), or tensors whose permutation only moves size-1 axes (a view: the
    squeeze-excite scale [1, C, 1, 1] of a Mul);
  * a Transpose that only moves size-1 axes is a Reshape (a view: no code, no bytes);
  * Transpose -> flattening Reshape -> fully connected with constant weights: the permutation
    goes into the order of the weight rows.
So a PyTorch (NCHW) export and a tf2onnx (NHWC input + Transpose) export of one network end with
the same NHWC kernels and no Transpose at run time.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Tensor
from ..ops import get_op
from ..ops.layout import TO_NCHW, TO_NHWC, is_nhwc
from . import Pass, register
from .dce import remove_dead
from .rewrite import bypass, consumers, only_use, producer, rounds

def _permuted(shape, perm) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


def _new_tensor(g: Graph, base: str, like: Tensor, shape) -> Tensor:
    return g.add_tensor(Tensor(g.unique_name(base), tuple(shape), like.dtype, quant=like.quant))


def to_nhwc(g: Graph) -> Graph:
    for n in list(g.nodes):
        if not get_op(n.op).nhwc_form or is_nhwc(n):
            continue
        x, y = g.tensors[n.inputs[0]], g.tensors[n.outputs[0]]
        if len(x.shape) != 4 or (x.quant is not None and x.quant.axis is not None):
            continue
        if n.op == "Conv" and not g.tensors[n.inputs[1]].is_const:
            continue
        xt = _new_tensor(g, f"{x.name}/nhwc", x, _permuted(x.shape, TO_NHWC))
        yt = _new_tensor(g, f"{y.name}/nhwc", y, _permuted(y.shape, TO_NHWC))
        i = g.nodes.index(n)
        g.nodes.insert(i, Node("Transpose", g.unique_name(f"{n.name}/to_nhwc"), [x.name], [xt.name], {"perm": list(TO_NHWC)}))
        g.nodes.insert(i + 2, Node("Transpose", g.unique_name(f"{n.name}/to_nchw"), [yt.name], [y.name], {"perm": list(TO_NCHW)}))
        if n.op == "Conv":
            w = g.tensors[n.inputs[1]]
            wt = g.add_const(g.unique_name(f"{w.name}/ohwi"), np.transpose(w.data, TO_NHWC))
            wt.quant = w.quant  # per output channel: axis 0 in both layouts
            n.inputs = [xt.name, wt.name] + n.inputs[2:]
        else:
            n.inputs = [xt.name] + n.inputs[1:]
        n.outputs = [yt.name]
        n.attrs["layout"] = "NHWC"
    return remove_dead(g)


def _compose(g: Graph) -> bool:
    for n in g.nodes:
        if n.op != "Transpose":
            continue
        m = producer(g, n.inputs[0])
        if m is None or m.op != "Transpose":
            continue
        perm = [m.attrs["perm"][p] for p in n.attrs["perm"]]
        n.inputs = [m.inputs[0]]
        n.attrs = {"perm": perm}
        if perm == sorted(perm):
            bypass(g, n)
        return True
    return False


def _unit_moves_to_reshape(g: Graph) -> bool:
    for n in g.nodes:
        if n.op != "Transpose":
            continue
        shape = g.tensors[n.inputs[0]].shape
        kept = [p for p in n.attrs["perm"] if shape[p] != 1]
        if kept == sorted(kept):
            n.op = "Reshape"
            n.attrs = {"shape": list(g.tensors[n.outputs[0]].shape)}
            return True
    return False


def _padded(t: Tensor, rank: int) -> tuple[int, ...]:
    return (1,) * (rank - len(t.shape)) + tuple(t.shape)


def _follows(g: Graph, x: str, src: Node | None, perm: list[int]) -> str | None:
    """How input ``x`` can be had in the layout before ``perm``: "transpose" (it comes through
    the same Transpose), "const" (a constant, permuted), "view" (its permutation only moves size-1
    axes, e.g. a squeeze-excite scale [1, C, 1, 1]: a Reshape); None if none of these applies."""
    t = g.tensors[x]
    if src is not None and src.op == "Transpose" and list(src.attrs["perm"]) == perm:
        return "transpose"
    if len(t.shape) > len(perm) or (t.quant is not None and t.quant.axis is not None):
        return None
    if t.is_const:
        return "const"
    full = _padded(t, len(perm))
    moved = [i for i in np.argsort(perm) if full[i] != 1]
    return "view" if moved == sorted(moved) else None


def _unpermuted(g: Graph, x: str, how: str, src: Node | None, perm: list[int], e: Node) -> str:
    """Input ``x`` of ``e`` in the layout before ``perm`` (see _follows)."""
    if how == "transpose":
        return src.inputs[0]
    t = g.tensors[x]
    inv = [int(i) for i in np.argsort(perm)]
    full = _padded(t, len(perm))
    if how == "const":
        c = g.add_const(g.unique_name(f"{x}/permuted"), np.transpose(t.data.reshape(full), inv))
        c.quant = t.quant
        return c.name
    v = _new_tensor(g, f"{x}/unpermuted", t, _permuted(full, inv))
    g.nodes.insert(g.nodes.index(e), Node("Reshape", g.unique_name(f"{e.name}/{x}/unpermuted"), [x], [v.name],
                                          {"shape": list(v.shape)}))
    return v.name


def _sink(g: Graph) -> bool:
    """A Transpose moves below an op that runs in any layout (``Op.permuted_attrs``) when the
    op's other data inputs can follow it (see _follows)."""
    for e in g.nodes:
        srcs = [producer(g, x) for x in e.inputs]
        perms = {tuple(s.attrs["perm"]) for s in srcs if s is not None and s.op == "Transpose"}
        if len(perms) != 1 or len(e.outputs) != 1 or None in e.inputs:
            continue
        perm = list(perms.pop())
        out = g.tensors[e.outputs[0]]
        attrs = get_op(e.op).permuted_attrs(e, perm)
        hows = [_follows(g, x, s, perm) for s, x in zip(srcs, e.inputs)]
        if attrs is None or len(out.shape) != len(perm) or None in hows:
            continue
        e.inputs = [_unpermuted(g, x, how, s, perm, e) for s, x, how in zip(srcs, e.inputs, hows)]
        e.attrs = attrs
        mid = _new_tensor(g, f"{out.name}/unpermuted", out, _permuted(out.shape, np.argsort(perm)))
        y = e.outputs[0]
        e.outputs = [mid.name]
        g.nodes.insert(g.nodes.index(e) + 1, Node("Transpose", g.unique_name(f"{e.name}/transpose"), [mid.name], [y], {"perm": perm}))
        return True
    return False


def _into_weights(g: Graph) -> bool:
    """Transpose -> Reshape [N, K] -> Gemm/MatMul with constant weights: permute the weight rows."""
    cons = consumers(g)
    for t in g.nodes:
        if t.op != "Transpose" or t.attrs["perm"][0] != 0:
            continue
        r = only_use(g, t.outputs[0], cons)
        if r is None or not get_op(r.op).view:
            continue
        tin, tout, rout = g.tensors[t.inputs[0]], g.tensors[t.outputs[0]], g.tensors[r.outputs[0]]
        if len(rout.shape) != 2 or rout.shape[0] != tout.shape[0]:
            continue
        users = cons.get(r.outputs[0], [])
        if not users or r.outputs[0] in g.outputs:
            continue
        if any(u.op not in ("Gemm", "MatMul") or u.inputs[0] != r.outputs[0] or u.attrs.get("transA")
               or not g.tensors[u.inputs[1]].is_const for u in users):
            continue
        # sigma[i]: where the i-th element of the untransposed row lands in the transposed row
        k = rout.shape[1]
        positions = np.arange(k).reshape(tout.shape[1:])
        inv = np.argsort(t.attrs["perm"])[1:] - 1
        sigma = np.transpose(positions, inv).reshape(-1)
        for u in users:
            w = g.tensors[u.inputs[1]]
            trans_b = u.op == "Gemm" and u.attrs.get("transB")
            data = w.data[:, sigma] if trans_b else w.data[sigma, :]
            nw = g.add_const(g.unique_name(f"{w.name}/rows_permuted"), data)
            nw.quant = w.quant
            u.inputs = [u.inputs[0], nw.name] + u.inputs[2:]
        r.inputs = [t.inputs[0]]
        del tin
        return True
    return False


def cancel_transposes(g: Graph) -> Graph:
    for _ in rounds(g, "cancel-transposes"):
        if not (_compose(g) or _unit_moves_to_reshape(g) or _into_weights(g) or _sink(g)):
            return remove_dead(g)
        remove_dead(g)


@register
class LayoutNHWC(Pass):
    name = "layout-nhwc"
    description = "4-D Conv and pooling in NHWC (OHWI weights), between Transposes"

    def run(self, g: Graph) -> Graph:
        return to_nhwc(g)


@register
class CancelTransposes(Pass):
    name = "cancel-transposes"
    description = "compose, sink and fold Transposes until none moves data at run time where avoidable"

    def run(self, g: Graph) -> Graph:
        return cancel_transposes(g)
