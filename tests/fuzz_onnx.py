"""Importer fuzzing for `tinyc compile`.

Every input must end in either a compiled model (exit 0) or one clear error (exit 2, one line
starting ``tinyc: error:``): no traceback, no internal error (exit 3), no hang, no MemoryError, no
file written outside the output folder, nothing changed beside the model.

Cases come from small seed models built here with onnx.helper, changed by structure-aware
mutators on the ModelProto (wrong or absurd shapes, missing initializers, cycles, bad axes,
unknown dtypes, external data pointing outside the model's folder, ...) and by byte-level
mutators on the serialized protobuf. Case I of seed S is built from ``random.Random(f"{S}-{I}")``
alone, so any case can be rebuilt on its own.

The cases run in child processes (address space capped with RLIMIT_AS, every case bounded with
SIGALRM, and a watchdog in the parent that kills a child stuck outside Python), calling
``tinyc.cli.main`` in-process for speed. This module is imported by tests/test_fuzz.py and is a
command too:

    python -m tests.fuzz_onnx --cases 2000 --seed 1 --out /tmp/fuzz        # run, summary.json in /tmp/fuzz
    python -m tests.fuzz_onnx --seed 1 --case 17 --save /tmp/case17       # write one case's files
    python -m tests.fuzz_onnx --seed 1 --case 17                          # run one case, print its outcome

Failing cases are saved under OUT/failures/ (model folder, outside files and case.json) so that
they can be added to tests/fuzz_corpus/.
"""
from __future__ import annotations

import os
import random
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import fuzz_harness
from .fuzz_harness import CASE_SECONDS, MEMORY_CAP, OUTSIDE_BYTES, Case  # noqa: F401  (used by tests and callers)
from .fuzz_harness import bytes_mutate as _bytes_mutate

MODULE = "tests.fuzz_onnx"
MODEL_FILE = "model.onnx"


# --------------------------------------------------------------------------------------------
# Seed models (small, so that a case compiles in a few tens of milliseconds)
# --------------------------------------------------------------------------------------------

def _w(rng: np.random.Generator, *shape: int, low: float | None = None) -> np.ndarray:
    if low is not None:
        return rng.uniform(low, 2.0, size=shape).astype(np.float32)
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def _vi(name: str, shape, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, inits, opset: int = 17, name: str = "seed") -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="tinyc-fuzz")
    m.ir_version = 8
    return m


def _init(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def seed_mlp(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["y"], name="fc2")]
    inits = [_init("w1", _w(rng, 8, 16)), _init("b1", _w(rng, 8)), _init("w2", _w(rng, 8, 4)), _init("b2", _w(rng, 4))]
    return _model(nodes, [_vi("x", ["N", 16])], [_vi("y", ["N", 4])], inits)


def seed_cnn(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["cr"], name="relu"),
             helper.make_node("MaxPool", ["cr"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Reshape", ["p", "flat_shape"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc")]
    inits = [_init("cw", _w(rng, 4, 1, 3, 3)), _init("cb", _w(rng, 4)), _init("flat_shape", np.array([1, 64], np.int64)),
             _init("fw", _w(rng, 64, 10)), _init("fb", _w(rng, 10))]
    return _model(nodes, [_vi("x", [1, 1, 8, 8])], [_vi("y", [1, 10])], inits, opset=13)


def seed_elementwise(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["a", "bias"], ["s"], name="add"),
             helper.make_node("Mul", ["s", "c"], ["m"], name="mul"),
             helper.make_node("Sub", ["m", "k"], ["d"], name="sub"),
             helper.make_node("Div", ["d", "den"], ["q"], name="div"),
             helper.make_node("Max", ["q", "a"], ["y"], name="max")]
    inits = [_init("bias", _w(rng, 4)), _init("k", np.float32(0.25)), _init("den", _w(rng, 1, 1, 4, low=0.5))]
    return _model(nodes, [_vi("a", [1, 3, 4, 4]), _vi("c", [1, 3, 1, 1])], [_vi("y", [1, 3, 4, 4])], inits, opset=14)


def seed_qdq_conv(rng) -> onnx.ModelProto:
    sx, sw = np.float32(0.05), np.array([0.02, 0.03, 0.01], np.float32)
    wq = rng.integers(-127, 128, size=(3, 2, 3, 3)).astype(np.int8)
    bq = rng.integers(-500, 500, size=3).astype(np.int32)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=0),
             helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bd"], name="dqb", axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"], name="qy"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dqy")]
    inits = [_init("sx", sx), _init("zx", np.int8(0)), _init("wq", wq), _init("sw", sw), _init("zw", np.zeros(3, np.int8)),
             _init("bq", bq), _init("sb", (sx * sw).astype(np.float32)), _init("zb", np.zeros(3, np.int32)),
             _init("sy", np.float32(0.1)), _init("zy", np.int8(-3))]
    return _model(nodes, [_vi("x", [1, 2, 6, 6])], [_vi("y", [1, 3, 6, 6])], inits, opset=13)


def seed_shapes(rng) -> onnx.ModelProto:
    shape = helper.make_node("Constant", [], ["rs_shape"], name="shape_const",
                             value=_init("rs_value", np.array([1, -1], np.int64)))
    nodes = [shape,
             helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[0, 2, 1]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes", "steps"], ["s"], name="slice"),
             helper.make_node("Concat", ["s", "extra"], ["cc"], name="concat", axis=1),
             helper.make_node("Unsqueeze", ["cc", "uaxes"], ["u"], name="unsqueeze"),
             helper.make_node("Squeeze", ["u", "uaxes"], ["sq"], name="squeeze"),
             helper.make_node("Reshape", ["sq", "rs_shape"], ["y"], name="reshape")]
    inits = [_init("starts", np.array([1], np.int64)), _init("ends", np.array([5], np.int64)),
             _init("axes", np.array([1], np.int64)), _init("steps", np.array([1], np.int64)),
             _init("extra", _w(rng, 1, 2, 4)), _init("uaxes", np.array([0], np.int64))]
    return _model(nodes, [_vi("x", [1, 4, 6])], [_vi("y", [1, 24])], inits, opset=13)


