"""lower-qdq: QuantizeLinear/DequantizeLinear clusters -> integer ops with TFLite semantics.

A quantized ONNX model (tf2onnx from an int8 TFLite file, onnxruntime's quantize_static, or
tinyc's own calibration) writes every integer op as ``DequantizeLinear -> float op [-> Relu/Clip]
-> QuantizeLinear``. This pass

1. records the quantization of every integer tensor (from the DequantizeLinear reading it or the
   QuantizeLinear writing it, and through Reshape/Transpose/... which keep it);
2. replaces each cluster by the same op on the integer tensors, with the activation fused as a
   clamp (``act_min``/``act_max``), weights as int8 constants with per-channel parameters, and the
   bias as int32;
3. leaves QuantizeLinear only on graph inputs and DequantizeLinear only on graph outputs (float
   I/O), in their canonical form (parameters on the integer tensor).

Anything else refuses with an error naming the node: tinyc never falls back to float inside a
quantized model.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, QuantParams, Tensor
from ..ops import get_op
from ..quant.mixed import is_kept
from . import Pass, register
from .dce import remove_dead

def _qp_from_node(g: Graph, n: Node) -> QuantParams:
    """Quantization parameters of a QuantizeLinear/DequantizeLinear in ONNX form."""
    if len(n.inputs) < 2 or n.inputs[1] is None:
        raise UnsupportedError(f"{n.op} node '{n.name}' has no scale")
    st = g.tensors[n.inputs[1]]
    zt = g.tensors[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2] is not None else None
    if not st.is_const or (zt is not None and not zt.is_const):
        raise UnsupportedError(f"{n.op} node '{n.name}': scale and zero point must be constants")
    scale = np.asarray(st.data, np.float32)
    zp = np.asarray(zt.data if zt is not None else np.zeros(scale.shape, np.int32), np.int64).astype(np.int32)
    if scale.size == 1:
        return QuantParams(scale.reshape(()), zp.reshape(()), None)
    axis = int(n.attrs.get("axis", 1))
    return QuantParams(scale.reshape(-1), zp.reshape(-1), axis)


# the integer types a Requantize converts between (TFLite's QUANTIZE: int8, int16, int32)
REQUANTIZE_TYPES = ("s8", "s16", "s32")


SYMMETRIC_HINT = "onnxruntime's quantize_static makes them so with extra_options={'ActivationSymmetric': True}"


def _int16x8(n: Node) -> bool:
    """Whether the node's op has a 16x8 form (int16 activations, int8 weights)."""
    return get_op(n.op).int16x8


def _same(a: QuantParams | None, b: QuantParams | None) -> bool:
    return a is not None and b is not None and a == b


