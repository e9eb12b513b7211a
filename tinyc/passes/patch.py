"""patch: run the memory-heavy first stage of a CNN band by band, below the layer-by-layer floor.

In a CNN the first layers' activations set the arena's peak while the rest is small. This pass cuts
the graph after a prefix (the *stage*: convolutions, depthwise, pooling, elementwise ops, a layout
Transpose of the input) whose only tensor read afterwards is its output ``Y``, and computes the
stage in ``B`` bands of Y's rows (full width: the patch grid is ``B x 1``). In band ``b`` each
layer computes only the rows its readers need next, from the rows of its inputs it needs
(receptive field arithmetic with strides, padding and dilation: ``Op.band``; a convolution's
pads stay only at the image's true border). Every tensor inside the stage is kept as a *window*
of rows: the rows its readers still need are moved to the window's top (``RowMove``) and the new
rows are written below them, so overlapping halos are kept, not recomputed (recomputed MACs: 0);
the last layer writes its rows into the full-size Y. The stage then needs the windows (a few rows
of each tensor) and Y, instead of whole tensors.

The IR shows every decision: band nodes are named ``NODE@b`` with attributes ``band`` (b),
``band_of`` (the layer) and ``at`` ([window, byte offset, window bytes]: where the planner puts
the output, tinyc/memory.py); ``RowView``/``RowJoin`` are views (no code).

``--patch`` (graph option ``patch``): ``auto`` (default) applies the cost model below; ``off``
leaves the graph as it is; ``B`` or ``Bx1``, optionally ``@LAYER`` (the stage's last layer),
forces ``B`` bands. The cost model estimates, for every possible cut and band count, the peak
as the larger of the stage's (windows + Y) and the planner's layer-by-layer bound of the rest;
it takes the smallest peak, then, within 5% of it, the fewest band steps (each step is a kernel
call; the moves copy a few rows); and applies it only when it lowers the layer-by-layer bound
by at least 10%.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import TinycError
from ..ir import Graph, Node, Tensor, itemsize
from ..ops import get_op
from ..ops.band import ROW_AXIS, rows_tensor
from . import Pass, register

DEFAULT = "auto"
MIN_GAIN = 0.10  # auto: the layer-by-layer bound must drop at least this much
NEAR_BEST = 1.05  # auto: peaks within this factor of the best count as equal; fewer steps win
ROW_ALIGN = 4  # a window's rows start at multiples of its row bytes: keep those word-aligned

_SPEC = re.compile(r"(?P<bands>\d+)(?:x(?P<cols>\d+))?(?:@(?P<layer>.+))?$")


def check(spec: str) -> str:
    if spec in ("auto", "off"):
        return spec
    m = _SPEC.match(spec)
    if not m or int(m["bands"]) < 1:
        raise TinycError(f"--patch '{spec}': expected auto, off, or BANDS[x1][@LAYER] (e.g. 8, 8x1@conv5)")
    if m["cols"] is not None and int(m["cols"]) != 1:
        raise TinycError(f"--patch '{spec}': tinyc's bands span the full width and keep their halo rows "
                         "(nothing is recomputed), so the grid is BANDSx1")
    return spec


def set_option(g: Graph, spec: str | None) -> None:
    """Record a non-default --patch in the graph's options."""
    if spec is not None and check(spec) != DEFAULT:
        g.options["patch"] = spec


@dataclass
class Stage:
    nodes: list[Node]  # the prefix, in order
    output: str  # Y: the only tensor read after it
    inputs: list[str]  # graph inputs it reads


@dataclass
class Schedule:
    """A stage cut into bands: per band, each node's new output rows; each tensor's window."""

    stage: Stage
    bands: list[tuple[int, int]]  # Y's rows per band
    new: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # tensor -> rows written per band
    reads: dict[str, list[dict[int, tuple[int, int, int]]]] = field(default_factory=dict)  # node -> per band: input -> rows
    attrs: dict[str, list[dict]] = field(default_factory=dict)  # node -> per band: band node attrs
    low: dict[str, list[int]] = field(default_factory=dict)  # window tensor -> first row kept, per band
    rows: dict[str, int] = field(default_factory=dict)  # window tensor -> capacity in rows

    def window_bytes(self, g: Graph, t: str) -> int:
        return self.rows[t] * row_bytes(g.tensors[t])

    def steps(self) -> int:
        return sum(1 for rs in self.new.values() for r in rs if r[1] > r[0])

    def moved_bytes(self, g: Graph) -> int:
        """Bytes the windows' moves copy in one inference."""
        total = 0
        for t, low in self.low.items():
            for b in range(1, len(low)):
                hi_prev = max(r1 for _, r1 in self.new[t][:b])
                if low[b] > low[b - 1] and hi_prev > low[b]:
                    total += (hi_prev - low[b]) * row_bytes(g.tensors[t])
        return total


