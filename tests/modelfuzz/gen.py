"""Random valid ONNX models, PyTorch-style (NCHW, 1-D/2-D/3-D) and tf2onnx-style (NHWC input behind
a Transpose), built from a recipe.

A recipe is the input's shape plus a list of (layer kind, seed) steps. Each step draws its own
parameters from its own seed and fits them to the shape it meets, so any sub-list of a recipe still
builds a valid model: that is what lets the shrinker drop steps one by one.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclasses.dataclass
class Recipe:
    shape: tuple[int, ...]           # the NCHW input shape: (1, C, *spatial)
    steps: list[tuple[str, int]]      # (layer kind, seed)
    nhwc_input: bool = False          # tf2onnx style: the graph input is NHWC, one Transpose into NCHW
    seed: int = 0                     # data, calibration and quantization choices
    int8: bool = False                # only what tinyc lowers to int8 (see INT8_LIMITS)
    patch: str = ""                   # the --patch drawn for it (bands.py): "", auto, off, BANDS, BANDS@#k

    def to_json(self) -> dict:
        return dict(shape=list(self.shape), steps=[list(s) for s in self.steps], nhwc_input=self.nhwc_input,
                    seed=self.seed, int8=self.int8, patch=self.patch)

    @staticmethod
    def from_json(d: dict) -> "Recipe":
        return Recipe(tuple(d["shape"]), [(k, int(s)) for k, s in d["steps"]], bool(d["nhwc_input"]), int(d["seed"]),
                      bool(d.get("int8", False)), str(d.get("patch", "")))


class Builder:
    """An ONNX graph under construction; every value's shape is tracked."""

    def __init__(self, int8: bool = False) -> None:
        self.int8 = int8
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.history: list[str] = []  # values in creation order (candidates for skips)
        self.count = 0
        self.ops: list[str] = []
        self.opset = OPSET  # a layer may need a later one (Gelu: 20)

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value: np.ndarray, prefix: str = "w") -> str:
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], n_out: int = 1, fused: bool = False,
             **attrs) -> str:
        """``fused``: part of a pattern tinyc fuses before quantizing (not subject to INT8_MISSING)."""
        if self.int8 and op in INT8_MISSING and not fused:
            raise Skip(op)
        out = self.fresh(op.lower())
        name = f"/{self.fresh('n')}/{op}"
        self.nodes.append(helper.make_node(op, inputs, [out] if n_out == 1 else [out] + [self.fresh("o") for _ in range(n_out - 1)],
                                           name=name, **attrs))
        self.shapes[out] = tuple(int(d) for d in shape)
        self.history.append(out)
        self.ops.append(op)
        return out

    def partners(self, x: str, ok: Callable[[tuple[int, ...]], bool]) -> list[str]:
        return [v for v in self.history if v != x and ok(self.shapes[v])]


class Skip(Exception):
    """A layer that cannot be built here (for an int8 recipe: an op tinyc has no int8 kernel for)."""


# What tinyc refuses to lower to int8 today (each a clear error naming the node, counted as a
# refusal): int8 recipes leave these out so that their cases reach the kernels.
INT8_MISSING = {"BatchNormalization", "Div", "PRelu"}


