"""int8 bilinear Resize with TFLite's RESIZE_BILINEAR integer semantics (ResizeBilinearInteger):
per resized axis (of an ONNX model: half_pixel, pytorch_half_pixel as half_pixel, align_corners
or asymmetric), the step in/out in 1/1024 (rounded to nearest; (in - 1) / (out - 1) with
align_corners), the source coordinate y * step (+ step / 2 - 512 with half-pixel centres), the
two source rows floor and ceil of it (clamped to the axis) with weights 1024 - frac and frac; the
output is the weighted sum divided by 2^(10 x resized axes), rounded as the graph's rounding mode
says (double: ties away from zero, as TFLite Micro's default build; single: ties upward). Values
pass through: input and output share their quantization parameters (a Requantize follows where
they differ)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..quant.fixedpoint import _trunc_div_pow2
from ..quant.rounding import SINGLE

ONE = 1 << 10
MODES = ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel")  # (the last: PyTorch's bilinear export,
# half_pixel for outputs longer than 1)


def check(node, shape) -> list[int]:
    """The resized axes of an int8 bilinear Resize, or UnsupportedError naming the node for what
    TFLite's integer kernel does not do."""
    a = node.attrs
    what = f"Resize node '{node.name}'"
    if a["mode"] != "linear" or a["antialias"]:
        raise UnsupportedError(f"{what}: int8 has modes nearest and linear (this one is {a['mode']}"
                               f"{', antialias' if a['antialias'] else ''})")
    if a["coordinate_transformation_mode"] not in MODES:
        raise UnsupportedError(f"{what}: int8 linear has coordinate_transformation_mode {', '.join(MODES)} "
                               f"(TFLite's), not {a['coordinate_transformation_mode']}")
    resized = [ax for ax, (n_in, n_out) in enumerate(zip(shape, a["sizes"])) if n_in != n_out]
    if a["coordinate_transformation_mode"] == "pytorch_half_pixel" and any(a["sizes"][ax] == 1 for ax in resized):
        raise UnsupportedError(f"{what}: int8 linear with pytorch_half_pixel needs outputs longer than 1")
    if len(shape) != 4 or 0 in resized or len(resized) > 2:
        raise UnsupportedError(f"{what}: int8 linear resizes the two spatial axes of a 4-D tensor "
                               f"(input {list(shape)}, output {list(a['sizes'])})")
    return resized


def axis_table(mode: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(source indices [n_out, 2], weights [n_out, 2] in 1/1024) of one axis."""
    if mode == "align_corners" and n_out > 1:
        step = (ONE * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    else:
        step = (ONE * n_in + n_out // 2) // n_out
    v = np.arange(n_out, dtype=np.int64) * step
    if mode in ("half_pixel", "pytorch_half_pixel"):
        v = v + step // 2 - ONE // 2
    lo = np.maximum(v, 0) // ONE  # (C's division of a value >= -512 truncates to 0 below zero)
    hi = np.minimum((v + ONE - 1) // ONE, n_in - 1)
    frac = v - ONE * lo
    return np.stack([np.minimum(lo, n_in - 1), hi], 1), np.stack([ONE - frac, frac], 1)


def tables(node, shape) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(axis, indices, weights) of every resized axis."""
    mode = node.attrs["coordinate_transformation_mode"]
    return [(ax, *axis_table(mode, shape[ax], node.attrs["sizes"][ax])) for ax in check(node, shape)]


def divide(acc: np.ndarray, bits: int, rounding: str) -> np.ndarray:
    """acc / 2^bits rounded as TFLite's kernel does in the rounding mode."""
    if not bits:
        return acc
    half = 1 << (bits - 1)
    if rounding == SINGLE:
        return (acc + half) >> bits
    return _trunc_div_pow2(acc + np.where(acc > 0, half, -half), bits)


def reference(node, x: np.ndarray, rounding: str) -> np.ndarray:
    """The int8 output from the int8 input."""
    y = x.astype(np.int64)
    tabs = tables(node, x.shape)
    for ax, idx, w in tabs:
        m = np.zeros((idx.shape[0], x.shape[ax]), np.int64)
        np.add.at(m, (np.repeat(np.arange(idx.shape[0]), 2), idx.reshape(-1)), w.reshape(-1))
        y = np.moveaxis(np.tensordot(m, y, axes=([1], [ax])), 0, ax)
    return np.clip(divide(y, 10 * len(tabs), rounding), -128, 127).astype(x.dtype)


def kernel_params(node, shape, rounding: str) -> dict:
    """The template's parameters: per output axis its length, and for a resized one its source
    offsets and weights."""
    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    tabs = {ax: (idx, w) for ax, idx, w in tables(node, shape)}
    axes = []
    for ax, n_out in enumerate(node.attrs["sizes"]):
        if ax in tabs:
            idx, w = tabs[ax]
            axes.append(dict(ax=ax, n=n_out, resized=True, offsets=(idx * strides[ax]).tolist(), weights=w.tolist()))
        else:
            axes.append(dict(ax=ax, n=n_out, resized=False, stride=strides[ax]))
    bits = 10 * len(tabs)
    return dict(axes=axes, bits=bits, half=1 << (bits - 1), single=rounding == SINGLE,
                mode=node.attrs["coordinate_transformation_mode"])
