"""int8 Softmax and LogSoftmax for any output quantization, in exact integer arithmetic.

TFLite's int8 softmax (``fixedpoint.softmax_s8``) writes scale 1/256 and zero point -128 only.
A QDQ model may ask for any output parameters (onnxruntime's ``quantize_static`` writes 1/255);
its meaning is ``q = clamp(round_half_even(f(x_real) / s_out) + zp)``. This recipe computes that
from integers, with the rounding of exact rationals, so the result is the correctly rounded real
value except where that value lies within a few 1e-7 LSB of a rounding boundary.

Along a row with maximum ``mx``, each input is ``t = mx - x`` steps (0..255) below it.
- ``EXP[t] = round(2^30 * exp(-s_in * t))`` (a compile-time table; EXP[0] = 2^30), and the row sum
  ``S = sum EXP[t_k]`` (int64, at least 2^30).
- Softmax: ``NUM[t] = round(2^p * exp(-s_in * t) / s_out)`` (int32, the largest ``p <= 30`` that
  fits), and ``q = zp + round_half_even(NUM[t] * 2^(30 - p) / S)`` by one int64 division.
- LogSoftmax: ``log2(S / 2^30)`` in Q30 by repeated squaring, and with ``A = s_in / s_out`` and
  ``C = ln 2 / s_out`` as fixed-point constants, ``w = A * t + C * log2(S / 2^30)`` (output LSBs in
  Q24) and ``q = zp - round_half_even(w / 2^24)``.

The generated C (``templates/portable/s8/softmax_exact.c.j2``) does the same operations on the
same tables; numpy works in int64 as the C does.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError

EXP_BITS = 30  # EXP[0] = exp(0) in Q30
LOG_FRAC = 30  # log2 of the sum in Q30
OUT_FRAC = 24  # LogSoftmax's outputs in Q24 output steps
MIN_OUT_SCALE, MAX_OUT_SCALE = 2.0 ** -20, 2.0 ** 16
A_CAP = 1 << (20 + OUT_FRAC)  # s_in / s_out beyond 2^20: every t >= 1 clamps to -128 anyway


def _check_scales(what: str, in_scale: float, out_scale: float) -> None:
    if not (math.isfinite(in_scale) and in_scale > 0):
        raise UnsupportedError(f"{what}: input scale {in_scale:g} must be positive and finite")
    if not (math.isfinite(out_scale) and MIN_OUT_SCALE <= out_scale <= MAX_OUT_SCALE):
        raise UnsupportedError(f"{what}: output scale {out_scale:g} is outside [2^-20, 2^16], the range of the "
                               "exact int8 recipe")


def _exp_table(in_scale: float) -> np.ndarray:
    e = np.exp(-in_scale * np.arange(256, dtype=np.float64))
    return np.round(e * 2.0 ** EXP_BITS).astype(np.int64)


def _trim(*tables: np.ndarray) -> list[list[int]]:
    """Drop the tail where every table is 0 (those steps add nothing); the kernel reads 0 past it."""
    nonzero = np.flatnonzero(np.any(np.stack(tables) != 0, axis=0))
    n = int(nonzero[-1]) + 1 if nonzero.size else 1
    return [t[:n].astype(np.int64).tolist() for t in tables]


def softmax_params(what: str, in_scale: float, out_scale: float, zero_point: int) -> dict:
    _check_scales(what, in_scale, out_scale)
    p = min(EXP_BITS, math.floor(math.log2((2 ** 31 - 1) * out_scale)))
    while 2.0 ** p / out_scale > 2 ** 31 - 1:
        p -= 1
    num = np.round(np.exp(-in_scale * np.arange(256, dtype=np.float64)) * 2.0 ** p / out_scale).astype(np.int64)
    exp, num = _trim(_exp_table(in_scale), num)
    return dict(exp=exp, num=num, num_shift=EXP_BITS - p, zp=int(zero_point))


def log_softmax_params(what: str, in_scale: float, out_scale: float, zero_point: int) -> dict:
    _check_scales(what, in_scale, out_scale)
    a = min(round(in_scale / out_scale * 2.0 ** OUT_FRAC), A_CAP)
    c = math.log(2.0) / out_scale
    c_frac = 27 - math.floor(math.log2(c))  # C in [2^27, 2^28]
    (exp,) = _trim(_exp_table(in_scale))
    return dict(exp=exp, a=int(a), c=int(round(c * 2.0 ** c_frac)), c_shift=LOG_FRAC + c_frac - OUT_FRAC,
                zp=int(zero_point))


def _rows(x: np.ndarray, table: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, EXP[t], S) for int8 rows along the last axis."""
    v = np.asarray(x, np.int64)
    t = v.max(axis=-1, keepdims=True) - v
    tab = np.asarray(table, np.int64)
    e = np.where(t < tab.size, tab[np.minimum(t, tab.size - 1)], 0)
    return t, e, e.sum(axis=-1, keepdims=True)


def _round_half_even_div(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """n / d to the nearest integer, ties to even, for n >= 0 and d > 0."""
    q = n // d
    r2 = 2 * (n - q * d)
    return q + ((r2 > d) | ((r2 == d) & (q % 2 == 1)))


def softmax_any(x: np.ndarray, p: dict) -> np.ndarray:
    """Softmax over the last axis of int8 ``x``, for the parameters of :func:`softmax_params`."""
    t, _, s = _rows(x, p["exp"])
    num = np.asarray(p["num"], np.int64)
    n = np.where(t < num.size, num[np.minimum(t, num.size - 1)], 0) << p["num_shift"]
    return np.clip(p["zp"] + _round_half_even_div(n, s), -128, 127).astype(np.int8)


def log2_q30(s: np.ndarray) -> np.ndarray:
    """log2(s / 2^30) in Q30 for int64 s >= 2^30: the integer part from the bit length, the
    fraction bit by bit by squaring the Q30 mantissa (truncating)."""
    s = np.asarray(s, np.int64)
    k = np.zeros_like(s)
    while np.any((s >> (31 + k)) != 0):
        k += (s >> (31 + k)) != 0
    m = s >> k
    frac = np.zeros_like(s)
    for _ in range(LOG_FRAC):
        m = (m * m) >> 30
        bit = m >= (1 << 31)
        m = np.where(bit, m >> 1, m)
        frac = (frac << 1) | bit
    return (k << LOG_FRAC) | frac


def log_softmax_any(x: np.ndarray, p: dict) -> np.ndarray:
    """LogSoftmax over the last axis of int8 ``x``, for the parameters of :func:`log_softmax_params`."""
    t, _, s = _rows(x, p["exp"])
    shift = p["c_shift"]
    row = (p["c"] * log2_q30(s) + (np.int64(1) << (shift - 1))) >> shift
    w = p["a"] * t + row
    q = _round_half_even_div(w, np.int64(1) << OUT_FRAC)
    return np.clip(p["zp"] - q, -128, 127).astype(np.int8)
