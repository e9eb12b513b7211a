"""Ops that only move data: Reshape, Flatten, Transpose."""
from __future__ import annotations

import numpy as np

from ..codegen.cnames import CTYPES, c_float
from ..errors import UnsupportedError
from ..ir import DTYPES
from ..quant.affine import quantize
from . import Kernel, Op, axes_in_range, c_type, collapse_loops, copy_kernel, register


@register
class Reshape(Op):
    name = "Reshape"
    view = True
    int8_pass_through = True
    int16x8 = True
    limits = "constant shape (0 and -1 resolved); a view: no code"
    quant_transparent = True
    attr_inputs = {1: "shape"}

    def normalize(self, attrs, ins, opset):
        if "shape" not in attrs:
            raise UnsupportedError("Reshape without a constant shape")
        spec = [int(d) for d in np.asarray(attrs["shape"]).reshape(-1)]
        allowzero = int(attrs.get("allowzero", 0))
        src = ins[0].shape
        out = [src[i] if d == 0 and not allowzero and i < len(src) else d for i, d in enumerate(spec)]
        if out.count(-1) > 1:
            raise UnsupportedError(f"Reshape shape {spec} has more than one -1")
        size = int(np.prod(src))
        if -1 in out:
            rest = int(np.prod([d for d in out if d != -1]))
            if rest == 0 or size % rest:
                raise UnsupportedError(f"Reshape cannot infer -1 in {spec} for input {src}")
            out[out.index(-1)] = size // rest
        return {"shape": out}

    def infer(self, node, ins):
        out = tuple(node.attrs["shape"])
        if int(np.prod(out)) != ins[0].size:
            raise UnsupportedError(f"Reshape node '{node.name}': {ins[0].shape} cannot become {out}")
        return [(out, ins[0].dtype)]

    def reference(self, node, xs):
        return [xs[0].reshape(node.attrs["shape"])]

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)


@register
class Flatten(Op):
    name = "Flatten"
    view = True
    int8_pass_through = True
    limits = "any axis; a view: no code"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        axis = int(attrs.get("axis", 1))
        if not -rank <= axis <= rank:
            raise UnsupportedError(f"Flatten axis {axis} out of range for rank {rank}")
        return {"axis": axis + rank if axis < 0 else axis}

    def infer(self, node, ins):
        s, a = ins[0].shape, node.attrs["axis"]
        return [((int(np.prod(s[:a])), int(np.prod(s[a:]))), ins[0].dtype)]

    def reference(self, node, xs):
        s, a = xs[0].shape, node.attrs["axis"]
        return [xs[0].reshape(int(np.prod(s[:a])), int(np.prod(s[a:])))]

    def kernel(self, node, ins, outs):
        return copy_kernel(outs)


@register
class Transpose(Op):
    name = "Transpose"
    int8_pass_through = True
    limits = "any permutation; removed by the layout passes where possible"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        perm = [int(p) for p in attrs.get("perm", list(range(rank))[::-1])]
        if len(perm) != rank:
            raise UnsupportedError(f"Transpose perm {perm} is not a permutation of {rank} axes")
        return {"perm": axes_in_range("Transpose perm", perm, rank)}

    def infer(self, node, ins):
        return [(tuple(ins[0].shape[p] for p in node.attrs["perm"]), ins[0].dtype)]

    def reference(self, node, xs):
        return [np.asarray(np.transpose(xs[0], node.attrs["perm"]), order="C")]

    def band(self, node, ins, outs, start, stop):
        """Output rows (axis 1) are input ``perm[1]``'s: a layout change of the image."""
        from .band import Band, rows_tensor
        perm = node.attrs["perm"]
        if not rows_tensor(ins[0]) or not rows_tensor(outs[0]) or perm[0] != 0:
            return None
        return Band([(perm[1], start, stop)], dict(node.attrs))

    def kernel(self, node, ins, outs):
        shape, perm = ins[0].shape, node.attrs["perm"]
        in_strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        dims = [shape[p] for p in perm]
        src = [in_strides[p] for p in perm]
        dst = [int(np.prod(dims[i + 1:])) for i in range(len(dims))]
        c_type(node, ins[0].dtype)
        return strided_copy("Transpose", dims, src, dst, 0, ins[0].dtype)


