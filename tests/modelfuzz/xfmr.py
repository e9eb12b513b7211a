"""The fuzzer's transformer layers: LayerNormalization and the decomposed form PyTorch's opset <= 16
exports write (ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add), Gelu (opset 20, both
approximations) and its erf and tanh spellings, Erf, MatMul of two activations (attention scores:
ranks 2 to 4, broadcast batch) and Resize on 4-D inputs (linear with TFLite's four coordinate
modes, or nearest).

A recipe gets them as extra steps drawn from their own RNG (``add_steps``), so the steps and
models of seeds that draw none stay what they were.
"""
from __future__ import annotations

import math
import random

import numpy as np

from .gen import Builder, Skip, _w

# PyTorch writes a decomposed GELU's and LayerNorm's Div; for int8 recipes it is fused away first
# (fuse-transformer runs before quantization), so these nodes bypass INT8_MISSING.
_FUSED = True


def _scalar(b: Builder, v: float, name: str) -> str:
    return b.const(np.float32(v), name)


def layernorm(b: Builder, x: str, r: random.Random) -> str:
    shape = b.shapes[x]
    rank = len(shape)
    eps = r.choice([1e-5, 1e-5, 1e-6, 1e-3, 1e-12, 0.1])
    if r.random() < 0.4:  # the decomposed form over the last axis (or the last two)
        return decomposed_layernorm(b, x, r, eps)
    axis = r.randrange(1, rank)
    inner = shape[axis:]
    rng = np.random.default_rng(r.randrange(2**32))
    scale = b.const((1.0 + 0.3 * rng.standard_normal(inner)).astype(np.float32), "ln_scale")
    ins = [x, scale] + ([b.const((0.3 * rng.standard_normal(inner)).astype(np.float32), "ln_bias")]
                        if r.random() < 0.7 else [])
    return b.node("LayerNormalization", ins, shape, axis=axis if r.random() < 0.5 else axis - rank, epsilon=eps)


def decomposed_layernorm(b: Builder, x: str, r: random.Random, eps: float) -> str:
    shape = b.shapes[x]
    axes = [-1] if r.random() < 0.8 or len(shape) < 3 else [-2, -1]
    kept = tuple(1 if i - len(shape) in axes else d for i, d in enumerate(shape))
    inner = shape[len(shape) + axes[0]:]
    rng = np.random.default_rng(r.randrange(2**32))
    mean = b.node("ReduceMean", [x], kept, axes=axes, keepdims=1)
    d = b.node("Sub", [x, mean], shape)
    sq = b.node("Pow", [d, _scalar(b, 2.0, "two")], shape)
    var = b.node("ReduceMean", [sq], kept, axes=axes, keepdims=1)
    std = b.node("Sqrt", [b.node("Add", [var, _scalar(b, eps, "eps")], kept)], kept)
    y = b.node("Div", [d, std], shape, fused=_FUSED)
    y = b.node("Mul", [y, b.const((1.0 + 0.3 * rng.standard_normal(inner)).astype(np.float32), "ln_w")], shape)
    if r.random() < 0.8:
        y = b.node("Add", [y, b.const((0.3 * rng.standard_normal(inner)).astype(np.float32), "ln_b")], shape)
    return y


def gelu(b: Builder, x: str, r: random.Random) -> str:
    shape = b.shapes[x]
    form = r.choice(["op_none", "op_tanh", "erf", "tanh", "bare_erf"])
    if form.startswith("op_"):
        b.opset = max(b.opset, 20)
        return b.node("Gelu", [x], shape, approximate=form[3:])
    if form == "bare_erf":
        return b.node("Erf", [x], shape)
    if form == "erf":  # PyTorch: x * 0.5 * (1 + erf(x / sqrt 2)); sometimes x * 0.7071 (not fused)
        s = (b.node("Div", [x, _scalar(b, math.sqrt(2.0), "sqrt2")], shape, fused=_FUSED) if r.random() < 0.8
             else b.node("Mul", [x, _scalar(b, 1.0 / math.sqrt(2.0), "rsqrt2")], shape))
        e = b.node("Add", [b.node("Erf", [s], shape), _scalar(b, 1.0, "one")], shape)
        y = b.node("Mul", [x, e], shape)
        return b.node("Mul", [y, _scalar(b, 0.5, "half")], shape)
    # tanh, as PyTorch writes it: x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x * x * x)))
    cube = b.node("Mul", [b.node("Mul", [x, x], shape), x], shape)
    inner = b.node("Add", [b.node("Mul", [cube, _scalar(b, 0.044715, "c")], shape), x], shape)
    t = b.node("Tanh", [b.node("Mul", [inner, _scalar(b, math.sqrt(2.0 / math.pi), "k")], shape)], shape)
    y = b.node("Mul", [x, b.node("Add", [t, _scalar(b, 1.0, "one")], shape)], shape)
    return b.node("Mul", [y, _scalar(b, 0.5, "half")], shape)


