"""Post-training int8 (or 16x8) quantization of a float graph.

The float graph gets QuantizeLinear/DequantizeLinear pairs on every activation that an int8
kernel reads or writes (ranges from calibration), int8 weights (symmetric, per output channel),
and is then lowered by the same ``lower-qdq`` pass that handles imported QDQ models. Constraints of
TFLite's int8 kernels are applied while choosing parameters: pooling and data-movement ops keep
their input's parameters, Concat inputs share one range, Softmax outputs use 1/256 and -128.

``int16x8`` (TFLite's 16x8 scheme): int16 activations, symmetric (zero point 0) over the calibrated
range, the same int8 weights, int64 biases (made by lower-qdq); ops whose int16 kernel fixes its
output scale (``Op.int16_output_scale``) get it.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, QuantParams, Tensor
from ..ops import get_op
from ..passes.lower_qdq import lower_qdq
from . import calibrate
from .affine import quantize
from .io import strip_io_quantization


def _consumers(g: Graph) -> dict[str, list[Node]]:
    cons: dict[str, list[Node]] = {}
    for n in g.nodes:
        for x in n.inputs:
            if x is not None:
                cons.setdefault(x, []).append(n)
    return cons


# the schemes tinyc's quantizer makes: name -> (activation type, its IR dtype)
SCHEMES = {"int8": (np.int8, "s8"), "int16x8": (np.int16, "s16")}


def activations_to_quantize(g: Graph, scheme: str = "int8", refused: list[str] | None = None) -> list[str]:
    """Float activations that get their own int8 parameters: graph inputs and node outputs,
    except an output that only feeds a fused Relu/Clip or a bias Add (it never exists in int8).
    ``refused``: what the nodes' int8 forms refused, told with the ops that have none."""
    cons = _consumers(g)
    int16 = scheme == "int16x8"
    bad = sorted({f"{n.op} ('{n.name}')" for n in g.nodes if not n.attrs.get("keep_float") and (
                  not get_op(n.op).lowers_to_int8 or (int16 and not get_op(n.op).int16x8))})
    if bad or refused:
        raise UnsupportedError("; ".join(([f"{scheme} quantization: no {'16x8' if int16 else 'int8'} kernel for "
                                           + ", ".join(bad)] if bad else []) + (refused or [])))
    names = [i for i in g.inputs if g.tensors[i].dtype == "f32"]
    for n in g.nodes:
        for o in n.outputs:
            users = cons.get(o, [])
            fused = (get_op(n.op).hosts_activation and len(users) == 1 and o not in g.outputs and
                     (get_op(users[0].op).activation == "clamp" or
                      (n.op == "MatMul" and g.tensors[n.inputs[1]].is_const and users[0].op == "Add" and
                       any(x != o and g.tensors[x].is_const for x in users[0].inputs))))
            if not fused:
                names.append(o)
    return names


def choose_params(g: Graph, ranges: dict[str, tuple[float, float]], scheme: str = "int8") -> dict[str, tuple[float, int]]:
    """(scale, zero point) per activation, respecting the kernels' constraints."""
    ranges = dict(ranges)
    for n in g.nodes:  # e.g. Concat: inputs and output share the union of their ranges
        if get_op(n.op).int8_shared_range:
            members = [x for x in n.inputs + n.outputs if x in ranges]
            lo = min(ranges[x][0] for x in members)
            hi = max(ranges[x][1] for x in members)
            for x in members:
                ranges[x] = (lo, hi)
    int16 = scheme == "int16x8"
    make = calibrate.symmetric16_params if int16 else calibrate.asymmetric_params
    params = {name: make(*r) for name, r in ranges.items()}
    for n in g.nodes:  # in order, so chains of pass-through ops inherit from the first input
        if n.outputs[0] in params:
            op = get_op(n.op)
            fixed = (op.int16_output_scale, 0) if int16 and op.int16_output_scale else \
                op.calibrated_output(n, params.get(n.inputs[0]) if n.inputs else None)
            if fixed is not None:
                params[n.outputs[0]] = fixed
    return params


def _add_qdq(g: Graph, name: str, scale: float, zp: int, scheme: str = "int8") -> None:
    """Route every reader of ``name`` through QuantizeLinear -> DequantizeLinear."""
    np_type, dtype = SCHEMES[scheme]
    s = g.add_const(g.unique_name(f"{name}/scale"), np.array(scale, np.float32))
    z = g.add_const(g.unique_name(f"{name}/zero_point"), np.array(zp, np_type))
    q_name = g.unique_name(f"{name}/q")
    g.add_tensor(Tensor(q_name, g.tensors[name].shape, dtype))
    if name in g.inputs:
        dq_name = g.unique_name(f"{name}/dq")
        g.add_tensor(Tensor(dq_name, g.tensors[name].shape, "f32"))
        for n in g.nodes:
            n.inputs = [dq_name if x == name else x for x in n.inputs]
        g.outputs = [dq_name if o == name else o for o in g.outputs]
        at = 0
        src, dst = name, dq_name
    else:
        # The producer writes a new float tensor; the DequantizeLinear output keeps the name, so
        # readers and graph outputs need no change.
        f_name = g.unique_name(f"{name}/f")
        t = g.tensors[name]
        g.add_tensor(Tensor(f_name, t.shape, t.dtype))
        at = next(i for i, n in enumerate(g.nodes) if name in n.outputs)
        g.nodes[at].outputs = [f_name if o == name else o for o in g.nodes[at].outputs]
        at += 1
        src, dst = f_name, name
    g.nodes[at:at] = [Node("QuantizeLinear", f"{name}/quantize", [src, s.name, z.name], [q_name]),
                      Node("DequantizeLinear", f"{name}/dequantize", [q_name, s.name, z.name], [dst])]


