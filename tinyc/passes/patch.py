"""patch: run the memory-heavy first stages of a CNN in row bands, below the layer-by-layer floor.

Run layer by layer, a CNN's arena is at least its largest layer's input plus output, and those are
the first, high-resolution layers while the rest is small. This pass takes a *stage* (a run of
nodes that can compute a band of output rows from bands of their inputs' rows: convolutions,
depthwise, pooling, elementwise ops, residual Adds, a layout Transpose or quantization of the
input; ``Op.band``), left by one tensor ``Y``, and computes it in bands of Y's rows across the full
width (the grid is ``B x 1``):

- rows are pulled as readers need them, one row per step (or each tensor's share of a band), with
  receptive field arithmetic (strides, padding, dilation); a convolution's pads stay only at the
  image's true top and bottom border;
- every tensor inside the stage is a *window* of rows: before new rows are written, the rows later
  steps still read move to the window's top (``RowMove``), and the new rows go below them. Halos
  are kept, not recomputed: recomputed MACs are 0, and every output element sums the same
  products in the same order (int8 bit-exact, float equal). Rows nobody reads (below a pooling
  window's last full stride) are not computed at all;
- the last layer writes its rows into the full-size Y; the stage's inputs are read in place (rows
  of NCHW under a layout Transpose are copied a row at a time).

The IR shows every decision: band nodes ``NODE@k`` (k: the step) with attributes ``band`` (Y's
band it serves), ``band_of`` (the layer), ``stage`` and ``at`` ([window, byte offset, window
bytes]: where the planner puts the output, tinyc/memory.py); ``RowView``/``RowJoin`` are views.

``--patch`` (graph option ``patch``): ``auto`` (default), ``off`` (the graph as it is), or
``B[x1][@LAYER]`` (one stage ending at LAYER, in B bands). The cost model (auto) estimates the
peak with a stage in bands as the largest of the stage's bytes (its windows, Y, tensors alive
across it) and the live bytes at the other steps, layer by layer with the target's kernels
(in-place execution included); it takes the smallest, and within 5% of it the fewest steps (each
a kernel call); applies it only when the peak drops by 10% and 1 KiB; then looks for another
stage where the new peak is (up to :data:`MAX_STAGES`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import TinycError
from ..ir import Graph, Node, Tensor
from ..ops import get_op
from ..ops.band import ROW_AXIS, rows_tensor
from . import Pass, register

DEFAULT = "auto"
MIN_GAIN = 0.10  # auto: the layer-by-layer bound must drop at least this much
MIN_GAIN_BYTES = 1024  # ... and by at least this many bytes (below, the band steps' code costs more)
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
    nodes: list[Node]  # in order
    output: str  # Y: the only tensor read after it
    inputs: list[str]  # the tensors from before it that it reads (graph inputs or whole tensors)
    start: int = 0  # the index of its first node


@dataclass
class Step:
    """One band node: ``node`` computes its output rows ``rows`` reading ``reads`` (input index ->
    (axis, first, stop)), with the band node's ``attrs``; ``band``: the band of Y it serves."""

    node: Node
    band: int
    rows: tuple[int, int]
    reads: dict[int, tuple[int, int, int]]
    attrs: dict
    low: int = 0  # the output window's first row after the move before this step (not for Y)
    moved: int = 0  # rows moved to the window's top before this step


@dataclass
class Schedule:
    """A stage cut into bands: the steps in order (each layer's rows pulled in chunks as its
    readers need them, so the first band does not hold the whole receptive field at once) and
    each window's capacity in rows."""

    stage: Stage
    bands: list[tuple[int, int]]  # Y's rows per band
    steps: list[Step] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # window tensor -> capacity in rows

    def window_bytes(self, g: Graph, t: str) -> int:
        return self.rows[t] * row_bytes(g.tensors[t])

    def moved_bytes(self, g: Graph) -> int:
        """Bytes the windows' moves copy in one inference."""
        return sum(st.moved * row_bytes(g.tensors[st.node.outputs[0]]) for st in self.steps)


def row_bytes(t: Tensor) -> int:
    return t.nbytes // t.shape[ROW_AXIS]


def stages(g: Graph, starts=None) -> list[Stage]:
    """Every run of nodes beginning at one of ``starts`` (default: the graph's first three nodes, so
    that a stage may begin after the input's quantization or layout) that can run in bands and is
    left by one tensor, shortest first for each start."""
    out: list[Stage] = []
    for start in (range(min(3, len(g.nodes))) if starts is None else starts):
        out += _stages_from(g, start)
    return out


