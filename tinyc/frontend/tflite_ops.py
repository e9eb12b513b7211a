"""TFLite operators -> tinyc ops (ONNX meaning, NHWC where the op has an NHWC form).

Each mapping reads the operator's inputs through ``_Reader.value`` (a float tensor, or an int8 one
behind a DequantizeLinear), builds the float op and hands its result to ``_Reader.finish``
(QuantizeLinear for an int8 output); lower-qdq then makes every cluster one integer op.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import Node, QuantParams, Tensor
from ..ops import get_op
from ..ops.activations import TFLITE_RECIPES
from ..ops.layout import nchw_node, nchw_view
from .tflite_rnn import lstm_float
from .tflite_file import builtin_code, builtin_options, default_options

_REFUSED = {
    "CUSTOM": "custom operators are not supported",
}


def op_name(code) -> str:
    from tflite.utils import BUILTIN_OPCODE2NAME

    builtin = builtin_code(code)
    if builtin == 32:
        custom = code.CustomCode()
        return f"CUSTOM '{custom.decode('utf-8', 'replace')}'" if custom else "CUSTOM"
    return BUILTIN_OPCODE2NAME.get(builtin, f"builtin operator {builtin}")


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TFLite's SAME padding: the extra row/column at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _check_window(c: "_Op", opts, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1) -> None:
    """Filter, strides and dilations positive, padding SAME or VALID (an operator without options
    has stride 0 and is refused here)."""
    for what, h, w in (("filter", kh, kw), ("stride", sh, sw), ("dilation", dh, dw)):
        if h < 1 or w < 1:
            c.fail(f"{what} {h}x{w} (height x width) must be positive")
    if opts.Padding() not in (0, 1):
        c.fail(f"padding {opts.Padding()} is neither SAME (0) nor VALID (1)")


def _window(c: "_Op", x_shape, kh: int, kw: int, opts, dh: int = 1, dw: int = 1) -> dict:
    sh, sw = opts.StrideH(), opts.StrideW()
    _check_window(c, opts, kh, kw, sh, sw, dh, dw)
    if opts.Padding() == 0:  # SAME
        (pt, pb), (pl, pr) = _same_pads(x_shape[1], kh, sh, dh), _same_pads(x_shape[2], kw, sw, dw)
    else:
        pt = pb = pl = pr = 0
    return dict(kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw], pads=[pt, pl, pb, pr])


class _Op:
    """One operator being imported: its reader, inputs/outputs (tensor indices) and name."""

    def __init__(self, r, op, name: str):
        self.r, self.op = r, op
        self.ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        self.outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        self.name = name
        self.absent_options = ""  # the options class the operator lacks (read as the schema's defaults)

    def fail(self, message: str, cls: type[TinycError] = TinycError):
        """A defect of this operator (UnsupportedError: a variant tinyc does not compile): one line
        naming it, and its missing options."""
        missing = self.absent_options and f" (the operator has no {self.absent_options}: the schema's defaults apply)"
        raise cls(f"{self.r.opname}: {message}{missing}")

    def options(self, cls_name: str):
        """The operator's options as tflite.<cls_name>. An operator without options reads the
        schema's defaults, as FlatBuffers and TFLite read an absent table (dilation 1, stride 0,
        ...); the checks of each value then refuse a default that is no valid value."""
        import tflite

        cls = getattr(tflite, cls_name)
        opts = builtin_options(self.op, cls, self.r.opname)
        if opts is None:
            self.absent_options = cls_name
            return default_options(cls)
        return opts

    def input(self, k: int, rank: int | None = None) -> int:
        """The tensor index of required input ``k`` (of rank ``rank`` when given)."""
        i = self.optional(k)
        if i is None:
            self.fail(f"input {k} is missing (the operator has {len(self.ins)} inputs: {self.ins})")
        if rank is not None and len(self.r.shape(i)) != rank:
            self.fail(f"input {k} '{self.r.tname(i)}' has shape {list(self.r.shape(i))}, expected rank {rank}")
        return i

    def optional(self, k: int) -> int | None:
        """Input ``k``, None when it is omitted (-1) or absent."""
        return self.ins[k] if k < len(self.ins) and self.ins[k] >= 0 else None

    def nhwc(self, op: str, inputs: list[str | None], attrs: dict, fused: int = 0) -> None:
        """An NHWC node (Conv, pooling): normalized as its NCHW form, then ``layout="NHWC"``."""
        r = self.r
        ins = [None if x is None else nchw_view(r.g.tensors[x]) for x in inputs]
        attrs = dict(get_op(op).normalize(attrs, ins, 17), layout="NHWC")
        self.emit(op, inputs, attrs, fused, normalized=True)

    def emit(self, op: str, inputs: list[str | None], attrs: dict, fused: int = 0, normalized: bool = False,
             out_index: int = 0) -> str:
        """The float op writing output ``out_index`` (then the fused activation, then the
        quantization of an int8 output); returns the float result's name."""
        r = self.r
        o = self.outs[out_index]
        final = r.result(o)
        mid = r.g.unique_name(f"{r.tname(o)}/{op}") if fused else final
        attrs = dict(attrs, **get_op(op).tflite_attrs) if r.is_quantized(o) else attrs
        r.node(op, self.name, inputs, [mid], attrs, normalized)
        if fused:
            r.activation(fused, mid, final)
        if r.g.tensors[final].shape != r.shape(o):
            self.fail(f"output '{r.tname(o)}' has shape {list(r.shape(o))}, tinyc computes "
                      f"{list(r.g.tensors[final].shape)}", UnsupportedError)
        r.finish(o, final)
        return final

    def reshape_to_output(self, x: str, out_index: int = 0) -> None:
        self.emit("Reshape", [x], {"shape": list(self.r.shape(self.outs[out_index]))}, out_index=out_index)


