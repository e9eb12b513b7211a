"""TFLite Micro's int8 LeakyRelu and HardSwish, as 256-entry tables.

TFLite computes these two in fixed point with its own rounding (LeakyRelu: one requantization by
``s_in / s_out`` or ``s_in * alpha / s_out``; HardSwish: int16 fixed-point products on a 1/128
finer input scale), which differs by 1 LSB on some inputs from the QDQ meaning (the real function,
rounded once). A node from a .tflite file carries ``recipe="tflite"`` and gets these tables; the
arithmetic below evaluates TFLite's integer recipe for every int8 input.
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot
from .rounding import active

_INPUTS = np.arange(-128, 128, dtype=np.int64)


def leaky_relu_multipliers(alpha: float, qx, qy) -> tuple[tuple[int, int], tuple[int, int]]:
    """(multiplier, shift) of the identity (x >= 0) and of alpha (x < 0): s_in / s_out and
    s_in * alpha / s_out, in float32 as TFLite computes them."""
    s_in, s_out = np.float32(qx.scale), np.float32(qy.scale)
    identity = quantize_multiplier(float(s_in / s_out), active())
    negative = quantize_multiplier(float(s_in * np.float32(alpha) / s_out), active())
    return identity, negative


def leaky_relu(alpha: float, qx, qy, q: np.ndarray = _INPUTS, dtype=np.int8) -> np.ndarray:
    """TFLite's LeakyRelu of the integers ``q`` (default: every int8 value, the table)."""
    identity, negative = leaky_relu_multipliers(alpha, qx, qy)
    x = np.asarray(q, np.int64) - int(qx.zero_point)
    pos = multiply_by_quantized_multiplier(x, *identity, rounding=active())
    neg = multiply_by_quantized_multiplier(x, *negative, rounding=active())
    info = np.iinfo(dtype)
    return np.clip(np.where(x >= 0, pos, neg) + int(qy.zero_point), info.min, info.max).astype(dtype)


def _int16_multiplier(m: float) -> tuple[int, int]:
    q, exponent = quantize_multiplier(m)
    q16 = 32767 if q >= (1 << 31) - 1 - (1 << 15) else (q + (1 << 15)) >> 16
    return q16, exponent


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = np.trunc((ab + nudge) / (1 << 15)).astype(np.int64)
    return np.where((a == -32768) & (b == -32768), 32767, out)


def _sat16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -32768, 32767)


def hard_swish(qx, qy) -> np.ndarray:
    s_in, s_out = np.float32(qx.scale), np.float32(qy.scale)
    hires = np.float32(1.0 / 128.0) * s_in
    out_m, out_e = _int16_multiplier(float(hires / s_out))
    relu_m, relu_e = _int16_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    x = (_INPUTS - int(qx.zero_point)) * 128
    preshift = _srdhm16(x, out_m)
    reluish = x
    if relu_e > 0:
        reluish = _sat16(reluish * (1 << (relu_e - 1)))
    reluish = _srdhm16(reluish, relu_m)
    if relu_e > 0:
        reluish = _sat16(reluish * 2)
    if relu_e < 0:
        reluish = rounding_divide_by_pot(reluish, -relu_e)
    reluish = (reluish + (1 << 15)) >> 1
    prod = reluish * preshift
    out = np.where((reluish == -32768) & (preshift == -32768), 32767, np.trunc(prod / (1 << 15)).astype(np.int64))
    out = rounding_divide_by_pot(out, -out_e) + int(qy.zero_point)
    return np.clip(out, -128, 127).astype(np.int8)


def table(name: str, attrs: dict, qx, qy) -> np.ndarray:
    if name == "LeakyRelu":
        return leaky_relu(attrs.get("alpha", 0.01), qx, qy)
    if name == "HardSwish":
        return hard_swish(qx, qy)
    raise ValueError(f"no TFLite int8 recipe for {name}")
