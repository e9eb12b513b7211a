"""Static memory planning: every activation lives in one arena at a fixed offset.

A buffer is live from the step of the node that writes it to the step of its last reader; two
buffers may share bytes only if their live ranges do not overlap. Graph inputs and outputs are the
caller's buffers and constants live in flash, so neither is planned here.

Aliasing (planner v1):
- views (``Op.view``: Reshape, Flatten, Squeeze, Unsqueeze) only rename bytes; their output *is*
  their input's buffer, and no code runs for them;
- in place: an elementwise op (``Op.inplace``: Relu, Clip, Add, Sub, Mul, Div, Requantize) may
  write its output over an input of the same size and type that nothing reads afterwards; so may a
  node whose kernel says how (attribute ``inplace_scratch``, set by select-kernels: a stride-1 NHWC
  Conv keeps a few input rows in a scratch buffer, which is planned in the arena for that one step);
  a node with ``inplace_smaller`` (a depthwise Conv at stride 2 or with valid padding) may write its
  smaller output from the start of its input's bytes: the buffer keeps the input's size for the
  output's life, which helps only where the step is the peak, so the planner plans with and without
  each such alias and keeps the smaller arena (on a tie, without: such models keep their plan).
A kernel's own working memory (attribute ``scratch``, e.g. im2col rows) is planned the same way.
Tensors that alias form one buffer whose live range covers all of them.

Placement: greedy by size (largest first, each at the lowest aligned offset that fits among the
buffers alive at the same time), then a bounded refinement that tries other placement orders and
keeps the smallest arena. The lower bound is the largest total size of the buffers alive at one
step: no plan can be smaller; report.json also gives the bound without any aliasing, which is what
a planner without views and in-place execution (e.g. TFLite Micro's) can at best reach.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .ir import Graph, Node

REFINE_TRIES = 200


@dataclass
class Buffer:
    name: str  # the first tensor of the group
    size: int  # bytes, unpadded
    first: int  # index of the node that writes it
    last: int  # index of the last node that reads it
    offset: int = -1
    tensors: list[str] = field(default_factory=list)
    at: dict[str, int] = field(default_factory=dict)  # tensor -> its byte offset inside (placed by a pass)

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    arena_bytes: int
    lower_bound_bytes: int
    alignment: int
    no_alias_lower_bound_bytes: int = 0
    views: set[str] = field(default_factory=set)  # nodes that run no code
    inplace: set[str] = field(default_factory=set)  # nodes that write over an input
    scratch: dict[str, str] = field(default_factory=dict)  # node -> its scratch buffer

    def __post_init__(self) -> None:
        self._by_tensor = {t: b for b in self.buffers for t in b.tensors}

    def offset(self, tensor: str) -> int:
        b = self._by_tensor[tensor]
        return b.offset + b.at.get(tensor, 0)

    def __contains__(self, tensor: str) -> bool:
        return tensor in self._by_tensor

    def to_json(self) -> list[dict]:
        return [dict(name=b.name, offset=b.offset, size=b.size, first_use=b.first, last_use=b.last,
                     tensors=list(b.tensors))
                for b in sorted(self.buffers, key=lambda b: (b.offset, b.first))]

    def tensor_ranges(self, g: Graph) -> list[dict]:
        """Every planned tensor (activations and kernels' scratch) with its own bytes and live
        range: the boxes of the memory picture. Tensors sharing a buffer (views, in place) share
        its offset; each lives from its writer to its last reader."""
        producer = {o: i for i, n in enumerate(g.nodes) for o in n.outputs}
        last_read: dict[str, int] = {}
        for i, n in enumerate(g.nodes):
            for x in n.inputs:
                if x is not None:
                    last_read[x] = i
        out = []
        for b in sorted(self.buffers, key=lambda b: (b.offset, b.first)):
            for t in b.tensors:
                if t in g.tensors:
                    first = producer.get(t, b.first)
                    out.append(dict(name=t, buffer=b.name, offset=b.offset + b.at.get(t, 0), size=g.tensors[t].nbytes, first_use=first,
                                    last_use=max(first, last_read.get(t, first)), kind="activation"))
                else:
                    out.append(dict(name=t, buffer=b.name, offset=b.offset, size=b.size, first_use=b.first,
                                    last_use=b.last, kind="scratch"))
        return out

    def render(self) -> str:
        """One line per buffer: offset, size, live range, tensors."""
        rows = [f"arena {self.arena_bytes} B, lower bound {self.lower_bound_bytes} B "
                f"(without views and in-place: {self.no_alias_lower_bound_bytes} B), {len(self.buffers)} buffers"]
        rows.append(f"{'offset':>8} {'size':>8}  live    tensors")
        for b in sorted(self.buffers, key=lambda b: (b.offset, b.first)):
            rows.append(f"{b.offset:>8} {b.size:>8}  {b.first:>2}..{b.last:<3} {', '.join(b.tensors)}")
        return "\n".join(rows)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def lifetimes(g: Graph, alias: bool = True, smaller: frozenset[str] = frozenset()
              ) -> tuple[list[Buffer], set[str], set[str], dict[str, str]]:
    """Buffers (with their tensors), the view nodes, the in-place nodes and every node's scratch
    (in-place rows, or a kernel's own working rows such as im2col), from the graph and the kernel
    attributes select-kernels put on its nodes (none on a graph before it: no scratch, in place
    only by the ``inplace`` trait). ``smaller``: the nodes with ``inplace_smaller`` allowed to
    put their output over their larger input."""
    from .ops import get_op

    io = set(g.inputs) | set(g.outputs)
    group: dict[str, Buffer] = {}  # tensor -> its buffer
    bufs: list[Buffer] = []
    views: set[str] = set()
    inplace: set[str] = set()
    scratch: dict[str, str] = {}
    last_read: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        for x in n.inputs:
            if x is not None:
                last_read[x] = i
    hosts: dict[str, Buffer] = {}  # placed tensors' buffers (node attribute ``at``), by name
    for i, n in enumerate(g.nodes):
        for x in n.inputs:
            if x in group:
                group[x].last = max(group[x].last, i)
        out = n.outputs[0]
        if "at" in n.attrs:
            _place(g, n, i, group, hosts, bufs, views, inplace, scratch, io)
            continue
        if out in io:  # writes the caller's buffer: never in place
            target, scratch_bytes = None, 0
        else:
            target, scratch_bytes = _alias_target(g, n, i, group, last_read, smaller) if alias else (None, 0)
        if target is None and not get_op(n.op).view:
            scratch_bytes = n.attrs.get("scratch", 0)
        if scratch_bytes:
            sb = Buffer(f"{n.name}/scratch", scratch_bytes, i, i, tensors=[f"{n.name}/scratch"])
            bufs.append(sb)
            scratch[n.name] = sb.name
        if target is not None:
            b = group[target]
            b.tensors.append(out)
            b.size = max(b.size, g.tensors[out].nbytes)
            b.last = max(b.last, i)
            group[out] = b
            (views if get_op(n.op).view else inplace).add(n.name)
        for o in n.outputs:
            if o not in io and o not in group:
                b = Buffer(o, g.tensors[o].nbytes, i, i, tensors=[o])
                bufs.append(b)
                group[o] = b
    for b in bufs:  # a buffer lives until its last tensor's last reader
        b.last = max([b.last] + [last_read.get(t, b.first) for t in b.tensors])
    return bufs, views, inplace, scratch


def _place(g: Graph, n: Node, i: int, group, hosts, bufs, views, inplace, scratch, io) -> None:
    """A node whose output a pass placed (``at``: [buffer, byte offset, buffer bytes]; the patch
    pass's windows of rows): the output joins that buffer at that offset; a view runs no code; a
    node reading the buffer it writes (a move within it) runs in place. A buffer named after a
    graph input is the caller's (views of its rows): not planned."""
    from .ops import get_op

    host, off, size = n.attrs["at"]
    out = n.outputs[0]
    if get_op(n.op).view:
        views.add(n.name)
    if host in io:
        return
    b = group.get(host) if host in g.tensors else hosts.get(host)  # a planned tensor's bytes, or a window
    if b is None:
        b = hosts[host] = Buffer(host, size, i, i)
        bufs.append(b)
    elif host in g.tensors:
        off += b.at.get(host, 0)
    b.tensors.append(out)
    b.at[out] = off
    b.last = max(b.last, i)
    if any(group.get(x) is b for x in n.inputs):
        inplace.add(n.name)
    group[out] = b
    if not get_op(n.op).view and n.attrs.get("scratch"):
        # the band nodes of a stage share one scratch buffer (one runs at a time), so that every
        # band calls its layer with the same pointers (codegen/loops.py folds the calls)
        key = f"stage{n.attrs.get('stage', 0)}/scratch"
        sb = hosts.get(key)
        if sb is None:
            sb = hosts[key] = Buffer(key, 0, i, i, tensors=[key])
            bufs.append(sb)
        sb.size = max(sb.size, n.attrs["scratch"])
        sb.last = i
        scratch[n.name] = sb.name


def _alias_target(g: Graph, n: Node, i: int, group, last_read, smaller) -> tuple[str | None, int]:
    """(the input the output may share bytes with, scratch bytes needed for it)."""
    from .ops import get_op

    out = g.tensors[n.outputs[0]]
    op = get_op(n.op)
    if op.view and n.inputs[0] in group:
        return n.inputs[0], 0
    if len(n.outputs) != 1:
        return None, 0
    if not op.inplace:
        x = n.inputs[0]
        if x not in group:
            return None, 0
        need = n.attrs.get("inplace_scratch")
        later = max(last_read.get(m, -1) for m in group[x].tensors)
        # (the input's own bytes: its buffer may be larger, holding a smaller output over its input)
        fits = g.tensors[x].nbytes == out.nbytes or (n.name in smaller and n.attrs.get("inplace_smaller")
                                                     and out.nbytes < g.tensors[x].nbytes)
        if need is None or later != i or n.inputs.count(x) != 1 or not fits:
            return None, 0
        return x, need
    for x in n.inputs:
        if x is None or x not in group:
            continue
        t = g.tensors[x]
        b = group[x]
        later = max(last_read.get(m, -1) for m in b.tensors)
        if t.shape == out.shape and t.dtype == out.dtype and later == i and n.inputs.count(x) == 1:
            return x, 0
    return None, 0


def lower_bound(bufs: list[Buffer], steps: int) -> int:
    best = 0
    for s in range(steps):
        best = max(best, sum(b.size for b in bufs if b.first <= s <= b.last))
    return best


def place(bufs: list[Buffer], order: list[Buffer], alignment: int) -> int:
    """Each buffer in ``order`` at the lowest aligned offset free of the placed ones it overlaps."""
    placed: list[Buffer] = []
    for b in order:
        need = _align(b.size, alignment)
        offset = 0
        for p in sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset):
            if offset + need <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size, alignment))
        b.offset = offset
        placed.append(b)
    return max((_align(b.offset + b.size, alignment) for b in placed), default=0)