def strided_copy(what: str, dims: list[int], src: list[int], dst: list[int], offset: int, dtype: str) -> Kernel:
    """out[dst . i] = in[offset + src . i] over the loops ``dims`` (Transpose, Slice)."""
    dims, (src, dst) = collapse_loops(dims, src, dst)
    return Kernel("strided_copy.c.j2", dict(what=what, dims=dims, src=src, dst=dst, offset=offset, ctype=CTYPES[dtype]))


@register
class Concat(Op):
    name = "Concat"
    int8_pass_through = True
    int16x8 = True
    requantizes_inputs = True
    int8_shared_range = True
    limits = "any axis; int8 inputs requantized to the output"
    quant_transparent = True

    def normalize(self, attrs, ins, opset):
        if "axis" not in attrs:
            raise UnsupportedError("Concat without axis")
        rank = len(ins[0].shape)
        axis = int(attrs["axis"])
        if not -rank <= axis < rank:
            raise UnsupportedError(f"Concat axis {axis} out of range for rank {rank}")
        return {"axis": axis % rank}

    def infer(self, node, ins):
        axis = node.attrs["axis"]
        base = ins[0].shape
        for t in ins[1:]:
            if len(t.shape) != len(base) or any(a != b for i, (a, b) in enumerate(zip(t.shape, base)) if i != axis):
                raise UnsupportedError(f"Concat node '{node.name}': shapes {base} and {t.shape} differ off axis {axis}")
            if t.dtype != ins[0].dtype:
                raise UnsupportedError(f"Concat node '{node.name}': mixed dtypes")
        out = list(base)
        out[axis] = sum(t.shape[axis] for t in ins)
        return [(tuple(out), ins[0].dtype)]

    def reference(self, node, xs):
        return [np.concatenate(xs, axis=node.attrs["axis"])]

    def permuted_attrs(self, node, perm):
        return dict(node.attrs, axis=int(perm[node.attrs["axis"]]))

    def kernel(self, node, ins, outs):
        axis = node.attrs["axis"]
        shape = outs[0].shape
        outer = int(np.prod(shape[:axis]))
        inner = int(np.prod(shape[axis + 1:]))
        item = DTYPES[ins[0].dtype].itemsize
        parts = [dict(chunk=t.shape[axis] * inner * item) for t in ins]
        return Kernel("concat.c.j2", dict(outer=outer, parts=parts, row=shape[axis] * inner * item),
                      includes=("string.h",))