def _swap_last(shape: tuple[int, ...]) -> list[int]:
    perm = list(range(len(shape)))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return perm


def attention_matmul(b: Builder, x: str, r: random.Random) -> str:
    """Scores of x against itself or another branch: A @ B^T over the last two axes (rank 2 by a
    reshape, 3 or 4), the second operand's batch sometimes broadcast, then sometimes a scale and
    Softmax, or the scores times a value branch."""
    shape = b.shapes[x]
    src = x
    if r.random() < 0.25:  # rank 2
        flat = (int(np.prod(shape[:-1])), shape[-1])
        src = b.node("Reshape", [x, b.const(np.array(flat, np.int64), "shape")], flat)
    a = src
    s = b.shapes[a]
    # the other operand: the same value, a transformed branch of it, or its mean over the batch axes
    what = r.random()
    if what < 0.35:
        other = a
    elif what < 0.7:
        other = b.node(r.choice(["Relu", "Sigmoid", "Tanh"]), [a], s)
    else:
        if len(s) < 3:
            other = b.node("Neg", [a], s)
        else:
            axes = [r.randrange(0, len(s) - 2)] if len(s) == 4 and r.random() < 0.5 else list(range(len(s) - 2))
            other = b.node("ReduceMean", [a], tuple(1 if i in axes else d for i, d in enumerate(s)), axes=axes, keepdims=1)
    os_ = b.shapes[other]
    bt = b.node("Transpose", [other], tuple(os_[p] for p in _swap_last(os_)), perm=_swap_last(os_))
    first, second = (a, bt)
    out_batch = tuple(np.broadcast_shapes(b.shapes[first][:-2], b.shapes[second][:-2]))
    y = b.node("MatMul", [first, second], (*out_batch, s[-2], os_[-2]))
    ys = b.shapes[y]
    if r.random() < 0.5:
        y = b.node("Mul", [y, _scalar(b, 1.0 / math.sqrt(s[-1]), "rsqrt_d")], ys)
        y = b.node("Softmax", [y], ys, axis=-1)
        if r.random() < 0.5 and os_[-2] == s[-2] and b.shapes[other] == s:  # scores @ values: back to x's shape
            y = b.node("MatMul", [y, other], tuple(np.broadcast_shapes(ys[:-2], s[:-2])) + (ys[-2], s[-1]))
    if len(b.shapes[y]) == 2:  # back to rank 3 for the layers after
        y = b.node("Reshape", [y, b.const(np.array((1, *b.shapes[y]), np.int64), "shape")], (1, *b.shapes[y]))
    return y


RESIZE_MODES = ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"]


def resize(b: Builder, x: str, r: random.Random) -> str:
    """Resize of a 4-D value's two spatial axes (up or down, by sizes or scales)."""
    shape = b.shapes[x]
    if len(shape) != 4 or max(shape[2:]) > 48:
        raise Skip("Resize 4-D")
    n, c, h, w = shape
    mode = "nearest" if r.random() < 0.25 else "linear"
    ctm = r.choice(RESIZE_MODES)
    sizes = [r.choice([d, 2 * d, 2 * d, 3 * d, max(1, d // 2), d + 1, max(1, d - 1), 1]) for d in (h, w)]
    if ctm == "pytorch_half_pixel" and b.int8:
        sizes = [max(s, 2) for s in sizes]
    attrs = dict(mode=mode, coordinate_transformation_mode=ctm)
    if mode == "nearest":
        attrs["nearest_mode"] = r.choice(["round_prefer_floor", "floor"])
    if r.random() < 0.5 and all(s % d == 0 for s, d in zip(sizes, (h, w))):
        scales = b.const(np.array([1, 1, sizes[0] // h, sizes[1] // w], np.float32), "scales")
        return b.node("Resize", [x, "", scales], (n, c, *sizes), **attrs)
    return b.node("Resize", [x, "", "", b.const(np.array([n, c, *sizes], np.int64), "sizes")], (n, c, *sizes), **attrs)


LAYERS = {"layernorm": layernorm, "gelu": gelu, "attention": attention_matmul, "resize": resize}
WEIGHTS = {"layernorm": 3, "gelu": 3, "attention": 3, "resize": 2}
SHARE = 0.5  # of the recipes that get some


def add_steps(steps: list[tuple[str, int]], seed: int) -> list[tuple[str, int]]:
    """``steps`` with 1-3 transformer steps inserted for about half the seeds (an RNG of its own)."""
    r = random.Random(f"xfmr-{seed}")
    if r.random() >= SHARE:
        return steps
    out = list(steps[:-1])
    kinds = list(WEIGHTS)
    for _ in range(r.randint(1, 3)):
        out.insert(r.randint(0, len(out)), (r.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0], r.randrange(2**31)))
    return out + steps[-1:]
