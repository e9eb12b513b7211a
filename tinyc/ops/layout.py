"""NHWC support shared by Conv and the pooling ops.

An op with ``layout="NHWC"`` reads [N, H, W, C] and writes [N, OH, OW, M]; a Conv's weight is then
stored [M, KH, KW, C/group] (OHWI). Its meaning is defined by the NCHW op: the reference transposes
in, runs the NCHW reference and transposes back, so both layouts share one definition.
"""
from __future__ import annotations

import numpy as np

from ..ir import Node, Tensor

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


def is_nhwc(node: Node) -> bool:
    return node.attrs.get("layout") == "NHWC"


def nchw_view(t: Tensor | None, weight: bool = False) -> Tensor | None:
    """The NCHW tensor type an NHWC tensor stands for (OHWI weights -> OIHW)."""
    if t is None or len(t.shape) != 4:
        return t
    shape = tuple(t.shape[i] for i in TO_NCHW)
    return Tensor(t.name, shape, t.dtype, None if t.data is None else np.transpose(t.data, TO_NCHW), t.quant)


def nchw_node(node: Node) -> Node:
    attrs = {k: v for k, v in node.attrs.items() if k != "layout"}
    return Node(node.op, node.name, node.inputs, node.outputs, attrs)


def to_nchw(x: np.ndarray | None) -> np.ndarray | None:
    return None if x is None or x.ndim != 4 else np.transpose(x, TO_NCHW)


def to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, TO_NHWC))


def with_nhwc(cls):
    """Class decorator: infer/reference/qreference of an NCHW op also serve its NHWC form
    (inputs 0 and, for Conv, 1 are 4-D activations/weights; other inputs are unchanged)."""
    infer, reference, qreference = cls.infer, cls.reference, cls.qreference

    def _ins(node, ins):
        return [nchw_view(t) if i <= 1 and t is not None and len(t.shape) == 4 else t for i, t in enumerate(ins)]

    def _xs(xs):
        return [to_nchw(x) if i <= 1 and x is not None and np.asarray(x).ndim == 4 else x for i, x in enumerate(xs)]

    def infer_any(self, node, ins):
        if not is_nhwc(node):
            return infer(self, node, ins)
        out = infer(self, nchw_node(node), _ins(node, ins))
        return [(tuple(shape[i] for i in TO_NHWC), dtype) for shape, dtype in out]

    def reference_any(self, node, xs):
        if not is_nhwc(node):
            return reference(self, node, xs)
        return [to_nhwc(y) for y in reference(self, nchw_node(node), _xs(xs))]

    def qreference_any(self, node, xs, ins, outs):
        if not is_nhwc(node):
            return qreference(self, node, xs, ins, outs)
        return [to_nhwc(y) for y in qreference(self, nchw_node(node), _xs(xs), _ins(node, ins),
                                                 [nchw_view(t) for t in outs])]

    cls.infer, cls.reference, cls.qreference = infer_any, reference_any, qreference_any
    cls.nhwc_form = True
    return cls
