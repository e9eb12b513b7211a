"""int8 LayerNormalization: tinyc's own integer design (TFLite has no int8 LayerNorm kernel).

For one row of n int8 values q (input scale sx; the zero point cancels):

    S1 = sum q, S2 = sum q^2            (int32: n <= 4096)
    c_i = n q_i - S1                     (int32: n (q_i - mean))
    V = n S2 - S1^2                      (int64: n^2 variance in input units^2)
    W = V 2^16 + E, E = round(eps n^2 / sx^2 * 2^16)   (int64; eps kept to 2^-16 of an input step^2)

so that (x_i - mean) / sqrt(var + eps) = c_i 2^8 / sqrt(W) exactly. The reciprocal square root is
fixed point: W is brought by an even shift ``sh`` to w in [2^30, 2^32), s = isqrt(w 2^32) (the exact
integer square root, 32 bit-steps), inv = floor(2^63 / s), and the normalized value in Q20 is

    z_i = round(c_i inv 2^-(19 + sh/2))  (rounding: add half, arithmetic shift right)

Each step's relative error is below 2^-29 (w drops bits below 2^-30 of W, s and inv floor at
2^-31), so z_i is within ~2^-20 of the real value; |z_i| <= sqrt(n) <= 64 fits Q20 in int32.
Scale and bias fold into per-position constants: G_i = gamma_i / sy = m_i 2^(e_i - 31) (m_i a
signed Q31 mantissa, e_i >= -10: a smaller G_i is rounded to that exponent, contributing at most
1/32 of an output step), beta_i / sy + zy = I_i + f_i (integer and fraction), and

    y_i = clamp(((z_i m_i + F_i) >> s_i) + I_i),  s_i = 51 - e_i,  F_i = round(f_i 2^s_i) + 2^(s_i - 1)

one rounding of z_i G_i + beta_i/sy + zy (ties up). Against float LayerNorm on the dequantized
input, quantized once, the result differs by at most 1 output step (measured in the tests).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError

EPS_FRAC = 16  # fraction bits of W (eps's resolution)
Z_FRAC = 20  # fraction bits of the normalized value
MAX_N = 4096


def params(what: str, n: int, eps: float, sx: float, sy: float, zy: int, gamma: np.ndarray,
           beta: np.ndarray) -> dict:
    """The constants of the int8 kernel for rows of ``n`` values (gamma/beta: n floats each)."""
    if not 1 <= n <= MAX_N:
        raise UnsupportedError(f"{what}: int8 over {n} values (1 to {MAX_N})")
    e_fixed = int(round(float(eps) * n * n / (float(sx) ** 2) * (1 << EPS_FRAC)))
    if e_fixed >= 1 << 62:
        raise UnsupportedError(f"{what}: epsilon {eps} too large for the input scale {sx} in int8")
    mult, shift, frac, whole = [], [], [], []
    for g, b in zip(np.asarray(gamma, np.float64).reshape(-1), np.asarray(beta, np.float64).reshape(-1)):
        m, e = _multiplier(abs(float(g)) / float(sy))
        if e > 50:
            raise UnsupportedError(f"{what}: scale {g} too large for the output scale {sy}")
        s = Z_FRAC + 31 - e
        off = float(b) / float(sy) + zy
        whole_i = math.floor(off)
        mult.append(-m if g < 0 else m)
        shift.append(s)
        frac.append(int(round((off - whole_i) * 2.0 ** s)) + (1 << (s - 1)))
        whole.append(int(whole_i))
    return dict(n=n, eps_frac=EPS_FRAC, eps_fixed=e_fixed, mult=mult, shift=shift, frac=frac, whole=whole)


def _multiplier(g: float) -> tuple[int, int]:
    """g = m 2^(e - 31), m in [2^30, 2^31) (or 0), e >= -10 (m shrinks for smaller g)."""
    if g == 0.0:
        return 0, -10
    q, e = math.frexp(g)
    m = int(math.floor(q * (1 << 31) + 0.5))
    if m == 1 << 31:
        m, e = m >> 1, e + 1
    if e < -10:
        m, e = int(math.floor(g * 2.0 ** (31 + 10) + 0.5)), -10
    return m, e


def rsqrt_parts(w_big: int) -> tuple[int, int]:
    """(inv, shift) with c inv 2^-shift = c 2^8 / sqrt(W) 2^20 (the Q20 normalized value)."""
    w_big = max(int(w_big), 1)
    sh = w_big.bit_length() - 32
    if sh & 1:
        sh += 1
    w = w_big >> sh if sh >= 0 else w_big << -sh
    s = math.isqrt(w << 32)
    return (1 << 63) // s, 19 + sh // 2


def layernorm_s8(x: np.ndarray, p: dict) -> np.ndarray:
    """The kernel on rows ``x`` (shape [rows, n], int8 values)."""
    q = np.asarray(x, np.int64)
    n = p["n"]
    mult, shift = np.asarray(p["mult"], np.int64), np.asarray(p["shift"], np.int64)
    frac, whole = np.asarray(p["frac"], np.int64), np.asarray(p["whole"], np.int64)
    out = np.empty(q.shape, np.int8)
    for r in range(q.shape[0]):
        s1, s2 = int(q[r].sum()), int((q[r] * q[r]).sum())
        inv, k = rsqrt_parts(((n * s2 - s1 * s1) << EPS_FRAC) + p["eps_fixed"])
        c = n * q[r] - s1
        z = (c * inv + (1 << (k - 1))) >> k
        y = ((z * mult + frac) >> shift) + whole
        out[r] = np.clip(y, -128, 127)
    return out
