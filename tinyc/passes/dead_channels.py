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
from ..ops import float_activation, get_op
from . import Pass, register
from .rewrite import consumers


def _weights_by_channel(g: Graph, n: Node) -> np.ndarray | None:
    """The producer's weights as (output channel, ...), when it can lose channels."""
    axes = get_op(n.op).channel_axes(n) if len(n.inputs) >= 2 else None
    if axes is None:
        return None
    w = g.tensors[n.inputs[1]]
    if not w.is_const or w.dtype != "f32" or g.tensors[n.inputs[0]].dtype != "f32":
        return None
    return np.moveaxis(w.data, axes[0], 0)


def _reader_weights(g: Graph, r: Node, name: str) -> np.ndarray | None:
    """A reader's weights as (input channel, output channel, taps), when it can absorb a constant
    input channel exactly."""
    if not r.inputs or r.inputs[0] != name or name in r.inputs[1:] or _weights_by_channel(g, r) is None:
        return None
    if any(r.attrs.get("pads", [0])):
        return None  # at a border some taps read padding, not the constant
    w = g.tensors[r.inputs[1]].data
    out_axis, in_axis = get_op(r.op).channel_axes(r)
    return np.moveaxis(w, [in_axis, out_axis], [0, 1]).reshape(w.shape[in_axis], w.shape[out_axis], -1)


def fold_dead_channels(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        cons = consumers(g)
        for p in g.nodes:
            w = _weights_by_channel(g, p)
            if w is None or p.outputs[0] in g.outputs:
                continue
            dead = [c for c in range(w.shape[0]) if not np.count_nonzero(w[c])]  # (NaN counts: no warning)
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
                new_w = np.take(g.tensors[r.inputs[1]].data, keep, axis=get_op(r.op).channel_axes(r)[1])
                nw = g.add_const(g.unique_name(f"{r.name}/weights_pruned"), np.ascontiguousarray(new_w))
                r.inputs = [r.inputs[0], nw.name, new_b.name]
            pw = np.take(g.tensors[p.inputs[1]].data, keep, axis=get_op(p.op).channel_axes(p)[0])
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
