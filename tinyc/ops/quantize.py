"""QuantizeLinear and DequantizeLinear (ONNX semantics), and the QLinear ops, which import as
DequantizeLinear -> float op -> QuantizeLinear for the QDQ pass to lower to integer kernels.

Before the QDQ pass, scale and zero point are the node's inputs 1 and 2 (ONNX form); after it,
only the boundary nodes remain and their parameters are the quantization of the integer tensor.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import DTYPES, Node, Tensor
from ..quant.affine import quantize
from ..quant.fixedpoint import requantize
from ..quant.params import rescale_params
from ..quant.rounding import active as active_rounding
from ..codegen.cnames import CTYPES
from . import FIXEDPOINT, FIXEDPOINT16, Kernel, Op, register


def _params(node: Node, xs: list, qtensor: Tensor | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(scale, zero point, axis) from the ONNX inputs if present, else from the tensor."""
    if len(xs) > 1 and xs[1] is not None:
        scale = np.asarray(xs[1], np.float32)
        zp = np.asarray(xs[2]) if len(xs) > 2 and xs[2] is not None else np.zeros_like(scale, np.uint8)
        if scale.size == 1:  # a one-element scale is per tensor
            return scale.reshape(()), zp.reshape(()), None
        return scale, zp, node.attrs.get("axis", 1)
    q = qtensor.quant
    return q.scale, q.zero_point, q.axis