def row_bytes(t: Tensor) -> int:
    return t.nbytes // t.shape[ROW_AXIS]


def stages(g: Graph) -> list[Stage]:
    """Every prefix of the graph that can run in bands and is left by one tensor, shortest first."""
    consumers = g.consumers()
    out: list[Stage] = []
    inside: set[str] = set()
    for k, n in enumerate(g.nodes):
        ins = [None if x is None else g.tensors[x] for x in n.inputs]
        outs = [g.tensors[o] for o in n.outputs]
        if len(outs) != 1 or not rows_tensor(outs[0]) or n.outputs[0] in g.outputs:
            break
        if any(x is not None and x not in inside and not g.tensors[x].is_const and x not in g.inputs for x in n.inputs):
            break
        h = outs[0].shape[ROW_AXIS]
        band = get_op(n.op).band(n, ins, outs, 0, h)
        if band is None or any(r is not None and not rows_tensor(ins[j]) for j, r in enumerate(band.rows)):
            break
        inside.add(n.outputs[0])
        later = {x for x in inside if any(c > k for c in consumers.get(x, []))}
        if len(later) == 1 and k + 1 < len(g.nodes):
            y = later.pop()
            if not any(c <= k for c in consumers.get(y, [])):
                out.append(Stage(g.nodes[:k + 1], y, [x for x in g.inputs if x in consumers and
                                                      any(c <= k for c in consumers[x])]))
    return out


