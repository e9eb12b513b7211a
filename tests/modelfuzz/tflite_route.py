"""The ``tflite`` route: random int8 models that TFLite can express, built twice -- as a .tflite
flatbuffer (NHWC, int8 in and out, per-channel convolution weights, int32 biases, fused
activations) that TFLite Micro runs, and as the QDQ ONNX graph tf2onnx makes of such a file
(producer "tf2onnx", its "<tensor>_dequant"/"<tensor>_quantize" names, NCHW between Transposes).
tinyc compiles the ONNX graph; its int8 outputs must equal TFLite Micro's exactly.

Layers: CONV_2D and DEPTHWISE_CONV_2D (SAME/VALID, strides, dilations, RELU/RELU6/none),
AVERAGE_POOL_2D and MAX_POOL_2D, residual ADD, then optionally MEAN over H and W,
FULLY_CONNECTED and SOFTMAX.
"""
from __future__ import annotations

import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..tflite_builders import run_tflm  # noqa: F401 -- the oracle, re-exported for run.py
from .gen import Recipe

KINDS = ("conv", "conv", "dwconv", "pool", "add")


def random_tflite_recipe(seed: int) -> Recipe:
    r = random.Random(seed)
    h, w = r.choice([1, 3, 5, 8, 12, 16, 25, 32]), r.choice([1, 3, 5, 8, 10, 16])
    c = r.choice([1, 2, 3, 4, 8, 16])
    steps = [(r.choice(KINDS), r.randrange(2**31)) for _ in range(r.randint(1, 6))]
    steps.append(("head", r.randrange(2**31)))
    return Recipe((1, c, h, w), steps, seed=seed, int8=True)


def _same(size: int, k: int, s: int, d: int) -> tuple[int, int, int]:
    """TensorFlow SAME: (output, pad before, pad after)."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return out, total // 2, total - total // 2


def _valid(size: int, k: int, s: int, d: int) -> int:
    return (size - (k - 1) * d - 1) // s + 1


class _Pair:
    """Both graphs under construction. Values are int8 NHWC tensors with (scale, zero point)."""

    def __init__(self, fb) -> None:
        self.fb = fb
        self.tensors, self.buffers, self.ops, self.codes = [], [fb.BufferT()], [], []
        self.nodes, self.inits = [], []
        self.shape: dict[str, tuple[int, ...]] = {}  # NHWC
        self.q: dict[str, tuple[float, int]] = {}
        self.index: dict[str, int] = {}
        self.const_names: set[str] = set()

    # --- TFLite side
    def _buffer(self, data: np.ndarray) -> int:
        b = self.fb.BufferT()
        b.data = list(np.ascontiguousarray(data).tobytes())
        self.buffers.append(b)
        return len(self.buffers) - 1

    def tfl_tensor(self, name, shape, ttype, data=None, scale=None, zp=None, qdim=0) -> int:
        t = self.fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        t.buffer = self._buffer(data) if data is not None else 0
        if scale is not None:
            q = self.fb.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def tfl_op(self, code: int, ins: list[int], outs: list[int], opt_type=0, opt=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        op = self.fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes.index(code), ins, outs
        op.builtinOptionsType, op.builtinOptions = opt_type, opt
        self.ops.append(op)

    def value(self, name: str, shape, q) -> int:
        self.shape[name], self.q[name] = tuple(shape), q
        return self.tfl_tensor(name, shape, self.fb.TensorType.INT8, scale=q[0], zp=q[1])

    # --- ONNX side (tf2onnx's naming)
    def const(self, name: str, value) -> str:
        if name not in self.const_names:
            self.const_names.add(name)
            self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def dq(self, name: str) -> str:
        """The float (NCHW unless rank 2) value of int8 tensor ``name``."""
        s, z = self.q[name]
        self.nodes.append(helper.make_node("DequantizeLinear", [name, self.const(f"{name}_scale", np.float32(s)),
                                                                 self.const(f"{name}_zp", np.int8(z))],
                                           [f"{name}_dequant"], name=f"{name}_dequant"))
        return f"{name}_dequant"

    def quant(self, real: str, name: str) -> None:
        s, z = self.q[name]
        self.nodes.append(helper.make_node("QuantizeLinear", [real, self.const(f"{name}_scale", np.float32(s)),
                                                               self.const(f"{name}_zp", np.int8(z))], [name],
                                           name=f"{name}_quantize"))

    def dq_const(self, name: str, data: np.ndarray, scale, per_channel: bool) -> str:
        """A constant (weights int8, bias int32) behind its DequantizeLinear, zero points 0."""
        zp = np.zeros(np.shape(scale), data.dtype)
        self.nodes.append(helper.make_node("DequantizeLinear", [self.const(name, data), self.const(f"{name}_scale", scale),
                                                                 self.const(f"{name}_zp", zp)],
                                           [f"{name}_dequant"], name=f"{name}_dequant",
                                           **({"axis": 0} if per_channel else {})))
        return f"{name}_dequant"

    def node(self, op: str, ins: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out


def _act(fb, r: random.Random) -> tuple[int, str]:
    return r.choice([(fb.ActivationFunctionType.NONE, ""), (fb.ActivationFunctionType.RELU, "Relu"),
                     (fb.ActivationFunctionType.RELU6, "Relu6")])


def _activate_and_quantize(p: _Pair, v: str, y: str, act: str) -> str:
    """The fused activation as ONNX writes it (Relu, Clip 0..6), then y's QuantizeLinear."""
    if act == "Relu":
        v = p.node("Relu", [v], f"{y}_relu")
    elif act == "Relu6":
        v = p.node("Clip", [v, p.const(f"{y}_lo", np.float32(0)), p.const(f"{y}_hi", np.float32(6))], f"{y}_relu6")
    p.quant(v, y)
    p.onnx_of[y] = p.dq(y)
    return y


