"""Conv (ONNX semantics, NCHW): groups, strides, explicit or automatic pads, dilations, bias."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import UnsupportedError
from ..ir import DTYPES, Node
from ..quant.rounding import active as active_rounding
from .layout import is_nhwc, with_nhwc
from ..quant.requant16 import product_requant
from . import dw_inplace
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, offset_term, int8_act_range, act_params, float_activation, is_quantized, register, require_f32, spatial_2d
from .dot_s8 import conv_ring_kernel, dot_variant, dwconv_kernel, gemm_geometry, gemm_kernel, mve_ring_kernel
from .window import as_2d, normalize_window, output_spatial


def pad_input(x: np.ndarray, pads: list[int], value: float = 0.0) -> np.ndarray:
    n = len(pads) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pads[i], pads[i + n]) for i in range(n)]
    return np.pad(x, widths, constant_values=value)


def windows(xp: np.ndarray, attrs: dict) -> np.ndarray:
    """Sliding windows of a padded N,C,*spatial array: shape N,C,*out,*kernel."""
    n = len(attrs["kernel_shape"])
    axes = tuple(range(2, 2 + n))
    eff = [(k - 1) * d + 1 for k, d in zip(attrs["kernel_shape"], attrs["dilations"])]
    v = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=axes)
    sl = (slice(None), slice(None))
    sl += tuple(slice(None, None, s) for s in attrs["strides"])
    sl += tuple(slice(None, None, d) for d in attrs["dilations"])
    return v[sl]


def accumulate(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Grouped convolution sums in the dtype given (float64, or int64 for integers)."""
    g = attrs["group"]
    win = windows(pad_input(x, attrs["pads"]), attrs)  # N,C,*out,*k
    n_sp = len(attrs["kernel_shape"])
    cg, mg = x.shape[1] // g, w.shape[0] // g
    outs = []
    for gi in range(g):
        wg = w[gi * mg:(gi + 1) * mg]
        xg = win[:, gi * cg:(gi + 1) * cg]
        # contract channel and kernel axes: N,C,*out,*k x M,C,*k -> N,*out,M
        xa = [1] + list(range(2 + n_sp, 2 + 2 * n_sp))
        wa = [1] + list(range(2, 2 + n_sp))
        outs.append(np.moveaxis(np.tensordot(xg, wg, axes=(xa, wa)), -1, 1))
    return np.concatenate(outs, axis=1)