def seed_softmax(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flatten", axis=1),
             helper.make_node("MatMul", ["f", "w"], ["mm"], name="matmul"),
             helper.make_node("Softmax", ["mm"], ["y"], name="softmax", axis=-1)]
    return _model(nodes, [_vi("x", [1, 2, 5])], [_vi("y", [1, 6])], [_init("w", _w(rng, 10, 6))], opset=13)


def seed_pad_resize_expand(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant"),
             helper.make_node("Resize", ["p", "", "scales"], ["r"], name="resize", mode="nearest"),
             helper.make_node("Expand", ["one", "eshape"], ["e"], name="expand"),  # folded at import
             helper.make_node("Add", ["r", "e"], ["y"], name="add")]
    inits = [_init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
             _init("scales", np.array([1, 1, 2, 2], np.float32)),
             _init("one", np.ones((1, 1, 1, 1), np.float32)), _init("eshape", np.array([1, 2, 10, 10], np.int64))]
    return _model(nodes, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 2, 10, 10])], inits, opset=13)


def seed_convtranspose(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("BatchNormalization", ["x", "gamma", "beta", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("ConvTranspose", ["bn", "w", "b"], ["ct"], name="deconv", strides=[2, 2]),
             helper.make_node("LeakyRelu", ["ct"], ["lr"], name="leaky", alpha=0.1),
             helper.make_node("AveragePool", ["lr"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["ap"], ["y"], name="gap")]
    inits = [_init("gamma", _w(rng, 3, low=0.5)), _init("beta", _w(rng, 3)), _init("mean", _w(rng, 3)),
             _init("var", _w(rng, 3, low=0.5)), _init("w", _w(rng, 3, 2, 2, 2)), _init("b", _w(rng, 2))]
    return _model(nodes, [_vi("x", [1, 3, 4, 4])], [_vi("y", [1, 2, 1, 1])], inits, opset=13)


def seed_rnn(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["h", "", ""], name="lstm", hidden_size=3),
             helper.make_node("Squeeze", ["h", "ax1"], ["hs"], name="squeeze"),
             helper.make_node("Gather", ["hs", "idx"], ["g"], name="gather", axis=0),
             helper.make_node("ReduceMean", ["g"], ["r"], name="mean", axes=[-1], keepdims=1),
             helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid")]
    inits = [_init("W", _w(rng, 1, 12, 4)), _init("R", _w(rng, 1, 12, 3)), _init("B", _w(rng, 1, 24)),
             _init("ax1", np.array([1], np.int64)), _init("idx", np.array([2, 0], np.int64))]
    return _model(nodes, [_vi("x", [3, 1, 4])], [_vi("y", [2, 1, 1])], inits, opset=13)


def seed_split_reduce(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("Split", ["x", "split"], ["a", "b"], name="split", axis=1),
             helper.make_node("ReduceSum", ["a", "rax"], ["ra"], name="rsum", keepdims=1),
             helper.make_node("ReduceMax", ["b"], ["rb"], name="rmax", axes=[1], keepdims=1),
             helper.make_node("Sub", ["ra", "rb"], ["d"], name="sub"),
             helper.make_node("Clip", ["d", "lo", "hi"], ["c"], name="clip"),
             helper.make_node("Tanh", ["c"], ["t"], name="tanh"),
             helper.make_node("Pow", ["t", "two"], ["y"], name="pow")]
    inits = [_init("split", np.array([2, 4], np.int64)), _init("rax", np.array([1], np.int64)),
             _init("lo", np.float32(-1.0)), _init("hi", np.float32(1.0)), _init("two", np.float32(2.0))]
    return _model(nodes, [_vi("x", [1, 6, 4])], [_vi("y", [1, 1, 4])], inits, opset=13)


SEED_BUILDERS = {
    "mlp": seed_mlp, "cnn": seed_cnn, "elementwise": seed_elementwise, "qdq_conv": seed_qdq_conv,
    "shapes": seed_shapes, "softmax": seed_softmax, "pad_resize_expand": seed_pad_resize_expand,
    "convtranspose": seed_convtranspose, "rnn": seed_rnn, "split_reduce": seed_split_reduce,
}
_SEED_BYTES: dict[str, bytes] = {}


def seed_model(name: str) -> onnx.ModelProto:
    """A fresh copy of a seed model (the same bytes every time)."""
    if name not in _SEED_BYTES:
        _SEED_BYTES[name] = SEED_BUILDERS[name](np.random.default_rng(1234)).SerializeToString()
    m = onnx.ModelProto()
    m.ParseFromString(_SEED_BYTES[name])
    return m


# --------------------------------------------------------------------------------------------
# Structure-aware mutators: fn(rng, model, case) -> description, or None when not applicable
# --------------------------------------------------------------------------------------------

INTS = [0, 1, -1, 2, 3, -2, 4, 7, 64, 255, 2**15, 2**16, 2**20, 10**6, 2**31 - 1, 2**31, -2**31, 2**32, 10**12,
        2**40, 2**62, 2**63 - 1, -2**63]
HUGE = [2**16, 2**20, 10**6, 2**24, 2**31 - 1, 2**31, 2**32, 10**9, 10**12, 2**40, 2**62, 2**63 - 1, -1, 0, -2**20]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, 1e-45, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan"), 1e6]
STRINGS = ["", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "nearest", "linear", "cubic", "constant", "reflect",
           "edge", "half_pixel", "asymmetric", "align_corners", "round_prefer_floor", "garbage", "a\nb", "\x00", "ü" * 3]
ATTR_NAMES = ["axis", "axes", "perm", "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "mode",
              "transA", "transB", "alpha", "beta", "keepdims", "epsilon", "to", "coordinate_transformation_mode",
              "nearest_mode", "ceil_mode", "storage_order", "count_include_pad", "allowzero", "split", "value",
              "noop_with_empty_axes", "output_padding", "output_shape", "saturate", "block_size", "select_last_index",
              "exclusive", "reverse", "momentum", "spatial", "training_mode", "cubic_coeff_a", "exclude_outside",
              "extrapolation_value", "antialias", "keep_aspect_ratio_policy", "stash_type", "seed", "dtype"]
ELEM_TYPES = list(range(0, 27)) + [27, 40, 99, 1000, -1, 2**31 - 1]


def _int(rng: random.Random) -> int:
    return rng.choice(INTS) if rng.random() < 0.7 else rng.randint(-10, 10)


def _ints(rng: random.Random, n: int | None = None) -> list[int]:
    n = rng.randint(0, 6) if n is None else n
    return [_int(rng) for _ in range(n)]


def _inputs(g) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in g.initializer}
    return [vi for vi in g.input if vi.name not in inits]


def _tensor_names(g) -> list[str]:
    names = [vi.name for vi in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names += [o for o in n.output if o]
    return list(dict.fromkeys(names))


def _const_tensor(g, name: str) -> onnx.TensorProto | None:
    for t in g.initializer:
        if t.name == name:
            return t
    for n in g.node:
        if n.op_type == "Constant" and name in n.output:
            for a in n.attribute:
                if a.name == "value":
                    return a.t
    return None


def _set_tensor(t: onnx.TensorProto, arr: np.ndarray) -> None:
    name = t.name
    t.CopyFrom(numpy_helper.from_array(np.asarray(arr), name))


def _random_attr(rng: random.Random, name: str) -> onnx.AttributeProto:
    kind = rng.choice(["int", "int", "ints", "ints", "float", "floats", "string", "strings", "tensor", "graph"])
    if kind == "int":
        v = _int(rng)
    elif kind == "ints":
        v = _ints(rng)
    elif kind == "float":
        v = rng.choice(FLOATS)
    elif kind == "floats":
        v = [rng.choice(FLOATS) for _ in range(rng.randint(0, 5))]
    elif kind == "string":
        v = rng.choice(STRINGS)
    elif kind == "strings":
        v = [rng.choice(STRINGS) for _ in range(rng.randint(0, 3))]
    elif kind == "tensor":
        v = numpy_helper.from_array(np.asarray([rng.choice(FLOATS) for _ in range(rng.randint(0, 4))], np.float32), "t")
    else:
        sub = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "sub", [_vi("a", [1])], [_vi("b", [1])])
        return helper.make_attribute(name, sub)
    if kind in ("ints", "floats", "strings") and not v:
        a = onnx.AttributeProto(name=name, type={"ints": onnx.AttributeProto.INTS, "floats": onnx.AttributeProto.FLOATS,
                                                 "strings": onnx.AttributeProto.STRINGS}[kind])
        return a
    return helper.make_attribute(name, v)


def mut_input_dims(rng, m, case):
    vis = _inputs(m.graph)
    if not vis:
        return None
    vi = rng.choice(vis)
    tt = vi.type.tensor_type
    how = rng.choice(["value", "value", "value", "param", "add", "drop", "noshape", "rank0"])
    dims = tt.shape.dim
    if how == "value" and dims:
        i = rng.randrange(len(dims))
        v = rng.choice(HUGE + [0, -1, -7, 1, 2, 3, 5])
        dims[i].dim_value = v
        return f"input '{vi.name}' dim {i} = {v}"
    if how == "param" and dims:
        i = rng.randrange(len(dims))
        dims[i].dim_param = rng.choice(["N", "", "batch size", "?"])
        return f"input '{vi.name}' dim {i} symbolic"
    if how == "add":
        dims.add().dim_value = rng.choice([1, 2, 3, 10**5, 2**31])
        return f"input '{vi.name}' gets an extra dim"
    if how == "drop" and dims:
        del dims[rng.randrange(len(dims))]
        return f"input '{vi.name}' loses a dim"
    if how == "noshape":
        tt.ClearField("shape")
        return f"input '{vi.name}' has no shape"
    del dims[:]
    return f"input '{vi.name}' is rank 0"


def mut_absurd_input(rng, m, case):
    vis = _inputs(m.graph)
    if not vis:
        return None
    vi = rng.choice(vis)
    dims = vi.type.tensor_type.shape.dim
    big = rng.choice([10**5, 2**20, 2**31, 10**9])
    del dims[:]
    for d in [1] + [big] * rng.randint(1, 3):
        dims.add().dim_value = d
    return f"input '{vi.name}' declared {[d.dim_value for d in dims]}"


def mut_reshape_shape(rng, m, case):
    rs = [n for n in m.graph.node if n.op_type == "Reshape" and len(n.input) > 1]
    if not rs:
        return None
    n = rng.choice(rs)
    t = _const_tensor(m.graph, n.input[1])
    if t is None:
        return None
    v = rng.choice([[-1, -1], [0, 0], [0], [], [2**40, 1], [1, 2**31], [-5], [1, -1, 1, 1], [2**62, 2**62],
                    [-1, 0], [0, -1], _ints(rng)])
    _set_tensor(t, np.array(v, np.int64))
    if rng.random() < 0.3:
        n.attribute.append(helper.make_attribute("allowzero", 1))
        return f"Reshape '{n.name}' shape {v} allowzero"
    return f"Reshape '{n.name}' shape {v}"


def _new_name(g, base: str) -> str:
    names = set(_tensor_names(g))
    i = 0
    while f"{base}{i}" in names:
        i += 1
    return f"{base}{i}"


def mut_huge_op(rng, m, case):
    """A new node with an absurd size operand, on a constant (folded at import) or on a graph input."""
    g = m.graph
    floats = [t.name for t in g.initializer if t.data_type == TensorProto.FLOAT]
    vis = [vi.name for vi in _inputs(g)]
    src = rng.choice(floats) if floats and (rng.random() < 0.6 or not vis) else (rng.choice(vis) if vis else None)
    if src is None:
        return None
    op = rng.choice(["Expand", "Expand", "ConstantOfShape", "Tile", "Pad", "Pad", "Resize", "Resize", "Reshape", "Range"])
    out, k = _new_name(g, "huge_out"), _new_name(g, "huge_k")
    rank = rng.randint(1, 4)
    big = [rng.choice(HUGE) if rng.random() < 0.6 else rng.randint(1, 4) for _ in range(rank)]
    if op == "Expand":
        g.initializer.append(_init(k, np.array(big, np.int64)))
        node = helper.make_node(op, [src, k], [out])
    elif op == "ConstantOfShape":
        g.initializer.append(_init(k, np.array(big, np.int64)))
        node = helper.make_node(op, [k], [out], value=_init("v", np.array([1.5], np.float32)))
    elif op == "Tile":
        g.initializer.append(_init(k, np.array(big, np.int64)))
        node = helper.make_node(op, [src, k], [out])
    elif op == "Pad":
        g.initializer.append(_init(k, np.array(big + big, np.int64)))
        node = helper.make_node(op, [src, k], [out], mode=rng.choice(["constant", "reflect", "edge"]))
    elif op == "Resize":
        if rng.random() < 0.5:
            g.initializer.append(_init(k, np.array([rng.choice(FLOATS + [1e5, 1e9]) for _ in range(rank)], np.float32)))
            node = helper.make_node(op, [src, "", k], [out], mode=rng.choice(["nearest", "linear"]))
        else:
            g.initializer.append(_init(k, np.array(big, np.int64)))
            node = helper.make_node(op, [src, "", "", k], [out], mode=rng.choice(["nearest", "linear"]))
    elif op == "Reshape":
        g.initializer.append(_init(k, np.array(big, np.int64)))
        node = helper.make_node(op, [src, k], [out])
    else:
        g.initializer.append(_init(k, np.array(0, np.int64)))
        g.initializer.append(_init(k + "_lim", np.array(rng.choice(HUGE), np.int64)))
        g.initializer.append(_init(k + "_d", np.array(1, np.int64)))
        node = helper.make_node(op, [k, k + "_lim", k + "_d"], [out])
    node.name = f"huge_{op.lower()}"
    g.node.append(node)
    g.output.append(_vi(out, None))
    return f"{op} on '{src}' with sizes {big}"


def mut_remove_initializer(rng, m, case):
    g = m.graph
    if not g.initializer:
        return None
    i = rng.randrange(len(g.initializer))
    name = g.initializer[i].name
    del g.initializer[i]
    return f"initializer '{name}' removed"


def mut_dangling_input(rng, m, case):
    nodes = [n for n in m.graph.node if n.input]
    if not nodes:
        return None
    n = rng.choice(nodes)
    i = rng.randrange(len(n.input))
    n.input[i] = rng.choice(["ghost", "", " ", n.input[i] + "_missing"])
    return f"node '{n.name}' input {i} -> '{n.input[i]}'"


def mut_cycle(rng, m, case):
    nodes = [n for n in m.graph.node if n.input and n.op_type != "Constant"]
    if not nodes:
        return None
    n = rng.choice(nodes)
    later = list(m.graph.node)[list(m.graph.node).index(n):]
    src = rng.choice(later)
    if not src.output:
        return None
    i = rng.randrange(len(n.input))
    n.input[i] = rng.choice(list(src.output))
    return f"cycle: node '{n.name}' input {i} <- '{n.input[i]}' (node '{src.name}')"


def mut_duplicate_names(rng, m, case):
    g = m.graph
    how = rng.choice(["node_output", "graph_output", "initializer", "graph_input", "node_name", "output_is_input"])
    if how == "node_output" and len(g.node) > 1:
        a, b = rng.sample(list(g.node), 2)
        if a.output and b.output:
            b.output[0] = a.output[0]
            return f"nodes '{a.name}' and '{b.name}' both write '{a.output[0]}'"
    if how == "graph_output" and g.output:
        g.output.append(g.output[0])
        return f"graph output '{g.output[0].name}' listed twice"
    if how == "initializer" and g.initializer:
        t = rng.choice(list(g.initializer))
        g.initializer.append(t)
        return f"initializer '{t.name}' defined twice"
    if how == "graph_input" and g.input:
        g.input.append(g.input[0])
        return f"graph input '{g.input[0].name}' listed twice"
    if how == "node_name" and len(g.node) > 1:
        for n in g.node:
            n.name = "same"
        return "every node named 'same'"
    if how == "output_is_input" and g.node and (g.initializer or g.input):
        n = rng.choice(list(g.node))
        names = [t.name for t in g.initializer] + [vi.name for vi in g.input]
        if n.output:
            n.output[0] = rng.choice(names)
            return f"node '{n.name}' writes '{n.output[0]}' (an input or initializer)"
    return None


def mut_axes(rng, m, case):
    g = m.graph
    cands = [(n, a) for n in g.node for a in n.attribute if a.name in ("axis", "axes", "perm", "split")]
    v = rng.choice([-100, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 2**31, -2**31, 2**62])
    if cands and rng.random() < 0.6:
        n, a = rng.choice(cands)
        if a.type == onnx.AttributeProto.INT:
            a.i = v
            return f"node '{n.name}' {a.name} = {v}"
        vals = rng.choice([[v], [v, v], [0, 0, 1], [2, 1, 0, 3], [-1, -2], [], [0, 1, 2, 3, 4, 5, 6]])
        del a.ints[:]
        a.ints.extend(vals)
        return f"node '{n.name}' {a.name} = {vals}"
    # an axes operand (Slice, Squeeze, Unsqueeze) or a new axis attribute
    ops = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1}
    ins = [(n, n.input[ops[n.op_type]]) for n in g.node if n.op_type in ops and len(n.input) > ops[n.op_type]]
    if ins and rng.random() < 0.6:
        n, name = rng.choice(ins)
        t = _const_tensor(g, name)
        if t is not None:
            size = int(np.prod(t.dims)) if t.dims else 1
            vals = [rng.choice([v, -1, 0, 1, 5, -9]) for _ in range(max(size, 1))]
            _set_tensor(t, np.array(vals, np.int64))
            return f"node '{n.name}' axes operand '{name}' = {vals}"
    if not g.node:
        return None
    n = rng.choice(list(g.node))
    n.attribute.append(helper.make_attribute("axis", v))
    return f"node '{n.name}' gets axis = {v}"


def mut_int_const(rng, m, case):
    g = m.graph
    ts = [t for t in g.initializer if t.data_type in (TensorProto.INT64, TensorProto.INT32)]
    ts += [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
           and a.t.data_type in (TensorProto.INT64, TensorProto.INT32)]
    if not ts:
        return None
    t = rng.choice(ts)
    size = int(np.prod(t.dims)) if t.dims else 1
    n = size if rng.random() < 0.6 else rng.randint(0, 6)
    vals = _ints(rng, n)
    dt = np.int64 if t.data_type == TensorProto.INT64 else np.int32
    vals = [min(max(x, int(np.iinfo(dt).min)), int(np.iinfo(dt).max)) for x in vals]
    _set_tensor(t, np.array(vals, dt).reshape(tuple(t.dims)) if n == size and t.dims else np.array(vals, dt))
    return f"int constant '{t.name}' = {vals}"


VALID_ATTRS = {  # plausible values: the model often stays valid, and passes and kernels see new variants
    "Conv": {"strides": lambda r: [r.randint(1, 3)] * 2, "pads": lambda r: [r.randint(0, 2) for _ in range(4)],
             "dilations": lambda r: [r.randint(1, 2)] * 2, "auto_pad": lambda r: r.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])},
    "MaxPool": {"kernel_shape": lambda r: [r.randint(1, 3)] * 2, "strides": lambda r: [r.randint(1, 3)] * 2,
                "pads": lambda r: [r.randint(0, 1) for _ in range(4)], "ceil_mode": lambda r: r.randint(0, 1),
                "dilations": lambda r: [r.randint(1, 2)] * 2},
    "Softmax": {"axis": lambda r: r.randint(-3, 2)},
    "Transpose": {"perm": lambda r: r.sample(range(3), 3)},
    "Concat": {"axis": lambda r: r.randint(-3, 2)},
    "Flatten": {"axis": lambda r: r.randint(-3, 3)},
    "Gemm": {"transA": lambda r: r.randint(0, 1), "transB": lambda r: r.randint(0, 1),
             "alpha": lambda r: r.choice([1.0, 0.5, -2.0]), "beta": lambda r: r.choice([1.0, 0.0, 3.0])},
    "Resize": {"mode": lambda r: r.choice(["nearest", "linear", "cubic"]),
               "coordinate_transformation_mode": lambda r: r.choice(["half_pixel", "asymmetric", "align_corners",
                                                                      "pytorch_half_pixel", "tf_crop_and_resize"]),
               "nearest_mode": lambda r: r.choice(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])},
    "Pad": {"mode": lambda r: r.choice(["constant", "reflect", "edge", "wrap"])},
    "ConvTranspose": {"strides": lambda r: [r.randint(1, 3)] * 2, "pads": lambda r: [r.randint(0, 1) for _ in range(4)],
                      "output_padding": lambda r: [r.randint(0, 1)] * 2, "dilations": lambda r: [r.randint(1, 2)] * 2,
                      "group": lambda r: r.choice([1, 3]), "auto_pad": lambda r: r.choice(["SAME_UPPER", "VALID"])},
    "AveragePool": {"count_include_pad": lambda r: r.randint(0, 1), "pads": lambda r: [r.randint(0, 1) for _ in range(4)],
                    "ceil_mode": lambda r: r.randint(0, 1)},
    "LSTM": {"direction": lambda r: r.choice(["forward", "reverse", "bidirectional"]), "layout": lambda r: r.randint(0, 1),
             "clip": lambda r: r.choice([0.5, 3.0]), "input_forget": lambda r: r.randint(0, 1)},
    "Gather": {"axis": lambda r: r.randint(-2, 1)},
    "ReduceMean": {"keepdims": lambda r: r.randint(0, 1), "axes": lambda r: [r.randint(-3, 2)]},
    "ReduceMax": {"keepdims": lambda r: r.randint(0, 1), "axes": lambda r: [r.randint(-3, 2)]},
    "Split": {"axis": lambda r: r.randint(-3, 2)},
    "LeakyRelu": {"alpha": lambda r: r.choice([0.0, -1.0, 2.0])},
    "BatchNormalization": {"epsilon": lambda r: r.choice([0.0, 1e-5, 1.0])},
    "DequantizeLinear": {"axis": lambda r: r.randint(-1, 1)},
    "QuantizeLinear": {"axis": lambda r: r.randint(-1, 1)},
}


