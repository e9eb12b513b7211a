"""Small valid .tflite models, int8 and float, written with the schema classes the `tflite-micro`
package ships (its object API: ModelT and friends). They are the seeds of the .tflite fuzzing
(tests/fuzz_tflite.py) and the valid starting point of tests/test_tflite_file.py; TFLite Micro
runs each of them (tests/test_tflite_file.py checks it), so they are valid TFLite by its judgment,
not only by tinyc's.

    TfliteBuilder   tensors, operators and buffers, then ``model()`` (a ModelT); examples/tflite_builder.py
    SEEDS           name -> builder function (a numpy Generator -> TfliteBuilder)
    seed_model(name) / serialize(model)
"""
from __future__ import annotations

import numpy as np

from .tflite_builders import _schema, examples_module

_builder = examples_module("tflite_builder")
serialize, _options = _builder.serialize, _builder.options


class TfliteBuilder(_builder.TfliteBuilder):
    """The examples' builder; a test skips (fails in CI) where tflite-micro is missing."""

    def __init__(self, description: str = "tinyc test model"):
        _schema()
        super().__init__(description)


# --------------------------------------------------------------------------------------------
# int8 seeds: activations per tensor, weights symmetric per output channel, int32 biases
# --------------------------------------------------------------------------------------------

def _w8(rng, *shape):
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def int8_cnn(rng) -> TfliteBuilder:
    """CONV_2D (SAME, relu) -> DEPTHWISE_CONV_2D (VALID, x2) -> AVERAGE_POOL_2D -> RESHAPE ->
    FULLY_CONNECTED -> SOFTMAX."""
    B = TfliteBuilder("int8 cnn")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    sx, sw1, sw2 = 0.05, np.array([0.01, 0.02, 0.015, 0.03]), np.linspace(0.01, 0.04, 8)
    x = B.tensor("input", [1, 8, 8, 2], T.INT8, q=B.quant(sx, -3))
    w1 = B.tensor("conv/w", [4, 3, 3, 2], T.INT8, _w8(rng, 4, 3, 3, 2), B.quant(sw1, [0] * 4, 0))
    b1 = B.tensor("conv/b", [4], T.INT32, rng.integers(-300, 300, 4).astype(np.int32), B.quant(sx * sw1, [0] * 4, 0))
    c1 = B.tensor("conv", [1, 8, 8, 4], T.INT8, q=B.quant(0.08, -128))
    B.op(Op.CONV_2D, [x, w1, b1], [c1], *_options(fb, "Conv2DOptions", padding=fb.Padding.SAME, strideW=1, strideH=1,
                                                  fusedActivationFunction=fb.ActivationFunctionType.RELU))
    w2 = B.tensor("dw/w", [1, 3, 3, 8], T.INT8, _w8(rng, 1, 3, 3, 8), B.quant(sw2, [0] * 8, 3))
    b2 = B.tensor("dw/b", [8], T.INT32, rng.integers(-300, 300, 8).astype(np.int32), B.quant(0.08 * sw2, [0] * 8, 0))
    c2 = B.tensor("dw", [1, 6, 6, 8], T.INT8, q=B.quant(0.1, 2))
    B.op(Op.DEPTHWISE_CONV_2D, [c1, w2, b2], [c2], *_options(fb, "DepthwiseConv2DOptions", padding=fb.Padding.VALID,
                                                             strideW=1, strideH=1, depthMultiplier=2))
    p = B.tensor("pool", [1, 3, 3, 8], T.INT8, q=B.quant(0.1, 2))
    B.op(Op.AVERAGE_POOL_2D, [c2], [p], *_options(fb, "Pool2DOptions", padding=fb.Padding.VALID, strideW=2, strideH=2,
                                                  filterWidth=2, filterHeight=2))
    shape = B.tensor("flat/shape", [2], T.INT32, np.array([1, 72], np.int32))
    f = B.tensor("flat", [1, 72], T.INT8, q=B.quant(0.1, 2))
    B.op(Op.RESHAPE, [p, shape], [f], *_options(fb, "ReshapeOptions", newShape=[1, 72]))
    w3 = B.tensor("fc/w", [5, 72], T.INT8, _w8(rng, 5, 72), B.quant(0.02, 0))
    b3 = B.tensor("fc/b", [5], T.INT32, rng.integers(-500, 500, 5).astype(np.int32), B.quant(0.1 * 0.02, 0))
    y0 = B.tensor("fc", [1, 5], T.INT8, q=B.quant(0.2, 10))
    B.op(Op.FULLY_CONNECTED, [f, w3, b3], [y0], *_options(fb, "FullyConnectedOptions"))
    y = B.tensor("probs", [1, 5], T.INT8, q=B.quant(1 / 256, -128))
    B.op(Op.SOFTMAX, [y0], [y], *_options(fb, "SoftmaxOptions", beta=1.0))
    B.io = ([x], [y])
    return B


