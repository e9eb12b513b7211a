"""TFLite / gemmlowp integer arithmetic, in numpy, for the int8 reference.

This module is the one place that defines how tinyc rounds. The generated C mirrors every function
here in ``templates/portable/s8/fixedpoint.c.j2`` and ``s8/softmax_helpers.c.j2``.

Rounding mode (tinyc/quant/rounding.py): TFLite Micro builds by default with *double rounding*: a
requantization first rounds in ``SaturatingRoundingDoublingHighMul`` (to the nearest, ties away
from zero) and then again in ``RoundingDivideByPOT`` (ties away from zero).
``TFLITE_SINGLE_ROUNDING`` builds (LiteRT's reference kernels) round once, ties upward. The
functions that depend on it take the mode as an argument; tinyc defaults to TFLite Micro's so a
model gives on the device exactly what it gives under TFLite Micro.

All array functions take and return int64 arrays holding int32 values (numpy's int32 products
would overflow); results that C computes in int32 stay in int32 range.
"""
from __future__ import annotations

import math

import numpy as np

from .rounding import DOUBLE, SINGLE

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def quantize_multiplier(m: float, rounding: str = DOUBLE) -> tuple[int, int]:
    """Real multiplier -> (Q31 multiplier, shift), TFLite's QuantizeMultiplier: m = q * 2^(shift-31).
    Single rounding caps the shift at 30 (its one 64-bit shift must stay a right shift)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if rounding == SINGLE and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return int(q_fixed), int(shift)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def _trunc_div_pow2(x: np.ndarray, bits: int) -> np.ndarray:
    """C's integer division by 2^bits (truncates toward zero)."""
    return np.where(x >= 0, x >> bits, -((-x) >> bits))


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, to nearest, ties away from zero."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int,
                                     rounding: str = DOUBLE) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)), rounding once
    (ties upward) or twice (ties away from zero each time)."""
    x = np.asarray(x, np.int64)
    m = np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    if rounding == SINGLE:
        total = 31 - s
        return (x * m + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    return rounding_divide_by_pot(srdhm(x * (np.int64(1) << left), m), right)


def div_round_half_even(num: np.ndarray, den: int) -> np.ndarray:
    """num / den (den > 0) to the nearest integer, ties to the even one: how ONNX's QuantizeLinear
    rounds, applied to an exact rational value."""
    num = np.asarray(num, np.int64)
    q = num // den  # floor
    twice_rest = 2 * (num - q * den)
    return q + ((twice_rest > den) | ((twice_rest == den) & (q % 2 != 0)))


def requantize(acc: np.ndarray, multiplier, shift, out_zp: int, act_min: int, act_max: int,
               rounding: str = DOUBLE, dtype=np.int8) -> np.ndarray:
    """Accumulator -> int8 (or ``dtype``): scale, add the output zero point, clamp to the
    activation range."""
    y = multiply_by_quantized_multiplier(acc, multiplier, shift, rounding) + out_zp
    return np.clip(y, act_min, act_max).astype(dtype)


def quantize_value(f: float, scale: float, zero_point: int) -> int:
    """TFLite's activation-bound quantization: zp + round(f / scale), f / scale in float32."""
    return int(zero_point) + _round_half_away(float(np.float32(f) / np.float32(scale)))


def activation_range(scale: float, zero_point: int, lo: float | None, hi: float | None,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """Clamp bounds of a fused Relu (lo=0), Relu6 (0, 6) or Clip(lo, hi) on an int8 output."""
    amin = qmin if lo is None or lo == -math.inf else max(qmin, quantize_value(lo, scale, zero_point))
    amax = qmax if hi is None or hi == math.inf else min(qmax, quantize_value(hi, scale, zero_point))
    return amin, amax


# -- gemmlowp fixed-point functions used by TFLite's int8 softmax -----------------------------

def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def _sat_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883
    x = _wrap32(a + (1 << 28))  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    inner = _wrap32(srdhm(_wrap32(x4_over_4 + x3), constant_1_over_3) + x2)
    x4_over_24_plus_x3_over_6_plus_x2_over_2 = rounding_divide_by_pot(inner, 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + x4_over_24_plus_x3_over_6_plus_x2_over_2)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int = 5) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a in Q(integer_bits), a <= 0 -> exp(a) in Q0.31."""
    a = np.asarray(a, np.int64)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = _wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _sat_shift_left(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = _wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1) in Q0.31, result in Q0.31 (Newton-Raphson)."""
    a = np.asarray(a, np.int64)
    s = a + INT32_MAX  # RoundingHalfSum(a, One)
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))
    constant_48_over_17 = 1515870810  # Q2.29
    constant_neg_32_over_17 = -1010580540
    x = _wrap32(constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17))
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = _wrap32(one_q2 - half_denominator_times_x)
        x = _wrap32(x + _sat_shift_left(srdhm(x, one_minus), 2))
    return _sat_shift_left(x, 1)  # ExactMulByPot<-1> then Rescale<0>


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal: returns (reciprocal in Q0.31, num_bits_over_unit)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = np.array([32 - int(v).bit_length() for v in (x & 0xFFFFFFFF).reshape(-1)],
                                 np.int64).reshape(x.shape)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = _wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def softmax_params(input_scale: float, beta: float = 1.0, integer_bits: int = 5,
                   rounding: str = DOUBLE) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left_shift, diff_min)."""
    max_real = float((1 << 31) - 1)
    # TFLite clamps from above only, and its multiplier must be > 1 (an input scale below 2^-26);
    # below that every input difference is under 2^-19 in real terms, where exp() is 1 to 1e-5:
    # the multiplier is held at 1 (no left shift) instead of failing.
    real = max(min(beta * float(input_scale) * (1 << (31 - integer_bits)), max_real), 1.0)
    multiplier, left_shift = quantize_multiplier(real, rounding)
    max_input_rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    diff_min = -int(math.floor(max_input_rescaled))
    return multiplier, left_shift, diff_min


def softmax_s8(x: np.ndarray, multiplier: int, left_shift: int, diff_min: int, out_bits: int = 8) -> np.ndarray:
    """TFLite reference int8 softmax over the last axis; output scale 1/256, zero point -128 (int8),
    or with ``out_bits=16`` TFLite's int8 -> int16 form: scale 1/65536, zero point -32768."""
    shape = x.shape
    v = np.asarray(x, np.int64).reshape(-1, shape[-1])
    diff = v - v.max(axis=1, keepdims=True)
    valid = diff >= diff_min
    rescaled = srdhm(diff * (1 << left_shift), multiplier)
    exps = exp_on_negative_values(rescaled, 5)
    accum_bits = 12
    sum_of_exps = np.where(valid, rounding_divide_by_pot(exps, accum_bits), 0).sum(axis=1, keepdims=True)
    sum_of_exps = _wrap32(sum_of_exps)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, accum_bits)
    unsat = rounding_divide_by_pot(srdhm(shifted_scale, exps), num_bits_over_unit + 31 - out_bits)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    out = np.clip(unsat + lo, lo, hi)
    return np.where(valid, out, lo).astype(np.int8 if out_bits == 8 else np.int16).reshape(shape)