def mut_valid_attr(rng, m, case):
    nodes = [n for n in m.graph.node if n.op_type in VALID_ATTRS]
    if not nodes:
        return None
    n = rng.choice(nodes)
    name, make = rng.choice(sorted(VALID_ATTRS[n.op_type].items()))
    v = make(rng)
    keep = [a for a in n.attribute if a.name != name and not (name == "auto_pad" and a.name == "pads")]
    del n.attribute[:]
    n.attribute.extend(keep + [helper.make_attribute(name, v)])
    return f"node '{n.name}' {name} = {v}"


def mut_small_ints(rng, m, case):
    """Small values (of any sign) in an int64 constant: slices, shapes, pads and axes that may still fit."""
    g = m.graph
    ts = [t for t in g.initializer if t.data_type == TensorProto.INT64]
    ts += [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
           and a.t.data_type == TensorProto.INT64]
    if not ts:
        return None
    t = rng.choice(ts)
    arr = numpy_helper.to_array(t).copy()
    arr.flat[rng.randrange(max(arr.size, 1))] = rng.randint(-4, 4) if arr.size else 0
    _set_tensor(t, arr)
    return f"int constant '{t.name}' = {arr.tolist()}"


def mut_random_attr(rng, m, case):
    g = m.graph
    if not g.node:
        return None
    n = rng.choice(list(g.node))
    if n.attribute and rng.random() < 0.25:
        i = rng.randrange(len(n.attribute))
        name = n.attribute[i].name
        del n.attribute[i]
        return f"node '{n.name}' loses attribute {name}"
    names = [a.name for a in n.attribute]
    name = rng.choice(names) if names and rng.random() < 0.6 else rng.choice(ATTR_NAMES)
    new = _random_attr(rng, name)
    keep = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    n.attribute.extend(keep + [new])
    v = onnx.helper.get_attribute_value(new)
    shown = type(v).__name__ if isinstance(v, (onnx.TensorProto, onnx.GraphProto)) else repr(v)[:60]
    return f"node '{n.name}' attribute {name} = {shown}"


