"""canonicalize: fold everything computable at compile time and drop nodes that do nothing.

- a node whose inputs are constants (or, for Shape, only known shapes) becomes a constant;
- Identity, Dropout (inference), a Cast to the same type and a Reshape/Flatten/Squeeze/Unsqueeze
  that does not change the shape are removed;
- a view of a view (Reshape of a Flatten, ...) becomes one Reshape of the original tensor;
- ReduceMean / ReduceMax over all spatial axes (2..) becomes GlobalAveragePool / GlobalMaxPool
  (and a Reshape when keepdims=0): the pooling ops have NHWC and int8 kernels; a ReduceMean's
  ``rounding`` (the meaning of an int8 mean) goes with it.
Repeats until nothing changes, so PyTorch's Shape -> Gather -> Unsqueeze -> Concat -> Reshape
chains end as one static Reshape.
"""
from __future__ import annotations

import numpy as np

from ..ir import DTYPES, Graph, Node, Tensor
from ..ops import get_op
from . import Pass, register
from .dce import remove_dead
from .rewrite import bypass, rounds

def _fold_once(g: Graph) -> bool:
    for n in g.nodes:
        op = get_op(n.op)
        ins = [None if x is None else g.tensors[x] for x in n.inputs]
        if not op.foldable or not all(t is None or t.is_const or i in op.shape_only_inputs for i, t in enumerate(ins)):
            continue
        if any(g.tensors[o].quant is not None for o in n.outputs):
            continue
        xs = [None if t is None else t.data if t.is_const else np.broadcast_to(np.zeros((), DTYPES[t.dtype]), t.shape)
              for t in ins]
        for o, v in zip(n.outputs, op.reference(n, xs)):
            t = g.tensors[o]
            t.data = np.asarray(np.asarray(v).astype(DTYPES[t.dtype]).reshape(t.shape), order="C")
        g.nodes.remove(n)
        return True
    return False


def _is_no_op(g: Graph, n) -> bool:
    return get_op(n.op).is_no_op(n, [None if x is None else g.tensors[x] for x in n.inputs],
                                 [g.tensors[o] for o in n.outputs])


def _collapse_views(g: Graph) -> bool:
    """A view of a view is one Reshape of the original tensor."""
    prod = {o: n for n in g.nodes for o in n.outputs}
    for n in g.nodes:
        inner = prod.get(n.inputs[0]) if n.inputs else None
        if get_op(n.op).view and inner is not None and get_op(inner.op).view:
            n.op = "Reshape"
            n.inputs = [inner.inputs[0]]
            n.attrs = {"shape": list(g.tensors[n.outputs[0]].shape)}
            return True
    return False


def _reduce_to_global_pool(g: Graph) -> bool:
    for i, n in enumerate(g.nodes):
        pool = get_op(n.op).global_pool
        if pool is None:
            continue
        x = g.tensors[n.inputs[0]]
        rank = len(x.shape)
        if rank < 3 or n.attrs["axes"] != list(range(2, rank)) or x.dtype not in ("f32", "s8"):
            continue
        pooled_shape = x.shape[:2] + (1,) * (rank - 2)
        kept = {k: v for k, v in n.attrs.items() if k == "rounding"}  # the meaning of an int8 mean
        if n.attrs["keepdims"]:
            g.nodes[i] = Node(pool, n.name, [x.name], list(n.outputs), kept)
        else:
            y = g.tensors[n.outputs[0]]
            mid = g.add_tensor(Tensor(g.unique_name(f"{y.name}/pooled"), pooled_shape, y.dtype, quant=y.quant))
            g.nodes[i:i + 1] = [Node(pool, n.name, [x.name], [mid.name], kept),
                                Node("Reshape", f"{n.name}/reshape", [mid.name], list(n.outputs), {"shape": list(y.shape)})]
        return True
    return False


def canonicalize(g: Graph) -> Graph:
    for _ in rounds(g, "canonicalize"):
        changed = _fold_once(g) or _collapse_views(g) or _reduce_to_global_pool(g)
        for n in list(g.nodes):
            if _is_no_op(g, n) and bypass(g, n):
                changed = True
        remove_dead(g)
        if not changed:
            return g


@register
class Canonicalize(Pass):
    name = "canonicalize"
    description = "fold constant subgraphs; drop Identity, Dropout, same-type Cast, same-shape Reshape; spatial ReduceMean/Max -> global pooling"

    def run(self, g: Graph) -> Graph:
        return canonicalize(g)