def _w(r: random.Random, *shape: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(r.randrange(2**32))
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return (rng.standard_normal(shape) * scale / np.sqrt(max(fan_in, 1))).astype(np.float32)


def _window(r: random.Random, size: int, kmax: int = 5, dilate: bool = True, pad_ok: bool = True,
            pad_lt_kernel: bool = False):
    """(kernel, stride, dilation, pad_begin, pad_end) that give at least one output on ``size``."""
    for _ in range(20):
        k = r.randint(1, kmax)
        d = r.choice([1, 1, 1, 2, 3]) if dilate and k > 1 else 1
        s = r.choice([1, 1, 1, 2, 2, 3])
        limit = k - 1 if pad_lt_kernel else (k - 1) * d
        pb = r.randint(0, limit) if pad_ok and r.random() < 0.6 else 0
        pe = r.randint(0, limit) if pad_ok and r.random() < 0.6 else 0
        if size + pb + pe >= (k - 1) * d + 1:
            return k, s, d, pb, pe
    return 1, 1, 1, 0, 0


def _out(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool = False) -> int:
    span = size + pb + pe - ((k - 1) * d + 1)
    return (span + s - 1) // s + 1 if ceil else span // s + 1


def _ceil_is_clear(size: int, k: int, s: int, d: int, pb: int, pe: int) -> bool:
    """ceil_mode only where no window would start in the right padding: there, runtimes and ONNX's
    shape inference disagree (the spec was tightened after opset 17)."""
    return (_out(size, k, s, d, pb, pe, ceil=True) - 1) * s < size + pb


# --- the layers ------------------------------------------------------------------------------------
# Each takes the builder, the current value and an RNG, and returns the new current value (or the
# same one when it does not apply).

def conv(b: Builder, x: str, r: random.Random) -> str:
    n, c, *sp = b.shapes[x]
    if len(sp) > 2:
        raise Skip("Conv 3-D")
    kind = r.random()
    if kind < 0.3:  # depthwise (multiplier 1 or 2)
        group, oc = c, c * r.choice([1, 1, 2])
    elif kind < 0.4 and c % 2 == 0 and c > 2:
        group = r.choice([g for g in (2, c // 2) if c % g == 0])
        oc = group * r.randint(1, 3)
    else:
        group, oc = 1, r.choice([1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 24])
    wins = [_window(r, s, kmax=5 if len(sp) < 3 else 3) for s in sp]
    same = r.random() < 0.15 and all(w[1] == 1 and w[2] == 1 for w in wins)
    attrs = dict(kernel_shape=[w[0] for w in wins], strides=[w[1] for w in wins], dilations=[w[2] for w in wins],
                 group=group)
    if same:
        attrs["auto_pad"] = r.choice(["SAME_UPPER", "SAME_LOWER"])
        out_sp = list(sp)
    else:
        attrs["pads"] = [w[3] for w in wins] + [w[4] for w in wins]
        out_sp = [_out(s, *w) for s, w in zip(sp, wins)]
    w = b.const(_w(r, oc, c // group, *attrs["kernel_shape"]), "weight")
    ins = [x, w] + ([b.const(_w(r, oc, scale=0.3), "bias")] if r.random() < 0.8 else [])
    return b.node("Conv", ins, (n, oc, *out_sp), **attrs)


def pool(b: Builder, x: str, r: random.Random) -> str:
    n, c, *sp = b.shapes[x]
    op = r.choice(["MaxPool", "AveragePool"])
    wins = [_window(r, s, kmax=4, dilate=op == "MaxPool", pad_lt_kernel=True) for s in sp]
    ceil = r.random() < 0.25 and all(_ceil_is_clear(s, *w) for s, w in zip(sp, wins))
    attrs = dict(kernel_shape=[w[0] for w in wins], strides=[w[1] for w in wins],
                 pads=[w[3] for w in wins] + [w[4] for w in wins], ceil_mode=int(ceil))
    if op == "MaxPool" and any(w[2] > 1 for w in wins):
        attrs["dilations"] = [w[2] for w in wins]
    if op == "AveragePool":
        attrs["count_include_pad"] = 0 if b.int8 else r.choice([0, 1])
    out_sp = [_out(s, *w, ceil=ceil) for s, w in zip(sp, wins)]
    return b.node(op, [x], (n, c, *out_sp), **attrs)


def global_pool(b: Builder, x: str, r: random.Random) -> str:
    n, c, *sp = b.shapes[x]
    op = r.choice(["GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"])
    if op.startswith("Reduce"):  # opset 17: axes is still an attribute of both
        return b.node(op, [x], (n, c, *[1] * len(sp)), keepdims=1, axes=list(range(2, 2 + len(sp))))
    return b.node(op, [x], (n, c, *[1] * len(sp)))


ACTIVATIONS = ["Relu", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Abs", "Neg", "PRelu"]


def activation(b: Builder, x: str, r: random.Random) -> str:
    op = r.choice(ACTIVATIONS)
    shape = b.shapes[x]
    if op == "Clip":
        lo, hi = r.choice([(0.0, 6.0), (-1.0, 1.0), (0.0, 1.0)])
        return b.node(op, [x, b.const(np.float32(lo), "min"), b.const(np.float32(hi), "max")], shape)
    if op == "LeakyRelu":
        return b.node(op, [x], shape, alpha=r.choice([0.01, 0.1, 0.2]))
    if op == "PRelu":
        slope = np.abs(_w(r, shape[1], *[1] * (len(shape) - 2), scale=0.5)) + 0.01
        return b.node(op, [x, b.const(slope, "slope")], shape)
    return b.node(op, [x], shape)


def batchnorm(b: Builder, x: str, r: random.Random) -> str:
    c = b.shapes[x][1]
    rng = np.random.default_rng(r.randrange(2**32))
    p = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.3, c), rng.uniform(0.5, 2.0, c)]
    return b.node("BatchNormalization", [x] + [b.const(v.astype(np.float32), "bn") for v in p], b.shapes[x])


def se_block(b: Builder, x: str, r: random.Random) -> str:
    """Squeeze-excite: global average, 1x1 down, Relu, 1x1 up, (hard) sigmoid, times the block input."""
    n, c, *sp = b.shapes[x]
    ones = [1] * len(sp)
    red = max(1, c // r.choice([2, 4, 8]))
    g = b.node("GlobalAveragePool", [x], (n, c, *ones))
    h = b.node("Conv", [g, b.const(_w(r, red, c, *ones), "se_w1"), b.const(_w(r, red), "se_b1")], (n, red, *ones),
               kernel_shape=ones)
    h = b.node("Relu", [h], (n, red, *ones))
    h = b.node("Conv", [h, b.const(_w(r, c, red, *ones), "se_w2"), b.const(_w(r, c), "se_b2")], (n, c, *ones),
               kernel_shape=ones)
    h = b.node(r.choice(["HardSigmoid", "Sigmoid"]), [h], (n, c, *ones))
    return b.node("Mul", [x, h] if r.random() < 0.5 else [h, x], b.shapes[x])


def residual(b: Builder, x: str, r: random.Random) -> str:
    """x + f(x) with a same-shape convolution, or + an earlier value of the same shape."""
    partners = b.partners(x, lambda s: s == b.shapes[x])
    if partners and r.random() < 0.5:
        other = r.choice(partners)
    else:
        n, c, *sp = b.shapes[x]
        k = r.choice([1, 3])
        group = c if r.random() < 0.3 else 1
        other = b.node("Conv", [x, b.const(_w(r, c, c // group, *[k] * len(sp)), "res_w")], b.shapes[x],
                       kernel_shape=[k] * len(sp), pads=[k // 2] * (2 * len(sp)), group=group)
        other = b.node("Relu", [other], b.shapes[x])
    op = r.choice(["Add", "Add", "Add", "Sub", "Max", "Min", "Mul"])
    return b.node(op, [x, other] if r.random() < 0.5 else [other, x], b.shapes[x])


def concat(b: Builder, x: str, r: random.Random) -> str:
    """Concat on channels with an earlier value of the same spatial size (a skip connection that
    stays alive across the layers between), or with a transformed copy of itself."""
    n, c, *sp = b.shapes[x]
    partners = b.partners(x, lambda s: len(s) == len(b.shapes[x]) and list(s[2:]) == sp)
    other = r.choice(partners) if partners and r.random() < 0.7 else activation(b, x, r)
    ins = [x, other] if r.random() < 0.5 else [other, x]
    return b.node("Concat", ins, (n, sum(b.shapes[v][1] for v in ins), *sp), axis=1)


def upsample(b: Builder, x: str, r: random.Random) -> str:
    n, c, *sp = b.shapes[x]
    if max(sp) > 48:
        return x
    f = [r.choice([1, 2, 2, 3]) for _ in sp]
    mode = "nearest" if b.int8 else r.choice(["nearest", "nearest", "linear"])
    attrs = dict(mode=mode)
    if mode == "linear":
        attrs["coordinate_transformation_mode"] = r.choice(["half_pixel", "align_corners", "asymmetric"])
    scales = b.const(np.array([1, 1, *f], np.float32), "scales")
    return b.node("Resize", [x, "", scales], (n, c, *[s * k for s, k in zip(sp, f)]), **attrs)


def transpose_sandwich(b: Builder, x: str, r: random.Random) -> str:
    """Into another layout, something there, and back (the pair a converter leaves around an op):
    sometimes the transposed value also lives on until a later layer."""
    shape = b.shapes[x]
    rank = len(shape)
    perm = [0, *range(2, rank), 1] if r.random() < 0.6 else [0, *r.sample(range(1, rank), rank - 1)]
    inv = list(np.argsort(perm))
    t_shape = tuple(shape[p] for p in perm)
    t = b.node("Transpose", [x], t_shape, perm=perm)
    what = r.random()
    if what < 0.4:
        y = b.node(r.choice(["Relu", "Sigmoid", "Tanh", "HardSwish"]), [t], t_shape)
    elif what < 0.8:
        cshape = [1] * rank
        axis = r.randrange(1, rank)
        cshape[axis] = t_shape[axis]
        k = b.const(_w(r, *cshape, scale=0.5) + (1.0 if r.random() < 0.5 else 0.0), "k")
        y = b.node(r.choice(["Mul", "Add", "Sub"]), [t, k], t_shape)
    else:
        y = b.node("Softmax", [t], t_shape, axis=-1)
    return b.node("Transpose", [y], shape, perm=[int(p) for p in inv])


def reshape_layout(b: Builder, x: str, r: random.Random) -> str:
    """Flatten the spatial axes into one (2-D/3-D to 1-D), or split a 1-D axis into two."""
    n, c, *sp = b.shapes[x]
    if len(sp) >= 2 and r.random() < 0.7:
        new = (n, c, int(np.prod(sp)))
    elif len(sp) == 1 and sp[0] % 2 == 0 and sp[0] >= 4:
        new = (n, c, 2, sp[0] // 2)
    else:
        return x
    return b.node("Reshape", [x, b.const(np.array(new, np.int64), "shape")], new)


def slice_(b: Builder, x: str, r: random.Random) -> str:
    shape = b.shapes[x]
    axis = r.randrange(1, len(shape))
    if shape[axis] < 2:
        return x
    start = r.randrange(0, shape[axis] - 1)
    end = r.randrange(start + 1, shape[axis] + 1)
    step = r.choice([1, 1, 2]) if end - start > 2 else 1
    out = list(shape)
    out[axis] = len(range(start, end, step))
    ins = [x] + [b.const(np.array([v], np.int64), nm) for v, nm in ((start, "starts"), (end, "ends"), (axis, "axes"),
                                                                     (step, "steps"))]
    return b.node("Slice", ins, tuple(out))


def pad(b: Builder, x: str, r: random.Random) -> str:
    shape = b.shapes[x]
    sp = len(shape) - 2
    mode = r.choice(["constant", "constant", "reflect", "edge"])
    pads = [0, 0] + [r.randint(0, min(2, shape[2 + i] - 1 if mode == "reflect" else 2)) for i in range(sp)]
    pads += [0, 0] + [r.randint(0, min(2, shape[2 + i] - 1 if mode == "reflect" else 2)) for i in range(sp)]
    out = tuple(d + pads[i] + pads[i + len(shape)] for i, d in enumerate(shape))
    return b.node("Pad", [x, b.const(np.array(pads, np.int64), "pads")], out, mode=mode)


def const_binary(b: Builder, x: str, r: random.Random) -> str:
    shape = b.shapes[x]
    form = r.choice(["channel", "scalar", "full"])
    cshape = {"channel": (shape[1], *[1] * (len(shape) - 2)), "scalar": (), "full": shape[1:]}[form]
    op = r.choice(["Add", "Mul", "Sub", "Div"])
    k = _w(r, *cshape, scale=0.5) if cshape else np.float32(r.uniform(-1, 1))
    if op == "Div":
        k = np.abs(k) + 0.5
    return b.node(op, [x, b.const(np.asarray(k, np.float32), "k")], shape)


def matmul(b: Builder, x: str, r: random.Random) -> str:
    """A MatMul by constant weights on the last axis (plus a bias: a fully connected layer on rows)."""
    shape = b.shapes[x]
    if shape[-1] > 256 or (b.int8 and len(shape) > 2):
        return x
    m = r.choice([1, 3, 4, 8, 16])
    y = b.node("MatMul", [x, b.const(_w(r, m, shape[-1]).T.copy(), "mm_w")], (*shape[:-1], m))
    if r.random() < 0.6:
        y = b.node("Add", [y, b.const(_w(r, m, scale=0.3), "mm_b")], b.shapes[y])
    return y


def unary_math(b: Builder, x: str, r: random.Random) -> str:
    """Elu, Exp, Sqrt, Log, Pow: on values made safe for them first (bounded, or positive)."""
    shape = b.shapes[x]
    op = r.choice(["Elu", "Exp", "Sqrt", "Log", "Pow"])
    if op == "Elu":
        return b.node(op, [x], shape, alpha=r.choice([0.5, 1.0]))
    if op == "Exp":
        return b.node(op, [b.node("Tanh", [x], shape)], shape)
    if op == "Pow":
        return b.node(op, [b.node("Tanh", [x], shape), b.const(np.float32(r.choice([2.0, 3.0])), "exponent")], shape)
    pos = b.node("Add", [b.node("Abs", [x], shape), b.const(np.float32(0.5), "eps")], shape)
    return b.node(op, [pos], shape)


def reduce(b: Builder, x: str, r: random.Random) -> str:
    """A reduction over the spatial axes (or the channels), keeping the dimensions."""
    n, c, *sp = b.shapes[x]
    op = r.choice(["ReduceSum", "ReduceL1", "ReduceL2", "ReduceMin", "ReduceSumSquare", "ReduceLogSumExp",
                   "ReduceMean", "ReduceMax", "ReduceProd", "ReduceLogSum"])
    axes = list(range(2, 2 + len(sp))) if r.random() < 0.7 else [1]
    out = tuple(1 if i in axes else d for i, d in enumerate(b.shapes[x]))
    src = b.node("Tanh", [x], b.shapes[x]) if op in ("ReduceProd", "ReduceSumSquare", "ReduceLogSumExp") else x
    if op == "ReduceLogSum":  # the log of a sum of positive values
        src = b.node("Add", [b.node("Abs", [x], b.shapes[x]), b.const(np.float32(0.5), "eps")], b.shapes[x])
    if op == "ReduceSum":  # opset 13+: axes as an input
        return b.node(op, [src, b.const(np.array(axes, np.int64), "axes")], out, keepdims=1)
    return b.node(op, [src], out, keepdims=1, axes=axes)


def gather(b: Builder, x: str, r: random.Random) -> str:
    """Gather channels by constant indices (a channel shuffle, repeats allowed)."""
    shape = b.shapes[x]
    idx = np.array([r.randrange(shape[1]) for _ in range(r.randint(1, shape[1] + 2))], np.int64)
    return b.node("Gather", [x, b.const(idx, "indices")], (shape[0], len(idx), *shape[2:]), axis=1)


def split(b: Builder, x: str, r: random.Random) -> str:
    """Split the channels in two; one part goes on, the other joins later or is dropped."""
    shape = b.shapes[x]
    if shape[1] < 2:
        return x
    k = r.randint(1, shape[1] - 1)
    first = b.node("Split", [x, b.const(np.array([k, shape[1] - k], np.int64), "split")],
                   (shape[0], k, *shape[2:]), n_out=2, axis=1)
    second = b.nodes[-1].output[1]
    b.shapes[second] = (shape[0], shape[1] - k, *shape[2:])
    b.history.append(second)
    return first if r.random() < 0.5 else second


def conv_transpose(b: Builder, x: str, r: random.Random) -> str:
    n, c, *sp = b.shapes[x]
    if len(sp) > 2 or max(sp) > 32:
        return x
    k, s = r.choice([1, 2, 3]), r.choice([1, 2])
    pad = r.randint(0, k - 1)
    oc = r.choice([1, 2, 4, 8])
    out = [(d - 1) * s + k - 2 * pad for d in sp]
    ins = [x, b.const(_w(r, c, oc, *[k] * len(sp)), "deconv_w")] + ([b.const(_w(r, oc), "deconv_b")] if r.random() < 0.7 else [])
    return b.node("ConvTranspose", ins, (n, oc, *out), kernel_shape=[k] * len(sp), strides=[s] * len(sp),
                  pads=[pad] * (2 * len(sp)))


def shape_ops(b: Builder, x: str, r: random.Random) -> str:
    """Squeeze/Unsqueeze pairs, Expand of a per-channel value, Identity, Dropout, Cast to float."""
    shape = b.shapes[x]
    kind = r.choice(["unsqueeze", "expand", "identity", "dropout", "cast"])
    if kind == "unsqueeze":
        u = b.node("Unsqueeze", [x, b.const(np.array([0], np.int64), "axes")], (1, *shape))
        return b.node("Squeeze", [u, b.const(np.array([0], np.int64), "axes")], shape)
    if kind == "expand":
        k = b.const(_w(r, 1, shape[1], *[1] * (len(shape) - 2)), "k")
        e = b.node("Expand", [k, b.const(np.array(shape, np.int64), "shape")], shape)
        return b.node("Add", [x, e], shape)
    if kind == "cast":
        return b.node("Cast", [x], shape, to=TensorProto.FLOAT)
    return b.node("Identity" if kind == "identity" else "Dropout", [x], shape)


def depth_to_space(b: Builder, x: str, r: random.Random) -> str:
    """Channels into 2x2 (or 3x3) blocks of pixels, either channel order."""
    n, c, *sp = b.shapes[x]
    k = r.choice([2, 2, 3])
    if len(sp) != 2 or max(sp) * k > 64:
        return x
    if c % (k * k):  # a 1x1 convolution to a multiple of k * k channels first
        m = k * k * r.choice([1, 2])
        x = b.node("Conv", [x, b.const(_w(r, m, c, 1, 1), "w")], (n, m, *sp), kernel_shape=[1, 1])
        c = m
    return b.node("DepthToSpace", [x], (n, c // (k * k), sp[0] * k, sp[1] * k), blocksize=k, mode=r.choice(["DCR", "CRD"]))


def cnn_conv(b: Builder, x: str, r: random.Random) -> str:
    """A convolution as image CNNs have them (what the patch pass cuts into row bands): pointwise,
    3x3 or 5x5 with "same" padding (TF's asymmetric one when strided), strided, dilated or
    depthwise; then Relu or Clip 0..6 more often than not."""
    n, c, *sp = b.shapes[x]
    if len(sp) != 2:
        raise Skip("cnn_conv: images only")
    k, s, d = r.choice([(1, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1), (5, 2, 1), (1, 2, 1)])
    depthwise = k > 1 and r.random() < 0.4
    oc = c * r.choice([1, 1, 2]) if depthwise else r.choice([2, 3, 4, 5, 6, 8, 8, 12, 16, 16, 24])
    total = (k - 1) * d
    before = total // 2 if s == 1 or r.random() < 0.5 else max(total - 1, 0) // 2  # TF SAME pads the end more
    pads = [before, before, total - before, total - before]
    out_sp = [_out(v, k, s, d, before, total - before) for v in sp]
    w = b.const(_w(r, oc, 1 if depthwise else c, k, k), "weight")
    y = b.node("Conv", [x, w, b.const(_w(r, oc, scale=0.3), "bias")], (n, oc, *out_sp), kernel_shape=[k, k],
               strides=[s, s], dilations=[d, d], pads=pads, group=c if depthwise else 1)
    act = r.random()
    if act < 0.4:
        return b.node("Relu", [y], b.shapes[y])
    if act < 0.7:
        return b.node("Clip", [y, b.const(np.float32(0.0), "min"), b.const(np.float32(6.0), "max")], b.shapes[y])
    return y


def cnn_pool(b: Builder, x: str, r: random.Random) -> str:
    """Pooling as image CNNs have it: 2x2/2, 3x3/2 with or without padding, 3x3/1 padded."""
    n, c, *sp = b.shapes[x]
    if len(sp) != 2:
        raise Skip("cnn_pool: images only")
    op = r.choice(["MaxPool", "AveragePool"])
    k, s, p0, p1 = r.choice([(2, 2, 0, 0), (3, 2, 0, 0), (3, 2, 1, 1), (3, 2, 0, 1), (3, 1, 1, 1), (2, 1, 0, 1)])
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p0, p0, p1, p1])
    if op == "AveragePool":
        attrs["count_include_pad"] = 0 if b.int8 else r.choice([0, 1])
    return b.node(op, [x], (n, c, *[_out(v, k, s, 1, p0, p1) for v in sp]), **attrs)


from . import xfmr  # noqa: E402 -- its layers use the Builder above

LAYERS: dict[str, Callable[[Builder, str, random.Random], str]] = {
    "conv": conv, "pool": pool, "global_pool": global_pool, "activation": activation, "batchnorm": batchnorm,
    "se": se_block, "residual": residual, "concat": concat, "upsample": upsample, "transpose": transpose_sandwich,
    "reshape": reshape_layout, "slice": slice_, "pad": pad, "const_binary": const_binary, "matmul": matmul,
    "unary_math": unary_math, "reduce": reduce, "gather": gather, "split": split, "conv_transpose": conv_transpose,
    "shape_ops": shape_ops, "depth_to_space": depth_to_space, "cnn_conv": cnn_conv, "cnn_pool": cnn_pool,
    **xfmr.LAYERS,
}
# How often each kind is drawn (convolutions most: they carry the kernels and the layouts).
WEIGHTS = {"conv": 6, "pool": 3, "global_pool": 1, "activation": 3, "batchnorm": 1, "se": 2, "residual": 2,
           "concat": 2, "upsample": 1, "transpose": 2, "reshape": 1, "slice": 1, "pad": 1, "const_binary": 2,
           "matmul": 1, "unary_math": 1, "reduce": 1, "gather": 1, "split": 1, "conv_transpose": 1, "shape_ops": 1,
           "depth_to_space": 1}
# (cnn_conv and cnn_pool are drawn only for the CNN-shaped recipes of bands.py)
# Registered ops no layer generates, and why (tests/modelfuzz/test_modelfuzz.py keeps this honest:
# an op added to tinyc must be generated or listed here).
NOT_GENERATED = {
    "LSTM": "sequence models: tests/test_rnn.py checks them against onnxruntime",
    "GRU": "sequence models: tests/test_rnn.py checks them against onnxruntime",
    "Shape": "folded at import (PyTorch's shape chains), never at run time",
    "CastLike": "folded at import",
    "QuantizeLinear": "written by the int8 routes, not by the layers",
    "DequantizeLinear": "written by the int8 routes, not by the layers",
    "QLinearConv": "the ort_qop route (onnxruntime's QOperator format) writes it",
    "QLinearMatMul": "the ort_qop route (onnxruntime's QOperator format) writes it",
    "Mod": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Equal": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Less": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Greater": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "And": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Not": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Where": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "Range": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
    "ConstantOfShape": "shape arithmetic, folded at import: tests/test_shape_folding.py, ONNX node cases",
}
HEADS = ["none", "gemm", "gemm_softmax", "gemm_logsoftmax", "softmax"]
MAX_ELEMENTS = 40_000  # per value: keeps emulated runs short


def head(b: Builder, x: str, r: random.Random) -> str:
    kind = r.choice(HEADS)
    if kind == "none":
        return x
    shape = b.shapes[x]
    if kind == "softmax":
        return b.node("Softmax", [x], shape, axis=-1)
    flat = int(np.prod(shape[1:]))
    if flat > 4096:
        return x
    f = b.node("Flatten", [x], (shape[0], flat), axis=1)
    units = r.choice([2, 5, 10, 12, 16])
    y = b.node("Gemm", [f, b.const(_w(r, units, flat), "fc_w"), b.const(_w(r, units, scale=0.3), "fc_b")],
               (shape[0], units), transB=1)
    if kind.endswith("softmax"):
        y = b.node("LogSoftmax" if kind.startswith("gemm_log") else "Softmax", [y], (shape[0], units), axis=-1)
    return y


def random_recipe(seed: int, max_steps: int = 8, int8: bool = False) -> Recipe:
    r = random.Random(seed)
    rank = r.choices([3, 4, 5], weights=[3, 6, 1])[0]
    c = r.choice([1, 1, 2, 3, 3, 4, 5, 8, 16])
    if rank == 3:
        sp = [r.choice([1, 2, 5, 7, 16, 31, 64, 100, 257, 1024])]
    elif rank == 4:
        sp = [r.choice([1, 2, 3, 5, 8, 12, 16, 24, 32, 49]) for _ in range(2)]
        if r.random() < 0.3:
            sp[1] = sp[0]
    else:
        sp = [r.choice([1, 2, 3, 4, 6]) for _ in range(3)]
    kinds = list(WEIGHTS)
    steps = [(r.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0], r.randrange(2**31))
             for _ in range(r.randint(1, max_steps))]
    steps.append(("head", r.randrange(2**31)))
    nhwc = rank == 4 and r.random() < 0.25
    return Recipe((1, c, *sp), xfmr.add_steps(steps, seed), nhwc_input=nhwc, seed=seed, int8=int8)


def build(recipe: Recipe) -> tuple[onnx.ModelProto, list[str]]:
    """The float model of a recipe, and the ops it has. A step whose output would be too large, or
    leaves an empty dimension, is left out."""
    b = Builder(recipe.int8)
    shape = recipe.shape
    if recipe.nhwc_input:
        nhwc = (shape[0], *shape[2:], shape[1])
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(nhwc))
        b.shapes["input"] = nhwc
        x = b.node("Transpose", ["input"], shape, perm=[0, 3, 1, 2])
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))
        b.shapes["input"] = shape
        x = "input"
        b.history.append(x)
    for kind, seed in recipe.steps:
        r = random.Random(seed)
        snapshot = (len(b.nodes), len(b.inits), dict(b.shapes), list(b.history), b.count, list(b.ops), b.opset)
        try:
            y = (head if kind == "head" else LAYERS[kind])(b, x, r)
            s = b.shapes[y]
        except Skip:
            y, s = None, (0,)
        if min(s) < 1 or int(np.prod(s)) > MAX_ELEMENTS:
            n_nodes, n_inits, b.shapes, b.history, b.count, b.ops, b.opset = snapshot
            del b.nodes[n_nodes:], b.inits[n_inits:]
            continue
        x = y
    if x == "input":  # nothing applied: one Relu, so there is a node
        x = b.node("Relu", [x], b.shapes[x])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, list(b.shapes[x]))
    b.nodes.append(helper.make_node("Identity", [x], ["output"], name="/out/Identity"))
    if b.opset >= 18:  # the Reduce ops' axes: an input from opset 18 on
        for n in b.nodes:
            axes = [a for a in n.attribute if a.name == "axes"]
            if n.op_type.startswith("Reduce") and axes:
                n.input.append(b.const(np.array(axes[0].ints, np.int64), "axes"))
                n.attribute.remove(axes[0])
    graph = helper.make_graph(b.nodes, "fuzz", [inp], [out], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", b.opset)], producer_name="tinyc-modelfuzz")
    model.ir_version = 8 if b.opset <= 17 else 9
    return model, sorted(set(b.ops))
