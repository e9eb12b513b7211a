"""Single-operator .tflite models, int8 and float32, for every operator the TFLite frontend reads
(tests/test_tflite.py runs each in tinyc and in TFLite Micro)."""
from __future__ import annotations

import numpy as np

from .tflite_builders import model_bytes

_RNG = np.random.default_rng(1234)
QX, QY = ((0.05,), (3,), 0), ((0.07,), (-5,), 0)


def _act(name, shape, int8, q=QX):
    return dict(name=name, shape=shape, type="s8" if int8 else "f32", q=q if int8 else None)


def _weights(name, shape, int8, axis=0):
    if not int8:
        return dict(name=name, shape=shape, type="f32", data=_RNG.standard_normal(shape).astype(np.float32) * 0.3)
    ch = shape[axis]
    return dict(name=name, shape=shape, type="s8", data=_RNG.integers(-127, 128, shape).astype(np.int8),
                q=(list(_RNG.uniform(0.002, 0.01, ch)), [0] * ch, axis))


def _bias(name, n, int8, wq=None):
    if not int8:
        return dict(name=name, shape=(n,), type="f32", data=_RNG.standard_normal(n).astype(np.float32))
    scales = [QX[0][0] * s for s in wq]
    return dict(name=name, shape=(n,), type="s32", data=_RNG.integers(-3000, 3000, n).astype(np.int32),
                q=(scales, [0] * n, 0))


def _unary(op, shape, int8, options=None, qy=QY, out_shape=None):
    ts = [_act("x", shape, int8), _act("y", out_shape or shape, int8, qy)]
    return model_bytes(op, ts, [0], [1], [0], [1], options)


def _with_const(op, shape, const, int8, options=None, out_shape=None, qy=QY, const_type="s32"):
    ts = [_act("x", shape, int8), dict(name="c", shape=const.shape, type=const_type, data=const),
          _act("y", out_shape, int8, qy)]
    return model_bytes(op, ts, [0], [2], [0, 1], [2], options)