def mut_op_type(rng, m, case):
    from tinyc.ops import REGISTRY

    g = m.graph
    if not g.node:
        return None
    n = rng.choice(list(g.node))
    how = rng.random()
    if how < 0.15:
        n.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "x", "ai.onnx"])
        return f"node '{n.name}' domain {n.domain}"
    if how < 0.3:
        n.op_type = rng.choice(["Frobnicate", "", "conv", "Loop", "If", "Scan", "ConstantOfShape", "Tile", "Range",
                                "NonZero", "Einsum", "TopK", "Where", "Col2Im"])
    else:
        n.op_type = rng.choice(sorted(REGISTRY))  # any op tinyc knows, internal ones too, with these inputs
    return f"node '{n.name}' op -> {n.op_type or '(empty)'}"


def mut_dtype(rng, m, case):
    g = m.graph
    v = rng.choice(ELEM_TYPES)
    if g.initializer and rng.random() < 0.5:
        t = rng.choice(list(g.initializer))
        t.data_type = v
        return f"initializer '{t.name}' data_type {v}"
    vis = list(g.input) + list(g.output)
    if not vis:
        return None
    vi = rng.choice(vis)
    if rng.random() < 0.15:
        vi.type.sequence_type.elem_type.tensor_type.elem_type = 1
        return f"'{vi.name}' becomes a sequence"
    if rng.random() < 0.1:
        vi.ClearField("type")
        return f"'{vi.name}' has no type"
    vi.type.tensor_type.elem_type = v
    return f"'{vi.name}' elem_type {v}"