def _conv(c: _Op, op) -> None:
    r = c.r
    opts = c.options("Conv2DOptions")
    x, w = c.input(0, rank=4), c.input(1, rank=4)
    xs, ws = r.shape(x), r.shape(w)
    attrs = _window(c, xs, ws[1], ws[2], opts, opts.DilationHFactor(), opts.DilationWFactor())
    if ws[3] < 1 or xs[3] % ws[3]:
        c.fail(f"input channels {xs[3]} are not a multiple of the weights' {ws[3]}")
    attrs["group"] = xs[3] // ws[3]
    b = c.optional(2)
    wv = r.value(w)
    c.nhwc("Conv", [r.value(x), wv] + ([r.bias(b, x, w, _source(r, wv))] if b is not None else []), attrs,
           opts.FusedActivationFunction())


def _depthwise(c: _Op, op) -> None:
    r = c.r
    opts = c.options("DepthwiseConv2DOptions")
    x, w = c.input(0, rank=4), c.input(1, rank=4)
    xs, ws = r.shape(x), r.shape(w)
    # [1, KH, KW, C*M] -> tinyc's OHWI [C*M, KH, KW, 1]: per-channel parameters move to axis 0
    q = r.quant(w)
    if q is not None and q.axis is not None and q.axis != 3:
        raise UnsupportedError(f"{r.opname}: weights quantized along axis {q.axis}, expected 3")
    wt = r.value(w, np.transpose(r.const(w), (3, 1, 2, 0)), " (OHWI)")
    attrs = _window(c, xs, ws[1], ws[2], opts, opts.DilationHFactor(), opts.DilationWFactor())
    attrs["group"] = xs[3]
    b = c.optional(2)
    c.nhwc("Conv", [r.value(x), wt] + ([r.bias(b, x, w, _source(r, wt))] if b is not None else []), attrs,
           opts.FusedActivationFunction())


