"""Comparing outputs of the generated code with the reference interpreter (or expected data)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Comparison:
    name: str
    shape: tuple[int, ...]
    exact: bool  # integer outputs are compared for equality
    max_abs: float
    max_rel: float  # max abs error relative to the largest reference magnitude
    mismatches: int  # elements that differ (integers) or exceed the tolerance (floats)
    ok: bool

    def describe(self) -> str:
        if self.exact:
            return (f"{self.mismatches} of {int(np.prod(self.shape))} values differ, max diff {self.max_abs:g} LSB"
                    if self.mismatches else "bit-exact")
        return f"max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}"


def compare(name: str, got: np.ndarray, ref: np.ndarray, rtol: float) -> Comparison:
    got = np.asarray(got)
    ref = np.asarray(ref).reshape(got.shape) if np.asarray(ref).size == got.size else np.asarray(ref)
    if got.shape != ref.shape:
        return Comparison(name, tuple(got.shape), False, float("inf"), float("inf"), got.size, False)
    if np.issubdtype(ref.dtype, np.integer):
        diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
        n = int(np.count_nonzero(diff))
        return Comparison(name, tuple(got.shape), True, float(diff.max(initial=0)), 0.0, n, n == 0)
    g64, r64 = got.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(g64 - r64)
    if not (np.all(np.isfinite(g64) == np.isfinite(r64))):
        return Comparison(name, tuple(got.shape), False, float("inf"), float("inf"), got.size, False)
    diff = np.where(np.isfinite(r64), diff, 0.0)
    scale = float(np.abs(r64[np.isfinite(r64)]).max(initial=0.0))
    max_abs = float(diff.max(initial=0.0))
    max_rel = max_abs / scale if scale > 0 else max_abs
    bad = int(np.count_nonzero(diff > rtol * (scale if scale > 0 else 1.0)))
    return Comparison(name, tuple(got.shape), False, max_abs, max_rel, bad, bad == 0)


@dataclass
class OutputCheck:
    """One output against one truth (the reference interpreter or the expected data) over all
    samples: the worst sample's comparison and how many samples mismatch."""

    output: str
    against: str  # "reference" or "expected data"
    worst: Comparison
    samples: int
    mismatched: int  # samples

    @property
    def ok(self) -> bool:
        return self.mismatched == 0

    @property
    def max_abs_error(self) -> float:
        return self.worst.max_abs

    @property
    def max_rel_error(self) -> float:
        return self.worst.max_rel

    def line(self) -> str:
        """The line `tinyc verify` prints."""
        tag = "ok" if self.ok else f"MISMATCH in {self.mismatched} of {self.samples} samples"
        return (f"  output '{self.output}' {list(self.worst.shape)} vs {self.against}: {self.worst.describe()} "
                f"(worst of {self.samples} sample{'s' if self.samples > 1 else ''})  {tag}")


def check_outputs(names: list[str], outputs: list[dict[str, np.ndarray]],
                  truths: list[tuple[str, list[dict[str, np.ndarray]]]], rtol: float) -> list[OutputCheck]:
    """Every output of the target's ``outputs`` (one dict per sample) against each (label, truth)."""
    checks = []
    for label, truth in truths:
        for name in names:
            comps = [compare(name, got[name], t[name], rtol) for got, t in zip(outputs, truth) if name in t]
            if comps:
                worst = max(comps, key=lambda c: (not c.ok, c.max_rel if not c.exact else c.max_abs))
                checks.append(OutputCheck(name, label, worst, len(comps), sum(not c.ok for c in comps)))
    return checks