def mut_retype_initializer(rng, m, case):
    g = m.graph
    if not g.initializer:
        return None
    t = rng.choice(list(g.initializer))
    arr = numpy_helper.to_array(t)
    dt = rng.choice([np.int8, np.uint8, np.int32, np.int64, np.float16, np.float64, np.bool_, np.uint64, np.int16])
    with np.errstate(all="ignore"):
        _set_tensor(t, arr.astype(dt))
    return f"initializer '{t.name}' as {np.dtype(dt).name}"


def mut_weird_values(rng, m, case):
    g = m.graph
    ts = [t for t in g.initializer if t.data_type == TensorProto.FLOAT]
    if not ts:
        return None
    t = rng.choice(ts)
    arr = numpy_helper.to_array(t).copy()
    how = rng.choice(["nan", "inf", "huge", "zero", "tiny", "empty", "scalar"])
    if how == "empty":
        arr = np.zeros((0,), np.float32)
    elif how == "scalar":
        arr = np.float32(rng.choice(FLOATS))
    else:
        arr.flat[rng.randrange(max(arr.size, 1))] = {"nan": np.nan, "inf": np.inf, "huge": 3e38, "zero": 0.0,
                                                    "tiny": 1e-45}[how] if arr.size else 0
        if how in ("huge", "zero"):
            arr[...] = 3e38 if how == "huge" else 0.0
    _set_tensor(t, np.asarray(arr, np.float32))
    return f"initializer '{t.name}' values {how}"


