"""Pointwise activations and math ops, each defined once: its numpy meaning and its C expression. They run as
standalone ops and, after the fuse-activation pass, inside the op before them (attribute ``act``
with ``act_alpha``/``act_beta``; Relu and Clip fuse as the ``act_min``/``act_max`` clamp).
Float32 C expressions evaluate in single precision like the numpy definitions; on int8 tensors
each op is a 256-entry table computed at compile time."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..codegen.cnames import c_float
from ..errors import UnsupportedError
from ..ir import QuantParams
from ..quant import int16_lut
from ..quant.affine import quantize
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, is_quantized, register, require_f32

# name -> (defaults, numpy function of (x, alpha, beta), C expression builder of (var, alpha, beta))
ACTIVATIONS: dict[str, tuple[dict[str, float], Callable, Callable[[str, float, float], str]]] = {
    "Sigmoid": ({}, lambda x, a, b: 1.0 / (1.0 + np.exp(-x)),
                lambda v, a, b: f"1.0f / (1.0f + expf(-{v}))"),
    "LeakyRelu": ({"alpha": 0.01}, lambda x, a, b: np.where(x < 0, x * np.float32(a), x),
                  lambda v, a, b: f"{v} < 0.0f ? {v} * {c_float(a)} : {v}"),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5},
                    lambda x, a, b: np.clip(x * np.float32(a) + np.float32(b), 0, 1),
                    lambda v, a, b: f"fminf(fmaxf({v} * {c_float(a)} + {c_float(b)}, 0.0f), 1.0f)"),
    "HardSwish": ({}, lambda x, a, b: x * np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1),
                  lambda v, a, b: f"{v} * fminf(fmaxf({v} * {c_float(1 / 6)} + 5.000000000e-01f, 0.0f), 1.0f)"),
}


# Pointwise math ops: same form, registered the same way, but not fused into other ops.
MATH = {
    "Abs": ({}, lambda x, a, b: np.abs(x), lambda v, a, b: f"fabsf({v})"),
    "Neg": ({}, lambda x, a, b: -x, lambda v, a, b: f"-{v}"),
    "Sqrt": ({}, lambda x, a, b: np.sqrt(x), lambda v, a, b: f"sqrtf({v})"),
    "Exp": ({}, lambda x, a, b: np.exp(x), lambda v, a, b: f"expf({v})"),
    "Log": ({}, lambda x, a, b: np.log(x), lambda v, a, b: f"logf({v})"),
    "Tanh": ({}, lambda x, a, b: np.tanh(x), lambda v, a, b: f"tanhf({v})"),
    "Erf": ({}, lambda x, a, b: erf(x), lambda v, a, b: f"erff({v})"),
    "Elu": ({"alpha": 1.0}, lambda x, a, b: np.where(x < 0, np.float32(a) * (np.exp(x) - 1), x),
            lambda v, a, b: f"{v} < 0.0f ? {c_float(a)} * (expf({v}) - 1.0f) : {v}"),
}
_ALL = {**ACTIVATIONS, **MATH}
_ERF = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, correctly rounded to float32 (libm's erf in double on each element;
    C's erff is within 1 ulp of it)."""
    return _ERF(np.asarray(x, np.float64)).astype(np.float32)
# ops whose int8 table can follow TFLite's fixed-point recipe (attribute recipe="tflite")
TFLITE_RECIPES = ("LeakyRelu", "HardSwish")
# ops with TFLite's int16 (16x8) form (tinyc/quant/int16_lut.py): name -> whether it is TANH
INT16_SIGMOIDS = {"Sigmoid": False, "Tanh": True}
Q15 = QuantParams(np.asarray(2.0 ** -15, np.float32), np.asarray(0, np.int32))  # what their int16 kernels write


