"""MobileNetV1 with width multiplier 0.25 on a 96x96x3 int8 image, the architecture of the MLPerf
Tiny visual-wake-words model, written as the TFLite converter writes an int8 model: per-channel
int8 weights with int32 biases, per-tensor int8 activations, ReLU6 fused into each convolution.

The weights are random, not trained: He-scaled, then each layer's outputs are normalized per
channel on a few calibration images (a batch normalization folded into the weights and bias, as
training would leave it) so that every layer sees activations of a sensible size. Each activation's
scale and zero point come from the range a float forward pass in numpy gives on those images
(ReLU6 layers: [0, min(6, max)]). Everything follows from the seed: the same bytes every time.

    python examples/vww/mobilenet_v1_025.py -o vww.tflite

As a module: ``model_bytes(seed)`` (the .tflite bytes), ``calibration_images(seed)`` (float
images in [0, 1], NHWC) and ``quantize_input(images)`` (the int8 model input).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tflite_builder import TfliteBuilder, options, serialize  # noqa: E402  (examples/tflite_builder.py)

SEED = 22
SIZE, CHANNELS, CLASSES = 96, 3, 2
INPUT_Q = (1 / 255, -128)  # pixels in [0, 1]
STEM = 8  # conv 3x3 stride 2
# (pointwise output channels, depthwise stride) of the 13 depthwise-separable blocks
BLOCKS = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
CALIB_IMAGES = 16


def calibration_images(seed: int = SEED, count: int = CALIB_IMAGES) -> np.ndarray:
    """Float images [count, 96, 96, 3] in [0, 1]: smooth random fields, gradients, stripes and
    noise (so that layers see both structure and texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    out = []
    for k in range(count):
        kind = k % 4
        if kind == 0:  # smooth field: 6x6 noise upsampled
            low = rng.random((6, 6, CHANNELS))
            img = np.kron(low, np.ones((SIZE // 6, SIZE // 6, 1)))
        elif kind == 1:  # gradient in a random direction per channel
            a = rng.uniform(0, 2 * np.pi, CHANNELS)
            img = np.stack([np.cos(t) * xx + np.sin(t) * yy for t in a], -1)
        elif kind == 2:  # stripes
            f = rng.uniform(2, 12, CHANNELS)
            img = np.stack([np.sin(2 * np.pi * fr * (xx + yy * (c + 1) / 3)) for c, fr in enumerate(f)], -1)
        else:  # noise
            img = rng.random((SIZE, SIZE, CHANNELS))
        img = img - img.min()
        out.append(img / max(float(img.max()), 1e-6))
    return np.stack(out).astype(np.float32)


def quantize_input(images: np.ndarray) -> np.ndarray:
    scale, zp = INPUT_Q
    return np.clip(np.round(images / scale) + zp, -128, 127).astype(np.int8)


def _same_pad(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TFLite SAME padding: the odd pixel goes after (bottom, right)."""
    h = x.shape[1]
    total = max((-(-h // stride) - 1) * stride + k - h, 0)
    return np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))


def _patches(x: np.ndarray, stride: int) -> np.ndarray:
    """[N, OH, OW, C, 3, 3] windows of the SAME-padded input."""
    win = np.lib.stride_tricks.sliding_window_view(_same_pad(x, 3, stride), (3, 3), axis=(1, 2))
    return win[:, ::stride, ::stride]


def conv3x3(x, w, b, stride):  # w [O, 3, 3, I]
    return np.einsum("nhwckl,oklc->nhwo", _patches(x, stride), w, optimize=True) + b


def depthwise3x3(x, w, b, stride):  # w [1, 3, 3, C]
    return np.einsum("nhwckl,klc->nhwc", _patches(x, stride), w[0], optimize=True) + b


def pointwise(x, w, b):  # w [O, 1, 1, I]
    return x @ w[:, 0, 0, :].T + b


def _normalized(rng, pre: np.ndarray, w: np.ndarray, axis_out: int):
    """Weights and bias of the layer with a batch normalization folded in: per output channel,
    the pre-activation on the calibration images becomes mean ``beta``, deviation ``gamma``."""
    flat = pre.reshape(-1, pre.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    c = pre.shape[-1]
    gamma, beta = rng.uniform(0.8, 1.4, c), rng.uniform(0.3, 1.0, c)
    shape = [1] * w.ndim
    shape[axis_out] = c
    return w * (gamma / std).reshape(shape), beta - mean * gamma / std


def float_layers(seed: int = SEED, images: np.ndarray | None = None) -> list[dict]:
    """The float network, layer by layer: kind ("conv", "dw", "pw", "avgpool", "fc"), stride,
    weights, bias and the layer's float output on the calibration images."""
    rng = np.random.default_rng(seed + 1)
    x = calibration_images(seed) if images is None else images
    layers = []

    def add(kind, stride, w, axis_out, run):
        nonlocal x
        fan_in = w.size // w.shape[axis_out]
        w = w * np.sqrt(2.0 / fan_in)
        w, b = _normalized(rng, run(x, w, 0.0), w, axis_out)
        y = np.clip(run(x, w, b), 0.0, 6.0)
        layers.append(dict(kind=kind, stride=stride, w=w.astype(np.float32), b=b, out=y))
        x = y

    add("conv", 2, rng.standard_normal((STEM, 3, 3, CHANNELS)), 0, lambda x, w, b: conv3x3(x, w, b, 2))
    c = STEM
    for out_c, stride in BLOCKS:
        add("dw", stride, rng.standard_normal((1, 3, 3, c)), 3, lambda x, w, b, s=stride: depthwise3x3(x, w, b, s))
        add("pw", 1, rng.standard_normal((out_c, 1, 1, c)), 0, pointwise)
        c = out_c
    x = x.mean(axis=(1, 2), keepdims=True)
    layers.append(dict(kind="avgpool", stride=x.shape[1], out=x))
    w = rng.standard_normal((CLASSES, c)) / np.sqrt(c)
    logits = x.reshape(len(x), c) @ w.T
    w = w * 1.5 / (logits.std() + 1e-6)  # logits of deviation 1.5: softmax neither flat nor one-hot
    b = -(x.reshape(len(x), c) @ w.T).mean(0)
    layers.append(dict(kind="fc", w=w.astype(np.float32), b=b, out=x.reshape(len(x), c) @ w.T + b))
    return layers


def _weights_q(w: np.ndarray, axis: int | None):
    """Symmetric int8 weights: per channel along ``axis``, or per tensor (None)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.abs(w).max(axis=red) / 127 if axis is not None else np.array([np.abs(w).max() / 127])
    scale = np.maximum(scale, 1e-9)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    return np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8), scale


def _act_q(lo: float, hi: float):
    """Asymmetric int8 parameters of a range that contains 0 (TFLite's nudging of the zero point)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255
    return scale, int(np.clip(np.round(-128 - lo / scale), -128, 127))


def build(seed: int = SEED) -> TfliteBuilder:
    layers = float_layers(seed)
    B = TfliteBuilder(f"MobileNetV1 0.25, 96x96x3 int8, random weights (seed {seed}); MLPerf Tiny VWW shape")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    x = image = B.tensor("input", [1, SIZE, SIZE, CHANNELS], T.INT8, q=B.quant(*INPUT_Q))
    in_q, shape = INPUT_Q, [1, SIZE, SIZE, CHANNELS]
    block = 0
    for i, L in enumerate(layers[:-2]):
        if L["kind"] == "dw":
            block += 1
        name = "conv_0" if L["kind"] == "conv" else f"block_{block}/{L['kind']}"
        axis = 3 if L["kind"] == "dw" else 0
        wq, ws = _weights_q(L["w"], axis)
        bq = np.round(L["b"] / (in_q[0] * ws)).astype(np.int32)
        w = B.tensor(f"{name}/weights", wq.shape, T.INT8, wq, B.quant(ws, [0] * len(ws), axis))
        b = B.tensor(f"{name}/bias", bq.shape, T.INT32, bq, B.quant(in_q[0] * ws, [0] * len(ws)))
        out_q = _act_q(0.0, min(6.0, float(L["out"].max())))
        shape = [1, *L["out"].shape[1:]]
        y = B.tensor(name, shape, T.INT8, q=B.quant(*out_q))
        common = dict(padding=fb.Padding.SAME, strideW=L["stride"], strideH=L["stride"],
                      fusedActivationFunction=fb.ActivationFunctionType.RELU6)
        if L["kind"] == "dw":
            B.op(Op.DEPTHWISE_CONV_2D, [x, w, b], [y],
                 *options(fb, "DepthwiseConv2DOptions", depthMultiplier=1, **common))
        else:
            B.op(Op.CONV_2D, [x, w, b], [y], *options(fb, "Conv2DOptions", **common))
        x, in_q = y, out_q
    k, c = shape[1], shape[3]
    pool = B.tensor("avgpool", [1, 1, 1, c], T.INT8, q=B.quant(*in_q))  # TFLite: same parameters as its input
    B.op(Op.AVERAGE_POOL_2D, [x], [pool], *options(fb, "Pool2DOptions", padding=fb.Padding.VALID, strideW=k,
                                                   strideH=k, filterWidth=k, filterHeight=k))
    new_shape = B.tensor("flatten/shape", [2], T.INT32, np.array([1, c], np.int32))
    flat = B.tensor("flatten", [1, c], T.INT8, q=B.quant(*in_q))
    B.op(Op.RESHAPE, [pool, new_shape], [flat], *options(fb, "ReshapeOptions", newShape=[1, c]))
    fc = layers[-1]
    wq, ws = _weights_q(fc["w"], None)  # fully connected: per-tensor weights, as the converter writes them
    bq = np.round(fc["b"] / (in_q[0] * ws)).astype(np.int32)
    w = B.tensor("dense/weights", wq.shape, T.INT8, wq, B.quant(ws, 0))
    b = B.tensor("dense/bias", bq.shape, T.INT32, bq, B.quant(in_q[0] * ws, 0))
    logits = B.tensor("dense", [1, CLASSES], T.INT8, q=B.quant(*_act_q(float(fc["out"].min()), float(fc["out"].max()))))
    B.op(Op.FULLY_CONNECTED, [flat, w, b], [logits], *options(fb, "FullyConnectedOptions"))
    probs = B.tensor("softmax", [1, CLASSES], T.INT8, q=B.quant(1 / 256, -128))
    B.op(Op.SOFTMAX, [logits], [probs], *options(fb, "SoftmaxOptions", beta=1.0))
    B.io = ([image], [probs])
    return B


def model_bytes(seed: int = SEED) -> bytes:
    b = build(seed)
    return serialize(b.model(*b.io))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", default="vww.tflite", help="the .tflite file to write (default: vww.tflite)")
    p.add_argument("--seed", type=int, default=SEED, help=f"weights and calibration images (default: {SEED})")
    a = p.parse_args(argv)
    data = model_bytes(a.seed)
    Path(a.output).write_bytes(data)
    print(f"wrote {a.output}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