def _stages_from(g: Graph, start: int) -> list[Stage]:
    consumers = g.consumers()
    before = set(g.inputs) | {o for n in g.nodes[:start] for o in n.outputs}
    out: list[Stage] = []
    inside: set[str] = set()
    for k in range(start, len(g.nodes)):
        n = g.nodes[k]
        ins = [None if x is None else g.tensors[x] for x in n.inputs]
        outs = [g.tensors[o] for o in n.outputs]
        if len(outs) != 1 or not rows_tensor(outs[0]) or n.outputs[0] in g.outputs:
            break
        if any(x is not None and x not in inside and x not in before and not g.tensors[x].is_const for x in n.inputs):
            break
        band = get_op(n.op).band(n, ins, outs, 0, outs[0].shape[ROW_AXIS])
        # rows along another axis (NCHW under a layout Transpose) only of a tensor computed before
        if band is None or any(r is not None and (not rows_tensor(ins[j]) or (r[0] != ROW_AXIS and n.inputs[j] in inside))
                               for j, r in enumerate(band.rows)):
            break
        inside.add(n.outputs[0])
        later = {x for x in inside if any(c > k for c in consumers.get(x, []))}
        if len(later) == 1 and k + 1 < len(g.nodes):
            y = later.pop()
            if not any(c <= k for c in consumers.get(y, [])):
                nodes = g.nodes[start:k + 1]
                ext = sorted({x for m in nodes for x in m.inputs if x in before})
                out.append(Stage(nodes, y, ext, start))
    return out


