"""The 16x8 requantization of a 64-bit accumulator (TFLite's int16-activation Conv, depthwise Conv,
fully connected and transpose Conv with an int64 bias), as a value built once per node.

TFLite's ``MultiplyByQuantizedMultiplier(int64_t x, ...)`` reduces the Q31 multiplier to 16 bits
(``(m + 2^15) >> 16``, or 0x7FFF from 0x7FFF0000 up) and rounds once: ``(x * m16 + 2^(s - 1)) >> s``
with ``s = 15 - shift``, the result truncated to int32; then the zero point (0 for int16) and the
clamp. The same in both of TFLite's rounding modes. The reference (:meth:`Requant64.apply`) and
the C helper ``tinyc_requant64_s16`` (templates/portable/s16/fixedpoint16.c.j2, parameters from
:meth:`Requant64.params`) read these numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir import QuantParams
from .params import per_channel_multipliers
from .requant import Requant, along_channels
from .rounding import DOUBLE


def reduced_multiplier(mult: int) -> int:
    """TFLite's 16-bit form of a Q31 multiplier."""
    return (mult + (1 << 15)) >> 16 if mult < 0x7FFF0000 else 0x7FFF


@dataclass(frozen=True)
class Requant64:
    mult: tuple[int, ...]  # Q31 multipliers (TFLite's QuantizeMultiplier), one per output channel or one
    shift: tuple[int, ...]
    lo: int = -32768  # clamp (a fused activation's range)
    hi: int = 32767

    @classmethod
    def of_product(cls, x: QuantParams, w: QuantParams, y: QuantParams, channels: int,
                   clamp: tuple[int, int], rounding: str = DOUBLE) -> Requant64:
        """x_scale * w_scale[c] / y_scale per output channel, as for int8 (Requant.of_product)."""
        mult, shift = per_channel_multipliers(x, w, y, channels, rounding)
        return cls(tuple(int(m) for m in mult), tuple(int(s) for s in shift), int(clamp[0]), int(clamp[1]))

    @property
    def reduced(self) -> list[int]:
        return [reduced_multiplier(m) for m in self.mult]

    @property
    def total_shift(self) -> list[int]:
        return [15 - s for s in self.shift]

    def apply(self, acc: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """The int16 outputs of int64 accumulators whose channels run along ``channel_axis``."""
        acc = np.asarray(acc, np.int64)
        m, s = (along_channels(v, acc.ndim, channel_axis) for v in (self.reduced, self.total_shift))
        v = (acc * m + (np.int64(1) << (s - 1))) >> s
        v = ((v + (1 << 31)) % (1 << 32)) - (1 << 31)  # truncated to int32, as TFLite does
        return np.clip(v, self.lo, self.hi).astype(np.int16)

    def params(self) -> dict:
        """Template parameters (templates/portable/s8/_requant.j2 with rq64): per_channel, the
        reduced multipliers and total shifts (one pair when all channels agree), act_min/max."""
        red, ts = self.reduced, self.total_shift
        pc = len(set(zip(red, ts))) > 1
        return dict(rq64=True, per_channel=pc, mult=red if pc else red[:1], shift=ts if pc else ts[:1],
                    zp=0, act_min=self.lo, act_max=self.hi)


@dataclass(frozen=True)
class Requant32To16(Requant):
    """An int32 value's usual requantization (Requant), clamped to and stored as int16: TFLite's
    16x8 Conv/FullyConnected with an int32 bias (int32 accumulator), and ADD/SUB's output; in C
    ``tinyc_requant_i32`` (``rq_to16``)."""
    out_dtype: ClassVar[str] = "s16"

    def params(self) -> dict:
        return dict(super().params(), rq_to16=True)


def product_requant(ins, outs, channels: int, clamp: tuple[int, int], rounding: str) -> Requant | Requant64:
    """The requantization of a Conv/Gemm accumulator (inputs x, w[, bias] and output y: IR
    tensors): int8's (Requant), or for 16x8 (int16 x) TFLite's 64-bit form (Requant64) when the
    bias is int64 or absent, and the 32-bit one clamped to int16 when the bias is int32 (TFLite
    then keeps an int32 accumulator)."""
    x, w, y = ins[0], ins[1], outs[0]
    bias = ins[2] if len(ins) > 2 else None
    if x.dtype == "s16" and (bias is None or bias.dtype == "s64"):
        return Requant64.of_product(x.quant, w.quant, y.quant, channels, clamp, rounding)
    if x.dtype == "s16":
        return Requant32To16.of_product(x.quant, w.quant, y.quant, channels, clamp, rounding)
    return Requant.of_product(x.quant, w.quant, y.quant, channels, clamp, rounding)
