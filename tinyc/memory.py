"""Static memory planning: every activation lives in one arena at a fixed offset.

A buffer is live from the step of the node that writes it to the step of its last reader; two
buffers may share bytes only if their live ranges do not overlap. Graph inputs and outputs are
the caller's buffers and constants live in flash, so neither is planned here.

Planner v0: greedy by size (largest first), each buffer at the lowest aligned offset that fits in
a gap between the already placed buffers it overlaps in time. The lower bound is the largest
total size of the buffers alive at one step: no plan can be smaller.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph


@dataclass
class Buffer:
    name: str
    size: int  # bytes, unpadded
    first: int  # index of the node that writes it
    last: int  # index of the last node that reads it
    offset: int = -1

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    arena_bytes: int
    lower_bound_bytes: int
    alignment: int

    def offset(self, name: str) -> int:
        return self._by_name[name].offset

    def __post_init__(self) -> None:
        self._by_name = {b.name: b for b in self.buffers}

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def to_json(self) -> list[dict]:
        return [dict(name=b.name, offset=b.offset, size=b.size, first_use=b.first, last_use=b.last)
                for b in sorted(self.buffers, key=lambda b: (b.offset, b.first))]

    def render(self) -> str:
        """One line per buffer: offset, size, live range, name."""
        rows = [f"arena {self.arena_bytes} B, lower bound {self.lower_bound_bytes} B, {len(self.buffers)} buffers"]
        rows.append(f"{'offset':>8} {'size':>8}  live   tensor")
        for b in sorted(self.buffers, key=lambda b: (b.offset, b.first)):
            rows.append(f"{b.offset:>8} {b.size:>8}  {b.first:>2}..{b.last:<2} {b.name}")
        return "\n".join(rows)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def lifetimes(g: Graph) -> list[Buffer]:
    io = set(g.inputs) | set(g.outputs)
    bufs: dict[str, Buffer] = {}
    for i, n in enumerate(g.nodes):
        for o in n.outputs:
            if o not in io:
                bufs[o] = Buffer(o, g.tensors[o].nbytes, i, i)
        for x in n.inputs:
            if x in bufs:
                bufs[x].last = max(bufs[x].last, i)
    return list(bufs.values())


def lower_bound(bufs: list[Buffer], steps: int) -> int:
    best = 0
    for s in range(steps):
        best = max(best, sum(b.size for b in bufs if b.first <= s <= b.last))
    return best


def greedy_by_size(bufs: list[Buffer], alignment: int) -> int:
    placed: list[Buffer] = []
    for b in sorted(bufs, key=lambda b: (-b.size, b.first, b.name)):
        need = _align(b.size, alignment)
        conflicts = sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset)
        offset = 0
        for p in conflicts:
            if offset + need <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size, alignment))
        b.offset = offset
        placed.append(b)
    return max((_align(b.offset + b.size, alignment) for b in placed), default=0)


def plan(g: Graph, alignment: int = 16) -> MemoryPlan:
    bufs = lifetimes(g)
    arena = greedy_by_size(bufs, alignment)
    return MemoryPlan(bufs, arena, lower_bound(bufs, len(g.nodes)), alignment)