def apply(name: str, x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN/inf as C gives them
        return _ALL[name][1](x.astype(np.float32), alpha, beta).astype(np.float32)


def c_expression(name: str, var: str, alpha: float, beta: float) -> str:
    return _ALL[name][2](var, alpha, beta)


def fused_attrs(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    defaults = ACTIVATIONS[op][0]
    return {"act": op, "act_alpha": float(attrs.get("alpha", defaults.get("alpha", 0.0))),
            "act_beta": float(attrs.get("beta", defaults.get("beta", 0.0)))}


def int8_table(name: str, attrs: dict[str, Any], qx, qy) -> np.ndarray:
    """The int8 op as a 256-entry table: QDQ semantics in float32 (dequantize, the op, quantize
    with round-half-to-even and saturation), as onnxruntime evaluates the QDQ model; with
    ``recipe="tflite"`` (LeakyRelu, HardSwish from a .tflite file) TFLite's fixed-point recipe."""
    if attrs.get("recipe") == "tflite":
        from ..quant import tflite_lut

        return tflite_lut.table(name, attrs, qx, qy)
    q = np.arange(-128, 128, dtype=np.int32)
    x = (q - np.int32(qx.zero_point)).astype(np.float32) * np.float32(qx.scale)
    y = apply(name, x, attrs.get("alpha", 0.0), attrs.get("beta", 0.0))
    return quantize(y, np.float32(qy.scale), int(qy.zero_point))


def int16_params(node, ins, outs) -> dict:
    """The constants of TFLite's int16 LOGISTIC / TANH for this node's quantization."""
    qx, qy = ins[0].quant, outs[0].quant
    return int16_lut.sigmoid_params(f"{node.op} node '{node.name}'", INT16_SIGMOIDS[node.op], float(qx.scale),
                                    float(qy.scale), int(qx.zero_point), int(qy.zero_point))


def _make(name: str, limits: str) -> type[Op]:
    defaults = _ALL[name][0]

    class Activation(Op):
        pointwise = True
        activation = "function" if name in ACTIVATIONS else None
        int16x8 = name in INT16_SIGMOIDS or name == "LeakyRelu"  # (LeakyRelu: TFLite's recipe)
        int16_output_scale = float(Q15.scale) if name in INT16_SIGMOIDS else None

        def lower_int8(self, cx, node, out, act):
            if name in INT16_SIGMOIDS and cx.y.dtype == "s16" and not int16_lut.is_exactly_q15(float(cx.y.quant.scale)):
                return cx.requantized_output(node, out, Q15)  # TFLite's int16 kernel writes 2^-15
            return cx.same_op(node, out)  # a table from the input's and output's parameters

        def normalize(self, attrs, ins, opset):
            a = {k: float(attrs.get(k, v)) for k, v in defaults.items()}
            if name in TFLITE_RECIPES and attrs.get("recipe") == "tflite":
                a["recipe"] = "tflite"
            return a

        def infer(self, node, ins):
            return [(ins[0].shape, ins[0].dtype)]

        def reference(self, node, xs):
            a = node.attrs
            return [apply(self.name, xs[0], a.get("alpha", 0.0), a.get("beta", 0.0))]

        def qreference(self, node, xs, ins, outs):
            if ins[0].dtype == "s16" and name in INT16_SIGMOIDS:
                return [int16_lut.sigmoid_tanh_s16(xs[0], int16_params(node, ins, outs))]
            if ins[0].dtype == "s16":
                return [self._int16(node, ins, outs, xs[0])]
            return [int8_table(self.name, node.attrs, ins[0].quant, outs[0].quant)[xs[0].astype(np.int64) + 128]]

        def _int16(self, node, ins, outs, x):
            """16x8 (LeakyRelu from a .tflite file): TFLite's arithmetic on each int16 value."""
            from ..quant import tflite_lut

            if node.attrs.get("recipe") != "tflite":
                raise UnsupportedError(f"{self.name} node '{node.name}': int16 only with TFLite's recipe (.tflite input)")
            return tflite_lut.leaky_relu(node.attrs["alpha"], ins[0].quant, outs[0].quant, x, np.int16)

        def kernel(self, node, ins, outs):
            if is_quantized(ins, outs) and ins[0].dtype == "s16" and name in INT16_SIGMOIDS:
                return Kernel("s16/sigmoid_tanh.c.j2", dict(int16_params(node, ins, outs), op=self.name, n=outs[0].size,
                                                            table=int16_lut.sigmoid_table().tolist()), includes=("stdint.h",))
            if is_quantized(ins, outs) and ins[0].dtype == "s16":
                from ..quant.tflite_lut import leaky_relu_multipliers

                self._int16(node, ins, outs, np.zeros(1, np.int16))  # (refuses what it cannot do)
                (mi, si), (ma, sa) = leaky_relu_multipliers(node.attrs["alpha"], ins[0].quant, outs[0].quant)
                return Kernel("s16/leaky_relu.c.j2", dict(n=outs[0].size, mi=mi, si=si, ma=ma, sa=sa),
                              preamble=FIXEDPOINT + FIXEDPOINT16)
            if is_quantized(ins, outs):
                table = int8_table(self.name, node.attrs, ins[0].quant, outs[0].quant)
                return Kernel("s8/lut.c.j2", dict(op=self.name, n=outs[0].size, table=table.tolist()), includes=("stdint.h",))
            require_f32(node, ins)
            a = node.attrs
            return Kernel("f32/unary.c.j2", dict(n=outs[0].size, expr=c_expression(self.name, "v", a.get("alpha", 0.0),
                                                                                      a.get("beta", 0.0)), op=self.name),
                          includes=("math.h",))

    Activation.name = name
    Activation.limits = limits
    Activation.__name__ = name
    return Activation


_INT16_LIMITS = "; int16 (16x8): TFLite's kernel, writing 2^-15 (a Requantize after it for another output scale)"
for _name in ACTIVATIONS:
    register(_make(_name, "fused into a float op before it (Conv, Gemm, Add, ...) where possible; int8 by 256-entry table"
                   + (_INT16_LIMITS if _name in INT16_SIGMOIDS else "")))
for _name in MATH:
    register(_make(_name, "int8 by 256-entry table" + (_INT16_LIMITS if _name in INT16_SIGMOIDS else "")))