def int8_blocks(rng) -> TfliteBuilder:
    """PAD -> MAX_POOL_2D -> ADD (of a constant) -> CONCATENATION (with the pooled tensor) -> MEAN."""
    B = TfliteBuilder("int8 blocks")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    q = (0.04, 1)
    x = B.tensor("input", [1, 6, 6, 3], T.INT8, q=B.quant(*q))
    pads = B.tensor("pad/pads", [4, 2], T.INT32, np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    xp = B.tensor("pad", [1, 8, 8, 3], T.INT8, q=B.quant(*q))
    B.op(Op.PAD, [x, pads], [xp], *_options(fb, "PadOptions"))
    mp = B.tensor("maxpool", [1, 4, 4, 3], T.INT8, q=B.quant(*q))
    B.op(Op.MAX_POOL_2D, [xp], [mp], *_options(fb, "Pool2DOptions", padding=fb.Padding.VALID, strideW=2, strideH=2,
                                                filterWidth=2, filterHeight=2))
    k = B.tensor("add/k", [1, 1, 1, 3], T.INT8, _w8(rng, 1, 1, 1, 3), B.quant(0.03, -2))
    a = B.tensor("add", [1, 4, 4, 3], T.INT8, q=B.quant(*q))
    B.op(Op.ADD, [mp, k], [a], *_options(fb, "AddOptions"))
    cat = B.tensor("concat", [1, 4, 4, 6], T.INT8, q=B.quant(*q))
    B.op(Op.CONCATENATION, [a, mp], [cat], *_options(fb, "ConcatenationOptions", axis=3))
    axes = B.tensor("mean/axes", [2], T.INT32, np.array([1, 2], np.int32))
    y = B.tensor("mean", [1, 6], T.INT8, q=B.quant(0.03, -5))
    B.op(Op.MEAN, [cat, axes], [y], *_options(fb, "ReducerOptions", keepDims=False))
    B.io = ([x], [y])
    return B


# --------------------------------------------------------------------------------------------
# float seeds
# --------------------------------------------------------------------------------------------

def _wf(rng, *shape):
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def float_cnn(rng) -> TfliteBuilder:
    """CONV_2D (relu6) -> MAX_POOL_2D -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX."""
    B = TfliteBuilder("float cnn")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    x = B.tensor("input", [1, 6, 6, 1], T.FLOAT32)
    w = B.tensor("conv/w", [3, 3, 3, 1], T.FLOAT32, _wf(rng, 3, 3, 3, 1))
    b = B.tensor("conv/b", [3], T.FLOAT32, _wf(rng, 3))
    c = B.tensor("conv", [1, 6, 6, 3], T.FLOAT32)
    B.op(Op.CONV_2D, [x, w, b], [c], *_options(fb, "Conv2DOptions", padding=fb.Padding.SAME, strideW=1, strideH=1,
                                               fusedActivationFunction=fb.ActivationFunctionType.RELU6))
    p = B.tensor("pool", [1, 3, 3, 3], T.FLOAT32)
    B.op(Op.MAX_POOL_2D, [c], [p], *_options(fb, "Pool2DOptions", padding=fb.Padding.VALID, strideW=2, strideH=2,
                                              filterWidth=2, filterHeight=2))
    shape = B.tensor("flat/shape", [2], T.INT32, np.array([1, 27], np.int32))
    f = B.tensor("flat", [1, 27], T.FLOAT32)
    B.op(Op.RESHAPE, [p, shape], [f], *_options(fb, "ReshapeOptions", newShape=[1, 27]))
    fw = B.tensor("fc/w", [4, 27], T.FLOAT32, _wf(rng, 4, 27))
    fbias = B.tensor("fc/b", [4], T.FLOAT32, _wf(rng, 4))
    y0 = B.tensor("fc", [1, 4], T.FLOAT32)
    B.op(Op.FULLY_CONNECTED, [f, fw, fbias], [y0], *_options(fb, "FullyConnectedOptions"))
    y = B.tensor("probs", [1, 4], T.FLOAT32)
    B.op(Op.SOFTMAX, [y0], [y], *_options(fb, "SoftmaxOptions", beta=1.0))
    B.io = ([x], [y])
    return B


def float_blocks(rng) -> TfliteBuilder:
    """DEPTHWISE_CONV_2D (SAME) -> PAD -> AVERAGE_POOL_2D -> ADD (a second input) ->
    CONCATENATION -> MEAN."""
    B = TfliteBuilder("float blocks")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    x = B.tensor("input", [1, 4, 4, 2], T.FLOAT32)
    x2 = B.tensor("input2", [1, 3, 3, 2], T.FLOAT32)
    w = B.tensor("dw/w", [1, 3, 3, 2], T.FLOAT32, _wf(rng, 1, 3, 3, 2))
    b = B.tensor("dw/b", [2], T.FLOAT32, _wf(rng, 2))
    d = B.tensor("dw", [1, 4, 4, 2], T.FLOAT32)
    B.op(Op.DEPTHWISE_CONV_2D, [x, w, b], [d], *_options(fb, "DepthwiseConv2DOptions", padding=fb.Padding.SAME,
                                                         strideW=1, strideH=1, depthMultiplier=1))
    pads = B.tensor("pad/pads", [4, 2], T.INT32, np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    p = B.tensor("pad", [1, 6, 6, 2], T.FLOAT32)
    B.op(Op.PAD, [d, pads], [p], *_options(fb, "PadOptions"))
    ap = B.tensor("avgpool", [1, 3, 3, 2], T.FLOAT32)
    B.op(Op.AVERAGE_POOL_2D, [p], [ap], *_options(fb, "Pool2DOptions", padding=fb.Padding.VALID, strideW=2, strideH=2,
                                                  filterWidth=2, filterHeight=2))
    s = B.tensor("add", [1, 3, 3, 2], T.FLOAT32)
    B.op(Op.ADD, [ap, x2], [s], *_options(fb, "AddOptions", fusedActivationFunction=fb.ActivationFunctionType.RELU))
    cat = B.tensor("concat", [1, 3, 3, 4], T.FLOAT32)
    B.op(Op.CONCATENATION, [s, ap], [cat], *_options(fb, "ConcatenationOptions", axis=-1))
    axes = B.tensor("mean/axes", [2], T.INT32, np.array([1, 2], np.int32))
    y = B.tensor("mean", [1, 1, 1, 4], T.FLOAT32)
    B.op(Op.MEAN, [cat, axes], [y], *_options(fb, "ReducerOptions", keepDims=True))
    B.io = ([x, x2], [y])
    return B


SEEDS = {"int8_cnn": int8_cnn, "int8_blocks": int8_blocks, "float_cnn": float_cnn, "float_blocks": float_blocks}


def seed_model(name: str):
    """A fresh ModelT of a seed (the same every time)."""
    b = SEEDS[name](np.random.default_rng(1234))
    return b.model(*b.io)
