"""The int8 mean (ReduceMean and GlobalAveragePool on quantized tensors), in two meanings chosen by
the node's ``rounding`` attribute:

- ``half_even`` (the default; what lower-qdq gives every mean of a QDQ model): ONNX's
  DequantizeLinear -> mean -> QuantizeLinear computed exactly in integers, round half to even of
  the exact real mean;
- ``tflite_mean``: TFLite Micro's int8 MEAN kernel, bit for bit. The importer puts it on the
  ReduceMean nodes of a model converted from TFLite (``Op.tflite_attrs``).

Both sum the int8 values in int32 and requantize once from the input's parameters to the output's
(tinyc/quant/params.py: mean_params has the constants)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node, Tensor
from ..quant.fixedpoint import div_round_half_even, requantize
from ..quant.rounding import active as active_rounding
from ..quant.params import MEAN_HALF_EVEN, MEAN_TFLITE, mean_params
from . import FIXEDPOINT, Kernel

ROUNDINGS = (MEAN_HALF_EVEN, MEAN_TFLITE)


def lower_mean_int8(op, cx, node: Node, out: list[str], act) -> Node:
    """Op.lower_int8 of an average: it requantizes to the output's parameters itself, rounding as
    its ``rounding`` attribute says (the exact ONNX meaning unless the importer set TFLite's)."""
    return cx.same_op(node, out, rounding=node.attrs.get("rounding", MEAN_HALF_EVEN))


def rounding(node: Node) -> str:
    r = node.attrs.get("rounding", MEAN_HALF_EVEN)
    if r not in ROUNDINGS:
        raise UnsupportedError(f"{node.op} node '{node.name}': rounding '{r}' is not one of {', '.join(ROUNDINGS)}")
    return r


def _params(node: Node, x: Tensor, y: Tensor, count: int) -> dict[str, int]:
    if x.dtype != "s8" or y.dtype != "s8" or x.quant is None or y.quant is None \
            or x.quant.axis is not None or y.quant.axis is not None:
        raise UnsupportedError(f"{node.op} node '{node.name}': an int8 mean needs int8 tensors quantized per tensor")
    try:
        return mean_params(x.quant, y.quant, count, rounding(node), active_rounding())
    except UnsupportedError as e:
        raise UnsupportedError(f"{node.op} node '{node.name}': {e}") from None


def reduce_loops(shape: tuple[int, ...], axes) -> tuple[list[int], list[int], list[int], list[int]]:
    """Loops over a row-major tensor: the kept axes and the reduced ones, each as dimensions and
    element strides, adjacent axes of the same kind merged and size-1 axes left out."""
    axes = set(axes)
    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    loops: dict[bool, tuple[list[int], list[int]]] = {False: ([], []), True: ([], [])}
    last = None
    for i, (d, st) in enumerate(zip(shape, strides)):
        if d == 1:
            continue
        dims, ss = loops[i in axes]
        if last == (i in axes) and ss[-1] == st * d:
            dims[-1] *= d  # contiguous with the previous axis of the same kind
            ss[-1] = st
        else:
            dims.append(d)
            ss.append(st)
        last = i in axes
    (kept, kept_s), (red, red_s) = loops[False], loops[True]
    return kept or [1], kept_s or [0], red or [1], red_s or [0]


def mean_s8(node: Node, x: np.ndarray, axes: tuple[int, ...], x_t: Tensor, y_t: Tensor) -> np.ndarray:
    """The reference: int8 ``x`` averaged over ``axes`` (kept as size 1), in y_t's quantization."""
    count = int(np.prod([x.shape[a] for a in axes]))
    p = _params(node, x_t, y_t, count)
    d = x.astype(np.int64).sum(axis=axes, keepdims=True) - p["offset"]
    if rounding(node) == MEAN_TFLITE:
        return requantize(d, p["mult"], p["shift"], p["zp"], -128, 127, active_rounding())
    q = div_round_half_even(np.clip(d, p["d_lo"], p["d_hi"]) * p["num"], p["den"])
    return np.clip(q + p["zp"], -128, 127).astype(np.int8)


def mean_kernel(node: Node, x: Tensor, y: Tensor, axes) -> Kernel:
    count = int(np.prod([x.shape[a] for a in axes]))
    if count >= 2**23:
        raise UnsupportedError(f"{node.op} node '{node.name}': an int8 mean of {count} values would overflow its int32 sum")
    kept, kept_s, red, red_s = reduce_loops(x.shape, axes)
    p = _params(node, x, y, count)
    p.update(rounding=rounding(node), count=count, kept=kept, kept_strides=kept_s, red=red, red_strides=red_s,
             minus_offset=f"+ {-p['offset']}" if p["offset"] < 0 else f"- {p['offset']}")
    return Kernel("s8/mean.c.j2", p, includes=("stdint.h",), preamble=FIXEDPOINT)
