"""Small graph-editing helpers shared by the passes."""
from __future__ import annotations

from ..errors import TinycError
from ..ir import Graph, Node


def rounds(g: Graph, what: str):
    """Round numbers for a rewrite loop that runs until nothing changes, bounded: every round
    removes or moves something, so a loop still going after this many rounds would never end (a
    tinyc bug, reported instead of hanging)."""
    limit = 4 * (len(g.nodes) + len(g.tensors)) + 16
    yield from range(limit)
    raise TinycError(f"{what} did not settle after {limit} rounds; this is a tinyc bug, please report the model")


def consumers(g: Graph) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in g.nodes:
        for x in n.inputs:
            if x is not None:
                out.setdefault(x, []).append(n)
    return out


def producer(g: Graph, name: str) -> Node | None:
    return next((n for n in g.nodes if name in n.outputs), None)


def only_use(g: Graph, name: str, cons: dict[str, list[Node]]) -> Node | None:
    """The single node reading ``name``, if it is read exactly once and is not a graph output."""
    users = cons.get(name, [])
    return users[0] if len(users) == 1 and name not in g.outputs else None


def bypass(g: Graph, n: Node) -> bool:
    """Remove a node whose output equals its first input. Returns False when it must stay (its
    output is a graph output and its input cannot take over that name)."""
    x, y = n.inputs[0], n.outputs[0]
    if any(o in g.outputs or o in consumers(g) for o in n.outputs[1:]):
        return False
    if y not in g.outputs:
        for m in g.nodes:
            m.inputs = [x if v == y else v for v in m.inputs]
        g.nodes.remove(n)
        for o in n.outputs:
            g.tensors.pop(o, None)
        return True
    tx = g.tensors[x]
    if x in g.inputs or x in g.outputs or tx.is_const or len(consumers(g).get(x, [])) != 1:
        return False
    g.nodes.remove(n)
    for o in n.outputs:
        del g.tensors[o]
    g.rename(x, y)
    return True


def replace_output(g: Graph, old: Node, new_output_of: Node) -> None:
    """``new_output_of`` now writes what ``old`` wrote; ``old`` goes away."""
    y = old.outputs[0]
    dead = new_output_of.outputs[0]
    new_output_of.outputs = [y]
    g.nodes.remove(old)
    g.tensors.pop(dead, None)