def _fully_connected(c: _Op, op) -> None:
    r = c.r
    opts = c.options("FullyConnectedOptions")
    if opts.WeightsFormat() != 0:
        raise UnsupportedError(f"{r.opname}: shuffled weights are not supported")
    x, w, b = c.input(0), c.input(1, rank=2), c.optional(2)
    k, size = r.shape(w)[1], int(np.prod(r.shape(x)))
    if k < 1 or size % k:
        c.fail(f"input '{r.tname(x)}' of shape {list(r.shape(x))} is no whole number of rows of {k} (the weights' "
               "columns)")
    xn = _reshaped(r, x, (size // k, k))
    fused = opts.FusedActivationFunction()
    wv = r.value(w)
    ins = [xn, wv] + ([r.bias(b, x, w, _source(r, wv))] if b is not None else [])
    rows = r.g.tensors[xn].shape[0]
    n = r.shape(w)[0]
    if r.shape(c.outs[0]) == (rows, n):
        c.emit("Gemm", ins, {"transB": 1}, fused)
        return
    mid = r.g.unique_name(f"{r.tname(c.outs[0])}/Gemm")  # keep_num_dims: a view of the 2-D result
    r.node("Gemm", c.name + "/gemm", ins, [mid], {"transB": 1})
    if fused:
        act = r.g.unique_name(f"{mid}/act")
        r.activation(fused, mid, act)
        mid = act
    c.reshape_to_output(mid)


def _source(r, name: str) -> str:
    """The IR tensor behind a value: the int8 constant a DequantizeLinear reads, or itself."""
    n = next((n for n in r.g.nodes if name in n.outputs), None)
    return n.inputs[0] if n is not None and n.op == "DequantizeLinear" else name


def _reshaped(r, i: int, shape: tuple[int, ...]) -> str:
    """Tensor ``i`` as a float op reads it, reshaped (a view). An int8 activation is reshaped as
    int8 and then dequantized, so the op's cluster starts at its DequantizeLinear."""
    if r.shape(i) == tuple(shape):
        return r.value(i)
    return _moved(r, i, "Reshape", {"shape": list(shape)}, "reshaped")


def _moved(r, i: int, op: str, attrs: dict, suffix: str) -> str:
    """Tensor ``i`` through the data-movement ``op`` as a float op reads it (see _reshaped)."""
    int8 = r.is_quantized(i) and r.data(i) is None
    src = r.define(i) if int8 else r.value(i)
    name = r.g.unique_name(f"{r.tname(i)}/{suffix}")
    r.node(op, name, [src], [name], attrs)
    if not int8:
        return name
    r.g.tensors[name].quant = r.g.tensors[src].quant
    return r.dequantize(name, r.g.tensors[src].quant)


def _batch_matmul(c: _Op, op) -> None:
    """BATCH_MATMUL: MatMul (numpy broadcasting of the batch dimensions, as TFLite's); adj_x/adj_y
    as a Transpose of the operand's last two axes (TFLite Micro transposes into a buffer too)."""
    r = c.r
    opts = c.options("BatchMatMulOptions")
    ins = []
    for k, adj in ((0, opts.AdjX()), (1, opts.AdjY())):
        i = c.input(k)
        rank = len(r.shape(i))
        if not 2 <= rank <= 5:
            c.fail(f"input {k} '{r.tname(i)}' has rank {rank}; BATCH_MATMUL takes ranks 2 to 5", UnsupportedError)
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        ins.append(_moved(r, i, "Transpose", {"perm": perm}, "adjoint") if adj else r.value(i))
    c.emit("MatMul", ins, {})


def _binary(onnx_op: str, options: str | None) -> Callable:
    def f(c: _Op, op) -> None:
        fused = c.options(options).FusedActivationFunction() if options else 0
        c.emit(onnx_op, [c.r.value(c.input(0)), c.r.value(c.input(1))], {}, fused)
    return f


def _pool(onnx_op: str) -> Callable:
    def f(c: _Op, op) -> None:
        r = c.r
        opts = c.options("Pool2DOptions")
        x = c.input(0, rank=4)
        attrs = _window(c, r.shape(x), opts.FilterHeight(), opts.FilterWidth(), opts)
        attrs.pop("dilations")
        c.nhwc(onnx_op, [r.value(x)], attrs, opts.FusedActivationFunction())
    return f


def _mean(c: _Op, op) -> None:
    r = c.r
    keep = c.options("ReducerOptions").KeepDims()
    axes = [int(a) for a in np.asarray(r.const(c.input(1))).reshape(-1)]  # (ReduceMean checks and sorts them)
    c.emit("ReduceMean", [r.value(c.input(0))], {"axes": axes, "keepdims": int(bool(keep))})


def _view(c: _Op, op) -> None:
    c.reshape_to_output(c.r.value(c.input(0)))


def _softmax(c: _Op, op) -> None:
    opts = c.options("SoftmaxOptions")
    if opts.Beta() != 1.0:
        c.fail(f"beta {opts.Beta()} (tinyc's Softmax has beta 1)", UnsupportedError)
    r, x, o = c.r, c.input(0), c.outs[0]
    if r.is_int8(x) and r.ttype(o) == 7:  # int8 -> int16: the integer op itself (no int16 cluster)
        name = r.g.unique_name(r.tname(o))
        rank = len(r.shape(x))
        r.node("Softmax", c.name, [r.define(x)], [name], {"axis": max(rank - 1, 0), "output_type": "s16"}, normalized=True)
        r.g.tensors[name].quant = r.quant(o)
        r.names[o] = name
        return
    c.emit("Softmax", [c.r.value(c.input(0))], {"axis": -1})


def _unary(onnx_op: str, **attrs) -> Callable:
    def f(c: _Op, op) -> None:
        a = dict(attrs)
        if onnx_op in TFLITE_RECIPES and c.r.is_quantized(c.input(0)):
            a["recipe"] = "tflite"  # TFLite's fixed-point int8 recipe, not the QDQ meaning
        if onnx_op == "LeakyRelu":
            a["alpha"] = float(c.options("LeakyReluOptions").Alpha())
        c.emit(onnx_op, [c.r.value(c.input(0))], a)
    return f


def _gelu(c: _Op, op) -> None:
    approximate = "tanh" if c.options("GeluOptions").Approximate() else "none"
    a = {"approximate": approximate}
    if c.r.is_quantized(c.input(0)):
        a["recipe"] = "tflite"  # TFLite's int8 table (its rounding), not the QDQ meaning
    c.emit("Gelu", [c.r.value(c.input(0))], a)


def _pad(c: _Op, op) -> None:
    r = c.r
    x = c.input(0)
    p = np.asarray(r.const(c.input(1)), np.int64)
    rank = len(r.shape(x))
    if p.size != 2 * rank:
        c.fail(f"paddings of shape {list(p.shape)} for an input of rank {rank} (expected [{rank}, 2])")
    p = p.reshape(rank, 2)
    value = 0.0
    v = c.optional(2)
    if v is not None:
        vd = np.asarray(r.const(v)).reshape(-1)
        q = r.quant(v)
        value = float(vd[0]) if q is None else float(q.scale) * (int(vd[0]) - int(q.zero_point))
    elif r.is_int8(x):
        value = 0.0  # TFLite pads with the zero point: real 0
    c.emit("Pad", [r.value(x)], {"pads": list(p[:, 0]) + list(p[:, 1]), "value": value, "mode": "constant"})


def _concat(c: _Op, op) -> None:
    r = c.r
    opts = c.options("ConcatenationOptions")
    ins = [r.value(c.input(k)) for k in range(len(c.ins))]
    c.emit("Concat", ins, {"axis": int(opts.Axis())}, opts.FusedActivationFunction())  # (Concat checks the axis)


def _resize_bilinear(c: _Op, op) -> None:
    """RESIZE_BILINEAR on NHWC: a linear Resize of axes 1 and 2 (int8: TFLite's integer arithmetic)."""
    r = c.r
    opts = c.options("ResizeBilinearOptions")
    x = c.input(0, rank=4)
    size = [int(v) for v in np.asarray(r.const(c.input(1))).reshape(-1)]
    if len(size) != 2 or min(size) <= 0:
        c.fail(f"size {size} (expected two positive lengths)")
    if opts.AlignCorners() and opts.HalfPixelCenters():
        c.fail("align_corners and half_pixel_centers are both set (TFLite refuses it)")
    mode = "align_corners" if opts.AlignCorners() else "half_pixel" if opts.HalfPixelCenters() else "asymmetric"
    n, _, _, ch = r.shape(x)
    c.emit("Resize", [r.value(x)], {"mode": "linear", "coordinate_transformation_mode": mode,
                                     "sizes": [int(n), *size, int(ch)]})


def _strided_slice(c: _Op, op) -> None:
    r = c.r
    opts = c.options("StridedSliceOptions")
    if opts.EllipsisMask() or opts.NewAxisMask() or (hasattr(opts, "Offset") and opts.Offset()):
        raise UnsupportedError(f"{r.opname}: ellipsis_mask, new_axis_mask and offset are not supported")
    x = c.input(0)
    shape = r.shape(x)
    begin, end, strides = (np.asarray(r.const(c.input(k)), np.int64).reshape(-1).tolist() for k in (1, 2, 3))
    if not len(begin) == len(end) == len(strides) <= len(shape):
        c.fail(f"begin, end and strides have {len(begin)}, {len(end)} and {len(strides)} values for an input of "
               f"rank {len(shape)}")
    if 0 in strides:
        c.fail(f"strides {strides} contain 0")
    big = 2**31 - 1
    starts, ends = [], []
    for a in range(len(begin)):
        s, e, st = begin[a], end[a], strides[a]
        if opts.BeginMask() >> a & 1:
            s = 0 if st > 0 else big
        if opts.EndMask() >> a & 1:
            e = big if st > 0 else -big
        if opts.ShrinkAxisMask() >> a & 1:
            s = s % shape[a] if shape[a] else s
            e, st = s + 1, 1
        starts.append(s)
        ends.append(e)
    attrs = {"starts": starts, "ends": ends, "axes": list(range(len(begin))), "steps": strides}
    if not opts.ShrinkAxisMask():
        c.emit("Slice", [r.value(x)], attrs)
        return
    mid = r.g.unique_name(f"{r.tname(c.outs[0])}/Slice")
    r.node("Slice", c.name + "/slice", [r.value(x)], [mid], attrs)
    c.reshape_to_output(mid)


def _transpose(c: _Op, op) -> None:
    perm = np.asarray(c.r.const(c.input(1)), np.int64).reshape(-1).tolist()
    c.emit("Transpose", [c.r.value(c.input(0))], {"perm": perm})


def _quantize(c: _Op, op) -> None:
    r = c.r
    o, x = c.outs[0], c.input(0)
    # int8/int16 outputs; int32 ones from a quantized integer input (TFLite's requantization)
    int32 = r.ttype(o) == 2 and r.quant(o) is not None and r.ttype(x) in (9, 7, 2) and r.quant(x) is not None
    if not (r.is_quantized(o) or int32):
        raise UnsupportedError(f"{r.opname}: output '{r.tname(o)}' must be int8 or int16 (or int32 from an integer input)")
    r.finish(o, r.value(x), int32=int32)


def _dequantize(c: _Op, op) -> None:
    r = c.r
    x = c.input(0)
    if not r.is_int8(x) or r.ttype(c.outs[0]) != 0:
        raise UnsupportedError(f"{r.opname}: only int8 -> float32 is supported")
    out = r.result(c.outs[0])
    src = r.define(x)
    q = r.g.tensors[src].quant
    r.node("DequantizeLinear", c.name, [src] + r.qparams(src, q), [out], {})


def _sequence_lstm(c: _Op, op) -> None:
    if c.r.ttype(c.ins[0]) == 9:  # int8 activations: TFLite Micro's integer LSTM
        from .tflite_lstm_int import import_lstm_int8

        return import_lstm_int8(c, op)
    return lstm_float(c, op)


def _transpose_conv(c: _Op, op) -> None:
    r = c.r
    w, x, b = c.input(1, rank=4), c.input(2, rank=4), c.optional(3)
    if r.is_int8(x):
        raise UnsupportedError(f"{r.opname}: int8 TRANSPOSE_CONV is not supported (tinyc's ConvTranspose is float and 16x8 only)")
    opts = c.options("TransposeConvOptions")
    shape_input = r.data(c.input(0))  # (a model input in some files: the output tensor's static shape decides)
    out_shape = list(r.shape(c.outs[0])) if shape_input is None else [int(d) for d in np.asarray(shape_input).reshape(-1)]
    if len(out_shape) != 4:
        c.fail(f"output shape {out_shape} is not of rank 4")
    o, kh, kw, ci = r.shape(w)
    n, ih, iw, _ = r.shape(x)
    sh, sw = opts.StrideH(), opts.StrideW()
    _check_window(c, opts, kh, kw, sh, sw)
    pads, extra = [], []
    for size, k, s, out in ((ih, kh, sh, out_shape[1]), (iw, kw, sw, out_shape[2])):
        full = (size - 1) * s + k
        total = max(full - out, 0) if opts.Padding() == 0 else 0
        before = total // 2
        after = max(full - before - out, 0)
        pads.append((before, after))
        extra.append(out - (full - before - after))
    if min(extra) < 0:
        raise UnsupportedError(f"{r.opname}: output shape {out_shape} is smaller than the stride pattern")
    iohw = np.ascontiguousarray(np.transpose(r.const(w), (3, 0, 1, 2)))
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]],
                 output_padding=extra)
    fused = opts.FusedActivationFunction() if hasattr(opts, "FusedActivationFunction") else 0
    if r.is_quantized(x):
        _transpose_conv_16x8(c, x, w, b, iohw, attrs, fused)
        return
    wt = r.value(w, iohw, " (IOHW)")
    nchw = r.g.unique_name(f"{r.tname(x)}/nchw")
    r.node("Transpose", nchw, [r.value(x)], [nchw], {"perm": [0, 3, 1, 2]})
    y = r.g.unique_name(f"{r.tname(c.outs[0])}/nchw")
    r.node("ConvTranspose", c.name, [nchw, wt] + ([r.value(b)] if b is not None else []), [y], attrs)
    c.emit("Transpose", [y], {"perm": [0, 2, 3, 1]}, fused)