class _Lowering:
    def __init__(self, g: Graph):
        self.g = g
        self.extra: list[Node] = []  # nodes a lowering needs before the node it returns
        self.prod = {o: n for n in g.nodes for o in n.outputs}
        self.cons: dict[str, list[Node]] = {}
        for n in g.nodes:
            for x in n.inputs:
                if x is not None:
                    self.cons.setdefault(x, []).append(n)

    # -- step 1: quantization of integer tensors ---------------------------------------------
    def annotate(self) -> None:
        g = self.g
        for n in g.nodes:
            if n.op == "DequantizeLinear" and len(n.inputs) > 1:
                self._set_quant(g.tensors[n.inputs[0]], _qp_from_node(g, n), n)
            elif n.op == "QuantizeLinear" and len(n.inputs) > 1:
                self._set_quant(g.tensors[n.outputs[0]], _qp_from_node(g, n), n)
        changed = True
        while changed:  # through ops that keep values (both directions)
            changed = False
            for n in g.nodes:
                if not get_op(n.op).quant_transparent or n.inputs[0] is None:
                    continue
                t_in, t_out = g.tensors[n.inputs[0]], g.tensors[n.outputs[0]]
                if t_in.dtype.startswith("f"):
                    continue
                if t_in.quant is not None and t_out.quant is None:
                    t_out.quant, changed = t_in.quant, True
                elif t_out.quant is not None and t_in.quant is None and not t_in.is_const:
                    t_in.quant, changed = t_out.quant, True

    def _set_quant(self, t: Tensor, q: QuantParams, n: Node) -> None:
        if t.quant is not None and t.quant != q:
            raise UnsupportedError(f"{n.op} node '{n.name}': tensor '{t.name}' is quantized two different ways")
        t.quant = q

    # -- helpers ------------------------------------------------------------------------------
    def dq_source(self, name: str | None) -> Tensor | None:
        """The integer tensor behind a DequantizeLinear output, else None."""
        if name is None:
            return None
        p = self.prod.get(name)
        if p is None or p.op != "DequantizeLinear":
            return None
        return self.g.tensors[p.inputs[0]]

    def float_const(self, name: str, where: Node, what: str) -> str:
        """A constant operand an int8 kernel takes in float (LayerNormalization's Scale and B): the
        constant itself, or the integer constant behind a DequantizeLinear, dequantized in float32
        as the graph means it."""
        if self.g.tensors[name].is_const:
            return name
        src = self.dq_source(name)
        if src is None or not src.is_const or src.quant is None:
            raise UnsupportedError(f"{where.op} node '{where.name}': int8 needs constant {what}")
        q, shape = src.quant, [1] * len(src.shape)
        if q.axis is not None:
            shape[q.axis] = -1
        zp = np.asarray(q.zero_point, np.int64).reshape(shape if np.size(q.zero_point) > 1 else ())
        scale = np.asarray(q.scale, np.float32).reshape(shape if np.size(q.scale) > 1 else ())
        values = (src.data.astype(np.int64) - zp).astype(np.float32) * scale
        return self.g.add_const(self.g.unique_name(f"{where.name}/{what}"), values.astype(np.float32)).name

    def single_use(self, name: str) -> bool:
        return len(self.cons.get(name, [])) == 1 and name not in self.g.outputs

    def activation(self, name: str, where: Node) -> Tensor:
        t = self.dq_source(name)
        if t is None:
            src = self.prod.get(name)
            what = f"{src.op} node '{src.name}'" if src else f"graph input '{name}'"
            raise UnsupportedError(f"{where.op} node '{where.name}' in a quantized region reads float values from {what}; "
                                   "tinyc does not fall back to float inside an int8 model")
        if t.dtype != "s8" and not (t.dtype == "s16" and _int16x8(where)):
            hint = " (quantize activations as int8, e.g. activation_type=QInt8)" if t.dtype == "u8" else ""
            only = "int8 or int16" if _int16x8(where) else "int8"
            raise UnsupportedError(f"{where.op} node '{where.name}': activation '{t.name}' is {t.dtype}, only {only} is "
                                   f"supported{hint}")
        if t.quant is None or t.quant.axis is not None:
            raise UnsupportedError(f"{where.op} node '{where.name}': activation '{t.name}' must be quantized per tensor")
        if t.dtype == "s16" and int(t.quant.zero_point) != 0:
            raise UnsupportedError(f"{where.op} node '{where.name}': int16 activation '{t.name}' must be symmetric "
                                   f"(zero point 0, not {int(t.quant.zero_point)}; {SYMMETRIC_HINT})")
        return t

    def weight(self, name: str, where: Node, channel_axis: int) -> Tensor:
        t = self.dq_source(name)
        if t is None or not t.is_const:
            raise UnsupportedError(f"{where.op} node '{where.name}': weights must be a dequantized int8 constant")
        if t.dtype != "s8":
            raise UnsupportedError(f"{where.op} node '{where.name}': weights are {t.dtype}, only int8 is supported")
        q = t.quant
        if np.any(q.zero_point != 0):
            raise UnsupportedError(f"{where.op} node '{where.name}': weights must be symmetric (zero point 0)")
        if q.axis is not None and q.axis % len(t.shape) != channel_axis:
            raise UnsupportedError(f"{where.op} node '{where.name}': weights quantized along axis {q.axis}, "
                                   f"expected per-tensor or the output-channel axis {channel_axis}")
        if q.axis is not None:
            t.quant = QuantParams(q.scale, q.zero_point, channel_axis)
        return t

    def bias(self, name: str | None, where: Node, x: Tensor, w: Tensor, channels: int) -> str | None:
        """An int32 bias in units of x_scale * w_scale[c]: taken as it is when the model stores it
        so, requantized otherwise (float or differently scaled bias)."""
        if name is None:
            return None
        expected = (np.float64(x.quant.scale) * w.quant.scale.astype(np.float64)) * np.ones(channels)
        src = self.dq_source(name)
        if src is not None and src.is_const and src.dtype in ("s32", "s64"):
            scale = src.quant.scale.astype(np.float64) * np.ones(channels)
            if np.any(src.quant.zero_point != 0):
                raise UnsupportedError(f"{where.op} node '{where.name}': bias zero point must be 0")
            if np.allclose(scale, expected, rtol=1e-6, atol=0):
                return src.name
            values = src.data.astype(np.float64).reshape(-1) * scale
        else:
            t = self.g.tensors[name]
            if not t.is_const or not t.dtype.startswith("f"):
                if src is None:
                    raise UnsupportedError(f"{where.op} node '{where.name}': bias must be a constant")
                t = None
            values = np.asarray(t.data if t is not None else src.data, np.float64).reshape(-1)
            if t is None:
                values = values * src.quant.scale.astype(np.float64) * np.ones(channels)
        if values.size == 1:
            values = np.full(channels, values[0])
        if values.size != channels:
            raise UnsupportedError(f"{where.op} node '{where.name}': bias has {values.size} values for {channels} channels")
        if not np.all(np.isfinite(values)):
            raise UnsupportedError(f"{where.op} node '{where.name}': bias has a value that is not finite")
        q = np.round(values / expected)
        if x.dtype == "s16":  # 16x8: TFLite's int64 bias
            bt = self.g.add_const(self.g.unique_name(f"{where.name}/bias_s64"), q.astype(np.int64))
            bt.quant = QuantParams(expected.astype(np.float32), np.zeros(channels, np.int32), 0)
            return bt.name
        if np.any(np.abs(q) > 2**31 - 1):
            raise UnsupportedError(f"{where.op} node '{where.name}': bias does not fit int32 at this scale")
        bt = self.g.add_const(self.g.unique_name(f"{where.name}/bias_s32"), q.astype(np.int32))
        bt.quant = QuantParams(expected.astype(np.float32), np.zeros(channels, np.int32), 0)
        return bt.name

    # -- step 2: clusters ---------------------------------------------------------------------
    def lower(self, q: Node) -> Node | None:
        g = self.g
        y = g.tensors[q.outputs[0]]
        f = q.inputs[0]
        p = self.prod.get(f)
        if p is None:
            return None  # quantizes a graph input: stays as the boundary QuantizeLinear
        if p.op == "DequantizeLinear":
            return self._requantize(q, p, y)
        if is_kept(p):
            return None  # a float layer (--keep-float): its output is quantized as a graph input's is
        lo = hi = None
        op = get_op(p.op)
        if op.activation == "clamp" and self.single_use(f):
            inner = self.prod.get(p.inputs[0])
            if inner is not None and get_op(inner.op).hosts_activation and self.single_use(p.inputs[0]):
                lo, hi = op.clamp_range(p.attrs)
                p, op = inner, get_op(inner.op)
        if not op.lowers_to_int8 and not (op.int16x8 and y.dtype == "s16"):
            raise UnsupportedError(f"{p.op} node '{p.name}' has no int8 kernel in tinyc; it cannot be lowered "
                                   "from the quantized model (no float fallback)")
        if (y.dtype != "s8" and not (y.dtype == "s16" and op.int16x8)) or y.quant.axis is not None:
            hint = "; quantize activations as int8 (e.g. activation_type=QInt8)" if y.dtype == "u8" else ""
            hint = f"; {p.op} has no 16x8 (int16 activations) form in tinyc" if y.dtype == "s16" else hint
            raise UnsupportedError(f"QuantizeLinear node '{q.name}': output must be int8 per tensor, got {y.dtype}{hint}")
        if y.dtype == "s16" and int(y.quant.zero_point) != 0:
            raise UnsupportedError(f"QuantizeLinear node '{q.name}': int16 output must be symmetric (zero point 0; "
                                   f"{SYMMETRIC_HINT})")
        self.y = y
        node = op.lower_int8(self, p, [q.outputs[0]], self.act_range(lo, hi))
        mixed = sorted({t.dtype for t in (self.g.tensors[x] for x in node.inputs if x is not None)
                        if not t.is_const and t.dtype in ("s8", "s16")} - {y.dtype})
        if mixed:  # (TFLite's kernels take int8 or int16 activations, not both)
            raise UnsupportedError(f"{p.op} node '{p.name}': reads {' and '.join(mixed)} activations but writes {y.dtype}; "
                                   "int8 and int16 activations do not mix in one op")
        return node

    # -- what the ops' lower_int8 hooks use ---------------------------------------------------
    def act_range(self, lo, hi) -> tuple[int, int]:
        """A clamp to [lo, hi] (None: unbounded) in the output's int8 units."""
        from ..quant.fixedpoint import activation_range

        info = np.iinfo(np.int16 if self.y.dtype == "s16" else np.int8)
        return activation_range(float(self.y.quant.scale), int(self.y.quant.zero_point), lo, hi, int(info.min), int(info.max))

    def same_op(self, p: Node, out: list[str], **attrs) -> Node:
        """The op as it is on its int8 input (it requantizes to the output's parameters itself)."""
        x = self.activation(p.inputs[0], p)
        return Node(p.op, p.name, [x.name], out, dict(p.attrs, **attrs))

    def requantized_output(self, p: Node, out: list[str], q: QuantParams) -> Node:
        """The op on its input, writing the parameters ``q`` its kernel must write (TFLite's int16
        LOGISTIC/TANH/SOFTMAX: 2^-15), then a Requantize to the output's."""
        y = self.y
        mid = self.g.add_tensor(Tensor(self.g.unique_name(f"{y.name}/before_requantize"), y.shape, y.dtype, quant=q))
        self.extra.append(self.same_op(p, [mid.name]))
        return Node("Requantize", f"{p.name}/requantize", [mid.name], out)

    def pass_through(self, p: Node, out: list[str], requantize_inputs: bool) -> Node:
        """Pooling and data movement: the integer values pass through; where the parameters
        differ from the output's, a Requantize brings them over (before the op for
        ``requantize_inputs``, after it otherwise)."""
        g, y = self.g, self.y
        inputs = []
        for i in p.inputs:
            if i is None or (g.tensors[i].is_const and self.dq_source(i) is None):
                inputs.append(i)
                continue
            x = self.activation(i, p)
            if requantize_inputs and not _same(x.quant, y.quant):
                x = self._requantized(x, y.quant, p)
            inputs.append(x.name)
        first = g.tensors[inputs[0]]
        if not requantize_inputs and not _same(first.quant, y.quant):
            mid = g.add_tensor(Tensor(g.unique_name(f"{y.name}/before_requantize"), y.shape, y.dtype, quant=first.quant))
            self.extra.append(Node(p.op, p.name, inputs, [mid.name], dict(p.attrs)))
            return Node("Requantize", f"{p.name}/requantize", [mid.name], out)
        return Node(p.op, p.name, inputs, out, dict(p.attrs))

    def _requantized(self, x: Tensor, q: QuantParams, where: Node) -> Tensor:
        t = self.g.add_tensor(Tensor(self.g.unique_name(f"{x.name}/requantized"), x.shape, x.dtype, quant=q))
        self.extra.append(Node("Requantize", self.g.unique_name(f"{where.name}/requantize_{x.name}"), [x.name], [t.name]))
        return t

    def operand(self, name: str, where: Node) -> Tensor:
        """An int8 activation, or a per-tensor int8 constant (an elementwise op's operand)."""
        t = self.dq_source(name)
        if t is not None and t.is_const and t.dtype == "s8" and t.quant.axis is None:
            return t
        return self.activation(name, where)

    def fully_connected_with_bias(self, add: Node, out: list[str], act: tuple[int, int]) -> Node | None:
        """MatMul (used only here) + a constant bias: one fully connected layer; None otherwise."""
        for i in (0, 1):
            mm = self.prod.get(add.inputs[i])
            other = add.inputs[1 - i]
            w = self.dq_source(mm.inputs[1]) if mm is not None and mm.op == "MatMul" else None
            if w is not None and w.is_const and self.single_use(add.inputs[i]):
                src = self.dq_source(other)
                t = self.g.tensors[other]
                if (src is not None and src.is_const and src.dtype == "s32") or (t.is_const and t.dtype == "f32"):
                    return self.fully_connected(mm, mm.inputs[0], mm.inputs[1], other, out, act, trans_b=0,
                                                name=add.name)
        return None

    def fully_connected(self, p: Node, a_name, w_name, bias_name, out, act: tuple[int, int], trans_b: int,
                        name: str | None = None) -> Node:
        """An int8 Gemm (one output per weight row, int32 bias) from a MatMul or Gemm."""
        x = self.activation(a_name, p)
        rows = len(x.shape) > 2 and p.op == "MatMul"  # (N-D input: over rows of its last axis, as views)
        if rows:
            flat = self.g.add_tensor(Tensor(self.g.unique_name(f"{x.name}/rows"), (int(np.prod(x.shape[:-1])), x.shape[-1]),
                                            x.dtype, quant=x.quant))
            self.extra.append(Node("Reshape", f"{p.name}/rows", [x.name], [flat.name], {"shape": list(flat.shape)}))
            x = flat
        if len(x.shape) != 2:
            raise UnsupportedError(f"{p.op} node '{p.name}': int8 fully connected needs a 2-D input, got {list(x.shape)}")
        w = self.weight(w_name, p, 0 if trans_b else 1)
        if len(w.shape) != 2:
            raise UnsupportedError(f"{p.op} node '{p.name}': int8 fully connected needs 2-D weights")
        if not trans_b and w.is_const:
            # stored one output per row (N x K), the order the kernel reads them
            q = w.quant
            w = self.g.add_const(self.g.unique_name(f"{w.name}/rows"), np.ascontiguousarray(w.data.T))
            w.quant = QuantParams(q.scale, q.zero_point, None if q.axis is None else 0)
            trans_b = 1
        n_out = w.shape[0] if trans_b else w.shape[1]
        b = self.bias(bias_name, p, x, w, n_out)
        attrs = dict(alpha=1.0, beta=1.0, transA=0, transB=trans_b, act_min=act[0], act_max=act[1])
        if rows:
            y = self.y
            mid = self.g.add_tensor(Tensor(self.g.unique_name(f"{y.name}/rows"), (x.shape[0], n_out), y.dtype, quant=y.quant))
            self.extra.append(Node("Gemm", name or p.name, [x.name, w.name] + ([b] if b else []), [mid.name], attrs))
            return Node("Reshape", f"{name or p.name}/unflatten", [mid.name], out, {"shape": list(y.shape)})
        return Node("Gemm", name or p.name, [x.name, w.name] + ([b] if b else []), out, attrs)

    def _requantize(self, q: Node, dq: Node, y: Tensor) -> Node:
        x = self.g.tensors[dq.inputs[0]]
        if _same(x.quant, y.quant) and x.dtype == y.dtype:
            return Node("Reshape", q.name, [x.name], [q.outputs[0]], {"shape": list(y.shape)})
        if {x.dtype, y.dtype} != {"s8"} and x.dtype in REQUANTIZE_TYPES and y.dtype in REQUANTIZE_TYPES:
            # TFLite's QUANTIZE between integer types (int8, int16, int32): one requantization
            for t in (x, y):
                if t.quant is None or t.quant.axis is not None:
                    raise UnsupportedError(f"QuantizeLinear node '{q.name}': '{t.name}' must be quantized per tensor")
            attrs = {"to": y.dtype} if x.dtype != y.dtype else {}
            return Node("Requantize", q.name, [x.name], [q.outputs[0]], attrs)
        self.activation(dq.outputs[0], q)
        if y.dtype != "s8" or y.quant.axis is not None:
            raise UnsupportedError(f"QuantizeLinear node '{q.name}': output must be int8 per tensor, got {y.dtype}")
        return Node("Requantize", q.name, [x.name], [q.outputs[0]])