@register
class Pad(Op):
    """Pad (opset 2-10: attributes pads/value; 11+: inputs pads, constant_value, axes). The
    fuse-pad pass folds zero padding into the Conv or pooling that follows."""

    name = "Pad"
    int8_pass_through = True
    int16x8 = True
    limits = "constant, reflect, edge, wrap; no negative pads; zero padding fused into Conv/pooling; int8 pads with the quantized value"
    attr_inputs = {1: "pads", 2: "value", 3: "axes"}


    def commutes_with_quantize(self, node):
        return True  # copies input values; a constant pad value quantizes like any other
    def normalize(self, attrs, ins, opset):
        rank = len(ins[0].shape)
        mode = attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise UnsupportedError(f"Pad mode '{mode}' is not supported")
        pads = [int(p) for p in np.asarray(attrs.get("pads", [0] * 2 * rank)).reshape(-1)]
        axes = attrs.get("axes")
        if axes is not None:
            axes = axes_in_range("Pad axes", axes, rank)
            if len(pads) != 2 * len(axes):
                raise UnsupportedError(f"Pad: {len(pads)} pads for {len(axes)} axes")
            full = [0] * (2 * rank)
            for i, a in enumerate(axes):
                full[a], full[a + rank] = pads[i], pads[i + len(axes)]
            pads = full
        if len(pads) != 2 * rank:
            raise UnsupportedError(f"Pad: {len(pads)} pads for rank {rank}")
        if any(p < 0 for p in pads):
            raise UnsupportedError("Pad with negative pads (cropping) is not supported")
        value = 0.0
        if attrs.get("value") is not None:
            v = np.asarray(attrs["value"]).reshape(-1)
            if v.size != 1:
                raise UnsupportedError(f"Pad constant_value has {v.size} values, not one")
            value = float(v[0])
        return {"mode": mode, "pads": pads, "value": value}

    def infer(self, node, ins):
        p, r = node.attrs["pads"], len(ins[0].shape)
        return [(tuple(d + p[i] + p[i + r] for i, d in enumerate(ins[0].shape)), ins[0].dtype)]

    def reference(self, node, xs):
        p, r = node.attrs["pads"], xs[0].ndim
        widths = [(p[i], p[i + r]) for i in range(r)]
        if node.attrs["mode"] == "constant":
            return [np.pad(xs[0], widths, constant_values=node.attrs["value"])]
        return [np.pad(xs[0], widths, mode=node.attrs["mode"])]

    @staticmethod
    def source_index(mode: str, o: int, before: int, d: int) -> int:
        """Input position read by output position ``o`` of an axis padded by ``before`` (not constant mode)."""
        i = o - before
        if mode == "edge":
            return min(max(i, 0), d - 1)
        if mode == "wrap":
            return i % d
        if d == 1:  # reflect
            return 0
        i %= 2 * (d - 1)
        return i if i < d else 2 * (d - 1) - i

    def kernel(self, node, ins, outs):
        mode = node.attrs["mode"]
        shape, out = ins[0].shape, outs[0].shape
        if mode != "constant":
            r, pads = len(shape), node.attrs["pads"]
            axes = [dict(ax=i, n=out[i], stride=int(np.prod(shape[i + 1:])),
                         map=[self.source_index(mode, o, pads[i], shape[i]) for o in range(out[i])]
                         if pads[i] or pads[i + r] else None) for i in range(r)]
            return Kernel("pad_map.c.j2", dict(mode=mode, axes=axes, ctype=c_type(node, ins[0].dtype)), includes=("stdint.h",))
        r = len(shape)
        src = [int(np.prod(shape[i + 1:])) for i in range(r)]
        dst = [int(np.prod(out[i + 1:])) for i in range(r)]
        base = sum(node.attrs["pads"][i] * dst[i] for i in range(r))
        dt = ins[0].dtype
        if dt == "f32":
            value = c_float(node.attrs["value"])
        elif ins[0].quant is not None:
            value = str(self.quantized_value(node, ins[0]))
        else:
            if not np.isfinite(node.attrs["value"]):
                raise UnsupportedError(f"Pad node '{node.name}': constant_value {node.attrs['value']} for a {dt} tensor")
            value = str(int(node.attrs["value"]))
        return Kernel("f32/pad.c.j2", dict(dims=list(shape), src=src, dst=dst, base=base, n=outs[0].size,
                                           value=value, ctype=c_type(node, dt)), includes=("math.h",))

    @staticmethod
    def quantized_value(node, x) -> int:
        """The constant on int8 tensors: the pad value quantized with the input's parameters."""
        q = x.quant
        return int(quantize(np.float32(node.attrs["value"]), np.float32(q.scale), int(q.zero_point), DTYPES[x.dtype]))

    def qreference(self, node, xs, ins, outs):
        if node.attrs["mode"] != "constant":
            return self.reference(node, xs)
        p, r = node.attrs["pads"], xs[0].ndim
        return [np.pad(xs[0], [(p[i], p[i + r]) for i in range(r)], constant_values=self.quantized_value(node, ins[0]))]
