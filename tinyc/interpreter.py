"""The numpy reference interpreter: runs tinyc IR with each op's ``reference``.

It can run any graph at any point of the pipeline, and is the oracle the generated C is compared
with.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import TinycError
from .ir import DTYPES, Graph
from .ops import get_op, is_quantized
from .quant.rounding import graph_scoped


def check_inputs(g: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs by name, converted to the declared dtype; shape mismatches are errors."""
    out = {}
    for name in g.inputs:
        if name not in feeds:
            raise TinycError(f"missing value for input '{name}'")
        t = g.tensors[name]
        a = np.asarray(feeds[name])
        if a.shape != t.shape:
            if a.size == t.size and a.squeeze().shape == tuple(d for d in t.shape if d != 1):
                a = a.reshape(t.shape)
            else:
                raise TinycError(f"input '{name}' has shape {list(a.shape)}, the model needs {list(t.shape)}")
        out[name] = a.astype(DTYPES[t.dtype], copy=False)
    extra = set(feeds) - set(g.inputs)
    if extra:
        raise TinycError(f"values given for unknown input(s): {', '.join(sorted(extra))}")
    return out


@graph_scoped
def run(g: Graph, feeds: Mapping[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
    """Outputs by name (every tensor's value with ``keep_all``)."""
    env: dict[str, np.ndarray] = {t.name: t.data for t in g.constants()}
    env.update(check_inputs(g, feeds))
    for node in g.nodes:
        op = get_op(node.op)
        xs = [None if x is None else env[x] for x in node.inputs]
        ins = [None if x is None else g.tensors[x] for x in node.inputs]
        outs = [g.tensors[o] for o in node.outputs]
        ys = op.qreference(node, xs, ins, outs) if is_quantized(ins, outs) else op.reference(node, xs)
        for name, y in zip(node.outputs, ys):
            t = g.tensors[name]
            if y.shape != t.shape:
                raise TinycError(f"{node.op} node '{node.name}' produced shape {y.shape}, IR says {t.shape}")
            env[name] = y.astype(DTYPES[t.dtype], copy=False)
    if keep_all:
        return env
    return {o: env[o] for o in g.outputs}
