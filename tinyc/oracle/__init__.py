"""External oracles for ``verify --against`` and ``diff --against``: the generated code's outputs
compared with a runtime that tinyc did not write.

- ``onnxruntime``: the ONNX model itself in onnxruntime's CPU execution provider, graph
  optimizations off so that a QDQ model runs as written (dequantize, float op, quantize: the ONNX
  meaning of the graph, not whichever fused integer kernel the machine's CPU would get).
- ``tflm``: the original ``.tflite`` in TFLite Micro (the ``tflite-micro`` package), the runtime
  whose integer arithmetic tinyc's int8 kernels follow; given as ``tflm=FILE.tflite``, or nothing
  more when the model itself is a ``.tflite``.

How outputs are judged: ``verdict.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import TinycError
from ..ir import Graph
from .verdict import Tolerance, Verdict, judge

ORACLES = ("onnxruntime", "tflm")


@dataclass
class Oracle:
    kind: str  # onnxruntime | tflm
    label: str  # printed: which runtime, version and file
    quantized_by_tinyc: bool = False
    runner: Any = None
    notes: list[str] = field(default_factory=list)  # hints printed with a failure

    def run(self, g: Graph, samples: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """The oracle's outputs per sample, keyed by the compiled graph's output names."""
        return [self.runner(g, s) for s in samples]


def parse_against(spec: str, model: str | Path) -> tuple[str, Path]:
    """``onnxruntime`` | ``tflm`` | ``tflm=FILE.tflite`` -> (kind, the file the oracle runs)."""
    kind, sep, file = spec.partition("=")
    if kind not in ORACLES:
        raise TinycError(f"--against {spec}: choose onnxruntime or tflm (tflm=FILE.tflite for an ONNX model)")
    model = Path(model)
    if kind == "onnxruntime":
        if sep:
            raise TinycError("--against onnxruntime runs the model itself; it takes no file")
        if model.suffix == ".tflite":
            raise TinycError("--against onnxruntime needs an ONNX model; for a .tflite use --against tflm")
        return kind, model
    if sep:
        path = Path(file)
    elif model.suffix == ".tflite":
        path = model
    else:
        raise TinycError("--against tflm: give the original TFLite file, --against tflm=FILE.tflite")
    if not path.is_file():
        raise TinycError(f"--against tflm: file not found: {path}")
    return kind, path


def make_oracle(spec: str, model: str | Path, g: Graph, bind: dict[str, np.ndarray] | None = None,
                quantized_by_tinyc: bool = False, layers: bool = False) -> Oracle:
    """``layers``: also the layer outputs the oracle can give (those whose names the compiled
    graph kept), for ``diff``."""
    kind, path = parse_against(spec, model)
    if kind == "tflm":
        from .tflm import tflm_runner

        runner, label = tflm_runner(path, g, layers)
        return Oracle(kind, label, runner=runner)
    from .ort import ort_runner

    runner, label, notes = ort_runner(path, g, bind or {}, layers)
    return Oracle(kind, label, quantized_by_tinyc, runner, notes)


def check(oracle: Oracle, g: Graph, samples: Sequence[dict[str, np.ndarray]], got: Sequence[dict[str, np.ndarray]],
          tol: Tolerance, names: Sequence[str] | None = None) -> list[Verdict]:
    """Run the oracle on ``samples`` and judge the outputs of ``got`` (the target's, per sample),
    or the tensors ``names`` among them that the oracle gives too."""
    want = oracle.run(g, samples)
    names = g.outputs if names is None else [n for n in names if all(n in w for w in want)]
    return [judge(oracle.kind, oracle.quantized_by_tinyc, g, name, [o[name] for o in got], [w[name] for w in want], tol)
            for name in names]


@dataclass
class DiffSection:
    """``diff --against``: the verdicts, their JSON and text, and whether every output passed."""

    verdicts: list[Verdict]
    json: dict[str, Any]
    text: str
    ok: bool


def diff_against(oracle: Oracle, tol: Tolerance, g: Graph, samples: Sequence[dict[str, np.ndarray]],
                 rows: Sequence, refs: Sequence[dict], dumps: Sequence[dict] | None) -> DiffSection:
    """The final outputs of the debug build against the oracle (the reference's where the target
    did not run, or where an output is a view, which the dumps do not hold), which decide; and,
    for information, every layer the oracle gives too (onnxruntime: where the names match), in
    each row's ``extra["against"]``."""
    from ..data import quantize_feeds

    names = [r.tensor for r in rows if r.tensor in g.outputs or not r.view]
    got = [{name: (d if d is not None and name in d else r)[name] for name in names}
           for r, d in zip(refs, dumps if dumps is not None else [None] * len(refs))]
    judged = {v.output: v for v in check(oracle, g, [quantize_feeds(g, s) for s in samples], got, tol, names)}
    verdicts = [judged[name] for name in g.outputs]
    for row in rows:
        if row.tensor in judged:
            row.extra["against"] = judged[row.tensor]
    fail = failure(oracle, verdicts)
    where = "the target's" if dumps is not None else "the reference's: the target did not run"
    lines = [f"against {oracle.label}, final outputs ({where}):", *report_lines(oracle, g, verdicts)]
    if fail:
        lines.append(f"FAIL {fail}")
    layers = [dict(index=r.index, **r.extra["against"].to_json()) for r in rows if "against" in r.extra]
    return DiffSection(verdicts, dict(oracle=oracle.label, kind=oracle.kind, ok=fail is None,
                                      outputs=[v.to_json() for v in verdicts], layers=layers),
                       "\n".join(lines), fail is None)


def report_lines(oracle: Oracle, g: Graph, verdicts: Sequence[Verdict]) -> list[str]:
    lines = []
    for v in verdicts:
        tag = "ok" if v.ok else f"MISMATCH (bound: {v.bound})"
        lines.append(f"  output '{v.output}' {list(g.tensors[v.output].shape)} vs {oracle.label}: {v.describe()} "
                     f"(over {v.samples} sample{'s' if v.samples > 1 else ''})  {tag}")
    return lines


def failure(oracle: Oracle, verdicts: Sequence[Verdict]) -> str | None:
    """One line naming the oracle and what failed; None when every output is within its bound."""
    bad = [v for v in verdicts if not v.ok]
    if not bad:
        return None
    what = "; ".join(f"output '{v.output}' {v.describe()} (bound: {v.bound})" for v in bad)
    return " ".join([f"against {oracle.label}: {what}", *oracle.notes])


def from_args(args, build, layers: bool = False) -> tuple[Oracle | None, Tolerance]:
    """The oracle of ``--against`` for a build (tinyc/pipeline.py; None without --against) and
    the tolerances of ``--rtol``, ``--lsb`` and ``--min-sqnr``. Made before anything is built
    for the target, so that a missing file or package is an error at once."""
    tol = Tolerance(args.rtol, args.lsb, args.min_sqnr)
    if tol.lsb < 0:
        raise TinycError(f"--lsb {tol.lsb}: give a number of LSB, 0 or more")
    if not args.against:
        return None, tol
    if build.quantize and args.against == "onnxruntime" and not build.inputs:
        raise TinycError("--against onnxruntime on a model quantized with --quantize compares it with the float "
                         "model: give representative held-out inputs with -i (random inputs fall outside the "
                         "calibrated ranges)")
    return make_oracle(args.against, build.path, build.graph, build.bind, bool(build.quantize), layers), tol


def add_arguments(sp) -> None:
    """``--against`` and its tolerances, for verify and diff."""
    sp.add_argument("--against", metavar="ORACLE",
                    help="also compare with an external runtime: onnxruntime (the ONNX model), tflm=FILE.tflite "
                         "(the original TFLite model in TFLite Micro; tflm alone when the model is a .tflite)")
    sp.add_argument("--lsb", type=int, default=1,
                    help="--against onnxruntime on an int8 (QDQ) model: allowed difference in steps of the output's "
                         "scale (default 1: onnxruntime requantizes in float)")
    sp.add_argument("--min-sqnr", type=float, default=Tolerance.min_sqnr, metavar="DB",
                    help="--against onnxruntime on a model quantized with --quantize: the least SQNR (dB) of the "
                         f"int8 outputs against the float model (default {Tolerance.min_sqnr:g})")
