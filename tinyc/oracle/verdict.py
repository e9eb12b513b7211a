"""How an output is judged against an oracle (``Tolerance``, ``Verdict``, ``judge``):

- integers against TFLite Micro: equal (``exact``);
- an int8 model (QDQ) against onnxruntime: within ``lsb`` steps of the output's scale (``lsb``),
  since onnxruntime requantizes every layer in float;
- a float model: ``rtol`` relative to the sample's largest oracle value, as against the reference
  (``rtol``);
- a model tinyc quantized itself (``--quantize int8``) against onnxruntime on the float model:
  quantization error, not a bug, so the verdict is the SQNR against ``min_sqnr`` (``quality``).
Every verdict also reports the SQNR and, for class scores, the top-1 agreement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..ir import DTYPES, Graph, QuantParams


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

    def cell(self) -> str:
        """A table cell (tinyc diff's column for the oracle)."""
        if self.mode in ("exact", "lsb"):
            return "equal" if self.differing == 0 else f"{self.differing} values, max {self.max_diff:g} LSB"
        return f"max err {self.max_diff:.2g}"

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if not math.isfinite(d["sqnr_db"]):
            d["sqnr_db"] = "inf" if d["sqnr_db"] > 0 else "-inf"
        return d


def _db(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.1f}"


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


def judge(kind: str, quantized_by_tinyc: bool, g: Graph, name: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray],
          tol: Tolerance) -> Verdict:
    """The target's values of output ``name`` (one array per sample) against those of the oracle
    ``kind`` (onnxruntime | tflm); ``quantized_by_tinyc``: the oracle runs the float model."""
    t = g.tensors[name]
    q = _lsb_quant(g, name)
    integer = DTYPES[t.dtype].kind in "iu"
    if quantized_by_tinyc:
        mode = "quality"
    elif kind == "onnxruntime" and q is not None:
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
        rows = (n, -1, t.shape[-1])
        top1 = float(np.mean(g_real.reshape(rows).argmax(-1) == w_real.reshape(rows).argmax(-1)))
    max_diff = float(diff.max(initial=0.0))
    max_rel = float((diff / scale).max(initial=0.0)) if mode in ("rtol", "quality") else 0.0
    ok = sqnr >= tol.min_sqnr if mode == "quality" else not bad.any()
    return Verdict(name, mode, bool(ok), n, int(diff.size), int(np.count_nonzero(diff)), int(np.count_nonzero(bad)),
                   int(np.count_nonzero(bad.reshape(n, -1).any(1))), max_diff, max_rel, sqnr, top1, bound,
                   tol.lsb if mode == "lsb" else 0)
