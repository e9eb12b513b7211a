"""Ops that exporters emit around the real work: Identity, Dropout, Cast, Shape, Gather,
Squeeze, Unsqueeze. The canonicalize pass removes or folds them; where one survives on
run-time data it runs as a copy."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import DTYPES
from . import Kernel, Op, axes_in_range, c_type, copy_kernel, register, require_f32

# ONNX TensorProto element types -> IR dtypes (the ones Cast may target)
_ONNX_TYPES = {1: "f32", 2: "u8", 3: "s8", 4: "u16", 5: "s16", 6: "s32", 7: "s64", 9: "bool", 10: "f16", 11: "f64",
               12: "u32", 13: "u64"}


@register
class Identity(Op):
    name = "Identity"
    int8_pass_through = True
    limits = "removed by canonicalize"
    quant_transparent = True

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)]

    def reference(self, node, xs):
        return [xs[0]]

    def is_no_op(self, node, ins, outs):
        return True

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)


@register
class Dropout(Op):
    """Inference: the identity (the optional mask output is all true)."""

    name = "Dropout"
    limits = "inference only; removed by canonicalize"
    attr_inputs = {1: "ratio", 2: "training_mode"}
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        if attrs.get("training_mode") and np.asarray(attrs["training_mode"]).any():
            raise UnsupportedError("Dropout in training mode")
        return {}

    def infer(self, node, ins):
        return [(ins[0].shape, ins[0].dtype)] + [(ins[0].shape, "bool")] * (len(node.outputs) - 1)

    def reference(self, node, xs):
        return [xs[0]] + [np.ones(xs[0].shape, bool)] * (len(node.outputs) - 1)

    def is_no_op(self, node, ins, outs):
        return True

    def kernel(self, node, ins, outs):
        if len(outs) > 1:
            raise UnsupportedError(f"Dropout node '{node.name}': the mask output is not supported")
        return copy_kernel(outs)


@register
class Cast(Op):
    name = "Cast"
    limits = "folded for any type; at run time only to the same type"

    def normalize(self, attrs, ins, opset):
        to = int(attrs.get("to", 0))
        if to not in _ONNX_TYPES:
            raise UnsupportedError(f"Cast to element type {to} is not supported")
        return {"to": _ONNX_TYPES[to]}

    def infer(self, node, ins):
        return [(ins[0].shape, node.attrs["to"])]

    def reference(self, node, xs):
        return [np.asarray(xs[0]).astype(DTYPES[node.attrs["to"]])]

    def is_no_op(self, node, ins, outs):
        return ins[0].dtype == outs[0].dtype

    def kernel(self, node, ins, outs):
        if ins[0].dtype == outs[0].dtype:
            return copy_kernel(outs)
        raise UnsupportedError(f"{node.op} node '{node.name}': {ins[0].dtype} -> {outs[0].dtype} at run time is not supported")


@register
class Shape(Op):
    """The shape is static, so Shape is always a constant (folded at import)."""

    name = "Shape"
    limits = "always folded (static shapes)"
    shape_only_inputs = (0,)

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        start = int(attrs.get("start", 0))
        end = int(attrs.get("end", rank))
        return {"start": start, "end": end}

    def infer(self, node, ins):
        v = self._value(node, ins[0].shape)
        return [(v.shape, "s64")]

    def _value(self, node, shape):
        return np.array(shape[slice(node.attrs["start"], node.attrs["end"])], np.int64)

    def reference(self, node, xs):
        return [self._value(node, np.asarray(xs[0]).shape)]


@register
class Gather(Op):
    name = "Gather"
    int8_pass_through = True
    limits = "constant indices (checked at compile time), or run-time indices clamped to the axis"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = int(attrs.get("axis", 0))
        if not -rank <= axis < rank:
            raise UnsupportedError(f"Gather axis {axis} out of range for rank {rank}")
        return {"axis": axis % rank}

    def infer(self, node, ins):
        s, a = ins[0].shape, node.attrs["axis"]
        return [(s[:a] + tuple(ins[1].shape) + s[a + 1:], ins[0].dtype)]

    def reference(self, node, xs):
        a = node.attrs["axis"]
        idx = np.asarray(xs[1], np.int64)
        idx = np.where(idx < 0, idx + xs[0].shape[a], idx)
        return [np.take(xs[0], idx, axis=a)]

    def kernel(self, node, ins, outs):
        x, idx = ins
        a = node.attrs["axis"]
        if idx.is_const and np.any((idx.data < -x.shape[a]) | (idx.data >= x.shape[a])):
            raise UnsupportedError(f"Gather node '{node.name}': indices out of range for axis {a} of {x.shape}")
        return Kernel("gather.c.j2", dict(outer=int(np.prod(x.shape[:a])), n=max(idx.size, 1), inner=int(np.prod(x.shape[a + 1:])),
                                          axis_len=x.shape[a], runtime=not idx.is_const, ctype=c_type(node, x.dtype)),
                      includes=("string.h", "stdint.h"))


class _AxesOp(Op):
    view = True
    int8_pass_through = True
    limits = "constant axes; a view: no code"
    attr_inputs = {1: "axes"}
    quant_transparent = True

    def reference(self, node, xs):
        return [xs[0].reshape(self._out_shape(node, xs[0].shape))]

    def infer(self, node, ins):
        return [(self._out_shape(node, ins[0].shape), ins[0].dtype)]

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)


@register
class Squeeze(_AxesOp):
    name = "Squeeze"

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        if "axes" not in attrs:
            return {"axes": [i for i, d in enumerate(ins[0].shape) if d == 1]}
        axes = sorted(axes_in_range("Squeeze axes", attrs["axes"], rank))
        if any(ins[0].shape[a] != 1 for a in axes):
            raise UnsupportedError(f"Squeeze axes {axes} are not of size 1 in {list(ins[0].shape)}")
        return {"axes": axes}

    def _out_shape(self, node, shape):
        return tuple(d for i, d in enumerate(shape) if i not in node.attrs["axes"])


@register
class Unsqueeze(_AxesOp):
    name = "Unsqueeze"

    def normalize(self, attrs, ins, opset):
        if "axes" not in attrs:
            raise UnsupportedError("Unsqueeze without axes")
        rank = len(ins[0].shape) + len(np.asarray(attrs["axes"]).reshape(-1))
        return {"axes": sorted(axes_in_range("Unsqueeze axes", attrs["axes"], rank))}

    def _out_shape(self, node, shape):
        out, it = [], iter(shape)
        rank = len(shape) + len(node.attrs["axes"])
        for i in range(rank):
            out.append(1 if i in node.attrs["axes"] else next(it))
        return tuple(out)


@register
class BatchNormalization(Op):
    """Inference form: y = scale * (x - mean) / sqrt(var + epsilon) + bias, per channel (axis 1).
    The fold-batchnorm pass merges it into the producing Conv/Gemm."""

    name = "BatchNormalization"
    limits = "inference form; folded into Conv/Gemm/MatMul, else Mul + Add; run-time statistics: C for float32"

    def normalize(self, attrs, ins, opset):
        if int(attrs.get("training_mode", 0)):
            raise UnsupportedError("BatchNormalization in training mode")
        return {"epsilon": float(attrs.get("epsilon", 1e-5))}

    def infer(self, node, ins):
        if len(node.outputs) > 1:
            raise UnsupportedError(f"BatchNormalization node '{node.name}': only the inference form (one output)")
        x = ins[0]
        if len(x.shape) < 2 or any(t is None or t.shape != (x.shape[1],) for t in ins[1:5]) or len(ins) != 5:
            raise UnsupportedError(f"BatchNormalization node '{node.name}': scale, bias, mean and variance must have "
                                   f"shape ({x.shape[1] if len(x.shape) > 1 else '?'},) for input {list(x.shape)}")
        return [(x.shape, x.dtype)]

    def affine(self, node, xs) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (multiplier, offset), in float64 (a negative variance gives NaN, as at run time)."""
        scale, bias, mean, var = (np.asarray(v, np.float64) for v in xs[1:5])
        with np.errstate(all="ignore"):
            m = scale / np.sqrt(var + node.attrs["epsilon"])
            return m, bias - mean * m

    def reference(self, node, xs):
        x = xs[0]
        m, b = self.affine(node, xs)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return [(x.astype(np.float64) * m.reshape(shape) + b.reshape(shape)).astype(x.dtype)]

    def kernel(self, node, ins, outs):
        """Only when the statistics are inputs at run time (constant ones are folded)."""
        require_f32(node, ins)
        x = ins[0]
        return Kernel("f32/batchnorm.c.j2", dict(N=x.shape[0], C=x.shape[1], inner=int(np.prod(x.shape[2:])),
                                                 epsilon=node.attrs["epsilon"]), includes=("math.h",))