def _out_q(r: random.Random, spread: float) -> tuple[float, int]:
    """Output parameters for a value whose real values spread about ``spread``."""
    return float(np.float32(max(spread, 1e-4) / 128 * r.choice([0.5, 1.0, 1.0, 2.0]))), r.randint(-20, 20)


def _conv(p: _Pair, x: str, r: random.Random, n: int, depthwise: bool) -> str:
    fb = p.fb
    _, h, w, c = p.shape[x]
    k = [r.choice([1, 3, 3, 5]), r.choice([1, 3, 3, 5])]
    s = [r.choice([1, 1, 2]), r.choice([1, 1, 2])]
    d = [1, 1] if max(s) > 1 or r.random() < 0.8 else [r.choice([1, 2])] * 2
    same = r.random() < 0.6
    dims = []
    for size, kk, ss, dd in zip((h, w), k, s, d):
        if same:
            dims.append(_same(size, kk, ss, dd))
        else:
            o = _valid(size, kk, ss, dd)
            if o < 1:
                return x
            dims.append((o, 0, 0))
    mult = r.choice([1, 1, 2]) if depthwise else 1
    oc = c * mult if depthwise else r.choice([1, 2, 3, 4, 8, 12, 16])
    rng = np.random.default_rng(r.randrange(2**32))
    w_int = rng.integers(-127, 128, size=(oc, k[0], k[1], 1 if depthwise else c)).astype(np.int8)
    w_scale = (rng.uniform(0.2, 1.0, oc) * 0.02).astype(np.float32)
    xs, xz = p.q[x]
    b_scale = (np.float32(xs) * w_scale).astype(np.float32)
    b_int = rng.integers(-5000, 5000, size=oc).astype(np.int32)
    fan_in = k[0] * k[1] * (1 if depthwise else c)
    spread = float(xs) * 127 * float(w_scale.mean()) * 127 * np.sqrt(fan_in) * 0.5
    y = f"t{n}_{'dw' if depthwise else 'conv'}"
    code, act_onnx = _act(fb, r)
    # TFLite
    wt = w_int.transpose(3, 1, 2, 0) if depthwise else w_int  # depthwise filter: [1, kh, kw, oc]
    wi = p.tfl_tensor(f"{y}_w", wt.shape, fb.TensorType.INT8, wt, w_scale, np.zeros(oc, np.int64),
                      qdim=3 if depthwise else 0)
    bi = p.tfl_tensor(f"{y}_b", [oc], fb.TensorType.INT32, b_int, b_scale, np.zeros(oc, np.int64))
    xi = p.index[x]
    yi = p.value(y, (1, dims[0][0], dims[1][0], oc), _out_q(r, spread))
    padding = fb.Padding.SAME if same else fb.Padding.VALID
    if depthwise:
        opt = fb.DepthwiseConv2DOptionsT()
        opt.depthMultiplier = mult
        opt_type, op_code = fb.BuiltinOptions.DepthwiseConv2DOptions, fb.BuiltinOperator.DEPTHWISE_CONV_2D
    else:
        opt = fb.Conv2DOptionsT()
        opt_type, op_code = fb.BuiltinOptions.Conv2DOptions, fb.BuiltinOperator.CONV_2D
    opt.padding, opt.strideH, opt.strideW = padding, s[0], s[1]
    opt.dilationHFactor, opt.dilationWFactor, opt.fusedActivationFunction = d[0], d[1], code
    p.tfl_op(op_code, [xi, wi, bi], [yi], opt_type, opt)
    # ONNX (NCHW): weights [oc, cin/group, kh, kw], per-channel along axis 0
    w_dq = p.dq_const(f"{y}_w", w_int.transpose(0, 3, 1, 2), w_scale, per_channel=True)
    b_dq = p.dq_const(f"{y}_b", b_int, b_scale, per_channel=True)
    pads = [dims[0][1], dims[1][1], dims[0][2], dims[1][2]]
    v = p.node("Conv", [p.onnx_of[x], w_dq, b_dq], f"{y}_conv", kernel_shape=k, strides=s,
               dilations=d, pads=pads, group=c if depthwise else 1)
    return _activate_and_quantize(p, v, y, act_onnx)