def schedule(g: Graph, stage: Stage, nbands: int, fine: bool = True) -> Schedule | None:
    """Y in ``nbands`` bands; each tensor's rows computed when a reader needs them, one row per
    step (``fine``) or its share of a band per step; then the windows (see :func:`_windows`). None where an op cannot run in
    bands or a window's rows would not stay word-aligned."""
    h = g.tensors[stage.output].shape[ROW_AXIS]
    per = -(-h // nbands)
    bands = [(s, min(s + per, h)) for s in range(0, h, per)]
    sc = Schedule(stage, bands)
    producer = {n.outputs[0]: n for n in stage.nodes}
    done = {t: 0 for t in producer}
    # a step computes one row (fine: the smallest windows), or the tensor's share of a band
    chunk = {t: 1 if fine else max(1, round(per * g.tensors[t].shape[ROW_AXIS] / h)) for t in producer}

    def ensure(t: str, stop: int, band: int) -> bool:
        n = producer.get(t)
        if n is None:
            return True  # a stage input: all there
        while done[t] < stop:
            r0 = done[t]
            r1 = min(stop, r0 + chunk[t])
            ins = [None if x is None else g.tensors[x] for x in n.inputs]
            b = get_op(n.op).band(n, ins, [g.tensors[t]], r0, r1)
            if b is None:
                return False
            reads = {j: r for j, r in enumerate(b.rows) if r is not None}
            for j, (_, _, e) in reads.items():
                if not ensure(n.inputs[j], e, band):
                    return False
            sc.steps.append(Step(n, band, (r0, r1), reads, b.attrs))
            done[t] = r1
        return True

    for b, (_, stop) in enumerate(bands):
        if not ensure(stage.output, stop, b):
            return None
    _windows(sc)
    viewed = {st.node.inputs[j] for st in sc.steps for j, (axis, _, _) in st.reads.items()
              if st.node.inputs[j] in stage.inputs and _contiguous(g.tensors[st.node.inputs[j]], axis)}
    for t in list(sc.rows) + [stage.output] + sorted(viewed):
        if row_bytes(g.tensors[t]) % ROW_ALIGN:
            return None
    return sc


def _windows(sc: Schedule) -> None:
    """Each window's rows over the steps: before a step writes new rows of tensor T, the rows of T
    that later steps still read move to the window's top (``Step.low``, ``Step.moved``); the
    capacity is the most rows a window ever holds."""
    y = sc.stage.output
    reads: dict[str, list[tuple[int, int]]] = {}  # tensor -> (step, first row read), in order
    for i, st in enumerate(sc.steps):
        for j, (_, a, _) in st.reads.items():
            reads.setdefault(st.node.inputs[j], []).append((i, a))
    future: dict[str, list[int]] = {}  # tensor -> per read: the smallest first row read from then on
    for t, rs in reads.items():
        m, out = 1 << 60, []
        for _, a in reversed(rs):
            m = min(m, a)
            out.append(m)
        future[t] = out[::-1]
    nxt = {t: 0 for t in reads}
    low: dict[str, int] = {}
    for i, st in enumerate(sc.steps):
        t = st.node.outputs[0]
        if t == y:
            continue
        rs = reads.get(t, [])
        k = nxt.get(t, 0)
        while k < len(rs) and rs[k][0] < i:
            k += 1
        nxt[t] = k
        r0, r1 = st.rows
        lo = min(future[t][k], r0) if k < len(rs) else r0
        old = low.get(t, 0)
        lo = max(lo, old)
        st.low, st.moved = lo, max(0, r0 - lo) if lo > old else 0
        low[t] = lo
        sc.rows[t] = max(sc.rows.get(t, 0), r1 - lo)


def stage_bytes(g: Graph, sc: Schedule) -> int:
    """The stage's live bytes: every window, Y, and the largest copy of input rows (an input whose
    rows are not contiguous, e.g. NCHW under a layout Transpose)."""
    copies = 0
    for st in sc.steps:
        for j, (axis, a, e) in st.reads.items():
            x = g.tensors[st.node.inputs[j]]
            if st.node.inputs[j] in sc.stage.inputs and not _contiguous(x, axis):
                copies = max(copies, x.nbytes // x.shape[axis] * (e - a))
    whole = sum(g.tensors[x].nbytes for x in sc.stage.inputs if x not in g.inputs)  # (arena tensors from before)
    return sum(sc.window_bytes(g, t) for t in sc.rows) + g.tensors[sc.stage.output].nbytes + copies + whole


def _contiguous(t: Tensor, axis: int) -> bool:
    """Rows along ``axis`` are contiguous bytes (a view): only the image's rows (axis 1 of N=1)."""
    return axis == ROW_AXIS and t.shape[0] == 1


def live_per_step(g: Graph) -> list[int]:
    """The bytes live at each step as the planner sees them (with the kernels' in-place execution
    and scratch when ``g`` has been through select-kernels)."""
    from ..memory import lifetimes

    def per_step(smaller):
        bufs = lifetimes(g, smaller=smaller)[0]
        return [sum(b.size for b in bufs if b.first <= s <= b.last) for s in range(len(g.nodes))]

    # with or without outputs over larger inputs (depthwise in place), as the planner picks
    smaller = frozenset(n.name for n in g.nodes if n.attrs.get("inplace_smaller"))
    return min([per_step(frozenset())] + ([per_step(smaller)] if smaller else []), key=lambda p: max(p, default=0))


@dataclass
class Choice:
    schedule: Schedule
    peak: int  # estimated: the graph's peak with this stage (and the ones chosen before) in bands
    bound_before: int  # the layer-by-layer bound
    profile: list[int] = field(default_factory=list)  # bytes live per step of the original graph, after


def _bypass(g: Graph, st: Stage) -> int:
    """Bytes of arena tensors from before the stage that it does not read but later nodes do."""
    end = st.start + len(st.nodes)
    made = {o: i for i, n in enumerate(g.nodes) for o in n.outputs}
    cons = g.consumers()
    return sum(g.tensors[t].nbytes for t, i in made.items() if i < st.start and t not in st.inputs
               and any(c >= end for c in cons.get(t, [])) and t not in g.outputs)


def _options(g: Graph, st: Stage, profile: list[int], before: int, nbands: int | None = None,
             memo: dict | None = None) -> list[Choice]:
    """The schedules of one stage with the peak each gives: one-row steps (the smallest windows:
    the band count hardly matters), and steps of each layer's share of 2, 4 or 8 rows of Y."""
    end = st.start + len(st.nodes)
    h = g.tensors[st.output].shape[ROW_AXIS]
    if nbands is not None:
        plans = [(nbands, True), (nbands, False)]
    else:
        plans = [(h, True)] + [(-(-h // r), False) for r in (2, 4, 8) if r <= h // 2]
    memo = {} if memo is None else memo
    out = []
    extra = _bypass(g, st)
    for nb, fine in plans:
        key = (st.start, len(st.nodes), nb, fine)  # (a schedule depends on the graph only: reused)
        if key not in memo:
            memo[key] = schedule(g, st, nb, fine)
        sc = memo[key]
        if sc is None:
            continue
        inside = stage_bytes(g, sc) + extra
        prof = profile[:st.start] + [inside] * len(st.nodes) + profile[end:]
        out.append(Choice(sc, max(prof), before, prof))
    return out


def _disjoint(st: Stage, chosen: list[Choice]) -> bool:
    end = st.start + len(st.nodes)
    return all(end <= c.schedule.stage.start or st.start >= c.schedule.stage.start + len(c.schedule.stage.nodes)
               for c in chosen)


MAX_STAGES = 4  # auto: at most this many stages, each chosen where the peak is
REACH = 40  # auto: a stage starts at most this many steps before the peak it lowers


def choose(g: Graph, live: list[int], memo: dict | None = None) -> list[Choice]:
    """auto: stage after stage, each where the peak is: the stage (and schedule) giving the
    smallest estimated peak, within 5% of it the fewest band steps; taken only if it lowers the
    peak by 10% and 1 KiB."""
    before = max(live, default=0)
    profile, chosen = list(live), []
    for _ in range(MAX_STAGES):
        peak = max(profile)
        k = profile.index(peak)
        starts = range(max(0, k - REACH), k + 1) if chosen else None
        options = []
        for st in stages(g, starts):
            end = st.start + len(st.nodes)
            if st.start <= k < end and _disjoint(st, chosen):
                options += _options(g, st, profile, before, memo=memo)
        if not options:
            break
        best = min(c.peak for c in options)
        if best > (1 - MIN_GAIN) * peak or peak - best < MIN_GAIN_BYTES:
            break
        near = [c for c in options if c.peak <= best * NEAR_BEST]
        pick = min(near, key=lambda c: (len(c.schedule.steps), c.peak, len(c.schedule.stage.nodes)))
        chosen.append(pick)
        profile = pick.profile
    return chosen


def forced(g: Graph, live: list[int], spec: str) -> list[Choice]:
    m = _SPEC.match(spec)
    nb, layer = int(m["bands"]), m["layer"]
    if layer is not None and layer not in {n.name for n in g.nodes}:
        raise TinycError(f"--patch {spec}: no layer '{layer}' in the graph")
    last = next((i for i, n in enumerate(g.nodes) if n.name == layer), None)
    starts = None if last is None else range(max(0, last - REACH), last + 1)
    options = [c for st in stages(g, starts) if layer is None or st.nodes[-1].name == layer
               for c in _options(g, st, list(live), max(live, default=0), nb)]
    if not options:
        where = f"ending at '{layer}'" if layer else "at the start of the graph"
        raise TinycError(f"--patch {spec}: no stage {where} can run in {nb} bands (the stage must be convolutions, "
                         "pooling and elementwise ops on N=1 images, left by one tensor, rows of 4-byte multiples)")
    return [min(options, key=lambda c: (c.peak, -len(c.schedule.stage.nodes), len(c.schedule.steps)))]


# -- rewriting ---------------------------------------------------------------------------------

def rewrite(g: Graph, choice: Choice, index: int = 0) -> Graph:
    """The stage of ``choice`` in bands (``index``: the stage's number, attribute ``stage``)."""
    sc = choice.schedule
    st = sc.stage
    nodes: list[Node] = []
    ywin = f"{st.output}@window"
    current: dict[str, str] = {}  # window tensor -> the SSA tensor holding its rows now (at its top)
    low: dict[str, int] = {}  # window tensor -> the image row at its top
    y_parts: list[str] = []

    def tensor(name: str, like: str, nrows: int, axis: int = ROW_AXIS) -> str:
        t = g.tensors[like]
        shape = list(t.shape)
        shape[axis] = nrows
        name = g.unique_name(name)
        g.add_tensor(Tensor(name, tuple(shape), t.dtype, quant=t.quant))
        return name

    def at(host: str, t: str, row: int) -> list:
        size = g.tensors[t].nbytes if host == ywin else sc.window_bytes(g, t)
        return [host, row * row_bytes(g.tensors[t]), size]

    def view(t: str, a: int, e: int, k: int) -> str:
        """Rows a .. e of window tensor t (in its SSA tensor now); that tensor itself when it is all."""
        x, lo = current[t], low[t]
        if a == lo and e - a == g.tensors[x].shape[ROW_AXIS]:
            return x
        v = tensor(f"{t}[{a}:{e}]@{k}", t, e - a)
        nodes.append(Node("RowView", v, [x], [v], dict(rows=[a - lo, e - a], at=at(f"{t}@window", t, a - lo))))
        return v

    for k, step in enumerate(sc.steps):
        n, b = step.node, step.band
        t = n.outputs[0]
        r0, r1 = step.rows
        if t != st.output and t in current and step.low > low[t]:  # the rows still read move to the top
            if step.moved:
                kept = view(t, step.low, r0, k)
                moved = tensor(f"{t}[{step.low}:{r0}]@{k}.kept", t, r0 - step.low)
                nodes.append(Node("RowMove", f"{t}@{k}.move", [kept], [moved],
                                  dict(at=at(f"{t}@window", t, 0), band=b, band_of=f"{t}@move", stage=index)))
                current[t] = moved
            else:
                del current[t]
            low[t] = step.low
        inputs = list(n.inputs)
        for j, (axis, a, e) in step.reads.items():
            x = n.inputs[j]
            if x not in st.inputs:
                inputs[j] = view(x, a, e, k)
                continue
            xt = g.tensors[x]
            v = tensor(f"{x}[{a}:{e}]@{k}", x, e - a, axis)  # (rows along ``axis``)
            if _contiguous(xt, axis):  # (rows of a graph input, or of a tensor in the arena: its bytes)
                nodes.append(Node("RowView", v, [x], [v], dict(rows=[a, e - a], at=[x, a * row_bytes(xt), xt.nbytes])))
            else:  # rows that are not contiguous (NCHW under a layout Transpose): copied
                nodes.append(Node("Slice", v, [x], [v], dict(_slice_attrs(xt, axis, a, e), band=b, band_of=n.name,
                                                                                stage=index, input_offset=a * _stride(xt, axis))))
            inputs[j] = v
        if t == st.output:
            out = tensor(f"{t}[{r0}:{r1}]", t, r1 - r0)
            place = at(ywin, t, r0)
            y_parts.append(out)
        else:
            lo = low.setdefault(t, step.low)
            out = tensor(f"{t}[{r0}:{r1}]", t, r1 - r0)
            place = at(f"{t}@window", t, r0 - lo)
        nodes.append(Node(n.op, f"{n.name}@{k}", inputs, [out], dict(step.attrs, band=b, band_of=n.name, stage=index,
                                                                      at=place)))
        if t != st.output:
            if t not in current:
                current[t] = out
            else:
                joined = tensor(f"{t}[{low[t]}:{r1}]", t, r1 - low[t])
                nodes.append(Node("RowJoin", f"{t}@{k}.join", [current[t], out], [joined], dict(at=at(f"{t}@window", t, 0))))
                current[t] = joined
    y = st.output
    nodes.append(Node("RowJoin", f"{y}.join", y_parts, [y], dict(at=[ywin, 0, g.tensors[y].nbytes])))
    g.nodes = g.nodes[:st.start] + nodes + g.nodes[st.start + len(st.nodes):]
    return _drop_unused(g, st)


def _stride(t: Tensor, axis: int) -> int:
    """Elements from one index of ``axis`` to the next."""
    return int(math.prod(t.shape[axis + 1:]))


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


def summary(g: Graph, choices: list[Choice]) -> dict:
    """What the pass did, for the report: each stage, the layer-by-layer bound and the estimate."""
    out = []
    for c in sorted(choices, key=lambda c: c.schedule.stage.start):
        sc, st = c.schedule, c.schedule.stage
        out.append(dict(stage=[n.name for n in st.nodes], output=st.output, grid=[len(sc.bands), 1],
                        rows_per_band=sc.bands[0][1] - sc.bands[0][0], band_steps=len(sc.steps),
                        windows={t: dict(rows=sc.rows[t], bytes=sc.window_bytes(g, t)) for t in sc.rows},
                        stage_bytes=stage_bytes(g, sc), moved_bytes=sc.moved_bytes(g)))
    return dict(stages=out, arena_lower_bound_before=choices[0].bound_before, estimated_peak=choices[-1].peak,
                recomputed_macs=0)


def patch(g: Graph, target=None) -> Graph:
    """The pass: with ``target``, the layer-by-layer figures it compares against come from the
    target's kernels (their in-place execution and scratch, select-kernels on a copy)."""
    spec = g.options.get("patch", DEFAULT)
    if spec == "off" or (spec == "auto" and not stages(g)):
        return g
    live = live_per_step(g)
    memo: dict = {}  # the schedules, computed once for both estimates
    if spec == "auto" and not choose(g, live, memo):
        return g  # (not even against the bound without the kernels' in-place execution)
    if target is not None:
        from .select_kernels import choose_kernels
        live = live_per_step(choose_kernels(g, target.template_variants, target=target))
    choices = choose(g, live, memo) if spec == "auto" else forced(g, live, spec)
    if not choices:
        return g
    import copy

    g = copy.copy(g)
    g.tensors = dict(g.tensors)
    g.nodes = list(g.nodes)
    info = summary(g, choices)
    order = sorted(choices, key=lambda c: c.schedule.stage.start)
    for k in reversed(range(len(order))):  # (later stages first: indices hold)
        g = rewrite(g, order[k], k)
    g.patch = info
    return g


@register
class Patch(Pass):
    name = "patch"
    description = "the first stage of a CNN in row bands with windows of rows (below the layer-by-layer arena)"
    needs_target = True

    def run(self, g: Graph, target) -> Graph:
        return patch(g, target)
