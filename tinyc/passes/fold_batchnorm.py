"""fold-batchnorm: BatchNormalization, and Mul/Add by per-channel constants, into the weights and
bias of the Conv/Gemm (or 2-D MatMul, which becomes a Gemm) before them. A BatchNormalization with nothing to fold into becomes Mul and
Add by constants.

y = conv(x, W) + b;  y * m + a  ==  conv(x, W * m) + (b * m + a)   (m, a per output channel)
Float only; values differ from the unfolded graph by float rounding (within 1e-6 relative).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ops import get_op, is_quantized
from . import Pass, register
from .dce import remove_dead
from .rewrite import consumers, only_use, producer, replace_output


def _channels(g: Graph, n: Node) -> int | None:
    """Output channels of a foldable producer (Conv, or Gemm with transA=0, alpha=1), else None."""
    if n.op == "Conv":
        return g.tensors[n.inputs[1]].shape[0]
    if n.op == "Gemm" and not n.attrs.get("transA") and n.attrs.get("alpha", 1.0) == 1.0:
        if len(n.inputs) > 2 and n.inputs[2] is not None and n.attrs.get("beta", 1.0) != 1.0:
            return None
        w = g.tensors[n.inputs[1]].shape
        return w[0] if n.attrs.get("transB") else w[1]
    return None


def _per_channel(value: np.ndarray, out_rank: int, channels: int, channel_axis: int) -> np.ndarray | None:
    """A constant that broadcasts along the output channel only, as a (channels,) vector."""
    v = np.asarray(value, np.float64)
    if v.ndim > out_rank:
        return None
    full = (1,) * (out_rank - v.ndim) + v.shape
    for i, d in enumerate(full):
        if d != 1 and i != channel_axis:
            return None
    flat = v.reshape(-1)
    if flat.size == 1:
        return np.full(channels, flat[0])
    return flat if flat.size == channels else None


def _fold(g: Graph, p: Node, mult: np.ndarray | None, add: np.ndarray | None) -> None:
    channels = _channels(g, p)
    w = g.tensors[p.inputs[1]].data.astype(np.float64)
    if p.op == "Conv":
        axis = 0
    else:
        axis = 0 if p.attrs.get("transB") else 1
    bias = np.zeros(channels)
    if len(p.inputs) > 2 and p.inputs[2] is not None:
        bias = np.broadcast_to(np.asarray(g.tensors[p.inputs[2]].data, np.float64).reshape(-1), (channels,)).copy()
    if mult is not None:
        shape = [1] * w.ndim
        shape[axis] = channels
        w = w * mult.reshape(shape)
        bias = bias * mult
    if add is not None:
        bias = bias + add
    w_name = p.inputs[1]
    if mult is not None:
        w_name = g.add_const(g.unique_name(f"{p.name}/weight_folded"), w.astype(np.float32)).name
    bt = g.add_const(g.unique_name(f"{p.name}/bias_folded"), bias.astype(np.float32))
    p.inputs = [p.inputs[0], w_name, bt.name]
    if p.op == "Gemm":
        p.attrs["beta"] = 1.0


def _foldable_producer(g: Graph, x: str, cons) -> Node | None:
    p = producer(g, x)
    if p is None or only_use(g, x, cons) is None:
        return None
    if p.op == "MatMul" and len(g.tensors[p.inputs[0]].shape) == 2 and g.tensors[p.inputs[1]].is_const \
            and len(g.tensors[p.inputs[1]].shape) == 2 and g.tensors[x].dtype == "f32":
        p.op, p.attrs = "Gemm", dict(alpha=1.0, beta=1.0, transA=0, transB=0)  # the same product, now with a bias slot
    if _channels(g, p) is None:
        return None
    if is_quantized([g.tensors[i] if i else None for i in p.inputs], [g.tensors[o] for o in p.outputs]):
        return None
    if not g.tensors[p.inputs[1]].is_const or any(k in p.attrs for k in ("act_min", "act_max")):
        return None
    if len(p.inputs) > 2 and p.inputs[2] is not None and not g.tensors[p.inputs[2]].is_const:
        return None
    return p


def fold_batchnorm(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        cons = consumers(g)
        for n in list(g.nodes):
            if g.tensors[n.outputs[0]].dtype != "f32":
                continue
            if n.op == "BatchNormalization" and all(g.tensors[x].is_const for x in n.inputs[1:5]):
                m, a = get_op(n.op).affine(n, [None] + [g.tensors[x].data for x in n.inputs[1:5]])
                p = _foldable_producer(g, n.inputs[0], cons)
                if p is not None and _channels(g, p) == m.size:
                    _fold(g, p, m, a)
                    replace_output(g, n, p)
                else:
                    _to_mul_add(g, n, m, a)
                changed = True
                break
            if n.op in ("Mul", "Add"):
                const = [i for i, x in enumerate(n.inputs) if g.tensors[x].is_const]
                if len(const) != 1:
                    continue
                x = n.inputs[1 - const[0]]
                p = _foldable_producer(g, x, cons)
                if p is None:
                    continue
                out = g.tensors[x]
                axis = 1 if p.op == "Conv" else len(out.shape) - 1
                v = _per_channel(g.tensors[n.inputs[const[0]]].data, len(out.shape), _channels(g, p), axis)
                if v is None or g.tensors[n.outputs[0]].shape != out.shape:
                    continue
                _fold(g, p, v if n.op == "Mul" else None, v if n.op == "Add" else None)
                replace_output(g, n, p)
                changed = True
                break
    return g


def _to_mul_add(g: Graph, n: Node, m: np.ndarray, a: np.ndarray) -> None:
    x = g.tensors[n.inputs[0]]
    shape = (m.size,) + (1,) * (len(x.shape) - 2)
    mt = g.add_const(g.unique_name(f"{n.name}/scale"), m.astype(np.float32).reshape(shape))
    at = g.add_const(g.unique_name(f"{n.name}/offset"), a.astype(np.float32).reshape(shape))
    mid = g.unique_name(f"{n.name}/scaled")
    from ..ir import Tensor

    g.add_tensor(Tensor(mid, x.shape, x.dtype))
    i = g.nodes.index(n)
    g.nodes[i:i + 1] = [Node("Mul", f"{n.name}/mul", [x.name, mt.name], [mid]),
                        Node("Add", f"{n.name}/add", [mid, at.name], [n.outputs[0]])]


@register
class FoldBatchNorm(Pass):
    name = "fold-batchnorm"
    description = "BatchNormalization and per-channel Mul/Add constants into Conv/Gemm weights and bias"

    def run(self, g: Graph) -> Graph:
        with np.errstate(all="ignore"):  # (folded weights past float32 become inf, as the float64 -> float32 cast says)
            return remove_dead(fold_batchnorm(g))
