"""How far tinyc's integer execution of a QDQ graph may be from onnxruntime's float execution.

Both compute what the graph means, but round differently: onnxruntime requantizes in float,
tinyc in integers as TFLite does (and tabulates pointwise ops, folds averages, ...). Given the same
int8 inputs, each QuantizeLinear may come out one step apart. A difference carries on through
the layers after it, scaled by how much each can amplify a change of its input (its Lipschitz
constant in the largest-element norm):

- Conv, Gemm, MatMul with constant weights: the largest L1 norm of a weight row (one output);
- Add, Sub: the sum of both; Mul: each difference times the other operand's largest magnitude
  (from its quantization range); MatMul of two activations: that, times the inner dimension;
- data movement, pooling, means, Relu, Clip, Max, Min, Concat: 1; Sigmoid 1/4; HardSigmoid alpha;
  HardSwish 3/2; LeakyRelu max(1, alpha); Tanh, Softmax 1; LogSoftmax 2; Gelu, Erf 1.13.

``steps_bound(model)`` is that difference at the graph output, in steps of the output's scale
(its own rounding included). An op outside this list gives no bound (None).
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

UNIT = {"Reshape", "Flatten", "Transpose", "Identity", "Slice", "Concat", "MaxPool", "GlobalMaxPool", "ReduceMax",
        "Pad", "Relu", "Max", "Min", "Clip", "AveragePool", "GlobalAveragePool", "ReduceMean", "Resize", "Squeeze",
        "Unsqueeze", "Tanh", "Softmax", "Split", "Abs", "Neg", "DepthToSpace"}
GAIN = {"Sigmoid": 0.25, "HardSwish": 1.5, "LogSoftmax": 2.0, "PRelu": 1.0,
        "Gelu": 1.13, "Erf": 1.13}  # (the largest slopes: 1.1290 for both Gelus, 2 / sqrt(pi) = 1.1284 for Erf)


# ops that onnxruntime's quantizer may leave float after the last DequantizeLinear, which keep its
# values (and so its scale) as they are
VALUE_PRESERVING = {"Identity", "Cast", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}


def _attr(n: onnx.NodeProto, name: str, default):
    for a in n.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _times(a: float, b: float) -> float:
    return 0.0 if a == 0.0 else a * b


def _shape_k(model: onnx.ModelProto, name: str) -> int | None:
    """The last dimension of a value (MatMul's inner one), by ONNX's shape inference."""
    g = onnx.shape_inference.infer_shapes(model).graph
    for v in list(g.value_info) + list(g.input) + list(g.output):
        if v.name == name:
            dims = v.type.tensor_type.shape.dim
            return int(dims[-1].dim_value) if dims and dims[-1].dim_value > 0 else None
    return None


def steps_bound(model: onnx.ModelProto) -> int | None:
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    dev: dict[str, float] = {i.name: 0.0 for i in g.input}   # largest real difference per value
    mag: dict[str, float] = {}                                 # largest real magnitude, where known

    def d(name: str) -> float:
        if name in consts or name == "":
            return 0.0
        return dev[name]

    def m(name: str) -> float:
        if name in consts:
            return float(np.abs(consts[name]).max(initial=0.0))
        return mag.get(name, math.inf)

    for n in g.node:
        ins, op = list(n.input), n.op_type
        if op in ("QuantizeLinear", "DequantizeLinear"):
            s = consts[ins[1]]
            z = consts[ins[2]] if len(ins) > 2 and ins[2] else np.zeros_like(s)
            if op == "DequantizeLinear" and ins[0] in consts:  # a weight or a bias
                q = consts[ins[0]]
                if s.size > 1:  # per channel along the node's axis (ONNX's default 1)
                    shape = [1] * q.ndim
                    shape[_attr(n, "axis", 1) % q.ndim] = -1
                    s, z = s.reshape(shape), z.reshape(shape)
                consts[n.output[0]] = (q - z) * s
                continue
            step = float(s.max())
            # the rounding step (QuantizeLinear), with the int8 range as the magnitude
            dev[n.output[0]] = d(ins[0]) + (step if op == "QuantizeLinear" else 0.0)
            mag[n.output[0]] = step * float(max(abs(-128 - z.min()), abs(127 - z.max())))
            continue
        if op == "MatMul" and ins[1] not in consts:  # two activations: K products of (a + da)(b + db)
            k = _shape_k(model, ins[0])
            if k is None:
                return None
            out = k * (_times(d(ins[0]), m(ins[1])) + _times(d(ins[1]), m(ins[0])) + d(ins[0]) * d(ins[1]))
        elif op in ("Conv", "Gemm", "MatMul"):
            w = consts.get(ins[1])
            if w is None:
                return None
            rows = w.T if (op == "MatMul" or (op == "Gemm" and not _attr(n, "transB", 0))) else w
            gain = float(np.abs(rows.reshape(rows.shape[0], -1)).sum(axis=1).max(initial=0.0))
            out = d(ins[0]) * gain
        elif op in ("Add", "Sub"):
            out = d(ins[0]) + d(ins[1])
        elif op == "Mul":
            out = _times(d(ins[0]), m(ins[1])) + _times(d(ins[1]), m(ins[0])) + d(ins[0]) * d(ins[1])
        elif op in UNIT:
            out = max(d(i) for i in ins if i and i not in consts) if any(i and i not in consts for i in ins) else 0.0
        elif op == "HardSigmoid":
            out = d(ins[0]) * float(_attr(n, "alpha", 0.2))
        elif op == "LeakyRelu":
            out = d(ins[0]) * max(1.0, float(_attr(n, "alpha", 0.01)))
        elif op in GAIN:
            out = d(ins[0]) * GAIN[op] * (max(1.0, m(ins[1])) if op == "PRelu" else 1.0)
        else:
            return None
        for o in n.output:
            dev[o] = out
    # the output: through Identity to the last DequantizeLinear, in steps of its scale
    producers = {o: n for n in g.node for o in n.output}
    name = g.output[0].name
    while name in producers and producers[name].op_type in VALUE_PRESERVING:
        name = producers[name].input[0]
    p = producers.get(name)
    if p is None or p.op_type != "DequantizeLinear" or dev.get(name, math.inf) == math.inf:
        return None
    scale = float(consts[p.input[1]].max())
    return int(math.floor(dev[name] / scale + 1e-6))
