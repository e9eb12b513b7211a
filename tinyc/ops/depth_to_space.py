"""DepthToSpace (ONNX; DCR and CRD modes): each pixel's channels become a blocksize x blocksize
block of pixels. Data movement: int8 values pass through unchanged, and the op has an NHWC form
(layout-nhwc runs it between NHWC layers without Transposes). One strided copy in either layout."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .layout import is_nhwc, with_nhwc
from . import Op, c_type, register
from .shape import strided_copy

# axes of the input seen as 6-D, in the order the output walks them (NCHW and NHWC)
_SPLIT_NCHW = {"DCR": ("b", "b", "c"), "CRD": ("c", "b", "b")}
_PERM_NCHW = {"DCR": [0, 3, 4, 1, 5, 2], "CRD": [0, 1, 4, 2, 5, 3]}
_PERM_NHWC = {"DCR": [0, 1, 3, 2, 4, 5], "CRD": [0, 1, 4, 2, 5, 3]}


def _six_d(shape, mode: str, b: int, nhwc: bool) -> tuple[int, ...]:
    """The input as 6-D: its channel axis split into (block row, block column, channel) in the
    mode's order."""
    n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if nhwc else shape
    parts = {"b": b, "c": c // (b * b)}
    split = tuple(parts[k] for k in _SPLIT_NCHW[mode])
    return (n, h, w) + split if nhwc else (n,) + split + (h, w)


@register
@with_nhwc
class DepthToSpace(Op):
    name = "DepthToSpace"
    limits = "DCR and CRD modes, 4-D; int8 passes through; runs in NHWC"
    quant_transparent = True
    int8_pass_through = True

    def normalize(self, attrs, ins, opset):
        b = int(attrs.get("blocksize", 0))
        mode = attrs.get("mode", "DCR")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if b < 1:
            raise UnsupportedError(f"DepthToSpace blocksize {b} must be at least 1")
        if mode not in _PERM_NCHW:
            raise UnsupportedError(f"DepthToSpace mode '{mode}' is not DCR or CRD")
        if ins[0] is None or len(ins[0].shape) != 4:
            raise UnsupportedError("DepthToSpace needs a 4-D input")
        return {"blocksize": b, "mode": mode}

    def infer(self, node, ins):
        n, c, h, w = ins[0].shape
        b = node.attrs["blocksize"]
        if c % (b * b):
            raise UnsupportedError(f"DepthToSpace node '{node.name}': {c} channels are not a multiple of {b}x{b}")
        return [((n, c // (b * b), h * b, w * b), ins[0].dtype)]

    def reference(self, node, xs):
        x, a = xs[0], node.attrs
        six = x.reshape(_six_d(x.shape, a["mode"], a["blocksize"], False))
        n, c, h, w = x.shape
        b = a["blocksize"]
        return [np.ascontiguousarray(six.transpose(_PERM_NCHW[a["mode"]])).reshape(n, c // (b * b), h * b, w * b)]

    def kernel(self, node, ins, outs):
        a, x = node.attrs, ins[0]
        nhwc = is_nhwc(node)
        shape = _six_d(x.shape, a["mode"], a["blocksize"], nhwc)
        perm = (_PERM_NHWC if nhwc else _PERM_NCHW)[a["mode"]]
        strides = [int(np.prod(shape[i + 1:])) for i in range(6)]
        dims = [shape[p] for p in perm]
        c_type(node, x.dtype)
        return strided_copy("DepthToSpace", dims, [strides[p] for p in perm],
                            [int(np.prod(dims[i + 1:])) for i in range(6)], 0, x.dtype)