def schedule(g: Graph, stage: Stage, nbands: int) -> Schedule | None:
    """The bands' rows of every node and the windows they need; None where a window's rows
    would not stay word-aligned."""
    h = g.tensors[stage.output].shape[ROW_AXIS]
    per = -(-h // nbands)
    bands = [(s, min(s + per, h)) for s in range(0, h, per)]
    sc = Schedule(stage, bands)
    done: dict[str, int] = {}
    for n in stage.nodes:
        sc.new[n.outputs[0]] = []
        sc.reads[n.name] = []
        sc.attrs[n.name] = []
        done[n.outputs[0]] = 0
    reads_at: dict[str, list[tuple[int, int]]] = {}  # tensor -> rows read in the current band
    for b, (_, stop) in enumerate(bands):
        need = {stage.output: stop}
        reads_at = {}
        for n in reversed(stage.nodes):
            t = n.outputs[0]
            r0, r1 = done[t], max(done[t], need.get(t, 0))
            sc.new[t].append((r0, r1))
            reads, attrs = {}, {}
            if r1 > r0:
                ins = [None if x is None else g.tensors[x] for x in n.inputs]
                band = get_op(n.op).band(n, ins, [g.tensors[t]], r0, r1)
                if band is None:
                    return None
                attrs = band.attrs
                for j, r in enumerate(band.rows):
                    if r is None:
                        continue
                    x = n.inputs[j]
                    reads[j] = r
                    need[x] = max(need.get(x, 0), r[2])
                    reads_at.setdefault(x, []).append((r[1], r[2]))
            sc.reads[n.name].append(reads)
            sc.attrs[n.name].append(attrs)
            done[t] = r1
        for n in stage.nodes:  # the windows: rows read and written in this band
            t = n.outputs[0]
            if t == stage.output:
                continue
            low = sc.low.setdefault(t, [])
            r0, r1 = sc.new[t][b]
            starts = [a for a, _ in reads_at.get(t, [])] + ([r0] if r1 > r0 else [])
            lo = min(starts) if starts else (low[-1] if low else 0)
            if low and lo < low[-1]:
                return None  # (a window never slides back up)
            low.append(lo)
            sc.rows[t] = max(sc.rows.get(t, 0), done[t] - lo)
    viewed = {n.inputs[j] for n in stage.nodes for reads in sc.reads[n.name] for j, (axis, _, _) in reads.items()
              if n.inputs[j] in stage.inputs and _contiguous(g.tensors[n.inputs[j]], axis)}
    for t in list(sc.rows) + [stage.output] + sorted(viewed):
        if row_bytes(g.tensors[t]) % ROW_ALIGN:
            return None
    return sc


def stage_bytes(g: Graph, sc: Schedule) -> int:
    """The stage's live bytes: every window, Y, and the largest copy of input rows (an input whose
    rows are not contiguous, e.g. NCHW under a layout Transpose)."""
    copies = 0
    for n in sc.stage.nodes:
        for reads in sc.reads[n.name]:
            for j, (axis, a, e) in reads.items():
                x = g.tensors[n.inputs[j]]
                if n.inputs[j] in sc.stage.inputs and not _contiguous(x, axis):
                    copies = max(copies, x.nbytes // x.shape[axis] * (e - a))
    return sum(sc.window_bytes(g, t) for t in sc.rows) + g.tensors[sc.stage.output].nbytes + copies


def _contiguous(t: Tensor, axis: int) -> bool:
    """Rows along ``axis`` are contiguous bytes (a view): only the image's rows (axis 1 of N=1)."""
    return axis == ROW_AXIS and t.shape[0] == 1


def live_per_step(g: Graph) -> list[int]:
    from ..memory import lifetimes

    bufs = lifetimes(g)[0]
    return [sum(b.size for b in bufs if b.first <= s <= b.last) for s in range(len(g.nodes))]


@dataclass
class Choice:
    schedule: Schedule
    peak: int  # estimated: max(stage, the rest's layer-by-layer bound)
    bound_before: int


def candidates(g: Graph, layer: str | None = None, nbands: int | None = None) -> tuple[list[Choice], int]:
    live = live_per_step(g)
    before = max(live, default=0)
    out = []
    for st in stages(g):
        if layer is not None and st.nodes[-1].name != layer:
            continue
        k = len(st.nodes)
        rest = max(live[k:], default=0)
        h = g.tensors[st.output].shape[ROW_AXIS]
        counts = [nbands] if nbands is not None else sorted({-(-h // r) for r in range(1, h // 2 + 1)})
        for nb in counts:
            if nb < 2 and nbands is None:
                continue
            sc = schedule(g, st, nb)
            if sc is not None:
                out.append(Choice(sc, max(stage_bytes(g, sc), rest), before))
    return out, before


def choose(g: Graph) -> Choice | None:
    """auto: the smallest estimated peak; within 5% of it the fewest band steps; only if it lowers
    the layer-by-layer bound by 10%."""
    options, before = candidates(g)
    if not options:
        return None
    best = min(c.peak for c in options)
    if best > (1 - MIN_GAIN) * before:
        return None
    near = [c for c in options if c.peak <= best * NEAR_BEST]
    return min(near, key=lambda c: (c.schedule.steps(), c.peak, len(c.schedule.stage.nodes)))


def forced(g: Graph, spec: str) -> Choice:
    m = _SPEC.match(spec)
    nb, layer = int(m["bands"]), m["layer"]
    if layer is not None and layer not in {n.name for n in g.nodes}:
        raise TinycError(f"--patch {spec}: no layer '{layer}' in the graph")
    options, _ = candidates(g, layer, nb)
    if not options:
        where = f"ending at '{layer}'" if layer else "at the start of the graph"
        raise TinycError(f"--patch {spec}: no stage {where} can run in {nb} bands (the stage must be convolutions, "
                         "pooling and elementwise ops on N=1 images, left by one tensor, rows of 4-byte multiples)")
    return min(options, key=lambda c: (c.peak, -len(c.schedule.stage.nodes)))


# -- rewriting ---------------------------------------------------------------------------------

def rewrite(g: Graph, choice: Choice) -> Graph:
    sc = choice.schedule
    st = sc.stage
    nodes: list[Node] = []
    win = {t: f"{t}@window" for t in sc.rows}
    ywin = f"{st.output}@window"
    current: dict[str, str] = {}  # window tensor -> its SSA tensor holding the window now
    y_parts: list[str] = []

    def tensor(name: str, like: str, nrows: int) -> str:
        t = g.tensors[like]
        shape = list(t.shape)
        shape[ROW_AXIS] = nrows
        name = g.unique_name(name)
        g.add_tensor(Tensor(name, tuple(shape), t.dtype, quant=t.quant))
        return name

    def at(host: str, t: str, row: int, size: int) -> list:
        return [host, row * row_bytes(g.tensors[t]), size]

    def view(x: str, first: int, count: int, host: str, base: str, origin_row: int, size: int, b: int) -> str:
        """Rows first .. first+count of x, the SSA tensor holding window ``base`` now (at the
        window's top; its row 0 is image row origin_row); x itself when that is all of it."""
        if first == 0 and count == g.tensors[x].shape[ROW_AXIS]:
            return x
        v = tensor(f"{base}@{b}[{origin_row + first}:{origin_row + first + count}]", base, count)
        nodes.append(Node("RowView", v, [x], [v], dict(rows=[first, count], at=at(host, base, first, size))))
        return v

    for b in range(len(sc.bands)):
        # rows each window keeps move to its top
        for t in sc.rows:
            low = sc.low[t]
            if b == 0 or t not in current:
                continue
            hi_prev = max(r1 for _, r1 in sc.new[t][:b])
            if low[b] > low[b - 1]:
                size = sc.window_bytes(g, t)
                if hi_prev > low[b]:
                    kept = view(current[t], low[b] - low[b - 1], hi_prev - low[b], win[t], t, low[b - 1], size, b)
                    moved = tensor(f"{t}@{b}.kept", t, hi_prev - low[b])
                    nodes.append(Node("RowMove", f"{t}@{b}.move", [kept], [moved], dict(at=at(win[t], t, 0, size))))
                    current[t] = moved
                else:
                    del current[t]
        for n in st.nodes:
            t = n.outputs[0]
            r0, r1 = sc.new[t][b]
            if r1 <= r0:
                continue
            inputs = list(n.inputs)
            for j, (axis, a, e) in sc.reads[n.name][b].items():
                x = n.inputs[j]
                if x in st.inputs:
                    xt = g.tensors[x]
                    if _contiguous(xt, axis):
                        v = tensor(f"{x}@{b}[{a}:{e}]", x, e - a)
                        nodes.append(Node("RowView", v, [x], [v],
                                          dict(rows=[a, e - a], at=[x, a * row_bytes(xt), xt.nbytes])))
                    else:  # rows that are not contiguous (NCHW under a layout Transpose): copied
                        v = _axis_tensor(g, x, axis, e - a, f"{x}@{b}[{a}:{e}]")
                        nodes.append(Node("Slice", v, [x], [v], _slice_attrs(xt, axis, a, e)))
                    inputs[j] = v
                else:
                    lo = sc.low[x][b]
                    inputs[j] = view(current[x], a - lo, e - a, win[x], x, lo, sc.window_bytes(g, x), b)
            if t == st.output:
                out = tensor(f"{t}@{b}", t, r1 - r0)
                place = at(ywin, t, r0, g.tensors[t].nbytes)
                y_parts.append(out)
            else:
                lo = sc.low[t][b]
                out = tensor(f"{t}@{b}.new", t, r1 - r0)
                place = at(win[t], t, r0 - lo, sc.window_bytes(g, t))
            attrs = dict(sc.attrs[n.name][b], band=b, band_of=n.name, at=place)
            nodes.append(Node(n.op, f"{n.name}@{b}", inputs, [out], attrs))
            if t != st.output:
                parts = ([current[t]] if t in current else []) + [out]
                if len(parts) == 1:
                    current[t] = out
                else:
                    joined = tensor(f"{t}@{b}", t, sum(g.tensors[p].shape[ROW_AXIS] for p in parts))
                    nodes.append(Node("RowJoin", f"{t}@{b}.join", parts, [joined],
                                      dict(at=at(win[t], t, 0, sc.window_bytes(g, t)))))
                    current[t] = joined
    y = st.output
    nodes.append(Node("RowJoin", f"{y}.join", y_parts, [y], dict(at=[ywin, 0, g.tensors[y].nbytes])))
    g.nodes = nodes + g.nodes[len(st.nodes):]
    g.patch = summary(g, choice)
    return _drop_unused(g, st)


def _axis_tensor(g: Graph, x: str, axis: int, count: int, name: str) -> str:
    t = g.tensors[x]
    shape = list(t.shape)
    shape[axis] = count
    name = g.unique_name(name)
    g.add_tensor(Tensor(name, tuple(shape), t.dtype, quant=t.quant))
    return name


def _slice_attrs(t: Tensor, axis: int, a: int, e: int) -> dict:
    first = [0] * len(t.shape)
    count = list(t.shape)
    first[axis], count[axis] = a, e - a
    return dict(first=first, step=[1] * len(t.shape), count=count)


def _drop_unused(g: Graph, st: Stage) -> Graph:
    for n in st.nodes:
        t = n.outputs[0]
        if t != st.output:
            del g.tensors[t]
    return g


def summary(g: Graph, choice: Choice) -> dict:
    sc = choice.schedule
    st = sc.stage
    return dict(
        stage=[n.name for n in st.nodes],
        output=st.output,
        grid=[len(sc.bands), 1],
        rows_per_band=sc.bands[0][1] - sc.bands[0][0],
        windows={t: dict(rows=sc.rows[t], bytes=sc.window_bytes(g, t)) for t in sc.rows},
        arena_lower_bound_before=choice.bound_before,
        estimated_peak=choice.peak,
        recomputed_macs=0,
        moved_bytes=sc.moved_bytes(g),
        band_steps=sc.steps(),
    )


def patch(g: Graph) -> Graph:
    spec = g.options.get("patch", DEFAULT)
    if spec == "off":
        return g
    choice = choose(g) if spec == "auto" else forced(g, spec)
    if choice is None:
        return g
    import copy

    g = copy.copy(g)
    g.tensors = dict(g.tensors)
    g.nodes = list(g.nodes)
    return rewrite(g, choice)


@register
class Patch(Pass):
    name = "patch"
    description = "the first stage of a CNN in row bands with windows of rows (below the layer-by-layer arena)"

    def run(self, g: Graph) -> Graph:
        return patch(g)