def _pool(p: _Pair, x: str, r: random.Random, n: int) -> str:
    fb = p.fb
    _, h, w, c = p.shape[x]
    k = [r.randint(1, min(3, h)), r.randint(1, min(3, w))]
    s = [r.choice([1, 2, 2]), r.choice([1, 2, 2])]
    same = r.random() < 0.5
    dims = [_same(size, kk, ss, 1) if same else (_valid(size, kk, ss, 1), 0, 0) for size, kk, ss in zip((h, w), k, s)]
    if min(o for o, _, _ in dims) < 1:
        return x
    maxpool = r.random() < 0.5
    y = f"t{n}_{'max' if maxpool else 'avg'}pool"
    yi = p.value(y, (1, dims[0][0], dims[1][0], c), p.q[x])  # TFLite pooling keeps its input's parameters
    opt = fb.Pool2DOptionsT()
    opt.padding = fb.Padding.SAME if same else fb.Padding.VALID
    opt.strideH, opt.strideW, opt.filterHeight, opt.filterWidth = s[0], s[1], k[0], k[1]
    p.tfl_op(fb.BuiltinOperator.MAX_POOL_2D if maxpool else fb.BuiltinOperator.AVERAGE_POOL_2D, [p.index[x]], [yi],
             fb.BuiltinOptions.Pool2DOptions, opt)
    pads = [dims[0][1], dims[1][1], dims[0][2], dims[1][2]]
    attrs = dict(kernel_shape=k, strides=s, pads=pads)
    if not maxpool:
        attrs["count_include_pad"] = 0
    v = p.node("MaxPool" if maxpool else "AveragePool", [p.onnx_of[x]], f"{y}_pool", **attrs)
    p.quant(v, y)
    p.onnx_of[y] = p.dq(y)
    return y


def _add(p: _Pair, x: str, r: random.Random, n: int) -> str:
    partners = [v for v in p.onnx_of if v != x and p.shape[v] == p.shape[x]]
    if not partners:
        return x
    other = r.choice(partners)
    fb = p.fb
    code, act_onnx = _act(fb, r)
    y = f"t{n}_add"
    spread = 127 * (p.q[x][0] + p.q[other][0])
    yi = p.value(y, p.shape[x], _out_q(r, spread))
    opt = fb.AddOptionsT()
    opt.fusedActivationFunction = code
    p.tfl_op(fb.BuiltinOperator.ADD, [p.index[x], p.index[other]], [yi], fb.BuiltinOptions.AddOptions, opt)
    v = p.node("Add", [p.onnx_of[x], p.onnx_of[other]], f"{y}_sum")
    return _activate_and_quantize(p, v, y, act_onnx)