def greedy_by_size(bufs: list[Buffer], alignment: int) -> int:
    return place(bufs, sorted(bufs, key=lambda b: (-b.size, b.first, b.name)), alignment)


def refine(bufs: list[Buffer], alignment: int, bound: int, tries: int = REFINE_TRIES) -> int:
    """Greedy by size, then other orders (by start, by length, and seeded perturbations of the
    best so far); keeps the smallest arena. Deterministic; stops early at the bound."""
    def arena_of(order):
        return place(bufs, order, alignment)

    best_order = sorted(bufs, key=lambda b: (-b.size, b.first, b.name))
    best = arena_of(best_order)
    candidates = [
        sorted(bufs, key=lambda b: (b.first, -b.size, b.name)),
        sorted(bufs, key=lambda b: (-(b.last - b.first), -b.size, b.name)),
        sorted(bufs, key=lambda b: (-b.size * (b.last - b.first + 1), b.name)),
    ]
    rng = random.Random(0)
    for t in range(tries):
        if best <= _align(bound, alignment):
            break
        if candidates:
            order = candidates.pop()
        else:
            order = list(best_order)
            i, j = rng.randrange(len(order)), rng.randrange(len(order))
            order[i], order[j] = order[j], order[i]
        a = arena_of(order)
        if a < best:
            best, best_order = a, order
    return arena_of(best_order)


