"""External oracles for ``verify --against`` and ``diff --against``: the generated code's outputs
compared with a runtime that tinyc did not write.

- ``onnxruntime``: the ONNX model itself in onnxruntime's CPU execution provider, graph
  optimizations off so that a QDQ model runs as written (dequantize, float op, quantize: the ONNX
  meaning of the graph, not whichever fused integer kernel the machine's CPU would get).
- ``tflm``: the original ``.tflite`` in TFLite Micro (the ``tflite-micro`` package), the runtime
  whose integer arithmetic tinyc's int8 kernels follow; given as ``tflm=FILE.tflite``, or nothing
  more when the model itself is a ``.tflite``.

How outputs are judged (``Tolerance``):
- integers against TFLite Micro: equal (``exact``);
- an int8 model (QDQ) against onnxruntime: within ``lsb`` steps of the output's scale (``lsb``),
  since onnxruntime requantizes every layer in float;
- a float model: ``rtol`` relative to the largest oracle value, as against the reference (``rtol``);
- a model tinyc quantized itself (``--quantize int8``) against onnxruntime on the float model:
  quantization error, not a bug, so the verdict is the SQNR against ``min_sqnr`` (``quality``).
Every verdict also reports the SQNR and, for class scores, the top-1 agreement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import TinycError
from ..ir import DTYPES, Graph, QuantParams

ORACLES = ("onnxruntime", "tflm")


@dataclass
class Tolerance:
    rtol: float = 1e-4  # float outputs, relative to the largest oracle value
    lsb: int = 1  # int8 outputs of a QDQ model against onnxruntime
    min_sqnr: float = 30.0  # dB, a model tinyc quantized against the float model in onnxruntime


@dataclass
class Verdict:
    """One output compared with the oracle over all samples."""

    output: str
    mode: str  # exact | lsb | rtol | quality
    ok: bool
    samples: int
    values: int  # compared values over all samples
    differing: int  # values that differ at all (exact, lsb)
    beyond: int  # values beyond the bound (exact, lsb, rtol)
    samples_beyond: int  # samples with a value beyond the bound
    max_diff: float  # in LSB for exact/lsb, absolute for rtol/quality
    max_rel: float  # the largest error relative to its sample's largest oracle value (rtol, quality)
    sqnr_db: float
    top1_agreement: float | None  # class scores only (last axis > 1)
    bound: str  # the pass condition, in words
    bound_lsb: int = 0

    def describe(self) -> str:
        if self.mode == "quality":
            head = f"SQNR {_db(self.sqnr_db)} dB, max abs error {self.max_diff:.3g}"
        elif self.differing == 0 and self.max_diff == 0:
            head = "bit-exact" if self.mode in ("exact", "lsb") else "max abs error 0"
        elif self.mode == "exact":
            head = (f"{self.beyond} of {self.values} values differ in {self.samples_beyond} of {self.samples} "
                    f"sample(s), max {self.max_diff:g} LSB, SQNR {_db(self.sqnr_db)} dB")
        elif self.mode == "lsb":
            head = (f"{self.differing} of {self.values} values differ, {self.beyond} by more than {self.bound_lsb} LSB "
                    f"(in {self.samples_beyond} of {self.samples} sample(s)), max {self.max_diff:g} LSB, "
                    f"SQNR {_db(self.sqnr_db)} dB")
        else:
            head = f"max abs error {self.max_diff:.3g}, max rel error {self.max_rel:.3g}"
        if self.top1_agreement is not None:
            head += f", top-1 agreement {self.top1_agreement:.1%}"
        return head

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if not math.isfinite(d["sqnr_db"]):
            d["sqnr_db"] = "inf" if d["sqnr_db"] > 0 else "-inf"
        return d


def _db(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.1f}"


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
                quantized_by_tinyc: bool = False) -> Oracle:
    kind, path = parse_against(spec, model)
    if kind == "tflm":
        from .tflm import tflm_runner

        runner, label = tflm_runner(path, g)
        return Oracle(kind, label, runner=runner)
    from .ort import ort_runner

    runner, label, notes = ort_runner(path, g, bind or {})
    return Oracle(kind, label, quantized_by_tinyc, runner, notes)


def _lsb_quant(g: Graph, name: str) -> QuantParams | None:
    """The per-tensor quantization an output's values step by: its own, or (a float output of a
    QDQ model) that of the integer tensor its DequantizeLinear reads."""
    t = g.tensors[name]
    q = t.quant
    if q is None:
        producer = next((n for n in g.nodes if name in n.outputs), None)
        if producer is not None and producer.op == "DequantizeLinear":
            q = g.tensors[producer.inputs[0]].quant
    if q is None or np.asarray(q.scale).size != 1:
        return None
    return q


def _class_scores(g: Graph, name: str) -> bool:
    """Whether an output looks like class scores (top-1 agreement means something): a softmax's
    output, or one row of at most 100 values."""
    shape = g.tensors[name].shape
    producer = next((n for n in g.nodes if name in n.outputs), None)
    if producer is not None and producer.op in ("Softmax", "LogSoftmax") and shape and shape[-1] > 1:
        return True
    return len(shape) >= 1 and 1 < shape[-1] <= 100 and int(np.prod(shape)) == shape[-1]


def judge(oracle: Oracle, g: Graph, name: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray],
          tol: Tolerance) -> Verdict:
    """The target's values of output ``name`` (one array per sample) against the oracle's."""
    t = g.tensors[name]
    q = _lsb_quant(g, name)
    integer = DTYPES[t.dtype].kind in "iu"
    if oracle.quantized_by_tinyc:
        mode = "quality"
    elif oracle.kind == "onnxruntime" and q is not None:
        mode = "lsb"
    else:
        mode = "exact" if integer else "rtol"
    n = len(got)
    from ..diff import _sqnr, dequantize

    g_real = np.stack([dequantize(np.reshape(x, t.shape), q) for x in got]).astype(np.float64)
    w_real = np.stack([dequantize(np.reshape(x, t.shape), q) for x in want]).astype(np.float64)
    both = np.isfinite(g_real) & np.isfinite(w_real)
    same = (g_real == w_real) | (np.isnan(g_real) & np.isnan(w_real))
    with np.errstate(invalid="ignore"):
        diff = np.where(both, np.abs(g_real - w_real), np.where(same, 0.0, np.inf))
    # the largest oracle value of each sample (the scale of --rtol, as against the reference)
    scale = np.where(np.isfinite(w_real), np.abs(w_real), 0.0).reshape(n, -1).max(1, initial=0.0)
    scale = np.where(scale > 0, scale, 1.0).reshape((n,) + (1,) * len(t.shape))
    if mode in ("exact", "lsb"):
        diff = np.rint(diff / (float(q.scale) if q is not None else 1.0))  # in steps of the output's scale
        bad = diff > (0 if mode == "exact" else tol.lsb)
        bound = "equal" if mode == "exact" else f"within {tol.lsb} LSB (--lsb)"
    elif mode == "rtol":
        bad = diff > tol.rtol * scale
        bound = f"max error {tol.rtol:g} relative to the largest value (--rtol)"
    else:
        bad = np.zeros(diff.shape, bool)
        bound = f"SQNR at least {tol.min_sqnr:g} dB (--min-sqnr)"
    sqnr = _sqnr(w_real, g_real) if both.all() else -math.inf
    top1 = None
    if _class_scores(g, name):
        top1 = float(np.mean(g_real.reshape(n, -1, t.shape[-1]).argmax(-1) == w_real.reshape(n, -1, t.shape[-1]).argmax(-1)))
    max_diff = float(diff.max(initial=0.0))
    max_rel = float((diff / scale).max(initial=0.0)) if mode in ("rtol", "quality") else 0.0
    ok = sqnr >= tol.min_sqnr if mode == "quality" else not bad.any()
    return Verdict(name, mode, bool(ok), n, int(diff.size), int(np.count_nonzero(diff)), int(np.count_nonzero(bad)),
                   int(np.count_nonzero(bad.reshape(n, -1).any(1))), max_diff, max_rel, sqnr, top1, bound, tol.lsb if mode == "lsb" else 0)


def check(oracle: Oracle, g: Graph, samples: Sequence[dict[str, np.ndarray]], got: Sequence[dict[str, np.ndarray]],
          tol: Tolerance) -> list[Verdict]:
    """Run the oracle on ``samples`` and judge every output of ``got`` (the target's, per sample)."""
    want = oracle.run(g, samples)
    return [judge(oracle, g, name, [o[name] for o in got], [w[name] for w in want], tol) for name in g.outputs]


@dataclass
class DiffSection:
    """``diff --against``: the verdicts, their JSON and text, and whether every output passed."""

    verdicts: list[Verdict]
    json: dict[str, Any]
    text: str
    ok: bool


def diff_against(oracle: Oracle, tol: Tolerance, g: Graph, samples: Sequence[dict[str, np.ndarray]],
                 refs: Sequence[dict], dumps: Sequence[dict] | None) -> DiffSection:
    """The final outputs of the debug build against the oracle (the reference's where the target
    did not run, or where an output is a view, which the dumps do not hold): the oracle exposes no
    layers."""
    from ..diff import _int_feeds

    got = [{name: (d if d is not None and name in d else r)[name] for name in g.outputs}
           for r, d in zip(refs, dumps if dumps is not None else [None] * len(refs))]
    verdicts = check(oracle, g, [_int_feeds(g, s) for s in samples], got, tol)
    fail = failure(oracle, verdicts)
    where = "the target's" if dumps is not None else "the reference's: the target did not run"
    lines = [f"against {oracle.label}, final outputs ({where}):", *report_lines(oracle, g, verdicts)]
    if fail:
        lines.append(f"FAIL {fail}")
    return DiffSection(verdicts, dict(oracle=oracle.label, kind=oracle.kind, ok=fail is None,
                                      outputs=[v.to_json() for v in verdicts]), "\n".join(lines), fail is None)


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


def from_args(args, g: Graph) -> tuple[Oracle | None, Tolerance]:
    """The oracle of ``--against`` (None without it) and the tolerances of ``--rtol``, ``--lsb``
    and ``--min-sqnr``. Made before anything is built, so that a missing file or package is an
    error at once."""
    tol = Tolerance(args.rtol, args.lsb, args.min_sqnr)
    if tol.lsb < 0:
        raise TinycError(f"--lsb {tol.lsb}: give a number of LSB, 0 or more")
    if not args.against:
        return None, tol
    if args.quantize and args.against == "onnxruntime" and not args.input:
        raise TinycError("--against onnxruntime on a model quantized with --quantize compares it with the float "
                         "model: give representative held-out inputs with -i (random inputs fall outside the "
                         "calibrated ranges)")
    from ..data import load_bound_values

    return make_oracle(args.against, args.model, g, load_bound_values(args.bind), bool(args.quantize)), tol


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
