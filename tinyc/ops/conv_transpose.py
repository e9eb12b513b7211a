"""ConvTranspose (NCHW, 1-D to 3-D): groups, strides, dilations, pads, output_padding,
output_shape and auto_pad. The reference scatters each input pixel through the kernel; the C
kernel gathers, so every output is written once."""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node
from ..quant.requant16 import Requant64
from ..quant.rounding import active as active_rounding
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, act_params, float_activation, int8_act_range, is_quantized, register, require_f32


@register
class ConvTranspose(Op):
    name = "ConvTranspose"
    limits = "1-D to 3-D; groups, strides, dilations, pads, output_padding, output_shape, auto_pad; C for float32 and 16x8"
    int16x8 = True  # (TFLite's 16x8 TRANSPOSE_CONV)

    @property
    def lowers_to_int8(self) -> bool:
        return False  # no int8 form: lower_int8 takes int16 activations only

    def lower_int8(self, cx, node, out, act):
        x = cx.activation(node.inputs[0], node)
        if x.dtype != "s16" or node.attrs["group"] != 1:
            raise UnsupportedError(f"ConvTranspose node '{node.name}': integer ConvTranspose is 16x8 only (int16 "
                                   "activations, int8 weights, one group)")
        w = cx.weight(node.inputs[1], node, 1)
        b = cx.bias(node.inputs[2] if len(node.inputs) > 2 else None, node, x, w, w.shape[1])
        return Node("ConvTranspose", node.name, [x.name, w.name] + ([b] if b else []), out,
                    dict(node.attrs, act_min=act[0], act_max=act[1]))

    def normalize(self, attrs, ins, opset):
        x, w = ins[0], ins[1]
        if x is None or w is None or len(x.shape) < 3 or len(w.shape) != len(x.shape):
            raise UnsupportedError("ConvTranspose needs an N,C,spatial input and a weight of the same rank")
        n = len(x.shape) - 2
        k = [int(v) for v in (attrs.get("kernel_shape") or w.shape[2:])]
        s = [int(v) for v in (attrs.get("strides") or [1] * n)]
        d = [int(v) for v in (attrs.get("dilations") or [1] * n)]
        op = [int(v) for v in (attrs.get("output_padding") or [0] * n)]
        pads = [int(v) for v in (attrs.get("pads") or [0] * (2 * n))]
        auto_pad = attrs.get("auto_pad", "NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if not len(k) == len(s) == len(d) == len(op) == n or len(pads) != 2 * n:
            raise UnsupportedError(f"ConvTranspose attributes do not match {n} spatial dims")
        if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise UnsupportedError(f"ConvTranspose: unknown auto_pad '{auto_pad}'")
        group = int(attrs.get("group", 1))
        if min(k + s + d + [group]) < 1 or min(op + pads) < 0:
            raise UnsupportedError(f"ConvTranspose: kernel_shape {k}, strides {s}, dilations {d} and group {group} must be "
                                   f"positive, output_padding {op} and pads {pads} not negative")
        spatial = x.shape[2:]
        full = [s[i] * (spatial[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 for i in range(n)]
        target = attrs.get("output_shape")
        if target is not None:
            target = [int(v) for v in target][-n:]
            if len(target) != n or min(target) < 1:
                raise UnsupportedError(f"ConvTranspose output_shape {list(attrs['output_shape'])} does not give {n} "
                                       f"positive spatial dims")
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = [spatial[i] * s[i] for i in range(n)]
        if target is not None:
            # the spec's split of the total padding: the odd pixel goes to the end for SAME_UPPER
            pads = [0] * (2 * n)
            for i in range(n):
                total = full[i] - target[i]  # negative: the output grows past the full one (zeros + bias)
                small, big = total // 2, total - total // 2
                pads[i], pads[i + n] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        elif auto_pad == "VALID":
            pads = [0] * (2 * n)
        return {"kernel_shape": k, "strides": s, "dilations": d, "output_padding": op, "pads": pads, "group": group}

    def _out_spatial(self, a, spatial):
        n = len(spatial)
        return tuple(a["strides"][i] * (spatial[i] - 1) + a["output_padding"][i] + (a["kernel_shape"][i] - 1) * a["dilations"][i]
                     + 1 - a["pads"][i] - a["pads"][i + n] for i in range(n))

    def infer(self, node, ins):
        x, w = ins[0], ins[1]
        g = node.attrs["group"]
        if x.shape[1] != w.shape[0] or w.shape[0] % g:
            raise UnsupportedError(f"ConvTranspose node '{node.name}': input channels {x.shape[1]} and weight {w.shape} do not fit group={g}")
        if list(w.shape[2:]) != node.attrs["kernel_shape"]:
            raise UnsupportedError(f"ConvTranspose node '{node.name}': kernel_shape {node.attrs['kernel_shape']} != weight {w.shape}")
        m = w.shape[1] * g
        if len(ins) > 2 and ins[2] is not None and ins[2].shape != (m,):
            raise UnsupportedError(f"ConvTranspose node '{node.name}': bias shape {ins[2].shape} != ({m},)")
        out = self._out_spatial(node.attrs, x.shape[2:])
        if min(out) <= 0:
            raise UnsupportedError(f"ConvTranspose node '{node.name}': output spatial shape {out} is empty")
        return [((x.shape[0], m) + out, x.dtype)]

    def reference(self, node, xs):
        y = self._accumulate(node, xs[0].astype(np.float64), xs[1].astype(np.float64))
        if len(xs) > 2 and xs[2] is not None:
            y = y + xs[2].astype(np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))
        return [float_activation(node, y.astype(xs[0].dtype))]

    def qreference(self, node, xs, ins, outs):
        """TFLite's 16x8 TRANSPOSE_CONV: the sums of x * w in int64 (exact, so scattering as TFLite
        does or gathering as the C kernel does agree), + int64 bias, Requant64 per channel."""
        acc = self._accumulate(node, xs[0].astype(np.int64), xs[1].astype(np.int64))
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2].astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
        return [self._requant(node, ins, outs).apply(acc, 1)]

    @staticmethod
    def _requant(node, ins, outs) -> Requant64:
        x, w, y = ins[0], ins[1], outs[0]
        if (x.dtype, w.dtype, y.dtype) != ("s16", "s8", "s16") or (len(ins) > 2 and ins[2] is not None and ins[2].dtype != "s64"):
            raise UnsupportedError(f"ConvTranspose node '{node.name}': integer ConvTranspose needs int16 input and output, "
                                   "int8 weights and an int64 bias (16x8)")
        return Requant64.of_product(x.quant, w.quant, y.quant, w.shape[1], int8_act_range(node), active_rounding())

    def _accumulate(self, node, x, w):
        """The transposed convolution's sums (before the bias), in x's and w's dtype."""
        a = node.attrs
        n_sp, g = x.ndim - 2, a["group"]
        cg, mg = x.shape[1] // g, w.shape[1]
        spatial = x.shape[2:]
        full = [a["strides"][i] * (spatial[i] - 1) + (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1 + a["output_padding"][i]
                for i in range(n_sp)]
        y = np.zeros((x.shape[0], g * mg, *full), x.dtype)
        for gi in range(g):
            xg = x[:, gi * cg:(gi + 1) * cg]
            for kk in itertools.product(*[range(k) for k in a["kernel_shape"]]):
                # N,C,*in x C,M -> N,M,*in, placed at kk * dilation + stride * input position
                part = np.einsum("nc...,cm->nm...", xg, w[gi * cg:(gi + 1) * cg, :, *kk])
                sl = tuple(slice(kk[i] * a["dilations"][i], kk[i] * a["dilations"][i] + a["strides"][i] * (spatial[i] - 1) + 1,
                                 a["strides"][i]) for i in range(n_sp))
                y[(slice(None), slice(gi * mg, (gi + 1) * mg)) + sl] += part
        out = self._out_spatial(a, spatial)
        p = a["pads"]
        y = np.pad(y, [(0, 0), (0, 0)] + [(max(0, -p[i]), max(0, -p[i + n_sp])) for i in range(n_sp)])
        return y[(slice(None), slice(None)) + tuple(slice(max(0, p[i]), max(0, p[i]) + out[i]) for i in range(n_sp))]

    def macs(self, node, ins, outs):
        x, w = ins[0], ins[1]
        return int(np.prod(x.shape)) * int(np.prod(w.shape[1:]))

    def kernel(self, node, ins, outs):
        quantized = is_quantized(ins, outs)
        if not quantized:
            require_f32(node, ins)
        if len(ins[0].shape) > 5:
            raise UnsupportedError(f"ConvTranspose node '{node.name}': at most 3 spatial dims")
        x, w, y = ins[0], ins[1], outs[0]
        a = node.attrs
        n_sp = len(x.shape) - 2
        pad3 = lambda v, fill: [fill] * (3 - n_sp) + list(v)  # noqa: E731
        g = a["group"]
        p = dict(N=x.shape[0], G=g, CG=x.shape[1] // g, MG=w.shape[1],
                 I=pad3(x.shape[2:], 1), O=pad3(y.shape[2:], 1), K=pad3(a["kernel_shape"], 1),
                 S=pad3(a["strides"], 1), D=pad3(a["dilations"], 1), P=pad3(a["pads"][:n_sp], 0),
                 bias=len(ins) > 2 and ins[2] is not None, **act_params(node))
        if quantized:  # 16x8: int16 x int8 products summed in int64, TFLite's 64-bit requantization
            p.update(self._requant(node, ins, outs).params(), xt="int16_t", acct="int64_t")
            return Kernel("f32/conv_transpose.c.j2", p, preamble=FIXEDPOINT + FIXEDPOINT16)
        return Kernel("f32/conv_transpose.c.j2", p, includes=("math.h",))
