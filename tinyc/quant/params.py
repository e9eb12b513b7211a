"""Requantization constants for each int8 op, computed the way TFLite Micro computes them (the
float/double conventions matter for bit-exactness). Used by the reference and by the kernels."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import UnsupportedError
from ..ir import QuantParams
from .fixedpoint import quantize_multiplier
from .rounding import DOUBLE


def _f(x) -> float:
    return float(np.float32(np.asarray(x).reshape(-1)[0]))


def per_channel_multipliers(x: QuantParams, w: QuantParams, y: QuantParams, channels: int,
                            rounding: str = DOUBLE) -> tuple[np.ndarray, np.ndarray]:
    """Conv and fully connected: double(x_scale) * double(w_scale[c]) / double(y_scale), per tensor
    or per output channel. Measured against the tflite-micro package for fully connected: this
    double product reproduces TFLite Micro on every input tried, where the float32 product that
    some TFLite versions use in GetQuantizedConvolutionMultipler differs by 1 LSB on 7 of 1,000
    random AD inputs."""
    ws = np.broadcast_to(np.asarray(w.scale, np.float32).reshape(-1), (channels,))
    pairs = [quantize_multiplier(_f(x.scale) * float(s) / _f(y.scale), rounding) for s in ws]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


ADD_LEFT_SHIFT = 20
ADD_LEFT_SHIFT_16 = 15  # int16 (16x8): 65535 << 15 still fits the 32-bit sum


def add_params(a: QuantParams, b: QuantParams, y: QuantParams, rounding: str = DOUBLE,
               left_shift: int = ADD_LEFT_SHIFT) -> dict[str, int]:
    """TFLite int8 Add: both inputs rescaled to twice the larger input scale, with 20 bits of
    headroom (15 for int16), summed, then scaled to the output. (Sub the same: the seanet SUB
    goldens equal these double-precision multipliers, not the float32 quotients of TFLite
    Micro's current sub_common.cc.)"""
    sa, sb, sy = _f(a.scale), _f(b.scale), _f(y.scale)
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max, rounding)
    m2, s2 = quantize_multiplier(sb / twice_max, rounding)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * sy), rounding)
    return dict(left_shift=left_shift, m1=m1, s1=s1, m2=m2, s2=s2, mo=mo, so=so,
                zp1=int(a.zero_point), zp2=int(b.zero_point), zpo=int(y.zero_point))


def mul_params(a: QuantParams, b: QuantParams, y: QuantParams, rounding: str = DOUBLE) -> dict[str, int]:
    m, s = quantize_multiplier(_f(a.scale) * _f(b.scale) / _f(y.scale), rounding)
    return dict(m=m, s=s, zp1=int(a.zero_point), zp2=int(b.zero_point), zpo=int(y.zero_point))


def rescale_params(x: QuantParams, y: QuantParams, rounding: str = DOUBLE) -> tuple[int, int]:
    """Relu/Clip on int8: x_scale / y_scale."""
    return quantize_multiplier(_f(x.scale) / _f(y.scale), rounding)


# The two meanings of an int8 mean (a node's ``rounding`` attribute; see tinyc/ops/mean_s8.py).
MEAN_HALF_EVEN = "half_even"
MEAN_TFLITE = "tflite_mean"


def mean_params(x: QuantParams, y: QuantParams, count: int, rounding: str,
                requant_rounding: str = DOUBLE) -> dict[str, int]:
    """Constants of an int8 mean of ``count`` values from x's parameters to y's. Both subtract
    ``offset`` (x's zero point times count) from the integer sum first.

    tflite_mean: TFLite Micro's int8 MEAN (reference_ops::QuantizedMeanOrSum): the multiplier of
    x_scale / y_scale, in doubles, absorbs 1 / count as an integer division after a left shift by
    floor(log2(count)) (at most 32, and at most 31 + its shift); then the usual requantization
    (``requant_rounding``, tinyc/quant/rounding.py).

    half_even: ONNX's dequantize -> mean -> quantize, exactly: round half to even of
    (sum - offset) * num / den with num / den = x_scale / (y_scale * count) as an exact fraction of
    the float32 scales. The difference is clamped to [d_lo, d_hi], outside of which the output
    saturates anyway, so that the product fits int64."""
    zi, zo = int(np.asarray(x.zero_point).reshape(-1)[0]), int(np.asarray(y.zero_point).reshape(-1)[0])
    sx, sy = _f(x.scale), _f(y.scale)
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        raise UnsupportedError(f"int8 mean: scales must be positive and finite, got {sx:g} and {sy:g}")
    lo, hi = (-128 - zi) * count, (127 - zi) * count  # the range of the sum minus offset
    if rounding == MEAN_TFLITE:
        mult, shift = quantize_multiplier(sx / sy, requant_rounding)
        bits = min(count.bit_length() - 1, 32, 31 + shift)
        mult, shift = (mult << bits) // count, shift - bits
        if max(-lo, hi) << max(shift, 0) >= 2**31:
            raise UnsupportedError(f"int8 mean: TFLite's integer MEAN overflows int32 for input scale {sx:g}, "
                                   f"output scale {sy:g} and {count} values")
        return dict(offset=zi * count, mult=mult, shift=shift, zp=zo)
    if rounding != MEAN_HALF_EVEN:
        raise UnsupportedError(f"int8 mean: unknown rounding '{rounding}' (expected {MEAN_HALF_EVEN} or {MEAN_TFLITE})")
    ratio = Fraction(sx) / (Fraction(sy) * count)
    num, den = ratio.numerator, ratio.denominator
    # below d_lo the value is under -128.5 - zo (output -128), above d_hi over 127.5 - zo (127)
    d_lo = max(lo, math.floor(Fraction(-129 - zo) / ratio))
    d_hi = min(hi, math.ceil(Fraction(128 - zo) / ratio))
    if max(abs(d_lo), abs(d_hi)) * num >= 2**62 or den >= 2**61:
        raise UnsupportedError(f"int8 mean: input scale {sx:g} and output scale {sy:g} are too far apart for an exact mean")
    return dict(offset=zi * count, num=num, den=den, d_lo=d_lo, d_hi=d_hi, zp=zo)
