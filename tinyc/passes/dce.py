"""dead-code: remove nodes whose outputs nobody reads and tensors nothing refers to."""
from __future__ import annotations

from ..ir import Graph
from . import Pass, register


def remove_dead(g: Graph) -> Graph:
    live = set(g.outputs)
    keep = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs):
            keep.append(n)
            live.update(x for x in n.inputs if x is not None)
    g.nodes = keep[::-1]
    used = live | set(g.inputs) | {o for n in g.nodes for o in n.outputs}
    for name in [t for t in g.tensors if t not in used]:
        del g.tensors[name]
    return g


@register
class DeadCode(Pass):
    name = "dead-code"
    description = "remove nodes and tensors nothing reads"

    def run(self, g: Graph) -> Graph:
        return remove_dead(g)
