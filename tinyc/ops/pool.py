"""MaxPool, AveragePool and GlobalAveragePool (NCHW)."""
from __future__ import annotations

import numpy as np

from ..codegen.cnames import CTYPES
from ..errors import UnsupportedError
from ..ir import DTYPES
from . import Kernel, Op, int8_act_range, int8_clamp, is_quantized, register, require_f32, spatial_2d
from .layout import is_nhwc, with_nhwc
from .mean_s8 import lower_mean_int8, mean_kernel, mean_s8
from .conv import pad_input, windows
from .window import normalize_window, output_spatial


class _Pool(Op):
    def normalize(self, attrs, ins, opset):
        x = ins[0]
        if x is None or len(x.shape) < 3:
            raise UnsupportedError(f"{self.name} needs an N,C,spatial input")
        if "kernel_shape" not in attrs:
            raise UnsupportedError(f"{self.name} without kernel_shape")
        a = normalize_window(self.name, attrs, x.shape[2:], tuple(attrs["kernel_shape"]))
        a["ceil_mode"] = int(attrs.get("ceil_mode", 0))
        return a

    def infer(self, node, ins):
        x = ins[0]
        return [(x.shape[:2] + output_spatial(node.attrs, x.shape[2:]), x.dtype)]

    def band(self, node, ins, outs, start, stop):
        from .band import window_band
        return window_band(node, ins, outs, start, stop)

    def _params(self, node, ins, outs, any_type: bool = False):
        """Window geometry as 3-D (D, H, W; unit axes in front for 1-D and 2-D) and element strides."""
        if not is_quantized(ins, outs) and not any_type:
            require_f32(node, ins)
        x, y = ins[0], outs[0]
        if len(x.shape) not in (3, 4, 5) or (is_nhwc(node) and len(x.shape) != 4):
            spatial_2d(node, len(x.shape))
        a = node.attrs
        n_sp = len(a["kernel_shape"])
        unit = 3 - n_sp
        k = [1] * unit + list(a["kernel_shape"])
        st = [1] * unit + list(a["strides"])
        dl = [1] * unit + list(a["dilations"])
        pb = [0] * unit + list(a["pads"][:n_sp])
        pe = [0] * unit + list(a["pads"][n_sp:])
        if is_nhwc(node):
            (n, h, w, c), (oh, ow) = x.shape, y.shape[1:3]
            d = od = 1
            strides = dict(in_n=h * w * c, in_c=1, in_d=0, in_h=w * c, in_w=c,
                           out_n=oh * ow * c, out_c=1, out_d=0, out_h=ow * c, out_w=c)
        else:
            n, c = x.shape[:2]
            d, h, w = [1] * unit + list(x.shape[2:])
            od, oh, ow = [1] * unit + list(y.shape[2:])
            strides = dict(in_n=c * d * h * w, in_c=d * h * w, in_d=h * w, in_h=w, in_w=1,
                           out_n=c * od * oh * ow, out_c=od * oh * ow, out_d=oh * ow, out_h=ow, out_w=1)
        return dict(
            strides, layout="NHWC" if is_nhwc(node) else "NCHW",
            N=n, C=c, D=d, H=h, W=w, OD=od, OH=oh, OW=ow,
            KD=k[0], KH=k[1], KW=k[2], SD=st[0], SH=st[1], SW=st[2], DD=dl[0], DH=dl[1], DW=dl[2],
            PF=pb[0], PT=pb[1], PL=pb[2], PBK=pe[0], PB=pe[1], PR=pe[2],
        )