def _broadcast(p: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    if p.ndim == 0 or axis is None:
        return p
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return p.reshape(shape)


def _check_params(node: Node, ins: list[Tensor | None]) -> None:
    """ONNX form: a scale per tensor or one per channel along ``axis``, a zero point of the same
    shape, and (when constant) scales that are finite and positive."""
    if len(ins) < 2 or ins[1] is None:
        return  # canonical form: the parameters are the integer tensor's
    x, s = ins[0], ins[1]
    zp = ins[2] if len(ins) > 2 else None
    where = f"{node.op} node '{node.name}'"
    if zp is not None and zp.size != s.size:
        raise UnsupportedError(f"{where}: scale {list(s.shape)} and zero point {list(zp.shape)} differ in size")
    if s.size != 1:
        axis = int(node.attrs.get("axis", 1))
        if len(s.shape) != 1 or not -len(x.shape) <= axis < len(x.shape) or s.shape[0] != x.shape[axis]:
            raise UnsupportedError(f"{where}: scale {list(s.shape)} is neither per tensor nor one per channel "
                                   f"along axis {axis} of {list(x.shape)}")
    if s.is_const and not np.all(np.isfinite(s.data) & (s.data > 0)):
        raise UnsupportedError(f"{where}: scales must be finite and positive")


# the quantized types at a float model boundary (int16: the 16x8 scheme), as the C comments name them
_BOUNDARY = {"s8": "int8", "s16": "int16"}


@register
class QuantizeLinear(Op):
    name = "QuantizeLinear"
    quant_only = True
    limits = "int8 per tensor at float inputs; inside models, part of the QDQ lowering"
    foldable = False

    def infer(self, node, ins):
        _check_params(node, ins)
        zp = ins[2] if len(ins) > 2 else None
        # ONNX form: the zero point's type (uint8 when absent); canonical form: attribute "to"
        dtype = zp.dtype if zp is not None else node.attrs.get("to", "u8")
        if dtype not in ("s8", "u8", "s16", "s32"):
            raise UnsupportedError(f"QuantizeLinear node '{node.name}': output type {dtype} is not supported")
        return [(ins[0].shape, dtype)]

    def reference(self, node, xs):
        return self._run(node, xs, None, None)

    def qreference(self, node, xs, ins, outs):
        return self._run(node, xs, ins, outs)

    def _run(self, node, xs, ins, outs):
        x = np.asarray(xs[0], np.float32)
        scale, zp, axis = _params(node, xs, outs[0] if outs else None)
        out_dtype = zp.dtype if outs is None else DTYPES[outs[0].dtype]
        # x / scale in float32, as ONNX says
        return [quantize(x, _broadcast(scale.astype(np.float32), axis, x.ndim), _broadcast(zp, axis, x.ndim), out_dtype)]

    def band(self, node, ins, outs, start, stop):
        """Per tensor: elementwise (the patch pass may quantize the input rows a band needs)."""
        if outs[0].quant is None or outs[0].quant.axis is not None:
            return None
        from .band import pointwise_band
        return pointwise_band(node, ins, outs, start, stop)

    def kernel(self, node, ins, outs):
        q = outs[0].quant
        if q is None or q.axis is not None or outs[0].dtype not in _BOUNDARY or ins[0].dtype != "f32":
            raise UnsupportedError(f"QuantizeLinear node '{node.name}': only per-tensor f32 -> int8 or int16 is supported")
        info = np.iinfo(DTYPES[outs[0].dtype])
        return Kernel("s8/quantize.c.j2", dict(n=outs[0].size, scale=float(q.scale), zp=int(q.zero_point), lo=int(info.min),
                                               hi=int(info.max), ctype=CTYPES[outs[0].dtype],
                                               type=_BOUNDARY[outs[0].dtype]), includes=("math.h",))


@register
class DequantizeLinear(Op):
    name = "DequantizeLinear"
    quant_only = True
    limits = "int8 per tensor at float outputs; inside models, part of the QDQ lowering"
    foldable = False

    def infer(self, node, ins):
        _check_params(node, ins)
        return [(ins[0].shape, "f32")]

    def reference(self, node, xs):
        return self._run(node, xs, None)

    def qreference(self, node, xs, ins, outs):
        return self._run(node, xs, ins[0])

    def _run(self, node, xs, qt):
        x = np.asarray(xs[0])
        scale, zp, axis = _params(node, xs, qt)
        # ONNX: (x - zero_point) * scale, in float32
        diff = (x.astype(np.int64) - _broadcast(zp.astype(np.int64), axis, x.ndim)).astype(np.float32)
        return [(diff * _broadcast(scale.astype(np.float32), axis, x.ndim)).astype(np.float32)]

    def kernel(self, node, ins, outs):
        q = ins[0].quant
        if q is None or q.axis is not None or ins[0].dtype not in _BOUNDARY:
            raise UnsupportedError(f"DequantizeLinear node '{node.name}': only per-tensor int8 or int16 -> f32 is supported")
        return Kernel("s8/dequantize.c.j2", dict(n=outs[0].size, scale=float(q.scale), zp=int(q.zero_point),
                                                 type=_BOUNDARY[ins[0].dtype]))


def _qdq_expand(g, node: Node, ins: list[Tensor | None], op: str, x_idx: tuple[int, int, int],
                w_idx: tuple[int, int, int], y_idx: tuple[int, int], bias_idx: int | None) -> list[Node]:
    """QLinearX(x, xs, xzp, w, ws, wzp, ys, yzp[, B]) -> Q(X(DQ(x), DQ(w)[, DQ(B)]))."""
    n = node.name
    xi, xsi, xzi = x_idx
    wi, wsi, wzi = w_idx
    ysi, yzi = y_idx
    nodes = [
        Node("DequantizeLinear", f"{n}/dq_x", [node.inputs[xi], node.inputs[xsi], node.inputs[xzi]], [f"{n}/x_f"]),
        Node("DequantizeLinear", f"{n}/dq_w", [node.inputs[wi], node.inputs[wsi], node.inputs[wzi]], [f"{n}/w_f"],
             {"axis": 0} if op == "Conv" else {"axis": 1}),
    ]
    inputs = [f"{n}/x_f", f"{n}/w_f"]
    if bias_idx is not None and bias_idx < len(node.inputs) and node.inputs[bias_idx] is not None:
        # The int32 bias is in units of x_scale * w_scale (ONNX QLinearConv).
        xs, ws = ins[xsi], ins[wsi]
        if xs is None or ws is None or not xs.is_const or not ws.is_const:
            raise UnsupportedError(f"{node.op} node '{n}': scales must be constants")
        b_scale = g.add_const(g.unique_name(f"{n}/b_scale"),
                              (xs.data.astype(np.float32) * ws.data.astype(np.float32)).reshape(-1))
        nodes.append(Node("DequantizeLinear", f"{n}/dq_b", [node.inputs[bias_idx], b_scale.name, None],
                          [f"{n}/b_f"], {"axis": 0}))
        inputs.append(f"{n}/b_f")
    attrs = dict(node.attrs)
    nodes.append(Node(op, f"{n}/float", inputs, [f"{n}/y_f"], attrs))
    nodes.append(Node("QuantizeLinear", n, [f"{n}/y_f", node.inputs[ysi], node.inputs[yzi]], list(node.outputs)))
    return nodes


@register
class QLinearConv(Op):
    name = "QLinearConv"
    limits = "becomes an int8 Conv (within 1 LSB of onnxruntime's float requantization)"

    def expand(self, node, ins, g):
        return _qdq_expand(g, node, ins, "Conv", (0, 1, 2), (3, 4, 5), (6, 7), 8)


@register
class QLinearMatMul(Op):
    name = "QLinearMatMul"
    limits = "becomes an int8 fully connected layer"

    def expand(self, node, ins, g):
        return _qdq_expand(g, node, ins, "MatMul", (0, 1, 2), (3, 4, 5), (6, 7), None)




@register
class Requantize(Op):
    """int8 -> int8 with new parameters (TFLite's requantize recipe): inserted by lower-qdq where an
    op that keeps values (Concat, pooling, Reshape, ...) meets inputs quantized differently from its
    output. Internal: not an ONNX op."""

    name = "Requantize"
    quant_only = True
    inplace = True
    internal = True
    pointwise = True

    def infer(self, node, ins):
        return [(ins[0].shape, node.attrs.get("to", ins[0].dtype))]  # "to": between integer types

    def reference(self, node, xs):
        raise UnsupportedError(f"Requantize node '{node.name}' needs quantized tensors")

    def qreference(self, node, xs, ins, outs):
        """TFLite's Requantize (QUANTIZE between int8, int16 and int32): x_scale / y_scale in
        doubles, clamped to the output type."""
        r = active_rounding()
        m, s = rescale_params(ins[0].quant, outs[0].quant, r)
        x = xs[0].astype(np.int64) - int(ins[0].quant.zero_point)
        info = np.iinfo(DTYPES[outs[0].dtype])
        return [requantize(x, m, s, int(outs[0].quant.zero_point), int(info.min), int(info.max), r,
                           DTYPES[outs[0].dtype])]

    def kernel(self, node, ins, outs):
        m, s = rescale_params(ins[0].quant, outs[0].quant, active_rounding())
        info = np.iinfo(DTYPES[outs[0].dtype])
        p = dict(n=outs[0].size, m=m, s=s, zp_in=int(ins[0].quant.zero_point),
                 zp=int(outs[0].quant.zero_point), act_min=int(info.min), act_max=int(info.max))
        if ins[0].dtype == outs[0].dtype == "s8":
            return Kernel("s8/rescale.c.j2", p, preamble=FIXEDPOINT)
        p.update(ctype=CTYPES[outs[0].dtype], types=f"{ins[0].dtype} -> {outs[0].dtype}")
        return Kernel("s8/rescale.c.j2", p, preamble=FIXEDPOINT + FIXEDPOINT16)

    def kernel_for(self, node, ins, outs, variants=(), weights="wide"):
        """Between int8, int16 and int32 on Helium: four values per step
        (templates/mve/s8/rescale_vec.c.j2) with TFLite's default rounding (double); else the
        portable loop (int8 to int8: Relu/Clip's kernel)."""
        k = self.kernel(node, ins, outs)
        types = {ins[0].dtype, outs[0].dtype}
        if "mve" not in variants or types == {"s8"} or not types <= {"s8", "s16", "s32"} or active_rounding() != "double":
            return k
        return Kernel("s8/rescale_vec.c.j2", dict(k.params, tin=ins[0].dtype, tout=outs[0].dtype))