def _plan(g: Graph, alignment: int, alias: bool, smaller: frozenset[str]) -> MemoryPlan:
    bufs, views, inplace, scratch = lifetimes(g, alias, smaller)
    bound = lower_bound(bufs, len(g.nodes))
    arena = refine(bufs, alignment, bound) if len(bufs) > 1 else greedy_by_size(bufs, alignment)
    return MemoryPlan(bufs, arena, bound, alignment, views=views, inplace=inplace, scratch=scratch)


def plan(g: Graph, alignment: int = 16, alias: bool = True) -> MemoryPlan:
    """The plan without outputs over larger inputs; with all of them when that is smaller, then
    without each one in turn where it does not help (ties: without)."""
    best = _plan(g, alignment, alias, frozenset())
    candidates = frozenset(n.name for n in g.nodes if n.attrs.get("inplace_smaller")) if alias else frozenset()
    if candidates:
        every = _plan(g, alignment, alias, candidates)
        if every.arena_bytes < best.arena_bytes:
            best, chosen = every, candidates & every.inplace
            for name in sorted(chosen, key=[n.name for n in g.nodes].index):
                trial = _plan(g, alignment, alias, chosen - {name})
                if trial.arena_bytes <= best.arena_bytes:
                    best, chosen = trial, chosen - {name}
    best.no_alias_lower_bound_bytes = lower_bound(lifetimes(g, alias=False)[0], len(g.nodes))
    return best
