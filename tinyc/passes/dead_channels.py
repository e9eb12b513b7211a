"""fold-dead-channels: pruning-aware folding. An output channel of a Conv or Gemm whose weights are
all zero is a constant (its bias through the fused activation). Where every reader of that output
can absorb a constant input channel - a Conv without padding (every tap inside the input) or a
Gemm - the constant's contribution moves into the reader's bias, and the channel is dropped from
both: fewer MACs, weights and activation bytes, the same values (up to float rounding).

Float graphs (and float models before tinyc quantizes them); QDQ models keep their channels.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ops import float_activation
from . import Pass, register
from .rewrite import consumers


def _weights_by_channel(g: Graph, n: Node) -> np.ndarray | None:
    """The producer's weights as (output channel, ...), when it can lose channels."""
    if n.op not in ("Conv", "Gemm") or len(n.inputs) < 2:
        return None
    w = g.tensors[n.inputs[1]]
    if not w.is_const or w.dtype != "f32" or g.tensors[n.inputs[0]].dtype != "f32":
        return None
    if n.op == "Conv" and n.attrs.get("group", 1) == 1 and not n.attrs.get("layout"):
        return w.data
    if n.op == "Gemm" and not n.attrs.get("transA") and n.attrs.get("alpha", 1.0) == 1.0 and \
            (len(n.inputs) < 3 or n.inputs[2] is None or n.attrs.get("beta", 1.0) == 1.0):
        return w.data if n.attrs.get("transB") else w.data.T
    return None


def _reader_weights(g: Graph, r: Node, name: str) -> np.ndarray | None:
    """A reader's weights as (input channel, output channel, taps), when it can absorb a constant
    input channel exactly."""
    if not r.inputs or r.inputs[0] != name or name in r.inputs[1:] or _weights_by_channel(g, r) is None:
        return None
    w = g.tensors[r.inputs[1]].data
    if r.op == "Conv":
        if any(r.attrs.get("pads", [0])):
            return None  # at a border some taps read padding, not the constant
        return np.moveaxis(w.reshape(w.shape[0], w.shape[1], -1), 1, 0)
    return (w.T if r.attrs.get("transB") else w)[:, :, None]


def fold_dead_channels(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        cons = consumers(g)
        for p in g.nodes:
            if p.op not in ("Conv", "Gemm"):
                continue
            w = _weights_by_channel(g, p)
            if w is None or p.outputs[0] in g.outputs:
                continue
            dead = [c for c in range(w.shape[0]) if not np.any(w[c])]
            if not dead or len(dead) == w.shape[0]:
                continue
            readers = cons.get(p.outputs[0], [])
            if not readers or any(_reader_weights(g, r, p.outputs[0]) is None for r in readers):
                continue
            bias = g.tensors[p.inputs[2]].data if len(p.inputs) > 2 and p.inputs[2] is not None else np.zeros(w.shape[0], np.float32)
            y = g.tensors[p.outputs[0]]
            # the dead channels' constant values, through the fused activation
            probe = np.asarray(bias, np.float32).reshape((1, -1) + (1,) * (len(y.shape) - 2))
            const = float_activation(p, probe).reshape(-1)[dead].astype(np.float64)
            keep = [c for c in range(w.shape[0]) if c not in dead]
            for r in readers:
                rw = _reader_weights(g, r, p.outputs[0])
                # sum over the dead input channels and every tap of w * constant, per output channel
                extra = (rw[dead].astype(np.float64).sum(axis=2) * const[:, None]).sum(axis=0)
                rb = g.tensors[r.inputs[2]].data.astype(np.float64) if len(r.inputs) > 2 and r.inputs[2] is not None else np.zeros(rw.shape[1])
                new_b = g.add_const(g.unique_name(f"{r.name}/bias_folded"), (rb + extra).astype(np.float32))
                old_w = g.tensors[r.inputs[1]].data
                if r.op == "Conv":
                    new_w = old_w[:, keep]
                else:
                    new_w = old_w[:, keep] if r.attrs.get("transB") else old_w[keep, :]
                nw = g.add_const(g.unique_name(f"{r.name}/weights_pruned"), np.ascontiguousarray(new_w))
                r.inputs = [r.inputs[0], nw.name, new_b.name]
            old_w = g.tensors[p.inputs[1]].data
            if p.op == "Conv":
                pw = old_w[keep]
            else:
                pw = old_w[keep, :] if p.attrs.get("transB") else old_w[:, keep]
            nw = g.add_const(g.unique_name(f"{p.name}/weights_pruned"), np.ascontiguousarray(pw))
            nb = g.add_const(g.unique_name(f"{p.name}/bias_pruned"), np.asarray(bias, np.float32)[keep])
            p.inputs = [p.inputs[0], nw.name, nb.name]
            y.shape = (y.shape[0], len(keep)) + tuple(y.shape[2:])
            changed = True
            break
    return g


@register
class FoldDeadChannels(Pass):
    name = "fold-dead-channels"
    description = "output channels with all-zero weights -> constants folded into the readers' bias, then dropped"

    def run(self, g: Graph) -> Graph:
        from .dce import remove_dead

        return remove_dead(fold_dead_channels(g))