def _quantize_before_views(g: Graph) -> None:
    """float op -> view -> QuantizeLinear becomes float op -> QuantizeLinear -> view (quantizing
    commutes with a reshape), so the op's cluster ends in its QuantizeLinear (e.g. the Reshape
    that canonicalize puts after a GlobalAveragePool made from ReduceMean with keepdims=0)."""
    changed = True
    while changed:
        changed = False
        prod = {o: n for n in g.nodes for o in n.outputs}
        uses: dict[str, int] = {}
        for n in g.nodes:
            for x in n.inputs:
                if x is not None:
                    uses[x] = uses.get(x, 0) + 1
        for q in g.nodes:
            v = prod.get(q.inputs[0]) if q.op == "QuantizeLinear" and len(q.inputs) > 1 else None
            if v is None or not get_op(v.op).view or uses.get(v.outputs[0]) != 1 or v.outputs[0] in g.outputs:
                continue
            inner = prod.get(v.inputs[0])
            src = g.tensors[v.inputs[0]]
            if inner is None or get_op(inner.op).quant_only or uses.get(src.name) != 1 \
                    or src.name in g.outputs:
                continue
            y = g.tensors[q.outputs[0]]
            mid = g.add_tensor(Tensor(g.unique_name(f"{y.name}/before_view"), src.shape, y.dtype))
            q_new = Node("QuantizeLinear", q.name, [src.name] + q.inputs[1:], [mid.name], dict(q.attrs))
            v_new = Node("Reshape", v.name, [mid.name], [y.name], {"shape": list(y.shape)})
            i = g.nodes.index(q)
            g.nodes[i:i + 1] = [q_new, v_new]
            g.nodes.remove(v)
            del g.tensors[v.outputs[0]]
            changed = True
            break