@register
@with_nhwc
class Conv(Op):
    name = "Conv"
    limits = "1-D and 2-D; groups, depthwise, strides, pads, auto_pad, dilations; int8 weights symmetric per channel"
    hosts_activation = True
    int16x8 = True
    weight_forms = ("wide", "int8")

    def lower_int8(self, cx, node, out, act):
        x = cx.activation(node.inputs[0], node)
        w = cx.weight(node.inputs[1], node, 0)
        b = cx.bias(node.inputs[2] if len(node.inputs) > 2 else None, node, x, w, w.shape[0])
        return Node("Conv", node.name, [x.name, w.name] + ([b] if b else []), out,
                    dict(node.attrs, act_min=act[0], act_max=act[1]))

    def int8_weight(self, node, ins):
        return 1, 0

    def channel_axes(self, node):
        return (0, 1) if node.attrs.get("group", 1) == 1 and not node.attrs.get("layout") else None

    def normalize(self, attrs, ins, opset):
        x, w = ins[0], ins[1]
        if x is None or w is None or len(x.shape) < 3:
            raise UnsupportedError("Conv needs an N,C,spatial input and a weight")
        if len(w.shape) != len(x.shape):
            raise UnsupportedError(f"Conv weight {list(w.shape)} must have the input's rank ({len(x.shape)})")
        a = normalize_window("Conv", attrs, x.shape[2:], tuple(attrs.get("kernel_shape") or w.shape[2:]))
        a["group"] = int(attrs.get("group", 1))
        if a["group"] < 1:
            raise UnsupportedError(f"Conv group {a['group']} must be at least 1")
        return a

    def infer(self, node, ins):
        x, w = ins[0], ins[1]
        a = node.attrs
        g = a["group"]
        if x.shape[1] != w.shape[1] * g or w.shape[0] % g:
            raise UnsupportedError(
                f"Conv node '{node.name}': input channels {x.shape[1]} and weight {w.shape} do not fit group={g}"
            )
        if tuple(w.shape[2:]) != tuple(a["kernel_shape"]):
            raise UnsupportedError(f"Conv node '{node.name}': kernel_shape {a['kernel_shape']} != weight {w.shape}")
        if len(ins) > 2 and ins[2] is not None and ins[2].shape != (w.shape[0],):
            raise UnsupportedError(f"Conv node '{node.name}': bias shape {ins[2].shape} != ({w.shape[0]},)")
        out = (x.shape[0], w.shape[0]) + output_spatial(a, x.shape[2:])
        return [(out, x.dtype)]

    def reference(self, node, xs):
        x, w = xs[0], xs[1]
        b = xs[2] if len(xs) > 2 else None
        y = accumulate(x.astype(np.float64), w.astype(np.float64), node.attrs)
        if b is not None:
            y = y + b.astype(np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))
        return [float_activation(node, y.astype(x.dtype))]

    def qreference(self, node, xs, ins, outs):
        """TFLite ConvPerChannel: sum (x - x_zp) * w over the window (padding contributes 0),
        + int32 bias, per-channel requantization, + y_zp, clamp to the fused activation."""
        x, w = xs[0], xs[1]
        xq = ins[0].quant
        acc = accumulate(x.astype(np.int64) - int(xq.zero_point), w.astype(np.int64), node.attrs)
        shape = (1, -1) + (1,) * (acc.ndim - 2)
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2].astype(np.int64).reshape(shape)
        return [self._requant(node, ins, outs).apply(acc, 1)]

    @staticmethod
    def _requant(node, ins, outs):
        return product_requant(ins, outs, ins[1].shape[0], int8_act_range(node), active_rounding())

    def band(self, node, ins, outs, start, stop):
        from .band import window_band
        return window_band(node, ins, outs, start, stop)

    def inplace_scratch(self, node, ins, outs, kernel):
        """NHWC, stride 1, output the input's size and type: output row r overwrites input row r,
        so input rows r - pad_top .. r are kept in a ring of pad_top + 1 rows (the portable
        kernels), or the kernel's own scratch serves (tinyc/ops/dot_s8.py: a matrix product runs
        in place only for 1x1, as it gathers each row first). A depthwise layer with a smaller
        output (stride 2, valid padding) where its kernel says how (``Kernel.inplace_smaller``,
        tinyc/ops/dw_inplace.py)."""
        x, y = ins[0], outs[0]
        if not is_nhwc(node) or x.dtype != y.dtype:
            return None
        if x.shape == y.shape and node.attrs["strides"] == [1, 1]:
            return kernel.inplace_scratch
        return kernel.inplace_smaller if y.nbytes < x.nbytes else None

    def inplace_params(self, node, params):
        smaller = (params["OH"], params["OW"]) != (params["H"], params["W"]) or params["SH"] != 1 or params["SW"] != 1
        if smaller:  # the portable kernels' ring, maybe none, filled ahead (a DSP ring kernel has its own)
            return dict(params, inplace=True, ring_rows=dw_inplace.ring_rows(params), ring_ahead=True)
        return dict(params, inplace=True, ring_rows=node.attrs["pads"][0] + 1)

    @staticmethod
    def _ring_rows_scratch(node, x) -> int:
        """The portable kernels' scratch in place: pad_top + 1 input rows (a 1x1 kernel may save
        two pixels at a time: at least 2 x C)."""
        rows = node.attrs["pads"][0] + 1
        return max(rows * x.shape[2], 2) * x.shape[3] * DTYPES[x.dtype].itemsize

    def kernel_for(self, node, ins, outs, variants=(), weights="wide"):
        kind = dot_variant(variants)
        if kind is None or not is_quantized(ins, outs) or not is_nhwc(node):
            return self.kernel(node, ins, outs)
        x, w = ins[0], ins[1]
        bias = ins[2] if len(ins) > 2 else None
        if "mve" in variants and x.dtype == "s16" and w.is_const:
            return self._vmlald_kernel(node, ins, outs)
        if kind == "dsp" and x.dtype == "s16" and w.is_const:
            return self._smlald_kernel(node, ins, outs)
        if not w.is_const or (bias is not None and not bias.is_const) or x.shape[0] != 1 \
                or {x.dtype, w.dtype, outs[0].dtype} != {"s8"} or len(x.shape) != 4:
            return self.kernel(node, ins, outs)
        p = self._params(node, ins, outs)
        b = None if bias is None else bias.data
        k = None
        if p["G"] == 1:
            w2d = w.data.reshape(p["M"], -1)
            if p["KH"] == p["KW"] == 1 and p["SH"] == p["SW"] == 1 and p["PT"] == p["PL"] == 0 \
                    and (p["OH"], p["OW"]) == (p["H"], p["W"]):
                geo = gemm_geometry(p["C"], p["C"], pointwise=True)
                rows = dict(gather="row", ROW=p["C"], P=p["H"] * p["W"])
            else:
                geo = gemm_geometry(w2d.shape[1], p["C"], pointwise=False)
                rows = dict(gather="window", P=p["OH"] * p["OW"])
                if p["KH"] * p["KW"] > 1:  # (a strided 1x1 reads few rows: gather them)
                    k = conv_ring_kernel(p, w2d, b, weights) if kind == "dsp" else mve_ring_kernel(p, w2d, b)
            if k is None:
                k = gemm_kernel(kind, p, w2d, b, geo, rows, weights)
            if k is None and weights == "int8" and kind == "dsp":  # (e.g. a pair beyond the int8 form's bound)
                return dataclasses.replace(self.kernel(node, ins, outs), form="int8")
        elif p["G"] == p["C"] == p["M"] and "dsp" in variants:
            k = dwconv_kernel(p, w.data.reshape(p["M"], -1), b, form=weights)
        return k if k is not None else self.kernel(node, ins, outs)

    def _smlald_kernel(self, node, ins, outs) -> Kernel:
        """16x8 on a core with the DSP extension: the portable loops taking four channels per step,
        two SMLALDs on int16 input pairs and weights widened in registers by SXTB16 (their bytes
        stored as w0 w2 w1 w3), 64-bit sums; when channels per group are a multiple of 4 and the
        bias is int64 or absent, else the portable kernel."""
        k = self.kernel(node, ins, outs)
        if k.params["CG"] % 4 or not k.params.get("rq64"):
            return k
        w = ins[1].data
        quads = w.reshape(w.shape[:-1] + (w.shape[-1] // 4, 4))[..., [0, 2, 1, 3]].reshape(w.shape)
        return Kernel("s16/conv_nhwc_smlald.c.j2", k.params, preamble=k.preamble, includes=("string.h",),
                      weights={1: np.ascontiguousarray(quads)}, inplace_scratch=k.inplace_scratch)

    def _vmlald_kernel(self, node, ins, outs) -> Kernel:
        """16x8 on Helium: the portable loops taking eight channels per step, VMLALDAVA on int16
        inputs and int8 weights widened by the load (the tail of a group's channels under a
        predicate), 64-bit sums; when the bias is int64 or absent and a step keeps at least half
        its lanes busy (four channels per group: a depthwise layer's single lane is slower than the
        portable loop), else the portable kernel."""
        k = self.kernel(node, ins, outs)
        if not k.params.get("rq64") or k.params["CG"] < 4:
            return k
        return Kernel("s16/conv_nhwc_vmlald.c.j2", k.params, preamble=k.preamble, includes=("string.h",),
                      inplace_scratch=k.inplace_scratch)

    def macs(self, node, ins, outs):
        w = ins[1]
        return int(np.prod(outs[0].shape)) * int(np.prod(w.shape[1:]))

    def _params(self, node, ins, outs) -> dict:
        """The template parameters every kernel of this node shares: geometry (NCHW terms) and,
        for int8, requantization."""
        x, w, y = ins[0], ins[1], outs[0]
        spatial_2d(node, len(x.shape))
        a = as_2d(node.attrs)
        nhwc = is_nhwc(node)
        if nhwc:  # describe the geometry in NCHW terms; the NHWC template indexes accordingly
            xs = tuple(x.shape[i] for i in (0, 3, 1, 2))
            ys = tuple(y.shape[i] for i in (0, 3, 1, 2))
        else:
            xs = x.shape if len(x.shape) == 4 else x.shape[:2] + (1,) + x.shape[2:]
            ys = y.shape if len(y.shape) == 4 else y.shape[:2] + (1,) + y.shape[2:]
        g = a["group"]
        kh, kw = a["kernel_shape"]
        p = dict(
            inplace=False, ring_rows=0,
            N=xs[0], C=xs[1], H=xs[2], W=xs[3], M=ys[1], OH=ys[2], OW=ys[3], G=g,
            CG=xs[1] // g, MG=ys[1] // g, KH=kh, KW=kw,
            SH=a["strides"][0], SW=a["strides"][1], DH=a["dilations"][0], DW=a["dilations"][1],
            PT=a["pads"][0], PL=a["pads"][1],
            has_bias=len(ins) > 2 and ins[2] is not None,
        )
        # Bounds checks are emitted only for the axes where a window can leave the input.
        p["check_h"] = p["PT"] > 0 or (p["OH"] - 1) * p["SH"] + (kh - 1) * p["DH"] >= p["H"]
        p["check_w"] = p["PL"] > 0 or (p["OW"] - 1) * p["SW"] + (kw - 1) * p["DW"] >= p["W"]
        if not is_quantized(ins, outs):
            return p
        if (x.dtype, w.dtype, y.dtype) not in (("s8", "s8", "s8"), ("s16", "s8", "s16")):
            raise UnsupportedError(f"Conv node '{node.name}': integer conv needs int8 input, weights and output "
                                   "(or 16x8: int16 input and output, int8 weights)")
        rq = self._requant(node, ins, outs)
        p.update(rq.params(), requant=rq, in_offset=-int(x.quant.zero_point))
        if x.dtype == "s16":
            p.update(xt="int16_t", acct="int64_t" if p.get("rq64") else "int32_t")
        return p

    def kernel(self, node, ins, outs):
        k = self._portable_kernel(node, ins, outs)
        if is_nhwc(node) and len(ins[0].shape) == 4:
            k.inplace_scratch = self._ring_rows_scratch(node, ins[0])
            if dw_inplace.applies(k.params):  # (its ring's rows, maybe none)
                x = ins[0]
                k.inplace_smaller = dw_inplace.ring_rows(k.params) * x.shape[2] * x.shape[3] * DTYPES[x.dtype].itemsize
        return k

    def _portable_kernel(self, node, ins, outs):
        if not is_quantized(ins, outs):
            require_f32(node, ins)
        p = self._params(node, ins, outs)
        w = ins[1]
        kh, kw = p["KH"], p["KW"]
        nhwc = is_nhwc(node)
        suffix = "_nhwc" if nhwc else ""
        if not is_quantized(ins, outs):
            return Kernel(f"f32/conv{suffix}.c.j2", dict(p, **act_params(node)), includes=("math.h",))
        if ins[0].dtype == "s16":  # 16x8: the general loops on int16 activations, 64-bit accumulators
            return Kernel(f"s8/conv{suffix}.c.j2", dict(p, offset_term=None), preamble=FIXEDPOINT + FIXEDPOINT16)
        if nhwc and p["G"] == p["C"] == p["M"] and p["N"] == 1:
            # depthwise: channels side by side, blocks of at most 64 accumulators on the stack
            cb = next(b for b in (64, 48, 32, 16, 8, 4, 2, 1) if p["M"] % b == 0)
            return Kernel("s8/dwconv_nhwc.c.j2", dict(p, CB=cb), preamble=FIXEDPOINT)
        if nhwc and p["G"] == 1 and kh == kw == 1 and p["SH"] == p["SW"] == 1 and p["PT"] == p["PL"] == 0 \
                and p["OH"] == p["H"] and p["OW"] == p["W"] and w.is_const:
            # 1x1: a matrix product; the input offset's share is a per-channel constant
            term = offset_term(p["in_offset"], w.data)
            if term is not None:
                return Kernel("s8/pwconv_nhwc.c.j2", dict(p, P=p["N"] * p["H"] * p["W"], offset_term=term),
                              preamble=FIXEDPOINT)
        pair = nhwc and p["G"] == 1 and p["M"] % 2 == 0
        # the offset's share as a constant pays off with the unrolled loops
        p["offset_term"] = offset_term(p["in_offset"], w.data) if nhwc and w.is_const and (p["CG"] % 4 == 0 or pair) else None
        if p["offset_term"] and pair:
            # two output channels share every input load (SMLAD on cores with the DSP extension)
            return Kernel("s8/conv_nhwc_pair.c.j2", p, preamble=FIXEDPOINT, includes=("string.h",))
        return Kernel(f"s8/conv{suffix}.c.j2", p, preamble=FIXEDPOINT)