def _svdf(c: _Op, op) -> None:
    """SVDF: int8 as the integer op itself (no float cluster: its weights_time and state are int16
    or int8 with their own scales); float32 as the float op with its fused activation. TFLite's
    variable tensor, the activation state, becomes a model state tensor of the graph starting at
    TFLite Micro's reset value (the zero point of an int8 state, 0 otherwise). The int8 op ignores the fused activation, as TFLite Micro's integer
    kernel does."""
    r = c.r
    opts = c.options("SVDFOptions")
    x, st, o = c.input(0, rank=2), c.input(4, rank=2), c.outs[0]
    floats = r.ttype(x) == 0 and r.ttype(o) == 0
    if not floats and (not r.is_int8(x) or not r.is_int8(o)):
        raise UnsupportedError(f"{r.opname}: only int8 and float32 SVDF are supported")
    if not r.tensor(st).IsVariable() or r.data(st) is not None or st in r.names:
        c.fail(f"activation state '{r.tname(st)}' must be a variable tensor of its own")
    state = r.g.add_tensor(Tensor(r.g.unique_name(r.tname(st)), r.shape(st), r.dtype(st), quant=r.quant(st)))
    r.g.states[state.name] = int(state.quant.zero_point) if state.dtype == "s8" and state.quant is not None else 0
    r.names[st] = state.name
    ins = []
    for k in (0, 1, 2, 3):
        i = c.input(k, rank=2) if k < 3 else c.optional(3)
        ins.append(None if i is None else r.define(i))
        if i is not None:
            r.g.tensors[ins[-1]].quant = r.quant(i)
    if floats:  # TFLite Micro's float kernel applies the fused activation
        c.emit("SVDF", ins + [state.name], {"rank": int(opts.Rank())}, opts.FusedActivationFunction())
        return
    name = r.g.unique_name(r.tname(o))
    r.node("SVDF", c.name, ins + [state.name], [name], {"rank": int(opts.Rank())})
    if r.g.tensors[name].shape != r.shape(o):
        c.fail(f"output '{r.tname(o)}' has shape {list(r.shape(o))}, expected {list(r.g.tensors[name].shape)}")
    r.g.tensors[name].quant = r.quant(o)
    r.names[o] = name