def div_round_away(total: np.ndarray, count) -> np.ndarray:
    """Integer division rounding half away from zero, as TFLite's average pool does."""
    count = np.asarray(count, np.int64)
    return np.where(total > 0, (total + count // 2) // count, -((-total + count // 2) // count))


def pool_windows(x: np.ndarray, a: dict, fill: float, fill_beyond: float) -> np.ndarray:
    """Windows N,C,*out,*kernel over ``x`` padded with ``fill`` by the explicit pads, and with
    ``fill_beyond`` past them where ceil_mode lets the last window run off the end."""
    n = len(a["kernel_shape"])
    out = output_spatial(a, x.shape[2:])
    xp = pad_input(x, a["pads"], fill)
    extra = []
    for i in range(n):
        need = (out[i] - 1) * a["strides"][i] + (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1
        extra.append(max(0, need - xp.shape[2 + i]))
    return windows(pad_input(xp, [0] * n + extra, fill_beyond), a)


@register
@with_nhwc
class MaxPool(_Pool):
    name = "MaxPool"
    int8_pass_through = True
    limits = "1-D to 3-D; ceil_mode, dilations; no Indices output, storage_order 0"

    def normalize(self, attrs, ins, opset):
        if int(attrs.get("storage_order", 0)) != 0:
            raise UnsupportedError("MaxPool storage_order=1 is not supported")
        a = super().normalize(attrs, ins, opset)
        a.pop("storage_order", None)
        return a

    def infer(self, node, ins):
        if len(node.outputs) > 1:
            raise UnsupportedError(f"MaxPool node '{node.name}': the Indices output is not supported")
        return super().infer(node, ins)

    def commutes_with_quantize(self, node):
        return True  # quantization is monotone: the max of quantized values is the quantized max

    def reference(self, node, xs):
        x = xs[0]
        # a window entirely in the padding gives the lowest finite value, as onnxruntime does (the
        # spec leaves it open: onnx.reference gives NaN, an -inf would turn into NaN downstream)
        low = np.finfo(x.dtype).min if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        w = pool_windows(x, node.attrs, low, low)
        n = len(node.attrs["kernel_shape"])
        return [w.max(axis=tuple(range(-n, 0))).astype(x.dtype)]

    def qreference(self, node, xs, ins, outs):
        y = self.reference(node, xs)[0]
        return [np.clip(y, *int8_act_range(node)).astype(np.int8)]

    def kernel(self, node, ins, outs):
        p = self._params(node, ins, outs, any_type=True)
        dt = ins[0].dtype
        if dt == "f32":
            return Kernel("maxpool.c.j2", dict(p, ctype="float", lowest="-FLT_MAX"), includes=("float.h",))
        if dt not in ("s8", "u8", "s16", "u16", "s32"):
            raise UnsupportedError(f"MaxPool node '{node.name}': {dt} is not supported")
        return Kernel("maxpool.c.j2", dict(p, ctype=CTYPES[dt], lowest=str(int(np.iinfo(DTYPES[dt]).min))),
                      includes=("stdint.h",))


@register
@with_nhwc
class AveragePool(_Pool):
    name = "AveragePool"
    int8_pass_through = True
    limits = "1-D to 3-D (int8: 1-D and 2-D); ceil_mode, count_include_pad (int8: padding never counted)"

    def normalize(self, attrs, ins, opset):
        a = super().normalize(attrs, ins, opset)
        a["count_include_pad"] = int(attrs.get("count_include_pad", 0))
        return a

    def lower_int8(self, cx, node, out, act):
        if node.attrs.get("count_include_pad") and any(node.attrs.get("pads", [])):
            raise UnsupportedError(f"AveragePool node '{node.name}': int8 averages exclude padding (count_include_pad=0)")
        return super().lower_int8(cx, node, out, act)

    def reference(self, node, xs):
        x = xs[0].astype(np.float64)
        a = node.attrs
        n = len(a["kernel_shape"])
        axes = tuple(range(-n, 0))
        total = pool_windows(x, a, 0.0, 0.0).sum(axis=axes)
        ones = np.ones((1, 1) + x.shape[2:])
        count = pool_windows(ones, a, 1.0 if a["count_include_pad"] else 0.0, 0.0).sum(axis=axes)
        return [(total / count).astype(xs[0].dtype)]

    def qreference(self, node, xs, ins, outs):
        """TFLite int8 AveragePool: integer sum over the window inside the input, divided by the
        count with rounding half away from zero."""
        a = node.attrs
        n = len(a["kernel_shape"])
        axes = tuple(range(-n, 0))
        x = xs[0].astype(np.int64)
        total = pool_windows(x, a, 0, 0).sum(axis=axes)
        count = pool_windows(np.ones((1, 1) + x.shape[2:], np.int64), a, 0, 0).sum(axis=axes)
        return [np.clip(div_round_away(total, count), *int8_act_range(node)).astype(np.int8)]

    def kernel(self, node, ins, outs):
        p = self._params(node, ins, outs)
        if is_quantized(ins, outs):
            spatial_2d(node, len(ins[0].shape))
            return Kernel("s8/avgpool.c.j2", dict(p, **int8_clamp(node)))
        p["include_pad"] = bool(node.attrs["count_include_pad"])
        return Kernel("f32/avgpool.c.j2", p)


class _GlobalPool(Op):
    """Pooling over the whole spatial plane: N,C,* -> N,C,1,... (NCHW or NHWC)."""

    def infer(self, node, ins):
        x = ins[0]
        if len(x.shape) < 3:
            raise UnsupportedError(f"{self.name} node '{node.name}' needs an N,C,spatial input")
        return [(x.shape[:2] + (1,) * (len(x.shape) - 2), x.dtype)]

    @staticmethod
    def plane(node, x) -> dict[str, int]:
        """N, C, plane size HW and the element strides of batch, channel and plane position."""
        if is_nhwc(node):
            n, c, hw = x.shape[0], x.shape[3], x.shape[1] * x.shape[2]
            return dict(N=n, C=c, HW=hw, in_n=hw * c, in_c=1, in_hw=c)
        n, c, hw = x.shape[0], x.shape[1], int(np.prod(x.shape[2:]))
        return dict(N=n, C=c, HW=hw, in_n=c * hw, in_c=hw, in_hw=1)


@register
@with_nhwc
class GlobalAveragePool(_GlobalPool):
    name = "GlobalAveragePool"
    limits = "any spatial rank; int8: the exact ONNX meaning (or TFLite's MEAN, see ReduceMean)"
    lower_int8 = lower_mean_int8

    def calibrated_output(self, node, input_params):
        return input_params  # an average stays in its input's range

    def reference(self, node, xs):
        x = xs[0]
        return [x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]

    def qreference(self, node, xs, ins, outs):
        """The int8 mean over the plane (tinyc/ops/mean_s8.py), in NCHW (with_nhwc transposes)."""
        return [mean_s8(node, xs[0], tuple(range(2, xs[0].ndim)), ins[0], outs[0])]

    def kernel(self, node, ins, outs):
        x = ins[0]
        if is_quantized(ins, outs):
            axes = (1, 2) if is_nhwc(node) else tuple(range(2, len(x.shape)))
            return mean_kernel(node, x, outs[0], axes)
        g = self.plane(node, x)
        require_f32(node, ins)
        return Kernel("f32/global_avgpool.c.j2", g)


@register
@with_nhwc
class GlobalMaxPool(_GlobalPool):
    name = "GlobalMaxPool"
    int8_pass_through = True
    limits = "any spatial rank; int8 passes through (max keeps the quantization)"
    quant_transparent = True

    def reference(self, node, xs):
        x = xs[0]
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]

    def kernel(self, node, ins, outs):
        x = ins[0]
        if x.dtype not in ("f32", "s8"):
            raise UnsupportedError(f"GlobalMaxPool node '{node.name}': {x.dtype} is not supported")
        return Kernel("global_maxpool.c.j2", dict(self.plane(node, x), ctype="float" if x.dtype == "f32" else "int8_t"))
