"""Activation ranges from calibration data, by the reference interpreter.

Methods:
- ``minmax``: the smallest and largest value seen;
- ``percentile``: drop the ``percentile``-th tail on each side (from a 2048-bin histogram);
- ``mse``: the clipping range whose int8 quantization error over the histogram is smallest
  (rounding noise step^2/12 inside, squared distance to the edge outside).
The histogram methods make a second pass over the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .. import interpreter
from ..errors import TinycError
from ..ir import Graph
from ..progress import Progress
from ..ops import get_op

METHODS = ("minmax", "percentile", "mse")
BINS = 2048


@dataclass
class Stats:
    lo: float = np.inf
    hi: float = -np.inf
    hist: np.ndarray | None = None
    edges: np.ndarray | None = None

    def update_range(self, v: np.ndarray) -> None:
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))

    def update_hist(self, v: np.ndarray) -> None:
        if self.hist is None:
            lo, hi = self.lo, self.hi if self.hi > self.lo else self.lo + 1e-8
            self.edges = np.linspace(lo, hi, BINS + 1)
            self.hist = np.zeros(BINS, np.float64)
        h, _ = np.histogram(v, bins=self.edges)
        self.hist += h


def collect(g: Graph, samples: list[dict[str, np.ndarray]], names: Iterable[str], method: str = "minmax",
            percentile: float = 99.99, progress: bool = True) -> dict[str, tuple[float, float]]:
    """(lo, hi) for each named tensor, over all samples."""
    if method not in METHODS:
        raise TinycError(f"unknown calibration method '{method}' (choose from {', '.join(METHODS)})")
    if not samples:
        raise TinycError("no calibration samples")
    names = list(names)
    stats = {n: Stats() for n in names}
    internal: dict[tuple[str, str], Stats] = {}
    passes = ["range"] + (["histogram"] if method != "minmax" else [])
    for what in passes:
        # one updating line on a terminal, the final count elsewhere; runs under 20 samples are quiet
        p = Progress(len(samples), f"calibration ({what})", final=True, keep=True, min_total=20)
        for i, feeds in enumerate(samples):
            env = interpreter.run(g, feeds, keep_all=True)
            for n in names:
                v = np.asarray(env[n], np.float64).reshape(-1)
                # infinities (a max pool window entirely in the padding) and NaN saturate or map to
                # the zero point in int8: the range is that of the finite values
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                if what == "range":
                    stats[n].update_range(v)
                else:
                    stats[n].update_hist(v)
            if what == "range":
                _internal(g, env, internal)
            if progress:
                p.step(i + 1)
    out = {}
    for n, s in internal.items():  # (min/max whatever the method: values no kernel clamps to a range)
        out[n] = (s.lo, s.hi)
    for n, s in stats.items():
        if s.lo > s.hi:  # no finite value at all
            out[n] = (0.0, 0.0)
        elif method == "minmax":
            out[n] = (s.lo, s.hi)
        elif method == "percentile":
            out[n] = _percentile_range(s, percentile)
        else:
            out[n] = _mse_range(s)
    return out


def _internal(g: Graph, env: dict, stats: dict) -> None:
    """The ranges of values inside nodes (``Op.internal_ranges``), keyed (node name, value name)."""
    for n in g.nodes:
        for key, (lo, hi) in get_op(n.op).internal_ranges(n, [None if x is None else env.get(x) for x in n.inputs]).items():
            s = stats.setdefault((n.name, key), Stats())
            s.update_range(np.array([lo, hi], np.float64))


def _percentile_range(s: Stats, pct: float) -> tuple[float, float]:
    cdf = np.cumsum(s.hist) / max(s.hist.sum(), 1.0)
    tail = (100.0 - pct) / 100.0
    lo_i = int(np.searchsorted(cdf, tail, side="left"))
    hi_i = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
    return float(s.edges[lo_i]), float(s.edges[min(hi_i + 1, BINS)])


def _mse_range(s: Stats) -> tuple[float, float]:
    centers = (s.edges[:-1] + s.edges[1:]) / 2
    lo0, hi0 = min(s.lo, 0.0), max(s.hi, 0.0)
    best, best_err = (lo0, hi0), np.inf
    for a in np.linspace(0.02, 1.0, 99):
        lo, hi = lo0 * a, hi0 * a
        step = (hi - lo) / 255.0 if hi > lo else 1e-12
        clipped = np.clip(centers, lo, hi)
        err = np.sum(s.hist * ((centers - clipped) ** 2 + (step * step / 12.0)))
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point covering [lo, hi] (always including 0, so that 0 is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zp


def symmetric16_params(lo: float, hi: float) -> tuple[float, int]:
    """int16 scale (zero point 0, TFLite's 16x8 scheme) covering [-m, m], m = max(|lo|, |hi|)."""
    m = max(abs(lo), abs(hi), 1e-6 * 32767)
    return float(np.float32(m / 32767.0)), 0