def mut_raw_data(rng, m, case):
    g = m.graph
    ts = [t for t in g.initializer]
    if not ts:
        return None
    t = rng.choice(ts)
    how = rng.choice(["truncate", "extend", "empty", "dims_x2", "dims_zero", "dims_neg", "dims_huge", "float_data",
                      "both", "no_dims"])
    if how == "truncate" and t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    elif how == "extend":
        t.raw_data = t.raw_data + bytes(rng.randint(1, 13))
    elif how == "empty":
        t.raw_data = b""
    elif how == "dims_x2" and t.dims:
        t.dims[0] *= 2
    elif how == "dims_zero" and t.dims:
        t.dims[rng.randrange(len(t.dims))] = 0
    elif how == "dims_neg" and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice([-1, -3, -2**40])
    elif how == "dims_huge":
        t.dims.append(rng.choice(HUGE[:-3]))
    elif how == "float_data":
        t.ClearField("raw_data")
        t.float_data.extend([1.0] * rng.randint(0, 7))
    elif how == "both":
        t.float_data.extend([1.0, 2.0])
        t.int64_data.extend([1])
    elif how == "no_dims":
        del t.dims[:]
    else:
        return None
    return f"initializer '{t.name}' {how}"


EXTERNAL_LOCATIONS = ["w.bin", "w.bin", "w.bin", "../outside.bin", "/etc/hostname", "/dev/zero", "sub/../../outside.bin",
                      "..", ".", "", "missing.bin", "sub", MODEL_FILE, "link.bin", "zero_link.bin", "w.bin\x00x",
                      "./w.bin", "sub/../w.bin", "sparse.bin", "..\\outside.bin", "%2e%2e/outside.bin"]


def mut_external(rng, m, case):
    g = m.graph
    ts = [t for t in g.initializer if t.raw_data] or list(g.initializer)
    if not ts:
        return None
    t = rng.choice(ts)
    raw = t.raw_data or numpy_helper.to_array(t).tobytes()
    loc = rng.choice(EXTERNAL_LOCATIONS)
    pad = rng.choice([0, 0, 16, 3])
    case.files["w.bin"] = bytes(pad) + raw
    entries = {"location": loc}
    if pad or rng.random() < 0.3:
        entries["offset"] = str(pad)
    if rng.random() < 0.5:
        entries["length"] = str(len(raw))
    if rng.random() < 0.35:
        key = rng.choice(["offset", "length"])
        entries[key] = rng.choice(["-1", "-100", "abc", "", "1e3", str(2**62), str(2**31), "99999999999999", "0x10",
                                   str(len(raw) + 1), "  7", "18446744073709551616"])
    if rng.random() < 0.1:
        entries["checksum"] = "deadbeef"
    if loc == "sub":
        case.files["sub/.keep"] = b""
    if loc == "link.bin":
        case.symlinks["link.bin"] = "../outside.bin"
    if loc == "zero_link.bin":
        case.symlinks["zero_link.bin"] = "/dev/zero"
    if loc == "sparse.bin":
        case.sparse["sparse.bin"] = rng.choice([2**31, 5 * 2**30])
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    if _points_outside(t):
        case.must_refuse = f"external data '{loc}' is outside the model's folder"
    return f"initializer '{t.name}' external {entries}"


def mut_opset(rng, m, case):
    how = rng.random()
    if how < 0.5:
        v = rng.choice([0, 1, 6, 7, 9, 10, 11, 12, 13, 15, 17, 18, 19, 20, 21, 22, 23, 24, 100, 2**31])
        if m.opset_import:
            m.opset_import[0].version = v
        return f"opset {v}"
    if how < 0.65:
        del m.opset_import[:]
        return "no opset"
    if how < 0.75:
        m.opset_import.append(helper.make_opsetid("", rng.choice([7, 13, 22])))
        return "default opset listed twice"
    v = rng.choice([0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 99, -1])
    m.ir_version = v
    return f"ir_version {v}"


