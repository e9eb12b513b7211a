"""plan-memory: every activation and kernel scratch gets its offset in the one static arena.

Runs on the graph select-kernels made (tinyc/memory.py has the planner) and records its
decisions on the nodes:

- ``placement``: ``"view"`` (the output is the input's bytes: no code runs) or ``"in_place"``
  (the output overwrites an input; the kernel's parameters become its in-place form,
  ``Op.inplace_params``);
- ``offsets``: each output's byte offset in the arena (-1: the caller's buffer, or a view of it);
- ``scratch_offset``: where the kernel's scratch is, when it has some.
The plan itself (buffers, lower bounds) is kept on the graph for the report (``Graph.memory_plan``).
"""
from __future__ import annotations

from ..ir import Graph
from ..memory import plan
from ..ops import get_op
from . import Pass, register


def plan_memory(g: Graph, alignment: int) -> Graph:
    mplan = plan(g, alignment)
    offsets = {t: b.offset + b.at.get(t, 0) for b in mplan.buffers for t in b.tensors}
    for n in g.nodes:
        a = n.attrs
        if n.name in mplan.views:
            a["placement"] = "view"
        elif n.name in mplan.inplace:
            a["placement"] = "in_place"
            a["params"] = get_op(n.op).inplace_params(n, a["params"])
        a["offsets"] = [offsets.get(o, -1) for o in n.outputs]
        if n.name in mplan.scratch:
            a["scratch_offset"] = offsets[mplan.scratch[n.name]]
    g.memory_plan = mplan
    return g


@register
class PlanMemory(Pass):
    name = "plan-memory"
    description = "activations and kernel scratch -> offsets in one static arena (views, in-place execution)"
    needs_target = True

    def run(self, g: Graph, target) -> Graph:
        return plan_memory(g, target.alignment)