def _quantize_operand(g: Graph, n: Node, idx: int, scheme: str = "int8") -> None:
    """A constant operand of an elementwise op as DequantizeLinear(int8 constant), per tensor over
    its range (int16x8: int16, symmetric)."""
    t = g.tensors[n.inputs[idx]]
    np_type = SCHEMES[scheme][0]
    make = calibrate.symmetric16_params if scheme == "int16x8" else calibrate.asymmetric_params
    scale, zp = make(float(t.data.min()), float(t.data.max()))
    q = quantize(t.data.astype(np.float64), scale, zp, dtype=np_type)
    tq = g.add_const(g.unique_name(f"{t.name}/{scheme}"), q)
    s = g.add_const(g.unique_name(f"{t.name}/scale"), np.array(scale, np.float32))
    z = g.add_const(g.unique_name(f"{t.name}/zero_point"), np.array(zp, np_type))
    out = g.unique_name(f"{t.name}/dq")
    g.add_tensor(Tensor(out, t.shape, "f32"))
    g.nodes.insert(g.nodes.index(n), Node("DequantizeLinear", g.unique_name(f"{n.name}/operand{idx}_dq"), [tq.name, s.name, z.name], [out]))
    n.inputs = [out if i == idx else x for i, x in enumerate(n.inputs)]


def _quantize_weight(g: Graph, n: Node, idx: int, axis: int, min_scale: np.ndarray | None = None) -> None:
    """Replace a float weight by DequantizeLinear(int8 weight), symmetric per output channel.
    ``min_scale`` keeps each channel's scale large enough for its int32 bias (as TFLite's
    converter does for channels whose weights are all near zero)."""
    t = g.tensors[n.inputs[idx]]
    if not t.is_const:
        raise UnsupportedError(f"{n.op} node '{n.name}': int8 quantization needs constant weights")
    w = t.data.astype(np.float64)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.abs(moved).max(axis=1) / 127.0
    if min_scale is not None:
        scale = np.maximum(scale, min_scale)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = quantize(w, scale.reshape(shape).astype(np.float64), 0, lo=-127)
    wq = g.add_const(g.unique_name(f"{t.name}/int8"), q)
    s = g.add_const(g.unique_name(f"{t.name}/scale"), scale)
    z = g.add_const(g.unique_name(f"{t.name}/zero_point"), np.zeros(scale.shape, np.int8))
    out = g.unique_name(f"{t.name}/dq")
    g.add_tensor(Tensor(out, t.shape, "f32"))
    pos = g.nodes.index(n)
    g.nodes.insert(pos, Node("DequantizeLinear", f"{n.name}/weight_dq", [wq.name, s.name, z.name], [out], {"axis": axis}))
    n.inputs = [out if i == idx else x for i, x in enumerate(n.inputs)]


def _int8_form(n, g: Graph, refused: list[str]) -> list | None:
    """The node's int8 form; what it refuses goes to ``refused`` (every such node is told at once)."""
    try:
        return get_op(n.op).int8_form(n, g)
    except UnsupportedError as e:
        refused.append(str(e))
        return None


def quantize_graph(g: Graph, samples: list[dict[str, np.ndarray]], method: str = "minmax",
                   percentile: float = 99.99, io: str = "float", progress: bool = True, scheme: str = "int8",
                   keep_float: tuple[str, ...] = ()) -> Graph:
    """Calibrate on ``samples`` and return the int8 (or 16x8) graph (integer ops after lower-qdq)."""
    return lower(qdq_graph(g, samples, method, percentile, progress, scheme, keep_float), io)


def lower(g: Graph, io: str = "float") -> Graph:
    """The QDQ graph of ``qdq_graph`` as integer ops (--io int8: without the I/O quantization)."""
    g = lower_qdq(g)
    if io == "int8":
        g = strip_io_quantization(g)
    return g