def _head(p: _Pair, x: str, r: random.Random, n: int) -> str:
    """MEAN over H and W (Keras GlobalAveragePooling2D), FULLY_CONNECTED, SOFTMAX -- each optional."""
    fb = p.fb
    kind = r.choice(["none", "mean", "mean_fc", "mean_fc_softmax", "fc_softmax"])
    if kind == "none":
        return x
    _, h, w, c = p.shape[x]
    cur, onnx_cur = x, p.onnx_of[x]
    if kind.startswith("mean"):
        y = f"t{n}_mean"
        yi = p.value(y, (1, c), _out_q(r, 127 * p.q[x][0] * 0.6))
        axes = p.tfl_tensor(f"{y}_axes", [2], fb.TensorType.INT32, np.array([1, 2], "<i4"))
        opt = fb.ReducerOptionsT()
        opt.keepDims = False
        p.tfl_op(fb.BuiltinOperator.MEAN, [p.index[x], axes], [yi], fb.BuiltinOptions.ReducerOptions, opt)
        v = p.node("ReduceMean", [onnx_cur], f"{y}_mean", axes=[2, 3], keepdims=0)
        p.quant(v, y)
        cur, onnx_cur = y, p.dq(y)
    else:  # flatten in TFLite's NHWC order
        if h * w * c > 2048:
            return x
        t = p.node("Transpose", [p.int8_of.get(cur, cur)], f"t{n}_to_nhwc", perm=[0, 2, 3, 1])
        flat = p.node("Reshape", [t, p.const(f"t{n}_shape", np.array([1, h * w * c], np.int64))], f"t{n}_flat")
        p.q[flat] = p.q[cur]
        onnx_cur = p.dq(flat)
        p.shape[cur] = (1, h * w * c)  # TFLite's FULLY_CONNECTED flattens by itself
    if "fc" in kind:
        n_in = p.shape[cur][-1]
        units = r.choice([2, 4, 10, 12])
        rng = np.random.default_rng(r.randrange(2**32))
        w_int = rng.integers(-127, 128, size=(units, n_in)).astype(np.int8)
        w_scale = np.float32(rng.uniform(0.005, 0.02))
        b_scale = np.float32(np.float32(p.q[cur][0]) * w_scale)
        b_int = rng.integers(-3000, 3000, size=units).astype(np.int32)
        y = f"t{n}_fc"
        spread = float(p.q[cur][0]) * 127 * float(w_scale) * 127 * np.sqrt(n_in) * 0.5
        wi = p.tfl_tensor(f"{y}_w", w_int.shape, fb.TensorType.INT8, w_int, w_scale, 0)
        bi = p.tfl_tensor(f"{y}_b", [units], fb.TensorType.INT32, b_int, b_scale, 0)
        yi = p.value(y, (1, units), _out_q(r, spread))
        opt = fb.FullyConnectedOptionsT()
        p.tfl_op(fb.BuiltinOperator.FULLY_CONNECTED, [p.index[cur], wi, bi], [yi],
                 fb.BuiltinOptions.FullyConnectedOptions, opt)
        w_dq = p.dq_const(f"{y}_w", w_int, w_scale, per_channel=False)
        b_dq = p.dq_const(f"{y}_b", b_int, b_scale, per_channel=False)
        v = p.node("Gemm", [onnx_cur, w_dq, b_dq], f"{y}_gemm", transB=1)
        p.quant(v, y)
        cur, onnx_cur = y, p.dq(y)
    if kind.endswith("softmax"):
        y = f"t{n}_softmax"
        yi = p.value(y, p.shape[cur], (1.0 / 256, -128))
        opt = fb.SoftmaxOptionsT()
        opt.beta = 1.0
        p.tfl_op(fb.BuiltinOperator.SOFTMAX, [p.index[cur]], [yi], fb.BuiltinOptions.SoftmaxOptions, opt)
        v = p.node("Softmax", [onnx_cur], f"{y}_softmax", axis=-1)
        p.quant(v, y)
        cur, onnx_cur = y, p.dq(y)
    p.onnx_of[cur] = onnx_cur
    return cur


def build_pair(recipe: Recipe) -> tuple[onnx.ModelProto, bytes]:
    """(the tf2onnx-style QDQ model, the .tflite file) of a tflite-route recipe."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    r0 = random.Random(recipe.seed)
    p = _Pair(fb)
    p.onnx_of = {}
    _, c, h, w = recipe.shape
    x = "input"
    xi = p.value(x, (1, h, w, c), (float(np.float32(r0.choice([0.01, 0.02, 0.05, 0.1]))), r0.randint(-128, 127)))
    # tf2onnx moves layout changes to the int8 side: Transpose, then DequantizeLinear
    p.node("Transpose", [x], "input_nchw", perm=[0, 3, 1, 2])
    p.q["input_nchw"] = p.q[x]
    p.onnx_of[x] = p.dq("input_nchw")
    p.int8_of = {x: "input_nchw"}
    for n, (kind, seed) in enumerate(recipe.steps):
        r = random.Random(seed)
        if kind in ("conv", "dwconv"):
            x = _conv(p, x, r, n, kind == "dwconv")
        elif kind == "pool":
            x = _pool(p, x, r, n)
        elif kind == "add":
            x = _add(p, x, r, n)
        elif kind == "head":
            x = _head(p, x, r, n)
    # the output: int8 as TFLite gives it, NHWC again for 4-D values
    if len(p.shape[x]) == 4:
        p.node("Transpose", [p.int8_of.get(x, x)], "output", perm=[0, 2, 3, 1])
    else:
        p.node("Identity", [p.int8_of.get(x, x)], "output")
    graph = helper.make_graph(p.nodes, "tflite_fuzz", [helper.make_tensor_value_info("input", TensorProto.INT8, [1, h, w, c])],
                              [helper.make_tensor_value_info("output", TensorProto.INT8, list(p.shape[x]))], p.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tf2onnx")
    model.ir_version = 8
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = p.tensors, [xi], [p.index[x]], p.ops
    sub.name = "main"
    m = fb.ModelT()
    m.version, m.subgraphs, m.buffers = 3, [sub], p.buffers
    codes = []
    for code in p.codes:
        oc = fb.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        codes.append(oc)
    m.operatorCodes = codes
    b = flatbuffers.Builder(4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return model, bytes(b.Output())
