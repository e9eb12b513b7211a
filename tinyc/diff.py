"""`tinyc diff`: every layer's output three ways — the float model, the int8 reference and the
generated C on the target — to find where a deployed model goes wrong.

- float: the int8 graph *dequantized* (``float_twin``): the same nodes, layouts and names, every
  constant turned back into real numbers, computed in float32 by the reference interpreter. For a
  model quantized from float (tinyc's calibration or a QDQ export) this is the float network with
  the quantized weights; what it shows per layer is the error of int8 activations and integer
  arithmetic, and where it grows.
- int8: the integer reference interpreter on the graph the C code runs.
- target: a debug build of the generated C (``generate(..., dump=True)``) run in the emulator (or
  natively for ``host``); the firmware writes every layer's outputs to dump.bin over semihosting.

For a float model the int8 column is absent and the target is compared with the float reference
at a relative tolerance.
"""
from __future__ import annotations

import copy
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import interpreter
from .codegen import GeneratedModel, generate
from .data import quantize_feeds
from .errors import TinycError
from .ir import DTYPES, Graph, QuantParams, Tensor
from .ops import get_op
from .targets import Target
from .verify import compare

# the SQNR (dB) an exactly known input counts as when judging how much a layer adds: the ideal
# SQNR of 8-bit quantization of a full-scale uniform signal (6.02 * 8 + 1.76)
IDEAL_INT8_SQNR_DB = 49.9


