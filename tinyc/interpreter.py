"""The numpy reference interpreter: runs tinyc IR with each op's ``reference``.

It can run any graph at any point of the pipeline, and is the oracle the generated C is compared
with.

Stateful models (``Graph.states``, e.g. SVDF's activation state) carry their state from one run to
the next as generated C does: ``state = initial_state(g)`` is the state after a reset, and
``run(g, feeds, state=state)`` reads it and leaves the state after that run in the same dict (so
consecutive calls are one sequence; a fresh ``initial_state`` is ``<name>_reset``). Without
``state`` a run starts from the initial state (one run alone). ``run_sequence`` runs a list of
feeds in order as one sequence.
"""
from __future__ import annotations

from typing import Callable, Mapping

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


def initial_state(g: Graph) -> dict[str, np.ndarray]:
    """The model state at the start (and after a reset): every element its declared value."""
    return {n: np.full(g.tensors[n].shape, v, DTYPES[g.tensors[n].dtype]) for n, v in g.states.items()}


def run_sequence(g: Graph, feeds: list[Mapping[str, np.ndarray]],
                 step: Callable[[int], None] | None = None) -> list[dict[str, np.ndarray]]:
    """Outputs of consecutive runs from the initial state, the state carried from each to the next.
    ``step``: called with the number of runs done after each (progress)."""
    state = initial_state(g)
    outs = []
    for f in feeds:
        outs.append(run(g, f, state=state))
        if step is not None:
            step(len(outs))
    return outs


@graph_scoped
def run(g: Graph, feeds: Mapping[str, np.ndarray], keep_all: bool = False,
        state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Outputs by name (every tensor's value with ``keep_all``). ``state``: the model state before
    the run, updated in place to the state after it (None: the initial state, discarded)."""
    env: dict[str, np.ndarray] = {t.name: t.data for t in g.constants()}
    state = initial_state(g) if state is None else state
    env.update({n: state[n] for n in g.states})
    env.update(check_inputs(g, feeds))
    for node in g.nodes:
        op = get_op(node.op)
        xs = [None if x is None else env[x] for x in node.inputs]
        ins = [None if x is None else g.tensors[x] for x in node.inputs]
        outs = [g.tensors[o] for o in node.outputs]
        ys = op.qreference(node, xs, ins, outs) if is_quantized(ins, outs) else op.reference(node, xs)
        for j, y in zip(op.state_inputs, ys[len(outs):]):
            state[node.inputs[j]] = env[node.inputs[j]] = y.astype(DTYPES[ins[j].dtype], copy=False)
        for name, y in zip(node.outputs, ys):
            t = g.tensors[name]
            if y.shape != t.shape:
                raise TinycError(f"{node.op} node '{node.name}' produced shape {y.shape}, IR says {t.shape}")
            env[name] = y.astype(DTYPES[t.dtype], copy=False)
    if keep_all:
        return env
    return {o: env[o] for o in g.outputs}
