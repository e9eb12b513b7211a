"""TFLite Micro's int16 (16x8) LOGISTIC, TANH and SOFTMAX, in exact integer arithmetic.

All three want symmetric int16 tensors (zero point 0) and an output scale of 2^-15 (TFLite Micro
refuses anything else at Prepare); the input scale is free. What is computed at Prepare (the
constants below) is computed here in Python; the per-element arithmetic is what the kernel does.

- LOGISTIC / TANH: the input is rescaled to a fixed grid (``y = (x * mult + round) >> shift``:
  3 * 2^12 steps per unit for logistic, twice that for tanh), then one 256-entry table of
  ``sigmoid(i / 24)`` in Q0.16 is read at ``|y| >> 9`` (tanh: ``>> 8``) and interpolated linearly on
  the remaining bits; the sign folds by symmetry (``tanh(x) = 2 sigmoid(2x) - 1``). A power-of-two
  input scale of 2^-12 (tanh: also 2^-11) takes ``mult = 3 << shift, shift = 0``.
- SOFTMAX: ``x - max`` is rescaled by a Q31 multiplier so [-65535, 0] means [-10, 0], read in a
  513-entry exp table (LUT interpolation on 7 bits), summed; the sum is normalised by its leading
  zeros and read in a 513-entry ``1 / (1 + x)`` table; each exp times that reciprocal, shifted back.
  Both tables are TFLite's LUT fill in float32 (a sample per step, corrected by half the
  interpolation error at the step's midpoint).

numpy works in int64; every intermediate stays in the int32 range the C kernel uses.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError
from .fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from .rounding import active

OUT_SCALE_LOG2 = -15  # every int16 output here is Q0.15

# TFLite Micro's sigmoid(i / 24) table in Q0.16 is round(65536 * sigmoid(i / 24)) (capped at
# 65535) except at these i, where it is one higher (a fact of its kernels, checked against it by
# tests/test_int16_lut.py).
_SIGMOID_PLUS_ONE = (4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31, 33, 34, 35, 37, 39, 40,
                     41, 43, 44, 45, 46, 49, 50, 54, 62, 63, 64, 66, 82, 86, 93, 100, 103, 112, 116, 135, 255)


def sigmoid_table() -> np.ndarray:
    """256 entries, sigmoid(i / 24) in Q0.16 (unsigned), as TFLite's int16 LOGISTIC and TANH read it."""
    i = np.arange(256, dtype=np.float64)
    t = np.minimum(np.round(65536.0 / (1.0 + np.exp(-i / 24.0))), 65535).astype(np.int64)
    t[list(_SIGMOID_PLUS_ONE)] += 1
    return np.minimum(t, 65535)


def checked_log2(x: float) -> tuple[int, bool]:
    """TFLite's CheckedLog2 in float32: (the rounded log2, whether x is within 1e-3 of a power of two)."""
    lg = np.float32(np.log(np.float32(x))) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    r = np.float32(_round_away(float(lg)))
    return int(r), bool(abs(np.float32(lg - r)) < np.float32(1e-3))


def _round_away(v: float) -> float:
    return math.copysign(math.floor(abs(v) + 0.5), v)


def is_q15(scale: float) -> bool:
    """Whether TFLite's int16 LOGISTIC/TANH take ``scale`` as their output scale 2^-15 (CheckedLog2)."""
    lg, pot = checked_log2(scale) if math.isfinite(scale) and scale > 0 else (0, False)
    return pot and lg == OUT_SCALE_LOG2


def is_exactly_q15(scale: float) -> bool:
    """Whether ``scale`` is 2^-15 itself. lower-qdq puts a Requantize after the int16 kernels for
    any other output scale, even one the kernels would take as 2^-15 (their values then keep the
    meaning of the model's scale)."""
    return float(np.float32(scale)) == 2.0 ** OUT_SCALE_LOG2


