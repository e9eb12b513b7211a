"""Resize (opset 10+): nearest, linear and cubic, every coordinate transformation mode, antialias,
exclude_outside, axes and keep_aspect_ratio_policy. Shapes are static, so Python turns each
resized axis into a tap table (source indices and weights per output position); the C kernel
only sums taps, and the reference applies the same tables as one matrix per axis."""
from __future__ import annotations

import math

import numpy as np

from ..codegen.cnames import CTYPES, c_float
from ..errors import UnsupportedError
from ..quant.rounding import active as active_rounding
from . import Kernel, Op, axes_in_range, copy_kernel, register, resize_s8

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _source_coordinate(mode: str, y: np.ndarray, scale: float, n_in: int, n_out: int, roi: tuple[float, float]):
    """Output positions -> input coordinates (float64), per the ONNX coordinate_transformation_mode."""
    width = scale * n_in  # the real-valued output length
    if mode == "align_corners":
        return np.zeros_like(y) if width == 1 else y * (n_in - 1) / (width - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "pytorch_half_pixel":
        return np.full_like(y, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        shift = n_in / 2 * (1 - n_out / width)
        return shift + (y + 0.5) / scale - 0.5
    # tf_crop_and_resize
    lo, hi = roi
    if width == 1:
        x = np.full_like(y, (hi - lo) * (n_in - 1) / 2)
    else:
        x = y * (hi - lo) * (n_in - 1) / (width - 1)
    return x + lo * (n_in - 1)


def _keys_cubic(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def axis_taps(a: dict, scale: float, n_in: int, n_out: int, roi: tuple[float, float]):
    """Per output position of one axis: source indices [n_out, taps], weights [n_out, taps] (float64)
    and a mask of positions outside the crop (tf_crop_and_resize) or None."""
    x = _source_coordinate(a["coordinate_transformation_mode"], np.arange(n_out, dtype=np.float64), scale, n_in, n_out, roi)
    outside = (x < 0) | (x > n_in - 1) if a["coordinate_transformation_mode"] == "tf_crop_and_resize" else None
    base = np.floor(x)
    if a["mode"] == "nearest":
        frac = x - base
        up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
              "floor": np.zeros_like(frac, bool), "ceil": frac > 0}[a["nearest_mode"]]
        idx = (base + up).astype(np.int64)[:, None]
        return np.clip(idx, 0, n_in - 1), np.ones(idx.shape), outside
    # A whole-number coordinate counts as ratio 1 from the pixel before it (the spec's window rule).
    whole = x == base
    base = np.where(whole, base - 1, base)
    ratio = x - base
    s = min(scale, 1.0) if a["antialias"] else 1.0
    reach = 1 if a["mode"] == "linear" else 2  # kernel half-width in input pixels at scale 1
    first = math.floor(-reach / s) + 1
    offsets = np.arange(first, 1 - first + 1, dtype=np.float64)  # 2 - 2 * first taps
    d = (offsets[None, :] - ratio[:, None]) * s
    if a["mode"] == "linear":
        w = np.clip(1 - np.abs(d), 0, 1)
    else:
        w = _keys_cubic(d, a["cubic_coeff_a"])
    if a["antialias"]:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base[:, None].astype(np.int64) + offsets[None, :].astype(np.int64)
    if a["exclude_outside"]:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, n_in - 1), w, outside


@register
class Resize(Op):
    name = "Resize"
    int8_pass_through = True
    limits = ("nearest, linear, cubic; every coordinate_transformation_mode and nearest_mode; antialias, axes, "
              "keep_aspect_ratio_policy; constant scales/sizes/roi; C for float32 (nearest: any type, int8 too; "
              "linear int8 as TFLite's RESIZE_BILINEAR: 4-D, spatial axes, half_pixel/align_corners/asymmetric). "
              "A fractional scale x length follows the ONNX reference")
    attr_inputs = {1: "roi", 2: "scales", 3: "sizes"}


    def commutes_with_quantize(self, node):
        return node.attrs.get("mode", "nearest") == "nearest"  # copies input values
    def permuted_attrs(self, node, perm):
        """Tap tables are per axis: a Resize runs in any layout with its per-axis lists permuted."""
        a = dict(node.attrs)
        for key in ("scales", "sizes", "roi"):
            a[key] = [a[key][p] for p in np.argsort(perm)]
        return a

    def normalize(self, attrs, ins, opset):
        x = ins[0]
        r = len(x.shape)
        a = {
            "mode": attrs.get("mode", "nearest"),
            "coordinate_transformation_mode": attrs.get("coordinate_transformation_mode",
                                                        "asymmetric" if opset < 11 else "half_pixel"),
            "nearest_mode": attrs.get("nearest_mode", "floor" if opset < 11 else "round_prefer_floor"),
            "cubic_coeff_a": float(attrs.get("cubic_coeff_a", -0.75)),
            "exclude_outside": int(attrs.get("exclude_outside", 0)),
            "extrapolation_value": float(attrs.get("extrapolation_value", 0.0)),
            "antialias": int(attrs.get("antialias", 0)),
        }
        for key, allowed in (("mode", MODES), ("coordinate_transformation_mode", COORDINATE_MODES),
                             ("nearest_mode", NEAREST_MODES)):
            if isinstance(a[key], bytes):
                a[key] = a[key].decode()
            if a[key] not in allowed:
                raise UnsupportedError(f"Resize {key} '{a[key]}' is not one of {', '.join(allowed)}")
        if opset < 11 and "scales" not in attrs and "roi" in attrs:  # Resize-10: (X, scales)
            attrs = dict(attrs, scales=attrs.pop("roi"))
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        policy = policy.decode() if isinstance(policy, bytes) else policy
        axes = attrs.get("axes")
        axes = list(range(r)) if axes is None else axes_in_range("Resize axes", axes, r)

        def given(key):
            v = attrs.get(key)
            v = None if v is None else np.asarray(v, np.float64).reshape(-1)
            return None if v is None or v.size == 0 else v

        scales_in, sizes_in, roi_in = given("scales"), given("sizes"), given("roi")
        if (scales_in is None) == (sizes_in is None):
            raise UnsupportedError("Resize needs exactly one of scales and sizes")
        scales, sizes = [1.0] * r, list(x.shape)
        if scales_in is not None:
            if len(scales_in) != len(axes):
                raise UnsupportedError(f"Resize has {len(scales_in)} scales for {len(axes)} axes")
            for ax, s in zip(axes, scales_in):
                if not 0 < s < math.inf:
                    raise UnsupportedError(f"Resize scale {s} must be positive and finite")
                scales[ax] = float(np.float32(s))
                sizes[ax] = int(math.floor(float(np.float32(s)) * x.shape[ax]))
        else:
            if len(sizes_in) != len(axes):
                raise UnsupportedError(f"Resize has {len(sizes_in)} sizes for {len(axes)} axes")
            for ax, n in zip(axes, sizes_in):
                sizes[ax] = int(n)
                scales[ax] = int(n) / x.shape[ax]
            if policy in ("not_larger", "not_smaller"):
                pick = min if policy == "not_larger" else max
                s = pick(scales[ax] for ax in axes)
                for ax in axes:
                    scales[ax] = s
                    sizes[ax] = int(s * x.shape[ax] + 0.5)
            elif policy != "stretch":
                raise UnsupportedError(f"Resize keep_aspect_ratio_policy '{policy}' is not supported")
        if any(n <= 0 for n in sizes):
            raise UnsupportedError(f"Resize output shape {sizes} is empty")
        roi = [(0.0, 1.0)] * r
        if roi_in is not None and a["coordinate_transformation_mode"] == "tf_crop_and_resize":
            if len(roi_in) != 2 * len(axes):
                raise UnsupportedError(f"Resize roi has {len(roi_in)} values for {len(axes)} axes")
            for i, ax in enumerate(axes):
                roi[ax] = (float(roi_in[i]), float(roi_in[len(axes) + i]))
        if a["mode"] == "nearest" and a["antialias"]:
            raise UnsupportedError("Resize antialias needs mode linear or cubic")
        a.update(scales=scales, sizes=sizes, roi=[list(v) for v in roi])
        return a

    def infer(self, node, ins):
        return [(tuple(node.attrs["sizes"]), ins[0].dtype)]

    def tables(self, node, shape):
        """(axis, indices, weights, outside) for every axis that is not left as it is."""
        a, out = node.attrs, []
        for ax, n_in in enumerate(shape):
            scale, n_out, roi = a["scales"][ax], a["sizes"][ax], tuple(a["roi"][ax])
            if math.isclose(scale, 1.0) and n_out == n_in and (
                    a["coordinate_transformation_mode"] != "tf_crop_and_resize"
                    or (math.isclose(roi[0], 0.0) and math.isclose(roi[1], 1.0))):
                continue
            out.append((ax, *axis_taps(a, scale, n_in, n_out, roi)))
        return out

    def reference(self, node, xs):
        x = xs[0]
        if x.dtype == np.float32 and node.attrs["mode"] != "nearest":
            return [self._interpolate_f32(node, x)]
        y = x.astype(np.float64)
        mask = np.zeros(node.attrs["sizes"], bool)
        for ax, idx, w, outside in self.tables(node, x.shape):
            m = np.zeros((idx.shape[0], x.shape[ax]))
            np.add.at(m, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
            y = np.moveaxis(np.tensordot(m, y, axes=([1], [ax])), 0, ax)
            if outside is not None:
                mask |= outside.reshape((1,) * ax + (-1,) + (1,) * (x.ndim - ax - 1))
        if mask.any():
            y = np.where(mask, node.attrs["extrapolation_value"], y)
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            y = np.clip(np.rint(y), info.min, info.max)
        return [y.astype(x.dtype)]

    def _interpolate_f32(self, node, x: np.ndarray) -> np.ndarray:
        """float32 interpolation exactly as the C kernel computes it: per output, over the taps
        (the first resized axis outermost) acc += w_a * w_b * ... * x, each step rounded to float32
        (a result quantized next, under --keep-float, then rounds as the C does)."""
        tables = self.tables(node, x.shape)
        grids = np.meshgrid(*[np.arange(n) for n in node.attrs["sizes"]], indexing="ij")
        acc = np.zeros(node.attrs["sizes"], np.float32)
        for taps in np.ndindex(*[idx.shape[1] for _, idx, _, _ in tables]):
            index = list(grids)
            w = None
            for (ax, idx, wt, _), t in zip(tables, taps):
                index[ax] = idx[:, t][grids[ax]]
                wa = wt[:, t].astype(np.float32)[grids[ax]]
                w = wa if w is None else (w * wa).astype(np.float32)
            if w is None:  # (no axis resized: every output is its input)
                w = np.float32(1.0)
            acc = (acc + (w * x[tuple(index)]).astype(np.float32)).astype(np.float32)
        mask = np.zeros(node.attrs["sizes"], bool)
        for ax, _, _, outside in tables:
            if outside is not None:
                mask |= outside.reshape((1,) * ax + (-1,) + (1,) * (x.ndim - ax - 1))
        return np.where(mask, np.float32(node.attrs["extrapolation_value"]), acc).astype(np.float32)

    def int8_form(self, node, g):
        if node.attrs["mode"] != "nearest":
            resize_s8.check(node, g.tensors[node.inputs[0]].shape)
        return None

    def qreference(self, node, xs, ins, outs):
        """int8: nearest, or linear with TFLite's integer arithmetic (values pass through; a
        Requantize follows if the output's parameters differ)."""
        if node.attrs["mode"] != "nearest":
            return [resize_s8.reference(node, xs[0], active_rounding())]
        return self.reference(node, xs)

    def kernel(self, node, ins, outs):
        x = ins[0]
        if x.dtype == "s8" and node.attrs["mode"] != "nearest" and node.attrs["sizes"] != list(x.shape):
            return Kernel("s8/resize_bilinear.c.j2", resize_s8.kernel_params(node, x.shape, active_rounding()),
                          includes=("stdint.h",))
        if x.dtype != "f32" and node.attrs["mode"] != "nearest":
            raise UnsupportedError(f"Resize node '{node.name}': {node.attrs['mode']} mode has a C kernel for f32 only")
        if x.dtype not in CTYPES:
            raise UnsupportedError(f"Resize node '{node.name}': no C kernel for {x.dtype}")
        shape = x.shape
        in_strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        tables = {ax: (idx, w, outside) for ax, idx, w, outside in self.tables(node, shape)}
        if not tables:
            return copy_kernel(outs)
        axes = []
        for ax, n_out in enumerate(node.attrs["sizes"]):
            if ax in tables:
                idx, w, outside = tables[ax]
                axes.append(dict(ax=ax, n=n_out, resized=True, taps=idx.shape[1],
                                 offsets=(idx * in_strides[ax]).astype(np.int64).tolist(),
                                 weights=[[c_float(v) for v in row] for row in w.tolist()],
                                 outside=None if outside is None or not outside.any() else outside.astype(int).tolist()))
            else:
                axes.append(dict(ax=ax, n=n_out, resized=False, stride=in_strides[ax]))
        return Kernel("resize.c.j2", dict(axes=axes, nearest=node.attrs["mode"] == "nearest", ctype=CTYPES[x.dtype],
                                          extrapolation=c_float(node.attrs["extrapolation_value"])), includes=("stdint.h",))