def mut_empty(rng, m, case):
    g = m.graph
    how = rng.choice(["nodes", "outputs", "inputs", "everything", "graph"])
    if how == "nodes":
        del g.node[:]
    elif how == "outputs":
        del g.output[:]
    elif how == "inputs":
        del g.input[:]
    elif how == "everything":
        del g.node[:]
        del g.input[:]
        del g.initializer[:]
    else:
        m.ClearField("graph")
    return f"empty {how}"


def mut_arity(rng, m, case):
    g = m.graph
    if not g.node:
        return None
    n = rng.choice(list(g.node))
    names = _tensor_names(g)
    how = rng.choice(["add_input", "drop_input", "empty_input", "add_output", "drop_outputs", "empty_output"])
    if how == "add_input" and names:
        n.input.append(rng.choice(names))
    elif how == "drop_input" and n.input:
        del n.input[-1]
    elif how == "empty_input" and n.input:
        n.input[rng.randrange(len(n.input))] = ""
    elif how == "add_output":
        n.output.append(_new_name(g, "extra"))
    elif how == "drop_outputs":
        del n.output[:]
    elif how == "empty_output" and n.output:
        n.output.insert(0, "")
    else:
        return None
    return f"node '{n.name}' {how}"


def mut_shuffle_inputs(rng, m, case):
    nodes = [n for n in m.graph.node if len(n.input) > 1]
    if not nodes:
        return None
    n = rng.choice(nodes)
    ins = list(n.input)
    rng.shuffle(ins)
    del n.input[:]
    n.input.extend(ins)
    return f"node '{n.name}' inputs shuffled {ins}"


WEIRD_NAMES = ["", " ", "a\nb", "a\rb", "ü\u2028", "x" * 3000, "../../etc/passwd", "/abs", "int", "return", "main",
               "1abc", "a.b-c", "model", "model_arena", "%s%n", "\x00", "y", "x", "MODEL", "__attribute__"]


def mut_weird_names(rng, m, case):
    g = m.graph
    how = rng.random()
    new = rng.choice(WEIRD_NAMES)
    if how < 0.2:
        if not g.node:
            return None
        rng.choice(list(g.node)).name = new
        return f"node named {new!r:.40}"
    if how < 0.25:
        g.name = new
        return f"graph named {new!r:.40}"
    names = _tensor_names(g)
    if not names:
        return None
    old = rng.choice(names)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name == old:
            vi.name = new
    for t in g.initializer:
        if t.name == old:
            t.name = new
    for n in g.node:
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new
        for i, x in enumerate(n.output):
            if x == old:
                n.output[i] = new
    return f"tensor {old!r} renamed {new!r:.40}"


def mut_value_info(rng, m, case):
    """Declared shapes (hints that ONNX's own shape inference reads) that lie."""
    g = m.graph
    names = [o for n in g.node for o in n.output if o]
    how = rng.random()
    if how < 0.2 and names:
        for name in names:
            g.value_info.append(_vi(name, [rng.choice([1, 2, 3, 0, -1, -7, 2**31, 2**40, 2**63 - 1])
                                           for _ in range(rng.randint(0, 5))], rng.choice([1, 6, 7])))
        return "value_info with random shapes for every tensor"
    if how < 0.5 and names:
        name = rng.choice(names)
        g.value_info.append(_vi(name, [rng.choice([1, 2, 7, 0, -1, 2**40]) for _ in range(rng.randint(0, 4))],
                                rng.choice([1, 6, 7, 10, 2])))
        return f"value_info for '{name}'"
    if not g.output:
        return None
    vi = rng.choice(list(g.output))
    vi.type.tensor_type.elem_type = rng.choice([1, 6, 7, 10, 3])
    dims = vi.type.tensor_type.shape.dim
    del dims[:]
    for _ in range(rng.randint(0, 4)):
        dims.add().dim_value = rng.choice([1, 3, 5, 2**40])
    return f"graph output '{vi.name}' declared wrongly"


def mut_constant_node(rng, m, case):
    g = m.graph
    out = _new_name(g, "k")
    how = rng.choice(["sparse", "strings", "huge_dims", "string_tensor", "two_attrs", "no_attr", "value_float",
                      "value_ints", "bad_tensor", "external", "neg_dims"])
    if how == "sparse":
        vals = numpy_helper.from_array(np.array([1.0], np.float32), "v")
        idx = numpy_helper.from_array(np.array([rng.choice([0, 5, -1, 2**40])], np.int64), "i")
        node = helper.make_node("Constant", [], [out], sparse_value=helper.make_sparse_tensor(vals, idx, [4]))
    elif how == "strings":
        node = helper.make_node("Constant", [], [out], value_strings=["a", "b"])
    elif how == "huge_dims":
        t = onnx.TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[rng.choice(HUGE[:-3]), 2**20])
        node = helper.make_node("Constant", [], [out], value=t)
    elif how == "neg_dims":
        t = onnx.TensorProto(name="v", data_type=TensorProto.INT64, dims=[rng.choice([-1, -3, 0]), 2], raw_data=bytes(16))
        node = helper.make_node("Constant", [], [out], value=t)
    elif how == "string_tensor":
        node = helper.make_node("Constant", [], [out], value=helper.make_tensor("v", TensorProto.STRING, [1], [b"x"]))
    elif how == "two_attrs":
        node = helper.make_node("Constant", [], [out], value_float=1.0, value_int=2)
    elif how == "no_attr":
        node = helper.make_node("Constant", [], [out])
    elif how == "value_float":
        node = helper.make_node("Constant", [], [out], value_float=rng.choice(FLOATS))
    elif how == "value_ints":
        node = helper.make_node("Constant", [], [out], value_ints=_ints(rng))
    elif how == "bad_tensor":
        t = onnx.TensorProto(name="v", data_type=rng.choice(ELEM_TYPES), dims=[3, 2], raw_data=bytes(rng.randint(0, 30)))
        node = helper.make_node("Constant", [], [out], value=t)
    else:
        t = onnx.TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[2])
        t.data_location = TensorProto.EXTERNAL
        loc = rng.choice(["../outside.bin", "w.bin", "/etc/hostname"])
        case.files.setdefault("w.bin", bytes(8))
        e = t.external_data.add()
        e.key, e.value = "location", loc
        if loc != "w.bin":
            case.must_refuse = f"external data '{loc}' is outside the model's folder"
        node = helper.make_node("Constant", [], [out], value=t)
    node.name = "weird_constant"
    g.node.insert(0, node)
    consumers = [n for n in g.node if n.input and n is not node]
    if consumers and rng.random() < 0.6:
        c = rng.choice(consumers)
        c.input[rng.randrange(len(c.input))] = out
    else:
        g.output.append(_vi(out, None))
    return f"Constant {how}"