def _transpose_conv_16x8(c: _Op, x: int, w: int, b: int | None, iohw: np.ndarray, attrs: dict, fused: int) -> None:
    """TRANSPOSE_CONV on int16 activations: the int16 input transposed to NCHW, then the cluster
    DequantizeLinear -> ConvTranspose -> QuantizeLinear (an NCHW int16 result), transposed back to
    the NHWC output (the Transposes move int16 values)."""
    r = c.r
    if fused:
        c.fail("a fused activation on a 16x8 TRANSPOSE_CONV is not supported", UnsupportedError)
    qw, qx, o = r.quant(w), r.quant(x), c.outs[0]
    src = r.g.add_const(r.g.unique_name(f"{r.tname(w)} (IOHW)"), iohw).name
    wt = r.dequantize(src, QuantParams(qw.scale, qw.zero_point, None if qw.axis is None else 1))  # (out channels: axis 1)
    xin = r.define(x)
    nchw = r.g.unique_name(f"{r.tname(x)}/nchw")
    r.node("Transpose", nchw, [xin], [nchw], {"perm": [0, 3, 1, 2]})
    r.g.tensors[nchw].quant = qx
    y = r.g.unique_name(f"{r.tname(o)}/nchw/float")
    r.node("ConvTranspose", c.name, [r.dequantize(nchw, qx), wt] + ([r.bias(b, x, w, src)] if b is not None else []),
           [y], attrs)
    qo = r.quant(o)
    if qo is None or qo.axis is not None:
        c.fail(f"output '{r.tname(o)}' must be quantized per tensor", UnsupportedError)
    mid = r.g.unique_name(f"{r.tname(o)}/nchw")
    r.g.add_tensor(Tensor(mid, r.g.tensors[y].shape, r.dtype(o), quant=qo))
    r.g.nodes.append(Node("QuantizeLinear", r._node_name(mid + "/quantize"), [y] + r.qparams(mid, qo), [mid], {}))
    final = r.g.unique_name(r.tname(o))
    r.node("Transpose", final, [mid], [final], {"perm": [0, 2, 3, 1]})
    r.g.tensors[final].quant = qo
    if r.g.tensors[final].shape != r.shape(o):
        c.fail(f"output '{r.tname(o)}' has shape {list(r.shape(o))}, tinyc computes {list(r.g.tensors[final].shape)}",
               UnsupportedError)
    r.names[o] = final


