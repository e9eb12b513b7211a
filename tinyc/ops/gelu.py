"""Gelu (ONNX opset 20; TFLite's GELU): x * Phi(x), with ``approximate="none"`` (the normal CDF,
computed as 0.5 x erfc(-x / sqrt 2), TFLite's form: no cancellation for negative x) or ``"tanh"`` (0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))).

int8 is a 256-entry table computed at compile time. From an ONNX QDQ model the table is the QDQ
meaning (dequantize, Gelu in float, quantize with round-half-to-even and saturation); a node from a
.tflite file carries ``recipe="tflite"`` and gets TFLite's table (its LUT population: the float
function in float32, the quotient by the output scale rounded half away from zero), bit-exact with
TFLite's int8 GELU."""
from __future__ import annotations

import math

import numpy as np

from ..codegen.cnames import c_float
from ..errors import UnsupportedError
from ..quant.affine import quantize
from . import Kernel, Op, is_quantized, register, require_f32
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715
_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def erfc(x: np.ndarray) -> np.ndarray:
    """1 - erf(x), correctly rounded to float32 (no cancellation for large x)."""
    return _ERFC(np.asarray(x, np.float64)).astype(np.float32)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """Gelu of float32 ``x``, each step in float32 as the C kernel computes it (tanh and erfc
    correctly rounded to float32, as TFLite's table gets them)."""
    x = np.asarray(x, np.float32)
    half = np.float32(0.5)
    with np.errstate(invalid="ignore", over="ignore"):
        if approximate == "tanh":
            inner = np.float32(_SQRT_2_PI) * (x + np.float32(_CUBIC) * x * x * x)
            t = np.tanh(inner.astype(np.float64)).astype(np.float32)  # correctly rounded (numpy's float32 tanh is not)
            return (half * x * (np.float32(1.0) + t)).astype(np.float32)
        return (half * x * erfc(-x * np.float32(_SQRT1_2))).astype(np.float32)


def c_expression(approximate: str, v: str) -> str:
    if approximate == "tanh":
        return (f"0.5f * {v} * (1.0f + tanhf({c_float(_SQRT_2_PI)} * ({v} + {c_float(_CUBIC)} * {v} * {v} * {v})))")
    return f"0.5f * {v} * erfcf(-{v} * {c_float(_SQRT1_2)})"


def int8_table(approximate: str, recipe: str | None, qx, qy) -> np.ndarray:
    q = np.arange(-128, 128, dtype=np.int32)
    x = (q - np.int32(qx.zero_point)).astype(np.float32) * np.float32(qx.scale)
    y = gelu(x, approximate)
    if recipe != "tflite":
        return quantize(y, np.float32(qy.scale), int(qy.zero_point))
    r = (y / np.float32(qy.scale)).astype(np.float32)
    rounded = np.sign(r) * np.floor(np.abs(r).astype(np.float64) + 0.5)  # half away from zero
    return np.clip(rounded + int(qy.zero_point), -128, 127).astype(np.int8)


@register
class Gelu(Op):
    name = "Gelu"
    limits = ('approximate "none" (erf) or "tanh"; int8 by 256-entry table (TFLite\'s table for a .tflite GELU); '
              "the decomposed erf/tanh forms of older exports become Gelu (fuse-transformer pass)")
    pointwise = True

    def lower_int8(self, cx, node, out, act):
        return cx.same_op(node, out)  # a table from the input's and output's parameters

    def normalize(self, attrs, ins, opset):
        approximate = attrs.get("approximate", "none")
        if isinstance(approximate, bytes):
            approximate = approximate.decode()
        if approximate not in ("none", "tanh"):
            raise UnsupportedError(f"Gelu approximate={approximate!r} (only \"none\" or \"tanh\")")
        a = {"approximate": approximate}
        if attrs.get("recipe") == "tflite":
            a["recipe"] = "tflite"
        return a

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]

    def reference(self, node, xs):
        return [gelu(xs[0], node.attrs["approximate"])]

    def _table(self, node, ins, outs) -> np.ndarray:
        if ins[0].dtype != "s8" or outs[0].dtype != "s8":
            raise UnsupportedError(f"Gelu node '{node.name}': integer only as int8 ({ins[0].dtype} given)")
        return int8_table(node.attrs["approximate"], node.attrs.get("recipe"), ins[0].quant, outs[0].quant)

    def qreference(self, node, xs, ins, outs):
        return [self._table(node, ins, outs)[xs[0].astype(np.int64) + 128]]

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            return Kernel("s8/lut.c.j2", dict(op=self.name, n=outs[0].size, table=self._table(node, ins, outs).tolist()),
                          includes=("stdint.h",))
        require_f32(node, ins)
        return Kernel("f32/unary.c.j2", dict(n=outs[0].size, expr=c_expression(node.attrs["approximate"], "v"),
                                             op=self.name), includes=("math.h",))
