"""Single-operator .tflite models in TFLite's 16x8 scheme (int16 activations with zero point 0,
int8 weights per channel, int64 or int32 biases) for the operators and shapes the seanet models do
not cover (tests/test_int16x8.py runs each in tinyc and in TFLite Micro)."""
from __future__ import annotations

import numpy as np

from .tflite_builders import model_bytes

_RNG = np.random.default_rng(1616)
SX, SY = 0.0004, 0.0009  # activation scales (zero points 0)


def _act(name, shape, scale=SX):
    return dict(name=name, shape=shape, type="s16", q=((scale,), (0,), 0))


def _weights(name, shape, axis=0):
    ch = shape[axis]
    return dict(name=name, shape=shape, type="s8", data=_RNG.integers(-127, 128, shape).astype(np.int8),
                q=(list(_RNG.uniform(0.002, 0.01, ch)), [0] * ch, axis))


def _bias(name, w, bits=64):
    scales = [SX * s for s in w["q"][0]]
    n = len(scales)
    dtype = np.int64 if bits == 64 else np.int32
    return dict(name=name, shape=(n,), type=f"s{bits}", data=_RNG.integers(-40000, 40000, n).astype(dtype),
                q=(scales, [0] * n, 0))


def conv(padding=0, stride=1, act=0, bits=64, shape=(1, 7, 9, 5), m=6, k=(3, 3)):
    w = _weights("w", (m, k[0], k[1], shape[3]))
    b = _bias("b", w, bits)
    oh = -(-shape[1] // stride) if padding == 0 else (shape[1] - k[0]) // stride + 1
    ow = -(-shape[2] // stride) if padding == 0 else (shape[2] - k[1]) // stride + 1
    ts = [_act("x", shape), w, b, _act("y", (1, oh, ow, m), SY)]
    opts = ("Conv2DOptions", dict(padding=padding, strideH=stride, strideW=stride, fusedActivationFunction=act,
                                  dilationHFactor=1, dilationWFactor=1))
    return model_bytes("CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=4)


def depthwise(multiplier=1, padding=0, stride=1, act=0):
    c = 3
    m = c * multiplier
    w = _weights("w", (1, 3, 3, m), axis=3)
    b = _bias("b", w)
    side = -(-8 // stride) if padding == 0 else (8 - 3) // stride + 1
    ts = [_act("x", (1, 8, 7, c)), w, b, _act("y", (1, side, -(-7 // stride) if padding == 0 else (7 - 3) // stride + 1, m), SY)]
    opts = ("DepthwiseConv2DOptions", dict(padding=padding, strideH=stride, strideW=stride, depthMultiplier=multiplier,
                                           fusedActivationFunction=act, dilationHFactor=1, dilationWFactor=1))
    return model_bytes("DEPTHWISE_CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=5)


def fully_connected(bits=64, keep_num_dims=False, act=0):
    w = _weights("w", (5, 13))
    b = _bias("b", w, bits)
    out = (2, 3, 5) if keep_num_dims else (6, 5)
    ts = [_act("x", (2, 3, 13)), w, b, _act("y", out, SY)]
    opts = ("FullyConnectedOptions", dict(fusedActivationFunction=act, keepNumDims=keep_num_dims))
    return model_bytes("FULLY_CONNECTED", ts, [0], [3], [0, 1, 2], [3], opts, version=7)


def binary(op, broadcast=False, act=0):
    ts = [_act("a", (1, 5, 3, 7)), _act("b", (1, 1, 3, 7) if broadcast else (1, 5, 3, 7), 0.0007),
          _act("y", (1, 5, 3, 7), 0.01 if op == "MUL" else SY)]
    kind = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
    return model_bytes(op, ts, [0, 1], [2], [0, 1], [2], (kind, dict(fusedActivationFunction=act)), version=4)


def concat(axis=3):
    ts = [_act("a", (1, 3, 5, 2)), _act("b", (1, 3, 5, 3)), _act("y", (1, 3, 5, 5))] if axis == 3 else \
         [_act("a", (1, 2, 5, 3)), _act("b", (1, 4, 5, 3)), _act("y", (1, 6, 5, 3))]
    return model_bytes("CONCATENATION", ts, [0, 1], [2], [0, 1], [2],
                       ("ConcatenationOptions", dict(axis=axis, fusedActivationFunction=0)), version=3)


def reshape():
    shape = np.array([3, 35], np.int32)
    ts = [_act("x", (1, 5, 3, 7)), dict(name="s", shape=(2,), type="s32", data=shape), _act("y", (3, 35))]
    return model_bytes("RESHAPE", ts, [0], [2], [0, 1], [2], ("ReshapeOptions", dict(newShape=[3, 35])))


def leaky_relu(alpha):
    ts = [_act("x", (1, 4, 5, 3)), _act("y", (1, 4, 5, 3), SY)]
    return model_bytes("LEAKY_RELU", ts, [0], [1], [0], [1], ("LeakyReluOptions", dict(alpha=alpha)), version=2)


def quantize(to8: bool):
    """int16 -> int8, or int8 -> int16 (TFLite's requantization)."""
    x = _act("x", (1, 4, 5, 3)) if to8 else dict(name="x", shape=(1, 4, 5, 3), type="s8", q=((0.02,), (-3,), 0))
    y = dict(name="y", shape=(1, 4, 5, 3), type="s8", q=((0.12,), (5,), 0)) if to8 else _act("y", (1, 4, 5, 3), SY)
    return model_bytes("QUANTIZE", [x, y], [0], [1], [0], [1], version=2)


def transpose_conv(padding=0, stride=2, shape=(1, 3, 4, 5), m=4, k=(3, 3)):
    oh, ow = (shape[1] * stride, shape[2] * stride) if padding == 0 else \
        ((shape[1] - 1) * stride + k[0], (shape[2] - 1) * stride + k[1])
    w = _weights("w", (m, k[0], k[1], shape[3]))
    b = _bias("b", w)
    ts = [dict(name="shape", shape=(4,), type="s32", data=np.array([1, oh, ow, m], np.int32)), w, _act("x", shape), b,
          _act("y", (1, oh, ow, m), SY)]
    opts = ("TransposeConvOptions", dict(padding=padding, strideH=stride, strideW=stride))
    return model_bytes("TRANSPOSE_CONV", ts, [2], [4], [0, 1, 2, 3], [4], opts, version=3)


def cases() -> dict[str, object]:
    """name -> a function of nothing giving the model bytes."""
    return {
        "conv_same_relu": lambda: conv(act=1),
        "conv_valid_stride2": lambda: conv(padding=1, stride=2),
        "conv_int32_bias": lambda: conv(bits=32),
        "conv_1x1": lambda: conv(k=(1, 1), shape=(1, 3, 5, 16), m=7),
        "conv_13_channels": lambda: conv(shape=(1, 4, 5, 13), m=6),
        "depthwise": lambda: depthwise(),
        "depthwise_multiplier2_stride2_relu6": lambda: depthwise(multiplier=2, stride=2, act=3),
        "fully_connected": lambda: fully_connected(),
        "fully_connected_int32_bias_relu": lambda: fully_connected(bits=32, act=1),
        "fully_connected_keep_num_dims": lambda: fully_connected(keep_num_dims=True),
        "mul": lambda: binary("MUL"),
        "mul_broadcast_relu": lambda: binary("MUL", broadcast=True, act=1),
        "add_broadcast": lambda: binary("ADD", broadcast=True),
        "sub_relu6": lambda: binary("SUB", act=3),
        "concat_channels": lambda: concat(3),
        "concat_rows": lambda: concat(1),
        "reshape": reshape,
        "leaky_relu_0.2": lambda: leaky_relu(0.2),
        "leaky_relu_negative_alpha": lambda: leaky_relu(-0.3),
        "quantize_16_to_8": lambda: quantize(True),
        "quantize_8_to_16": lambda: quantize(False),
        "transpose_conv_same": lambda: transpose_conv(),
        "transpose_conv_valid_odd": lambda: transpose_conv(padding=1, stride=3, shape=(1, 2, 3, 3), k=(4, 3)),
    }