def dequantize(v: np.ndarray, q: QuantParams | None) -> np.ndarray:
    """Real values of an integer array (float arrays unchanged), per tensor or per axis."""
    v = np.asarray(v)
    if q is None or v.dtype.kind == "f":
        return v.astype(np.float32)
    scale, zp = np.asarray(q.scale, np.float64), np.asarray(q.zero_point, np.float64)
    if q.axis is not None and scale.ndim == 1 and v.ndim > 0:
        shape = [1] * v.ndim
        shape[q.axis % v.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((v.astype(np.float64) - zp) * scale).astype(np.float32)


def _is_quantized(t: Tensor) -> bool:
    return t.quant is not None and t.dtype in ("s8", "u8", "s16", "s32", "s64")


def float_twin(g: Graph) -> Graph:
    """The int8 graph computed in float: constants dequantized, quantized tensors float32,
    quantize/requantize nodes identities, fused int8 clamps turned into real clamps where they
    are activations (Relu, Relu6, Clip) rather than the int8 range."""
    t2 = copy.deepcopy(g)
    for name, t in t2.tensors.items():
        if not _is_quantized(t):
            continue
        if t.data is not None:
            t.data = dequantize(t.data, t.quant)
        t.dtype, t.quant = "f32", None
    for n, orig in zip(t2.nodes, g.nodes):
        if get_op(n.op).quant_only:
            n.op, n.attrs = "Identity", {}
            continue
        if "act_min" not in n.attrs and "act_max" not in n.attrs:
            continue
        y = g.tensors[orig.outputs[0]]
        if not _is_quantized(y) or y.quant.axis is not None:
            continue
        scale, zp = float(y.quant.scale), int(y.quant.zero_point)
        lo, hi = n.attrs.pop("act_min", -128), n.attrs.pop("act_max", 127)
        # a bound strictly inside the int8 range is an activation; at the range's end it is the
        # range itself (saturation, part of the quantization error) unless it is real zero (Relu)
        if lo is not None and (lo > -128 or lo == zp):
            n.attrs["act_min"] = scale * (lo - zp)
        if hi is not None and hi < 127:
            n.attrs["act_max"] = scale * (hi - zp)
    return t2


def _float_feeds(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float twin's inputs: float samples as they are, integer ones dequantized."""
    return {k: (np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else dequantize(v, g.tensors[k].quant))
            for k, v in feeds.items()}


def read_dump(raw: bytes, g: Graph, samples: int) -> list[dict[str, np.ndarray]]:
    """dump.bin -> per sample, every dumped tensor by name."""
    if not raw:  # no layer runs code (only views and copies)
        return [{} for _ in range(samples)]
    out: list[dict[str, np.ndarray]] = []
    pos, first = 0, None
    nodes = g.nodes
    while pos < len(raw):
        if pos + 12 > len(raw):
            raise TinycError(f"dump.bin is truncated at byte {pos}")
        node, j, nbytes = struct.unpack_from("<III", raw, pos)
        pos += 12
        if node >= len(nodes) or j >= len(nodes[node].outputs):
            raise TinycError(f"dump.bin names node {node} output {j}, which the model does not have")
        name = nodes[node].outputs[j]
        t = g.tensors[name]
        if nbytes != t.nbytes or pos + nbytes > len(raw):
            raise TinycError(f"dump.bin: {nbytes} bytes for tensor '{name}', expected {t.nbytes}")
        if first is None or (node, j) == first:
            first = first or (node, j)
            out.append({})
        dt = DTYPES[t.dtype].newbyteorder("<")
        out[-1][name] = np.frombuffer(raw[pos:pos + nbytes], dt).astype(dt.newbyteorder("=")).reshape(t.shape)
        pos += nbytes
    if len(out) != samples:
        raise TinycError(f"dump.bin holds {len(out)} inference(s), expected {samples}")
    return out


@dataclass
class LayerDiff:
    index: int  # node index in the graph
    name: str
    op: str
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    sqnr_db: float | None = None  # int8 reference against float (None: a float tensor)
    max_error: float | None = None  # largest |int8 (dequantized) - float|, in real units
    sqnr_drop_db: float | None = None  # how far this layer's SQNR falls below its inputs'
    target_equal: bool | None = None  # emulator output == reference (None: not run)
    target_mismatches: int = 0
    target_max_diff: float = 0.0  # LSB for integers, absolute for floats
    view: bool = False
    input_quantizer: bool = False  # quantizes a float graph input: every int8 model has its error
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d["shape"] = list(self.shape)
        for k in ("sqnr_db", "sqnr_drop_db"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = "inf" if d[k] > 0 else "-inf"
        return d


def _sqnr(f: np.ndarray, q: np.ndarray) -> float:
    f, q = f.astype(np.float64), q.astype(np.float64)
    noise, signal = float(np.sum((f - q) ** 2)), float(np.sum(f ** 2))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def layer_errors(g: Graph, samples: Sequence[dict[str, np.ndarray]]) -> tuple[list[LayerDiff], list[dict], list[dict]]:
    """Per node output: int8 reference vs float twin over all samples (SQNR pooled). Returns the
    rows and the int8 and float values of every tensor per sample."""
    quantized = any(_is_quantized(t) for t in g.tensors.values() if t.data is None)
    state = interpreter.initial_state(g)  # the samples are one sequence (a stateful model carries its state)
    refs = [interpreter.run(g, quantize_feeds(g, s), keep_all=True, state=state) for s in samples]
    twin = float_twin(g) if quantized else None
    floats = [interpreter.run(twin, _float_feeds(g, s), keep_all=True) for s in samples] if twin else []
    rows: list[LayerDiff] = []
    sqnr_of: dict[str, float] = {}
    for name in g.inputs:
        t = g.tensors[name]
        if twin is not None and _is_quantized(t):
            sqnr_of[name] = _sqnr(np.stack([f[name] for f in floats]),
                                  np.stack([dequantize(r[name], t.quant) for r in refs]))
    for i, n in enumerate(g.nodes):
        for name in n.outputs:
            t = g.tensors[name]
            row = LayerDiff(i, n.name, n.op, name, t.shape, t.dtype)
            if twin is not None and _is_quantized(t):
                f = np.stack([x[name] for x in floats])
                q = np.stack([dequantize(r[name], t.quant) for r in refs])
                row.sqnr_db = _sqnr(f, q)
                row.max_error = float(np.abs(f.astype(np.float64) - q).max(initial=0.0))
                sqnr_of[name] = row.sqnr_db
                ins = [min(sqnr_of[x], IDEAL_INT8_SQNR_DB) for x in n.inputs if x in sqnr_of]
                start = min(ins) if ins else IDEAL_INT8_SQNR_DB
                if math.isfinite(row.sqnr_db):
                    row.sqnr_drop_db = start - row.sqnr_db
                row.input_quantizer = all(x in g.inputs and not _is_quantized(g.tensors[x])
                                          for x in n.inputs if x is not None and g.tensors[x].data is None)
            rows.append(row)
    return rows, refs, floats


def run_debug_build(g: Graph, target: Target, build_dir: Path, samples: Sequence[dict[str, np.ndarray]],
                    name: str = "model", source: str = "", timeout: float = 300.0,
                    edit: Callable[[GeneratedModel], None] | None = None) -> list[dict[str, np.ndarray]]:
    """Build the debug firmware, run it on ``samples``; every dumped tensor per sample.
    ``edit`` may change the generated files before the build (fault-injection tests). The debug
    build runs every layer whole (``--patch off``): it dumps each layer's whole output (a patched
    build's bands are checked by `tinyc verify` on the final outputs)."""
    import dataclasses

    from .emulator.runner import build_firmware, run_firmware

    model = generate(dataclasses.replace(g, options=dict(g.options, patch="off")), target, name=name, source=source,
                     dump=True)
    if edit is not None:
        edit(model)
    program = build_firmware(model, target, build_dir, dump=True)
    int_samples = [quantize_feeds(g, s) for s in samples]
    run_firmware(model, target, program, int_samples, timeout)
    dump = build_dir / "dump.bin"
    if not dump.exists():
        raise TinycError("the debug firmware wrote no dump.bin")
    return read_dump(dump.read_bytes(), g, len(samples))


def compare_target(rows: list[LayerDiff], refs: list[dict], dumps: list[dict], rtol: float) -> None:
    """Fill in the target columns: exact for integer tensors, ``rtol`` for float ones."""
    for row in rows:
        if row.tensor not in dumps[0]:
            row.view = True  # no code: the same bytes as its input, under a new shape
            continue
        comps = [compare(row.tensor, d[row.tensor], r[row.tensor], rtol) for d, r in zip(dumps, refs)]
        row.target_equal = all(c.ok for c in comps)
        row.target_mismatches = sum(c.mismatches for c in comps)
        row.target_max_diff = max(c.max_abs for c in comps)


def summarize(rows: list[LayerDiff]) -> dict[str, Any]:
    first = next((r for r in rows if r.target_equal is False), None)
    drops = [r for r in rows if r.sqnr_drop_db is not None and not r.input_quantizer]
    worst = max(drops, key=lambda r: r.sqnr_drop_db, default=None)
    outs = [r for r in rows if r.sqnr_db is not None]
    return dict(
        first_divergence=None if first is None else dict(index=first.index, name=first.name, op=first.op),
        largest_error_growth=None if worst is None else dict(index=worst.index, name=worst.name, op=worst.op,
                                                             sqnr_drop_db=round(worst.sqnr_drop_db, 2)),
        lowest_sqnr=None if not outs else dict(
            name=min(outs, key=lambda r: r.sqnr_db).name, sqnr_db=min(r.sqnr_db for r in outs)),
        target_ran=any(r.target_equal is not None for r in rows),
    )


def render_table(rows: list[LayerDiff], summary: dict[str, Any], target: str, against: str | None = None) -> str:
    """``against``: a last column for an external oracle (the rows' ``extra["against"]``)."""
    def db(v):
        return "-" if v is None else ("inf" if v == math.inf else f"{v:.1f}")

    head = ("#", "op", "layer", "SQNR dB", "max err", "drop dB", f"{target} vs ref") + ((f"vs {against}",) if against else ())
    table = [head]
    for r in rows:
        if r.view:
            tgt = "(view)"
        elif r.target_equal is None:
            tgt = "-"
        elif r.target_equal:
            tgt = "equal"
        else:
            unit = " LSB" if np.dtype(DTYPES[r.dtype]).kind in "iu" else ""
            tgt = f"DIFFERS: {r.target_mismatches} values, max {r.target_max_diff:g}{unit}"
        label = r.name if len(r.name) <= 48 else "..." + r.name[-45:]
        table.append((str(r.index), r.op, label, db(r.sqnr_db), "-" if r.max_error is None else f"{r.max_error:.3g}",
                      db(r.sqnr_drop_db), tgt) + ((r.extra["against"].cell() if "against" in r.extra else "-",)
                                                  if against else ()))
    widths = [max(len(row[k]) for row in table) for k in range(len(head))]
    lines = ["  ".join(c.rjust(w) if k in (0, 3, 4, 5) else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    f, w = summary["first_divergence"], summary["largest_error_growth"]
    if summary["target_ran"]:
        lines.append(f"first divergence on {target}: " + (f"layer {f['index']} ({f['op']} '{f['name']}')" if f
                                                           else "none, every layer equals the reference"))
    if w:
        lines.append(f"quantization error grows most at layer {w['index']} ({w['op']} '{w['name']}'): "
                     f"SQNR falls {w['sqnr_drop_db']:.1f} dB")
    return "\n".join(lines)