def softmax_output_ok(scale: float) -> bool:
    """Whether TFLite's int16 SOFTMAX takes ``scale`` as its output scale (2^-15 within 0.1%)."""
    return bool(abs(np.float32(scale) - np.float32(1 / 32768)) <= np.float32(0.001 / 32768))


def _check(what: str, in_scale: float, out_scale: float, in_zp: int, out_zp: int) -> None:
    if in_zp != 0 or out_zp != 0:
        raise UnsupportedError(f"{what}: int16 needs zero point 0 on input and output (has {in_zp}, {out_zp})")
    if not (math.isfinite(in_scale) and in_scale > 0):
        raise UnsupportedError(f"{what}: input scale {in_scale:g} must be positive and finite")
    if not is_q15(out_scale):
        raise UnsupportedError(f"{what}: int16 output scale must be 2^-15 (has {out_scale:g})")


def sigmoid_params(what: str, tanh: bool, in_scale: float, out_scale: float, in_zp: int = 0,
                   out_zp: int = 0) -> dict:
    """The constants of int16 LOGISTIC (tanh=False) or TANH: the input rescale
    ``y = (x * mult + round) >> shift`` from TFLite Micro's Prepare (the power-of-two case folded
    in), then the table read (``frac`` interpolation bits, ``saturated`` past the table) and the
    sign fold (``r + pos_add`` or ``neg_add - r``, then ``>> out_shift``)."""
    _check(what, in_scale, out_scale, in_zp, out_zp)
    lg, pot = checked_log2(in_scale)
    shift = 12 + lg
    if pot and (shift == 0 or (tanh and shift == 1)):
        mult, shift = 3 << shift, 0
    else:
        m, shift = float(np.float32(in_scale)) * 4096.0 * 3.0, 0
        while m <= 32767.0 / 2.0 and shift <= 30:
            shift += 1
            m *= 2.0
        if m > 32767:
            raise UnsupportedError(f"{what}: int16 input scale {in_scale:g} is too large (at most {32767 / 12288:g})")
        mult = int(m)
    p = dict(mult=mult, shift=shift, round=(1 << (shift - 1)) if shift > 0 else 0)
    if tanh:  # 2 sigmoid(2x) - 1: the same table on a twice finer grid
        return dict(p, frac=8, mask=0xFF, saturated=0xFFFF << 8, pos_add=(1 << 7) - (1 << 23), neg_add=(1 << 23) + (1 << 7) - 1,
                    out_shift=8)
    return dict(p, frac=9, mask=0x1FF, saturated=0x7FFF << 10, pos_add=1 << 9, neg_add=(1 << 25) + (1 << 9) - 1, out_shift=10)


def sigmoid_tanh_s16(x: np.ndarray, p: dict) -> np.ndarray:
    """int16 LOGISTIC or TANH for the constants of :func:`sigmoid_params`."""
    y = (np.asarray(x, np.int64) * p["mult"] + p["round"]) >> p["shift"]
    a = np.abs(y)
    uh = a >> p["frac"]
    tab = sigmoid_table()
    lo, hi = tab[np.minimum(uh, 254)], tab[np.minimum(uh, 254) + 1]
    r = np.where(uh >= 255, p["saturated"], (lo << p["frac"]) + (a & p["mask"]) * (hi - lo))
    r = np.where(y >= 0, r + p["pos_add"], p["neg_add"] - r)
    return (r >> p["out_shift"]).astype(np.int16)


def lut_populate(fn, in_scale: np.float32, in_zp: int, out_scale: np.float32) -> np.ndarray:
    """TFLite's 513-entry int16 LUT of ``fn`` (float32 -> float32, output zero point 0), in float32."""
    f = np.float32
    in_min, in_max = f(in_scale) * f(-32768 - in_zp), f(in_scale) * f(32767 - in_zp)
    out_min, out_max = f(out_scale) * f(-32768), f(out_scale) * f(32767)
    step = (in_max - in_min) / f(512)
    half = step / f(2)
    inv = f(65536) / (out_max - out_min)
    i = np.arange(512, dtype=np.float32)
    base = in_min + i * step
    val, mid, nxt = fn(base), fn(base + half), fn(in_min + (i + f(1)) * step)
    rnd = _round_away_f32
    sample = rnd(val * inv)
    interp = rnd((nxt * inv + sample) / f(2))
    bias = rnd((interp - rnd(mid * inv)) / f(2))
    table = np.clip(sample - bias, -32768, 32767)
    last = np.clip(rnd(fn(np.asarray([in_max], np.float32)) * inv), -32768, 32767)
    return np.concatenate([table, last]).astype(np.int64)