def lower_qdq(g: Graph) -> Graph:
    if not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes):
        return g
    _quantize_before_views(g)
    low = _Lowering(g)
    low.annotate()
    new_nodes = []
    for n in g.nodes:
        if n.op == "QuantizeLinear" and len(n.inputs) > 1:
            r = low.lower(n)
            new_nodes.extend(low.extra)
            low.extra.clear()
            new_nodes.append(r if r is not None else n)
        else:
            new_nodes.append(n)
    g.nodes = new_nodes
    remove_dead(g)
    _finish_boundaries(g)
    remove_dead(g)
    return g


def _finish_boundaries(g: Graph) -> None:
    """Fold dequantized constants read by float ops (weight-only quantization), check that the
    remaining QuantizeLinear/DequantizeLinear sit on graph inputs/outputs, and put them in their
    canonical form."""
    cons: dict[str, list[Node]] = {}
    for n in g.nodes:
        for x in n.inputs:
            if x is not None:
                cons.setdefault(x, []).append(n)
    keep = []
    for n in g.nodes:
        if n.op == "DequantizeLinear" and len(n.inputs) > 1:
            src = g.tensors[n.inputs[0]]
            if src.is_const:
                value = get_op("DequantizeLinear").reference(n, [g.tensors[x].data if x else None for x in n.inputs])[0]
                out = g.tensors[n.outputs[0]]
                out.data = value
                continue
            users = cons.get(n.outputs[0], [])
            if users and not all(is_kept(u) for u in users):
                u = users[0]
                if get_op(u.op).lowers_to_int8:  # e.g. onnxruntime's quantize_static leaves LogSoftmax in float by default
                    raise UnsupportedError(f"{u.op} node '{u.name}' reads int8 values but its output is not quantized (no "
                                           "QuantizeLinear after it); tinyc does not run float inside an int8 model: quantize "
                                           "it too (onnxruntime: op_types_to_quantize)")
                raise UnsupportedError(f"{u.op} node '{u.name}' has no int8 kernel in tinyc; it cannot be lowered from the "
                                       "quantized model (no float fallback)")
            n.inputs = [n.inputs[0]]
            n.attrs = {}
        elif n.op == "QuantizeLinear" and len(n.inputs) > 1:
            src = n.inputs[0]
            if src not in g.inputs and not is_kept(next((m for m in g.nodes if src in m.outputs), None)):
                p = next((m for m in g.nodes if src in m.outputs), None)
                what = f"{p.op} node '{p.name}'" if p else f"'{src}'"
                raise UnsupportedError(f"QuantizeLinear node '{n.name}' quantizes the float output of {what}, which "
                                       "tinyc cannot lower to int8 (no float fallback)")
            n.inputs = [n.inputs[0]]
            n.attrs = {"to": g.tensors[n.outputs[0]].dtype}
        keep.append(n)
    g.nodes = keep


@register
class LowerQDQ(Pass):
    name = "lower-qdq"
    description = "QuantizeLinear/DequantizeLinear clusters -> integer ops (TFLite int8 semantics)"

    def run(self, g: Graph) -> Graph:
        return lower_qdq(g)