def conv(int8, padding=0, stride=1, act=1, dilation=1):
    w = _weights("w", (6, 3, 3, 4), int8)
    b = _bias("b", 6, int8, w.get("q", [None])[0] if int8 else None)
    out = (1, -(-9 // stride), -(-9 // stride), 6) if padding == 0 else (1, (9 - 2 * dilation - 1) // stride + 1,
                                                                          (9 - 2 * dilation - 1) // stride + 1, 6)
    ts = [_act("x", (1, 9, 9, 4), int8), w, b, _act("y", out, int8)]
    opts = ("Conv2DOptions", dict(padding=padding, strideH=stride, strideW=stride, fusedActivationFunction=act,
                                  dilationHFactor=dilation, dilationWFactor=dilation))
    return model_bytes("CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=3 if int8 else 1)


def depthwise(int8, multiplier=1, padding=0, stride=1):
    m = 3 * multiplier
    w = _weights("w", (1, 3, 3, m), int8, axis=3)
    b = _bias("b", m, int8, w.get("q", [None])[0] if int8 else None)
    side = -(-8 // stride) if padding == 0 else (8 - 3) // stride + 1
    ts = [_act("x", (1, 8, 8, 3), int8), w, b, _act("y", (1, side, side, m), int8)]
    opts = ("DepthwiseConv2DOptions", dict(padding=padding, strideH=stride, strideW=stride, depthMultiplier=multiplier,
                                           fusedActivationFunction=3, dilationHFactor=1, dilationWFactor=1))
    return model_bytes("DEPTHWISE_CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=3 if int8 else 1)


def fully_connected(int8, keep_num_dims=False):
    w = _weights("w", (5, 12), int8)
    b = _bias("b", 5, int8, w.get("q", [None])[0] if int8 else None)
    out = (2, 3, 5) if keep_num_dims else (6, 5)
    ts = [_act("x", (2, 3, 12), int8), w, b, _act("y", out, int8)]
    opts = ("FullyConnectedOptions", dict(fusedActivationFunction=1, keepNumDims=keep_num_dims))
    return model_bytes("FULLY_CONNECTED", ts, [0], [3], [0, 1, 2], [3], opts, version=4 if int8 else 1)


def binary(op, int8, broadcast=False):
    qb = ((0.03,), (-7,), 0)
    ts = [_act("a", (1, 4, 4, 3), int8), _act("b", (1, 1, 1, 3) if broadcast else (1, 4, 4, 3), int8, qb),
          _act("y", (1, 4, 4, 3), int8, ((0.1 if op == "MUL" else 0.06,), (2,), 0))]
    kind = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
    return model_bytes(op, ts, [0, 1], [2], [0, 1], [2], (kind, dict(fusedActivationFunction=0)),
                       version=2 if int8 else 1)


def pool(op, int8, padding=0):
    side = 4 if padding == 0 else 3
    opts = ("Pool2DOptions", dict(padding=padding, strideH=2, strideW=2, filterHeight=3, filterWidth=3,
                                  fusedActivationFunction=0))
    return _unary(op, (1, 7, 7, 5), int8, opts, qy=QX, out_shape=(1, side, side, 5))


def mean(int8, keep):
    return _with_const("MEAN", (1, 5, 6, 4), np.array([1, 2], np.int32), int8, ("ReducerOptions", dict(keepDims=keep)),
                       out_shape=(1, 1, 1, 4) if keep else (1, 4))


def reshape(int8):
    return _with_const("RESHAPE", (1, 4, 6), np.array([1, 24], np.int32), int8, out_shape=(1, 24), qy=QX)


def squeeze(int8):
    return _unary("SQUEEZE", (1, 1, 5, 1, 3), int8, ("SqueezeOptions", dict(squeezeDims=[1, 3])), qy=QX,
                  out_shape=(1, 5, 3))


def softmax(int8):
    return _unary("SOFTMAX", (2, 10), int8, ("SoftmaxOptions", dict(beta=1.0)), qy=((1 / 256,), (-128,), 0))


def activation(op, int8):
    # TFLite's fixed output parameters; RELU6 keeps the input's (TFLite Micro clamps in its units)
    qy = {"LOGISTIC": ((1 / 256,), (-128,), 0), "TANH": ((1 / 128,), (0,), 0), "RELU6": QX}.get(op, QY)
    opts = ("LeakyReluOptions", dict(alpha=0.2)) if op == "LEAKY_RELU" else None
    return _unary(op, (1, 6, 7, 3), int8, opts, qy=qy)


def pad(int8, v2=False):
    pads = np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32)
    ts = [_act("x", (1, 4, 4, 3), int8), dict(name="p", shape=(4, 2), type="s32", data=pads)]
    if v2:
        ts.append(dict(name="v", shape=(1,), type="s8" if int8 else "f32",
                       data=np.array([7], np.int8) if int8 else np.array([1.5], np.float32), q=QX if int8 else None))
    ts.append(_act("y", (1, 7, 7, 3), int8))
    n = len(ts) - 1
    return model_bytes("PADV2" if v2 else "PAD", ts, [0], [n], list(range(n)), [n])


def concat(int8):
    # (TFLite Micro requires one quantization for the inputs and the output)
    ts = [_act("a", (1, 3, 3, 2), int8), _act("b", (1, 3, 3, 4), int8), _act("y", (1, 3, 3, 6), int8)]
    return model_bytes("CONCATENATION", ts, [0, 1], [2], [0, 1], [2],
                       ("ConcatenationOptions", dict(axis=3, fusedActivationFunction=0)))


def strided_slice(int8, shrink=False):
    begin, end, strides = np.array([0, 1, 0, 1], np.int32), np.array([1, 6, 5, 3], np.int32), np.array([1, 2, 1, 1], np.int32)
    ts = [_act("x", (1, 7, 5, 4), int8)] + [dict(name=k, shape=(4,), type="s32", data=v) for k, v in
                                              (("b", begin), ("e", end), ("s", strides))]
    ts.append(_act("y", (1, 3, 5) if shrink else (1, 3, 5, 2), int8, QX))
    opts = ("StridedSliceOptions", dict(beginMask=4, endMask=0, shrinkAxisMask=8 if shrink else 0))
    return model_bytes("STRIDED_SLICE", ts, [0], [4], [0, 1, 2, 3], [4], opts)


def transpose(int8):
    return _with_const("TRANSPOSE", (1, 3, 4, 5), np.array([0, 2, 3, 1], np.int32), int8, out_shape=(1, 4, 5, 3), qy=QX)


def quantize(from_float):
    ts = [dict(name="x", shape=(1, 10), type="f32") if from_float else _act("x", (1, 10), True),
          _act("y", (1, 10), True, QY)]
    return model_bytes("QUANTIZE", ts, [0], [1], [0], [1])


def dequantize():
    ts = [_act("x", (1, 10), True), dict(name="y", shape=(1, 10), type="f32")]
    return model_bytes("DEQUANTIZE", ts, [0], [1], [0], [1])


def transpose_conv(int8, padding=0):
    w = _weights("w", (4, 3, 3, 2), int8)
    side = 10 if padding == 0 else 11
    out = np.array([1, side, side, 4], np.int32)
    ts = [dict(name="shape", shape=(4,), type="s32", data=out), w, _act("x", (1, 5, 5, 2), int8),
          _act("y", tuple(out), int8)]
    opts = ("TransposeConvOptions", dict(padding=padding, strideH=2, strideW=2))
    return model_bytes("TRANSPOSE_CONV", ts, [2], [3], [0, 1, 2], [3], opts)


def cases() -> dict[str, object]:
    """name -> a function of nothing giving the model bytes."""
    out = {}
    for int8 in (True, False):
        k = "int8" if int8 else "f32"
        out.update({
            f"conv_same_{k}": lambda i=int8: conv(i),
            f"conv_valid_stride2_{k}": lambda i=int8: conv(i, padding=1, stride=2, act=3),
            f"conv_same_stride2_{k}": lambda i=int8: conv(i, stride=2, act=0),
            f"conv_dilated_{k}": lambda i=int8: conv(i, padding=1, dilation=2),
            f"depthwise_{k}": lambda i=int8: depthwise(i),
            f"depthwise_mult2_stride2_{k}": lambda i=int8: depthwise(i, 2, stride=2),
            f"fully_connected_{k}": lambda i=int8: fully_connected(i),
            f"fully_connected_keep_dims_{k}": lambda i=int8: fully_connected(i, True),
            f"add_{k}": lambda i=int8: binary("ADD", i),
            f"add_broadcast_{k}": lambda i=int8: binary("ADD", i, True),
            f"sub_{k}": lambda i=int8: binary("SUB", i),
            f"mul_{k}": lambda i=int8: binary("MUL", i),
            f"average_pool_valid_{k}": lambda i=int8: pool("AVERAGE_POOL_2D", i, 1),
            f"average_pool_same_{k}": lambda i=int8: pool("AVERAGE_POOL_2D", i, 0),
            f"max_pool_same_{k}": lambda i=int8: pool("MAX_POOL_2D", i, 0),
            f"mean_{k}": lambda i=int8: mean(i, True),
            f"mean_no_keep_{k}": lambda i=int8: mean(i, False),
            f"reshape_{k}": lambda i=int8: reshape(i),
            f"squeeze_{k}": lambda i=int8: squeeze(i),
            f"softmax_{k}": lambda i=int8: softmax(i),
            f"pad_{k}": lambda i=int8: pad(i),
            f"padv2_{k}": lambda i=int8: pad(i, True),
            f"concatenation_{k}": lambda i=int8: concat(i),
            f"strided_slice_{k}": lambda i=int8: strided_slice(i),
            f"strided_slice_shrink_{k}": lambda i=int8: strided_slice(i, True),
            f"transpose_{k}": lambda i=int8: transpose(i),
        })
        for op in ("LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH"):
            out[f"{op.lower()}_{k}"] = lambda o=op, i=int8: activation(o, i)
    out["transpose_conv_same_f32"] = lambda: transpose_conv(False)
    out["transpose_conv_valid_f32"] = lambda: transpose_conv(False, padding=1)
    out["quantize_f32_to_int8"] = lambda: quantize(True)
    out["quantize_requantize_int8"] = lambda: quantize(False)
    out["dequantize_int8"] = dequantize
    return out