def mut_long_chain(rng, m, case):
    """Many nodes (in reverse order: each must be sorted), after a graph output."""
    g = m.graph
    if not g.output or not g.node:
        return None
    k = rng.choice([50, 200, 600])
    src = g.output[0].name
    names = [src] + [_new_name(g, "chain") + f"_{i}" for i in range(k)]
    nodes = [helper.make_node(rng.choice(["Relu", "Identity", "Neg"]), [names[i]], [names[i + 1]], name=f"chain{i}")
             for i in range(k)]
    if rng.random() < 0.7:
        nodes.reverse()
    g.node.extend(nodes)
    g.output[0].name = names[-1]
    return f"chain of {k} nodes"


def mut_subgraph(rng, m, case):
    g = m.graph
    if not g.output:
        return None
    out = _new_name(g, "if_out")
    then = helper.make_graph([helper.make_node("Constant", [], ["c"], value_float=1.0)], "then", [], [_vi("c", [])])
    cond = _new_name(g, "cond")
    g.initializer.append(_init(cond, np.array(True)))
    g.node.append(helper.make_node("If", [cond], [out], name="if", then_branch=then, else_branch=then))
    g.output.append(_vi(out, None))
    return "If node with subgraphs"


def mut_function(rng, m, case):
    g = m.graph
    if not g.node:
        return None
    n = rng.choice(list(g.node))
    f = helper.make_function("local", "MyOp", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                             [helper.make_opsetid("", 17)])
    m.functions.append(f)
    m.opset_import.append(helper.make_opsetid("local", 1))
    n.op_type, n.domain = "MyOp", "local"
    return f"node '{n.name}' calls a model-local function"


MUTATORS = [
    (mut_input_dims, 6), (mut_absurd_input, 2), (mut_reshape_shape, 3), (mut_huge_op, 6), (mut_remove_initializer, 3),
    (mut_dangling_input, 2), (mut_cycle, 2), (mut_duplicate_names, 3), (mut_axes, 5), (mut_int_const, 4),
    (mut_random_attr, 6), (mut_op_type, 5), (mut_dtype, 4), (mut_retype_initializer, 3), (mut_weird_values, 3),
    (mut_raw_data, 4), (mut_external, 6), (mut_opset, 4), (mut_empty, 1), (mut_arity, 4), (mut_shuffle_inputs, 2),
    (mut_weird_names, 4), (mut_value_info, 2), (mut_constant_node, 3), (mut_long_chain, 1), (mut_subgraph, 1),
    (mut_function, 1), (mut_valid_attr, 8), (mut_small_ints, 5),
]


# --------------------------------------------------------------------------------------------
# Building a case
# --------------------------------------------------------------------------------------------

def _all_tensors(g):
    yield from g.initializer
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


def _points_outside(t: onnx.TensorProto) -> bool:
    if t.data_location != TensorProto.EXTERNAL:
        return False
    loc = {e.key: e.value for e in t.external_data}.get("location", "")
    return loc.startswith("/") or os.path.normpath(loc).startswith("..") or loc in ("link.bin", "zero_link.bin")


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}-{index}")
    base = rng.choice(sorted(SEED_BUILDERS))
    case = Case(seed, index, base)
    m = seed_model(base)
    r = rng.random()
    if r < 0.12:
        data = m.SerializeToString()  # unchanged: must compile
    else:
        weights = [w for _, w in MUTATORS]
        count = rng.choice([1, 1, 1, 2, 2, 3])
        tries = 0
        while len(case.mutations) < count and tries < 20:
            tries += 1
            fn = rng.choices([f for f, _ in MUTATORS], weights)[0]
            keep = m.SerializeToString()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    desc = fn(rng, m, case)
            except Exception:  # the mutator does not apply to what earlier ones made: undo it
                m = onnx.ModelProto()
                m.ParseFromString(keep)
                desc = None
            if desc:
                case.mutations.append(desc)
        if case.must_refuse and not any(_points_outside(t) for t in _all_tensors(m.graph)):
            case.must_refuse = ""  # a later mutation replaced the tensor that pointed outside
        data = m.SerializeToString()
        if r > 0.75:
            for _ in range(rng.choice([1, 1, 2])):
                data, desc = _bytes_mutate(rng, data)
                case.mutations.append(desc)
            case.must_refuse = ""  # (the bytes of the location may have changed too)
    case.files[MODEL_FILE] = data
    return case


# --------------------------------------------------------------------------------------------
# Running a case (in a fuzz child)
# --------------------------------------------------------------------------------------------

def onnx_rejects(data: bytes) -> str:
    """Why ONNX's checker and strict shape inference reject a model ("" when they accept it)."""
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
        if any(t.data_location == TensorProto.EXTERNAL for t in m.graph.initializer):
            return ""
        # (a negative dimension aborts ONNX's C++ shape inference, and this process with it)
        for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
            if any(d.dim_value < 0 for d in vi.type.tensor_type.shape.dim):
                return "a negative dimension"
        onnx.checker.check_model(m)
        onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    except Exception as e:  # noqa: BLE001
        return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return ""


checker_rejects = onnx_rejects


# --------------------------------------------------------------------------------------------
# Running (tests/fuzz_harness.py)
# --------------------------------------------------------------------------------------------

run_case, run_fuzz = fuzz_harness.runners(__name__)


if __name__ == "__main__":
    sys.exit(fuzz_harness.main(sys.modules[__name__]))
