"""One requantization: int32 accumulator -> int8 output, as a value built once per node.

A :class:`Requant` holds what TFLite's integer kernels need after the accumulation: the Q31
multiplier and shift per output channel (or one pair for the tensor), the output zero point, the
clamp of the fused activation and the rounding mode (tinyc/quant/rounding.py). The reference
(:meth:`Requant.apply`), the portable C kernels (:meth:`Requant.params`) and the fast forms of the
dot-product kernels (:meth:`Requant.fast_form`) all read it, so they cannot disagree about any of
these numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir import DTYPES, QuantParams
from .fixedpoint import requantize
from .params import per_channel_multipliers
from .rounding import DOUBLE

# |accumulator| and |rounding constant| below this keep 2 * acc and the fast form's sums in int32
FAST_LIMIT = 1 << 30


def along_channels(values, ndim: int, channel_axis: int) -> np.ndarray:
    """Per-channel constants (int64) shaped to broadcast along ``channel_axis`` of an array of
    ``ndim`` dimensions; a single value applies to every channel."""
    shape = [1] * ndim
    if len(values) > 1:
        shape[channel_axis] = len(values)
    return np.asarray(values, np.int64).reshape(shape)


@dataclass(frozen=True)
class Requant:
    mult: tuple[int, ...]  # Q31 multipliers: one per output channel, or one for the tensor
    shift: tuple[int, ...]  # value = acc * mult * 2^(shift - 31), as TFLite's QuantizeMultiplier
    zp: int  # output zero point
    lo: int = -128  # clamp (a fused activation's range)
    hi: int = 127
    rounding: str = DOUBLE
    out_dtype: ClassVar[str] = "s8"  # (Requant32To16: int16)

    def __post_init__(self):
        if len(self.mult) != len(self.shift) or not self.mult:
            raise ValueError(f"Requant: {len(self.mult)} multipliers and {len(self.shift)} shifts")

    @classmethod
    def of_product(cls, x: QuantParams, w: QuantParams, y: QuantParams, channels: int,
                   clamp: tuple[int, int], rounding: str) -> Requant:
        """The requantization of sum (x - x_zp) * w (+ bias) to y (Conv, fully connected): per
        output channel x_scale * w_scale[c] / y_scale, TFLite's double-precision product."""
        mult, shift = per_channel_multipliers(x, w, y, channels, rounding)
        return cls(tuple(int(m) for m in mult), tuple(int(s) for s in shift), int(y.zero_point),
                   int(clamp[0]), int(clamp[1]), rounding)

    @property
    def per_channel(self) -> bool:
        """Whether the channels' (multiplier, shift) pairs differ."""
        return len(set(zip(self.mult, self.shift))) > 1

    def apply(self, acc: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """The int8 outputs of int64 accumulators whose output channels run along
        ``channel_axis`` (tinyc.quant.fixedpoint's arithmetic, in this rounding mode)."""
        acc = np.asarray(acc, np.int64)
        mult, shift = (along_channels(v, acc.ndim, channel_axis) for v in (self.mult, self.shift))
        return requantize(acc, mult, shift, self.zp, self.lo, self.hi, self.rounding, DTYPES[self.out_dtype])

    def params(self) -> dict:
        """Template parameters of the portable requantization (templates/portable/s8/_requant.j2):
        per_channel, mult and shift (a single pair when all channels agree), zp, act_min,
        act_max."""
        pc = self.per_channel
        mult, shift = list(self.mult), list(self.shift)
        return dict(per_channel=pc, mult=mult if pc else mult[:1], shift=shift if pc else shift[:1],
                    zp=self.zp, act_min=self.lo, act_max=self.hi)

    def _fast_channels(self, constants: dict[int, int], channels: int) -> tuple[list[int], list[int], list[int]]:
        """(multiplier, right shift, rounding constant) per channel of the fast form; the channels
        of ``constants`` as multiplier 0, right shift 1, rounding 2c + 1 (their output is c)."""
        n = max(len(self.mult), channels) if constants else len(self.mult)
        mult = [int(v) for v in np.broadcast_to(np.asarray(self.mult, np.int64), (n,))]
        shift = [int(v) for v in np.broadcast_to(np.asarray(self.shift, np.int64), (n,))]
        for c in constants:
            mult[c], shift[c] = 0, -1
        # a zero multiplier maps everything to the zero point, which the formula gives with shift 1
        right = [-s if m else 1 for m, s in zip(mult, shift)]
        rnd = [(1 << (r - 1)) + (self.zp << r) if 1 <= r <= 31 else 0 for r in right]
        for c, v in constants.items():
            rnd[c] = 2 * v + 1
        return mult, right, rnd

    def fast_refusal(self, bound: int, constants: dict[int, int] | None = None, channels: int = 1) -> str | None:
        """Why the fast form does not give this requantization's integers, or None when it does.
        Its preconditions: double rounding (the form is srdhm, then a rounding shift), |acc| <
        2^30 (2 acc fits int32), every multiplier non-negative and shifting right by 1..31 (one
        arithmetic shift), every rounding constant |2^(r-1) + zp * 2^r| < 2^30 (the sum y + rnd
        stays in int32)."""
        if self.rounding != DOUBLE:
            return f"{self.rounding} rounding"
        if bound >= FAST_LIMIT:
            return f"accumulators up to {bound} (not below 2^30)"
        mult, right, rnd = self._fast_channels(constants or {}, channels)
        if any(m < 0 for m in mult):
            return "a negative multiplier"
        if any(not 1 <= r <= 31 for r in right):
            return "a right shift outside 1..31"
        if any(abs(c) >= FAST_LIMIT for c in rnd):
            return "a rounding constant not below 2^30"
        return None

    def fast_form(self, bound: int, constants: dict[int, int] | None = None, channels: int = 1) -> dict | None:
        """Parameters of ``tinyc_rq_fast`` (templates/*/s8/requant_fast.c.j2), or None when
        :meth:`fast_refusal` gives a reason. ``bound``: max |accumulator|. Then srdhm(acc, m) ==
        round-to-nearest-up of 2 * acc * m / 2^32 (one SMMULR; kernels whose weights are int16
        keep the accumulator doubled by doubling them, ``doubled``), and rdbpot(y, r) + zp ==
        (y + 2^(r-1) + (y < 0 ? -1 : 0) + zp * 2^r) >> r, exactly: the constant 2^(r-1) + zp *
        2^r is stored per channel. ``constants``: channels whose output is a known constant c
        (all-zero weights). ``channels``: the output channels (a per-tensor multiplier with
        constants becomes a table of that many)."""
        if self.fast_refusal(bound, constants, channels) is not None:
            return None
        mult, right, rnd = self._fast_channels(constants or {}, channels)
        per_channel = len(set(zip(mult, right, rnd))) > 1
        if not per_channel:
            mult, right, rnd = mult[:1], right[:1], rnd[:1]
        table = [v for trio in zip(mult, rnd, right) for v in trio]
        return dict(fast_rq=True, per_channel=per_channel, mult=mult, rshift=right, rnd=rnd, rq_table=table)
