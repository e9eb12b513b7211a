"""Sliding-window geometry shared by Conv and the pooling ops (ONNX conventions).

Pads are stored as ``[begin_0, begin_1, ..., end_0, end_1, ...]`` over the spatial axes.
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import UnsupportedError


def normalize_window(op: str, attrs: dict[str, Any], spatial: tuple[int, ...], kernel: tuple[int, ...]) -> dict[str, Any]:
    """Fill defaults and resolve ``auto_pad`` to explicit pads."""
    n = len(spatial)
    a = dict(attrs)
    a["kernel_shape"] = list(kernel)
    a["strides"] = list(a.get("strides") or [1] * n)
    a["dilations"] = list(a.get("dilations") or [1] * n)
    pads = list(a.get("pads") or [0] * (2 * n))
    auto_pad = a.pop("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if len(kernel) != n or len(a["strides"]) != n or len(a["dilations"]) != n or len(pads) != 2 * n:
        raise UnsupportedError(f"{op}: kernel_shape/strides/dilations/pads do not match {n} spatial dims")
    if min(list(kernel) + a["strides"] + a["dilations"], default=1) < 1 or min(pads, default=0) < 0:
        raise UnsupportedError(f"{op}: kernel_shape {list(kernel)}, strides {a['strides']} and dilations "
                               f"{a['dilations']} must be positive, pads {pads} not negative")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * n)
        for i in range(n):
            out = -(-spatial[i] // a["strides"][i])
            eff = (kernel[i] - 1) * a["dilations"][i] + 1
            total = max((out - 1) * a["strides"][i] + eff - spatial[i], 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + n] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    elif auto_pad != "NOTSET":
        raise UnsupportedError(f"{op}: unknown auto_pad '{auto_pad}'")
    a["pads"] = pads
    return a


def output_size(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil_mode: bool = False) -> int:
    eff = (k - 1) * d + 1
    span = size + pb + pe - eff
    if span < 0:
        raise UnsupportedError(f"window of {eff} is larger than the padded input {size + pb + pe}")
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pb:
        out -= 1  # the last window would start inside the end padding
    return out


def output_spatial(attrs: dict[str, Any], spatial: tuple[int, ...]) -> tuple[int, ...]:
    n = len(spatial)
    k, s, d, p = attrs["kernel_shape"], attrs["strides"], attrs["dilations"], attrs["pads"]
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    return tuple(output_size(spatial[i], k[i], s[i], d[i], p[i], p[i + n], ceil_mode) for i in range(n))


def as_2d(attrs: dict[str, Any]) -> dict[str, Any]:
    """View 1-D window attributes as 2-D with a leading unit axis (H = 1)."""
    if len(attrs["kernel_shape"]) == 2:
        return attrs
    a = dict(attrs)
    a["kernel_shape"] = [1] + list(attrs["kernel_shape"])
    a["strides"] = [1] + list(attrs["strides"])
    a["dilations"] = [1] + list(attrs["dilations"])
    p = attrs["pads"]
    a["pads"] = [0, p[0], 0, p[1]]
    return a