def _round_away_f32(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).astype(np.float64)  # exact: no float32 rounding of |v| + 0.5
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.float32)


def _exp_f32(v: np.ndarray) -> np.ndarray:
    return np.exp(np.asarray(v, np.float64)).astype(np.float32)  # expf, correctly rounded


def _one_over_one_plus(v: np.ndarray) -> np.ndarray:
    return (np.float32(1) / (np.float32(1) + np.asarray(v, np.float32))).astype(np.float32)


def softmax_tables() -> tuple[np.ndarray, np.ndarray]:
    """(exp table over [-10, 0], 1 / (1 + x) table over [0, 1]), 513 int16 entries each."""
    span = np.float32(65535)
    exp = lut_populate(_exp_f32, np.float32(10) / span, 32767, np.float32(2) / span)
    recip = lut_populate(_one_over_one_plus, np.float32(1) / span, -32768, np.float32(2) / span)
    return exp, recip


def softmax_params(what: str, in_scale: float, out_scale: float, beta: float = 1.0, in_zp: int = 0,
                   out_zp: int = 0) -> tuple[int, int]:
    """(Q31 multiplier, shift) taking ``x - max`` to the exp table's [-65535, 0] for [-10, 0]."""
    if in_zp != 0 or out_zp != 0:
        raise UnsupportedError(f"{what}: int16 needs zero point 0 on input and output (has {in_zp}, {out_zp})")
    if not (math.isfinite(in_scale) and in_scale > 0 and math.isfinite(beta) and beta > 0):
        raise UnsupportedError(f"{what}: input scale {in_scale:g} and beta {beta:g} must be positive and finite")
    if not softmax_output_ok(out_scale):
        raise UnsupportedError(f"{what}: int16 softmax output scale must be 2^-15 (has {out_scale:g})")
    return quantize_multiplier(float(np.float32(in_scale)) * float(np.float32(beta)) / (10.0 / 65535.0), active())


def lut_lookup(v: np.ndarray, table: np.ndarray) -> np.ndarray:
    """TFLite's int16 LUT read: entry ``256 + (v >> 7)`` plus the slope times the low 7 bits, rounded."""
    v = np.asarray(v, np.int64)
    idx = 256 + (v >> 7)
    base = table[idx]
    delta = ((table[idx + 1] - base) * (v & 0x7F) + 64) >> 7
    return ((base + delta + 32768) & 0xFFFF) - 32768  # stored as int16


def softmax_s16(x: np.ndarray, mult: int, shift: int, exp: np.ndarray, recip: np.ndarray) -> np.ndarray:
    """int16 softmax over the last axis."""
    v = np.asarray(x, np.int64)
    diff = v - v.max(axis=-1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, mult, shift, rounding=active())
    e = lut_lookup(np.clip(scaled + 32767, -32768, 32767), exp)
    total = e.sum(axis=-1, keepdims=True)
    if np.any(total >= 1 << 31):
        raise UnsupportedError("int16 Softmax: the sum of exponentials overflows int32 (axis too long)")
    clz = 32 - np.vectorize(int.bit_length, otypes=[np.int64])(total)
    shifted = ((total << (clz - 1)) + (1 << 13)) >> 14
    r = lut_lookup(np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767), recip)
    right = 31 - clz
    out = (e * r + (np.int64(1) << (right - 1))) >> right
    return np.clip(out, 0, 32767).astype(np.int16)