def qdq_graph(g: Graph, samples: list[dict[str, np.ndarray]], method: str = "minmax", percentile: float = 99.99,
              progress: bool = True, scheme: str = "int8", keep_float: tuple[str, ...] = (),
              owners: dict[str, tuple[str, str]] | None = None) -> Graph:
    """The float graph calibrated on ``samples`` with QuantizeLinear/DequantizeLinear on every
    activation and weight an integer kernel reads or writes. ``keep_float``: nodes (by name) that
    stay float (``keep_float`` attribute; their weights stay float, their input and output are
    dequantized and quantized around them). ``owners`` (filled in): each DequantizeLinear's name ->
    (the layer it belongs to, the float tensor it stands for; "" for a graph input's)."""
    from .mixed import mark_keep_float

    mark_keep_float(g, keep_float)
    refused: list[str] = []
    if scheme == "int8":
        g.nodes = [m for n in list(g.nodes) for m in
                   ((None if n.attrs.get("keep_float") else _int8_form(n, g, refused)) or [n])]
    names = activations_to_quantize(g, scheme, refused)
    prod = {o: n for n in g.nodes for o in n.outputs}
    ranges = calibrate.collect(g, samples, names, method, percentile, progress)
    for key in [k for k in ranges if isinstance(k, tuple)]:  # a node's internal values (Op.internal_ranges)
        n = next(n for n in g.nodes if n.name == key[0])
        n.attrs.setdefault("calibrated", {})[key[1]] = [float(v) for v in ranges.pop(key)]
    params = choose_params(g, ranges, scheme)
    cons = _consumers(g)
    # MatMuls with constant weights: fully connected layers, a constant Add after them their bias
    weighted = {n.outputs[0] for n in g.nodes if n.op == "MatMul" and g.tensors[n.inputs[1]].is_const}
    for n in list(g.nodes):
        op = get_op(n.op)
        weight = op.int8_weight(n, [None if x is None else g.tensors[x] for x in n.inputs])
        bias = None
        if weight is not None and len(n.inputs) > 2 and n.inputs[2] is not None:
            bias = g.tensors[n.inputs[2]]
        elif n.op == "MatMul" and len(cons.get(n.outputs[0], [])) == 1 and cons[n.outputs[0]][0].op == "Add":
            bias = next((g.tensors[x] for x in cons[n.outputs[0]][0].inputs if g.tensors[x].is_const), None)
        floor = None
        if bias is not None and bias.is_const and n.inputs[0] in params and scheme == "int8":
            # |bias / (x_scale * w_scale)| must stay well inside int32 (16x8 biases are int64)
            floor = np.abs(bias.data.astype(np.float64)).reshape(-1) / (params[n.inputs[0]][0] * 2.0**30)
        if n.attrs.get("keep_float"):
            continue
        before = list(n.inputs)
        if weight is not None:
            _quantize_weight(g, n, *weight, floor)
        elif op.quantizes_const_operands:
            fc_bias = n.op == "Add" and any(p.outputs[0] in weighted and len(cons.get(p.outputs[0], [])) == 1
                                            for p in g.nodes if p.outputs[0] in n.inputs)
            for idx, x in enumerate(n.inputs):
                if x is not None and g.tensors[x].is_const and g.tensors[x].dtype == "f32" and not fc_bias:
                    _quantize_operand(g, n, idx, scheme)
        if owners is not None:  # the constants now read through a DequantizeLinear
            by_out = {m.outputs[0]: m for m in g.nodes}
            owners.update({by_out[new].name: (n.name, old) for old, new in zip(before, n.inputs) if old != new})
    for name in names:
        _add_qdq(g, name, *params[name], scheme)
        if owners is not None:
            p = prod.get(name)
            inner = prod.get(p.inputs[0]) if p is not None and p.inputs else None
            if p is not None and get_op(p.op).activation == "clamp" and inner is not None and p.inputs[0] not in names:
                p = inner  # a fused activation: the layer is the op it is fused into
            q = next(m for m in g.nodes if m.name == f"{name}/quantize")
            owners[f"{name}/dequantize"] = (p.name if p is not None else "", q.inputs[0])
    return g


def quality(float_outputs: list[dict[str, np.ndarray]], int8_outputs: list[dict[str, np.ndarray]],
            int8_graph: Graph) -> dict[str, dict[str, float]]:
    """Per output: SQNR (dB), max abs error and top-1 agreement of the int8 model against the
    float model (int8 outputs dequantized with their parameters)."""
    out = {}
    for name in float_outputs[0]:
        t = int8_graph.tensors.get(name)
        f = np.stack([np.asarray(o[name], np.float64) for o in float_outputs])
        q = np.stack([_dequantize(o[name], t.quant if t is not None else None) for o in int8_outputs])
        noise = np.sum((f - q) ** 2)
        sqnr = float("inf") if noise == 0 else float(10 * np.log10(np.sum(f ** 2) / noise))
        top1 = float(np.mean(f.reshape(len(f), -1, f.shape[-1]).argmax(-1) == q.reshape(len(q), -1, q.shape[-1]).argmax(-1)))
        out[name] = dict(sqnr_db=round(sqnr, 2), max_abs_error=float(np.abs(f - q).max()), top1_agreement=top1,
                         samples=len(f))
    return out


def _dequantize(v: np.ndarray, q: QuantParams | None) -> np.ndarray:
    v = np.asarray(v)
    if q is None or v.dtype.kind == "f":
        return v.astype(np.float64)
    return (v.astype(np.float64) - float(q.zero_point)) * float(q.scale)