@register
class CastLike(Op):
    """Cast to the element type of the second input (only its type matters)."""

    name = "CastLike"
    limits = "folded for any type; at run time only to the same type"
    shape_only_inputs = (1,)

    def infer(self, node, ins):
        return [(ins[0].shape, ins[1].dtype)]

    def reference(self, node, xs):
        return [np.asarray(xs[0]).astype(np.asarray(xs[1]).dtype)]

    kernel = Cast.kernel


@register
class Expand(Op):
    """Broadcast to a constant shape (numpy rules, as ONNX defines them)."""

    name = "Expand"
    limits = "folded when its data is constant"
    attr_inputs = {1: "shape"}

    def normalize(self, attrs, ins, opset):
        if "shape" not in attrs:
            raise UnsupportedError("Expand without a constant shape")
        return {"shape": [int(d) for d in np.asarray(attrs["shape"]).reshape(-1)]}

    def infer(self, node, ins):
        try:
            out = np.broadcast_shapes(tuple(ins[0].shape), tuple(node.attrs["shape"]))
        except ValueError:
            raise UnsupportedError(f"Expand node '{node.name}': {list(ins[0].shape)} does not expand to {node.attrs['shape']}") from None
        return [(tuple(int(d) for d in out), ins[0].dtype)]

    def reference(self, node, xs):
        out = np.broadcast_shapes(xs[0].shape, tuple(node.attrs["shape"]))
        return [np.asarray(np.broadcast_to(xs[0], out), order="C")]