_MAP: dict[str, Callable] = {
    "SVDF": _svdf,
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul,
    "ADD": _binary("Add", "AddOptions"),
    "SUB": _binary("Sub", "SubOptions"),
    "MUL": _binary("Mul", "MulOptions"),
    "AVERAGE_POOL_2D": _pool("AveragePool"),
    "MAX_POOL_2D": _pool("MaxPool"),
    "MEAN": _mean,
    "RESHAPE": _view,
    "SQUEEZE": _view,
    "SOFTMAX": _softmax,
    "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"),
    "RELU": _unary("Relu"),
    "RELU6": _unary("Clip", min=0.0, max=6.0),
    "RELU_N1_TO_1": _unary("Clip", min=-1.0, max=1.0),
    "LEAKY_RELU": _unary("LeakyRelu"),
    "HARD_SWISH": _unary("HardSwish"),
    "GELU": _gelu,
    "PAD": _pad,
    "PADV2": _pad,
    "CONCATENATION": _concat,
    "STRIDED_SLICE": _strided_slice,
    "RESIZE_BILINEAR": _resize_bilinear,
    "TRANSPOSE": _transpose,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "TRANSPOSE_CONV": _transpose_conv,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _sequence_lstm,
}


def import_operator(r, op, opname: str, index: int) -> None:
    where = f"{opname} (operator {index})"
    if opname.startswith("CUSTOM"):
        raise UnsupportedError(f"{where}: custom operators are not supported")
    if opname in _REFUSED:
        raise UnsupportedError(f"{where}: {_REFUSED[opname]}")
    f = _MAP.get(opname)
    if f is None:
        raise UnsupportedError(f"{where}: the operator is not supported for .tflite input")
    c = _Op(r, op, "")
    if not c.ins or not c.outs:
        raise TinycError(f"{where}: the operator has no {'inputs' if not c.ins else 'outputs'}")
    c.name = r.tname(c.outs[0]) if c.outs else where
    f(c, op)
