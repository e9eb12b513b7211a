"""Softmax and LogSoftmax. Opset >= 13 normalises along one axis; older opsets flatten to 2-D at
``axis`` (recorded as ``flatten=1``).

int8: an output with scale 1/256 and zero point -128 runs TFLite's integer softmax (bit-exact with
TFLite Micro); any other output quantization, and LogSoftmax, run the exact integer recipe of
``tinyc/quant/softmax_exact.py`` (the QDQ meaning, correctly rounded)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError
from ..quant import int16_lut, softmax_exact
from ..quant.fixedpoint import softmax_params, softmax_s8
from ..quant.rounding import active as active_rounding
from . import FIXEDPOINT, Kernel, Op, is_quantized, register, require_f32
from .activations import Q15


@register
class Softmax(Op):
    name = "Softmax"
    limits = ("any axis, opset < 13 flattening too; int8: TFLite's kernel for output scale 1/256, zero point -128, "
              "an exact integer recipe for any other output quantization; int16 (16x8): TFLite's kernel, writing 2^-15 (a "
              "Requantize after it for another output scale)")
    int16x8 = True
    int16_output_scale = float(Q15.scale)

    def lower_int8(self, cx, node, out, act):
        if cx.y.dtype == "s16" and not int16_lut.is_exactly_q15(float(cx.y.quant.scale)):
            return cx.requantized_output(node, out, Q15)  # TFLite's int16 kernel writes 2^-15
        return cx.same_op(node, out)  # requantizes to whatever output parameters the model gives

    def calibrated_output(self, node, input_params):
        return 1.0 / 256.0, -128  # TFLite's int8 Softmax output
    exact_params = staticmethod(softmax_exact.softmax_params)
    exact_rows = staticmethod(softmax_exact.softmax_any)
    f32_template = "f32/softmax.c.j2"

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
        if not -rank <= axis < max(rank, 1):
            raise UnsupportedError(f"Softmax axis {axis} out of range for rank {rank}")
        axis %= max(rank, 1)
        flatten = int(opset < 13 and axis < rank - 1)
        return {"axis": axis, "flatten": flatten} if flatten else {"axis": axis}

    def infer(self, node, ins):
        # output_type: TFLite's int8 -> int16 softmax (the .tflite frontend sets it)
        return [(ins[0].shape, node.attrs.get("output_type", ins[0].dtype))]

    def _split(self, node, shape):
        axis = node.attrs["axis"]
        outer = int(np.prod(shape[:axis]))
        if node.attrs.get("flatten"):
            return outer, int(np.prod(shape[axis:])), 1
        return outer, shape[axis], int(np.prod(shape[axis + 1:]))

    def reference(self, node, xs):
        x = xs[0]
        outer, n, inner = self._split(node, x.shape)
        v = x.astype(np.float64).reshape(outer, n, inner)
        e = np.exp(v - v.max(axis=1, keepdims=True))
        return [(e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(x.dtype)]

    def _tflite(self, outs) -> bool:
        """TFLite's int8 softmax: output scale 1/256 and zero point -128, or its int8 -> int16
        form (scale 1/65536 within TFLite Micro's tolerance of 0.1%, zero point -32768)."""
        q = outs[0].quant
        if outs[0].dtype == "s16":
            return math.isclose(float(q.scale), 1 / 65536, rel_tol=1e-3) and int(q.zero_point) == -32768
        return math.isclose(float(q.scale), 1 / 256, rel_tol=1e-6) and int(q.zero_point) == -128

    @staticmethod
    def _out_bits(node, outs) -> dict:
        """The int16 output's template parameter (none for int8: its kernel stays as it was)."""
        return {"out_bits": 16} if outs[0].dtype == "s16" else {}

    def _exact(self, node, ins, outs) -> dict:
        if outs[0].dtype != "s8":
            raise UnsupportedError(f"{self.name} node '{node.name}': an {outs[0].dtype} output needs TFLite's "
                                   "parameters (scale 1/65536, zero point -32768)")
        n = self._split(node, ins[0].shape)[1]
        if n > 1 << 24:
            raise UnsupportedError(f"{self.name} node '{node.name}': int8 over {n} values (at most 2^24)")
        return self.exact_params(f"{self.name} node '{node.name}'", float(ins[0].quant.scale),
                                 float(outs[0].quant.scale), int(outs[0].quant.zero_point))

    def _rows(self, node, shape):
        outer, n, inner = self._split(node, shape)
        if n == 0:
            raise UnsupportedError(f"{self.name} node '{node.name}' over an empty axis")
        return outer, n, inner

    def _int16(self, node, ins, outs) -> tuple[int, int]:
        """TFLite's int16 softmax: its input multiplier and shift (tinyc/quant/int16_lut.py)."""
        qx, qy = ins[0].quant, outs[0].quant
        if self.name != "Softmax":
            raise UnsupportedError(f"{self.name} node '{node.name}': no int16 form (int8 or float only)")
        if self._split(node, ins[0].shape)[1] > 65536:
            raise UnsupportedError(f"{self.name} node '{node.name}': int16 over more than 65536 values")
        return int16_lut.softmax_params(f"{self.name} node '{node.name}'", float(qx.scale), float(qy.scale), 1.0,
                                        int(qx.zero_point), int(qy.zero_point))

    def qreference(self, node, xs, ins, outs):
        x = xs[0]
        outer, n, inner = self._rows(node, x.shape)
        v = np.moveaxis(x.reshape(outer, n, inner), 1, 2)  # softmax axis last
        if ins[0].dtype == "s16":
            y = int16_lut.softmax_s16(v, *self._int16(node, ins, outs), *int16_lut.softmax_tables())
        elif self._tflite(outs):
            m, shift, diff_min = softmax_params(float(ins[0].quant.scale), rounding=active_rounding())
            y = softmax_s8(v, m, shift, diff_min, **self._out_bits(node, outs))
        else:
            y = self.exact_rows(v, self._exact(node, ins, outs))
        return [np.moveaxis(y, 2, 1).reshape(x.shape)]

    def kernel(self, node, ins, outs):
        outer, n, inner = self._rows(node, ins[0].shape)
        if is_quantized(ins, outs) and ins[0].dtype == "s16":
            m, shift = self._int16(node, ins, outs)
            exp, recip = int16_lut.softmax_tables()
            return Kernel("s16/softmax.c.j2", dict(outer=outer, n=n, inner=inner, mult=m, shift=shift, exp=exp.tolist(),
                                                   recip=recip.tolist()),
                          preamble=FIXEDPOINT + ("s16/lut16_helpers.c.j2",))
        if is_quantized(ins, outs):
            if self._tflite(outs):
                m, shift, diff_min = softmax_params(float(ins[0].quant.scale), rounding=active_rounding())
                return Kernel("s8/softmax.c.j2", dict(outer=outer, n=n, inner=inner, mult=m, left_shift=shift,
                                                      diff_min=diff_min, **self._out_bits(node, outs)), preamble=FIXEDPOINT + ("s8/softmax_helpers.c.j2",))
            params = dict(self._exact(node, ins, outs), op=self.name, outer=outer, n=n, inner=inner,
                          out_frac=softmax_exact.OUT_FRAC)
            return Kernel("s8/softmax_exact.c.j2", params, includes=("stdint.h",), preamble=(*FIXEDPOINT, "s8/softmax_exact_helpers.c.j2"))
        require_f32(node, ins)
        return Kernel(self.f32_template, dict(outer=outer, n=n, inner=inner), includes=("math.h",))


@register
class LogSoftmax(Softmax):
    """log(softmax(x)) = x - max - log(sum(exp(x - max))), along the same axis rules as Softmax."""

    name = "LogSoftmax"
    int16x8 = False
    int16_output_scale = None
    limits = "any axis, opset < 13 flattening too; int8 by an exact integer recipe, any output quantization"
    exact_params = staticmethod(softmax_exact.log_softmax_params)
    exact_rows = staticmethod(softmax_exact.log_softmax_any)
    f32_template = "f32/logsoftmax.c.j2"

    def _tflite(self, outs) -> bool:
        return False

    def calibrated_output(self, node, input_params):
        return None  # from its calibrated range (the exact recipe takes any output parameters)

    def reference(self, node, xs):
        x = xs[0]
        outer, n, inner = self._split(node, x.shape)
        v = x.astype(np.float64).reshape(outer, n, inner)
        shifted = v - v.max(axis=1, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return [out.reshape(x.shape).astype(x.dtype)]
