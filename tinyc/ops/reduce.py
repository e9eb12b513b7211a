"""Reductions over a set of axes: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp. One table row each: the numpy
meaning and the C accumulation (initial value, step of ``acc`` and ``v``, final expression)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..codegen.cnames import CTYPES
from ..errors import UnsupportedError
from ..quant.params import MEAN_TFLITE
from . import Kernel, Op, is_quantized, register
from .mean_s8 import lower_mean_int8, mean_kernel, mean_s8, reduce_loops

_F = {"f32"}
_INT = {"s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64"}

# name -> (numpy over (x, axes, keepdims), dtypes with a C kernel, init, step, final, math in float)
REDUCTIONS: dict[str, tuple[Callable, set[str], str, str, str, bool]] = {
    "ReduceSum": (lambda x, a, k: np.sum(x, axis=a, keepdims=k), _F | _INT, "0", "acc + v", "acc", False),
    "ReduceMean": (lambda x, a, k: np.mean(x, axis=a, keepdims=k), _F | _INT, "0", "acc + v", "acc / {count}", False),
    "ReduceMax": (lambda x, a, k: np.max(x, axis=a, keepdims=k), _F | _INT | {"bool"}, "{lowest}", "v > acc ? v : acc", "acc", False),
    "ReduceMin": (lambda x, a, k: np.min(x, axis=a, keepdims=k), _F | _INT | {"bool"}, "{highest}", "v < acc ? v : acc", "acc", False),
    "ReduceProd": (lambda x, a, k: np.prod(x, axis=a, keepdims=k), _F | _INT, "1", "acc * v", "acc", False),
    "ReduceSumSquare": (lambda x, a, k: np.sum(x * x, axis=a, keepdims=k), _F | _INT, "0", "acc + v * v", "acc", False),
    "ReduceL1": (lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k), _F | _INT, "0", "acc + (v < 0 ? -v : v)", "acc", False),
    "ReduceL2": (lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)), _F, "0", "acc + v * v", "sqrtf(acc)", True),
    "ReduceLogSum": (lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)), _F, "0", "acc + v", "logf(acc)", True),
    "ReduceLogSumExp": (lambda x, a, k: np.log(np.sum(np.exp(x), axis=a, keepdims=k)), _F, "0", "acc + expf(v)", "logf(acc)", True),
}

_LIMITS = {"s8": (-128, 127), "u8": (0, 255), "s16": (-32768, 32767), "u16": (0, 65535),
           "s32": ("INT32_MIN", "INT32_MAX"), "u32": (0, "UINT32_MAX"), "s64": ("INT64_MIN", "INT64_MAX"),
           "u64": (0, "UINT64_MAX"), "bool": (0, 1), "f32": ("-HUGE_VALF", "HUGE_VALF")}


def _make(name: str) -> type[Op]:
    fn, kernel_dtypes, init, step, final, needs_math = REDUCTIONS[name]

    class Reduce(Op):
        limits = "axes constant (attribute or input), keepdims, noop_with_empty_axes; C for " + \
                 ("float32 and integers" if kernel_dtypes & _INT else "float32")
        attr_inputs = {1: "axes"}

        def normalize(self, attrs, ins, opset):
            rank = len(ins[0].shape)
            axes = attrs.get("axes")
            axes = [] if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
            if any(not -rank <= a < rank for a in axes):
                raise UnsupportedError(f"{self.name} axes {axes} out of range for rank {rank}")
            axes = sorted({a % rank for a in axes})
            noop = int(attrs.get("noop_with_empty_axes", 0))
            if not axes and not noop:
                axes = list(range(rank))
            return {"axes": axes, "keepdims": int(attrs.get("keepdims", 1))}

        def infer(self, node, ins):
            s, axes = ins[0].shape, node.attrs["axes"]
            if any(s[a] == 0 for a in axes):
                raise UnsupportedError(f"{self.name} node '{node.name}': reducing an empty axis is not supported")
            if node.attrs["keepdims"]:
                out = tuple(1 if i in axes else d for i, d in enumerate(s))
            else:
                out = tuple(d for i, d in enumerate(s) if i not in axes)
            return [(out, ins[0].dtype)]

        def reference(self, node, xs):
            x, axes = xs[0], tuple(node.attrs["axes"])
            if not axes:
                return [x.copy()]
            with np.errstate(all="ignore"):
                y = fn(x, axes, bool(node.attrs["keepdims"]))
            return [np.asarray(y).astype(x.dtype)]

        def kernel(self, node, ins, outs):
            x = ins[0]
            if x.dtype not in kernel_dtypes:
                raise UnsupportedError(f"{self.name} node '{node.name}': no C kernel for {x.dtype}")
            axes = node.attrs["axes"]
            kept, kept_s, red, red_s = reduce_loops(x.shape, axes)
            count = int(np.prod([x.shape[i] for i in axes])) if axes else 1
            lo, hi = _LIMITS[x.dtype]
            is_float = x.dtype in _F
            ctype = CTYPES["u8" if x.dtype == "bool" else x.dtype]
            if is_float:
                acc_type, first = "float", {"0": "0.0f", "1": "1.0f"}.get(init, init)
            else:
                acc_type, first = ("uint64_t" if x.dtype[0] in "ub" else "int64_t"), init
            params = dict(
                op=self.name, ctype=ctype, acc_type=acc_type,
                kept=kept, kept_strides=kept_s, red=red, red_strides=red_s, count=count,
                init=first.format(lowest=lo, highest=hi), step=step,
                final=final.format(count=f"{count}.0f" if is_float else count),
            )
            return Kernel("reduce.c.j2", params, includes=("math.h", "stdint.h") if needs_math or is_float else ("stdint.h",))

    Reduce.__name__ = Reduce.__qualname__ = name
    Reduce.name = name
    return Reduce


_FloatMean = _make("ReduceMean")


@register
class ReduceMean(_FloatMean):
    limits = _FloatMean.limits + "; int8 (QDQ): the exact ONNX meaning, or TFLite's MEAN for a model from TFLite"
    tflite_attrs = {"rounding": MEAN_TFLITE}
    global_pool = "GlobalAveragePool"
    lower_int8 = lower_mean_int8

    def normalize(self, attrs, ins, opset):
        a = super().normalize(attrs, ins, opset)
        if "rounding" in attrs:
            a["rounding"] = attrs["rounding"]
        return a

    def qreference(self, node, xs, ins, outs):
        y = mean_s8(node, xs[0], tuple(node.attrs["axes"]), ins[0], outs[0])
        return [y.reshape(outs[0].shape)]

    def kernel(self, node, ins, outs):
        if is_quantized(ins, outs):
            return mean_kernel(node, ins[0], outs[0], node.attrs["axes"])
        return super().kernel(node, ins, outs)


_ReduceMax = _make("ReduceMax")
_ReduceMax.global_pool = "GlobalMaxPool"
for _name in REDUCTIONS:
    if _name != "ReduceMean":
        register(_ReduceMax if _name == "ReduceMax" else _make(_name))
