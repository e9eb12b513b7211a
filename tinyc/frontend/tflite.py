"""TFLite flatbuffer -> IR.

A .tflite file (parsed with the ``tflite`` package) is read into the same IR an ONNX model gives:
float operators become tinyc's ops with ONNX meaning, NHWC convolutions and pools keep their layout
(``layout="NHWC"``, weights OHWI: no Transposes), and an int8 operator becomes the cluster a QDQ
model writes, ``DequantizeLinear -> op [-> clamp] -> QuantizeLinear``, with TFLite's parameters on
every tensor. lower-qdq (run here, at import) turns each cluster into the integer op with TFLite's
arithmetic, so the imported graph is already the int8 IR, the one a tf2onnx export of the same file
ends as. Where TFLite's integer meaning differs from ONNX's, the node carries the op's
``tflite_attrs`` (MEAN: ``rounding="tflite_mean"``).

The per-operator mapping lives in tflite_ops.py; this module reads tensors, buffers and
quantization and gives the mapping its helpers (``_Reader``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import DTYPES, Graph, Node, QuantParams, Tensor
from .tflite_file import FILE_IDENTIFIER, TENSOR_DTYPES, TYPE_NAMES, buffer_data, text


# the tensor types the importer takes (of those tflite_file reads: TENSOR_DTYPES gives their IR dtype)
_IMPORTED = {"f32", "s32", "u8", "s64", "bool", "s16", "s8"}
# quantized activations: int8, and int16 (TFLite's 16x8 scheme: symmetric, int8 weights)
_ACTIVATION_TYPES = (9, 7)
# integer tensors read through a DequantizeLinear when quantized (activations, int32/int64 biases)
_DEQUANTIZED_TYPES = (9, 7, 2, 4)


def is_tflite(path: str | os.PathLike) -> bool:
    """Whether the file is for the TFLite frontend: named .tflite, or a flatbuffer with the file
    identifier "TFL3" at bytes 4..8 (a damaged .tflite is then refused as one)."""
    if Path(path).suffix.lower() == ".tflite":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == FILE_IDENTIFIER


def load(path: str | os.PathLike):
    """The file's root Model, checked structurally (tflite_file.py: every index, buffer size,
    operator code and type is valid before the importer reads it)."""
    from .tflite_file import read_model_file

    return read_model_file(path)


def input_names(model) -> list[str]:
    """The names of subgraph 0's inputs (those that are not constants)."""
    sub = model.Subgraphs(0)
    out = []
    for k in range(sub.InputsLength()):
        t = sub.Tensors(int(sub.Inputs(k)))
        if buffer_data(model, t.Buffer()) is None:
            out.append(_decode(t.Name(), f"tensor_{sub.Inputs(k)}"))
    return out


def _decode(b: bytes | None, default: str) -> str:
    return text(b) or default


class _Reader:
    """One subgraph being imported: TFLite tensor index -> IR tensor, and the helpers the op
    mappings (tflite_ops.py) build nodes with."""

    def __init__(self, model, sub, name: str):
        self.model, self.sub = model, sub
        self.g = Graph(name)
        self.names: dict[int, str] = {}  # tensor index -> IR name of the tensor as stored
        self.floats: dict[int, str] = {}  # int8 tensor index -> its dequantized (float) tensor
        self.opname = ""  # the operator being imported, for messages
        self.used: set[str] = set()  # node names

    # -- tensors ------------------------------------------------------------------------------
    def tensor(self, i: int):
        return self.sub.Tensors(i)

    def tname(self, i: int) -> str:
        return _decode(self.tensor(i).Name(), f"tensor_{i}")

    def ttype(self, i: int) -> int:
        return self.tensor(i).Type()

    def shape(self, i: int) -> tuple[int, ...]:
        t = self.tensor(i)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def data(self, i: int) -> np.ndarray | None:
        """The constant's value (None for a tensor without data)."""
        t = self.tensor(i)
        raw = buffer_data(self.model, t.Buffer())
        if raw is None:
            return None
        ttype = t.Type()
        if TENSOR_DTYPES.get(ttype) not in _IMPORTED:
            raise UnsupportedError(f"{self.opname}: constant '{self.tname(i)}' is {TYPE_NAMES.get(ttype, ttype)}")
        np_type = DTYPES[TENSOR_DTYPES[ttype]]  # (read_model has checked the buffer's size)
        return np.frombuffer(raw.tobytes(), np_type.newbyteorder("<")).reshape(self.shape(i)).astype(np_type)

    def quant(self, i: int) -> QuantParams | None:
        q = self.tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        scale = q.ScaleAsNumpy().astype(np.float32)
        zp = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(scale.shape, np.int64))
        if zp.size != scale.size:
            raise TinycError(f"tensor '{self.tname(i)}': {scale.size} scales, {zp.size} zero points")
        zp = zp.astype(np.int32)
        if scale.size == 1:
            return QuantParams(scale.reshape(()), zp.reshape(()), None)
        return QuantParams(scale, zp, int(q.QuantizedDimension()))

    def dtype(self, i: int) -> str:
        ttype = self.ttype(i)
        if TENSOR_DTYPES.get(ttype) not in _IMPORTED:
            raise UnsupportedError(f"{self.opname}: tensor '{self.tname(i)}' is {TYPE_NAMES.get(ttype, ttype)}, "
                                   "which tinyc does not support")
        return TENSOR_DTYPES[ttype]

    def is_int8(self, i: int) -> bool:
        return self.ttype(i) == 9 and self.quant(i) is not None

    def is_quantized(self, i: int) -> bool:
        """A quantized int8 or int16 tensor (the integer ops' activations)."""
        return self.ttype(i) in _ACTIVATION_TYPES and self.quant(i) is not None

    def const(self, i: int) -> np.ndarray:
        d = self.data(i)
        if d is None:
            raise UnsupportedError(f"{self.opname}: input '{self.tname(i)}' must be a constant")
        return d

    def define(self, i: int) -> str:
        """The IR tensor for tensor ``i`` as stored (constants are added when first read)."""
        if i in self.names:
            return self.names[i]
        d = self.data(i)
        if d is None:
            raise TinycError(f"{self.opname}: tensor '{self.tname(i)}' is read before it is written")
        name = self.g.unique_name(self.tname(i))
        t = self.g.add_const(name, d)
        if t.dtype in ("s8", "s16", "s32", "s64"):
            t.quant = self.quant(i)
        self.names[i] = name
        return name

    def value(self, i: int, data: np.ndarray | None = None, suffix: str = "") -> str:
        """Tensor ``i`` as the float op reads it: float tensors as they are, int8/int32 ones through
        a DequantizeLinear with the tensor's parameters. ``data`` replaces a constant's value (a
        reader that needs it in another layout gets its own copy, named with ``suffix``)."""
        if data is None and i in self.floats:
            return self.floats[i]
        q = self.quant(i)
        if data is not None:
            src = self.g.add_const(self.g.unique_name(f"{self.tname(i)}{suffix}"), np.ascontiguousarray(data)).name
        else:
            src = self.define(i)
        if q is None or self.ttype(i) not in _DEQUANTIZED_TYPES:
            return src
        if self.ttype(i) in _ACTIVATION_TYPES and data is None and self.data(i) is None and q.axis is not None:
            raise UnsupportedError(f"{self.opname}: activation '{self.tname(i)}' is quantized per channel; "
                                   "tinyc needs integer activations quantized per tensor")
        axis = q.axis
        if data is not None and axis is not None:
            axis = 0  # the reader's copy has its channels first (see tflite_ops)
        out = self.dequantize(src, QuantParams(q.scale, q.zero_point, axis))
        if data is None:
            self.floats[i] = out
        return out

    def bias(self, b: int, x: int, w: int, w_name: str) -> str:
        """Bias ``b`` of an operator reading ``x`` with weights ``w`` (``w_name``: their IR tensor,
        per-channel parameters on axis 0). TFLite's int8 kernels add its int32 values in units of
        the input's scale times the weight's, whatever the bias tensor's own parameters say: a bias
        shared by operators with different input scales gets, per reader, those units."""
        qb, qx, qw = self.quant(b), self.quant(x), self.g.tensors[w_name].quant
        if self.ttype(b) not in (2, 4) or qb is None or qx is None or qw is None:
            return self.value(b)
        scale = (np.float64(qx.scale) * np.asarray(qw.scale, np.float64)).astype(np.float32)
        if scale.shape == np.shape(qb.scale) and np.allclose(qb.scale, scale, rtol=1e-6, atol=0) \
                and qb.axis in (None, 0):
            return self.value(b)  # the file says so already (the usual case): one tensor for all readers
        # (an odd quantized_dimension on a 1-D bias is ignored too, as TFLite does)
        src = self.g.add_const(self.g.unique_name(f"{self.tname(b)} (for {self.opname})"), self.const(b)).name
        axis = 0 if scale.ndim else None
        return self.dequantize(src, QuantParams(scale, np.zeros(scale.shape, np.int32), axis))

    def dequantize(self, src: str, q: QuantParams) -> str:
        """A DequantizeLinear of IR tensor ``src`` with parameters ``q`` (set on ``src``)."""
        out = self.g.unique_name(f"{src}/dequant")
        self.g.tensors[src].quant = q
        self.node("DequantizeLinear", out, [src] + self.qparams(src, q), [out], {} if q.axis is None else {"axis": q.axis})
        return out

    def qparams(self, base: str, q: QuantParams) -> list[str]:
        s = self.g.add_const(self.g.unique_name(f"{base}/scale"), np.asarray(q.scale, np.float32))
        dt = {"s32": np.int32, "s16": np.int16, "s64": np.int64}.get(self.g.tensors[base].dtype, np.int8)
        z = self.g.add_const(self.g.unique_name(f"{base}/zero_point"), np.asarray(q.zero_point).astype(dt))
        return [s.name, z.name]

    def result(self, i: int) -> str:
        """The name the float op writes for output ``i``; ``finish`` quantizes it when the output
        is int8 or int16."""
        if self.ttype(i) in _ACTIVATION_TYPES:
            return self.g.unique_name(f"{self.tname(i)}/float")
        self.dtype(i)  # refuse other types
        name = self.g.unique_name(self.tname(i))
        self.names[i] = name
        return name

    def finish(self, i: int, produced: str, int32: bool = False) -> None:
        """Output ``i`` from the float tensor ``produced`` (quantized when the output is int8 or
        int16, or with ``int32`` a quantized int32: QUANTIZE's requantization to int32)."""
        if self.ttype(i) not in _ACTIVATION_TYPES and not int32:
            return
        q = self.quant(i)
        if q is None or q.axis is not None:
            raise UnsupportedError(f"{self.opname}: output '{self.tname(i)}' must be quantized per tensor")
        name = self.g.unique_name(self.tname(i))
        self.g.add_tensor(Tensor(name, self.shape(i), self.dtype(i), quant=q))
        self.g.nodes.append(Node("QuantizeLinear", self._node_name(name + "/quantize"),
                                 [produced] + self.qparams(name, q), [name], {}))
        self.names[i] = name

    # -- nodes --------------------------------------------------------------------------------
    def node(self, op: str, name: str, inputs: list[str | None], outputs: list[str], attrs: dict,
             normalized: bool = False) -> None:
        """Add a node with tinyc's normalization and shape inference (``normalized``: the attributes
        are complete already, as for an NHWC node)."""
        from ..ops import get_op

        o = get_op(op)
        ins = [None if x is None else self.g.tensors[x] for x in inputs]
        try:
            if not normalized:
                attrs = o.normalize(dict(attrs), ins, 17)
            n = Node(op, self._node_name(name), list(inputs), list(outputs), attrs)
            out_types = o.infer(n, ins)
        except UnsupportedError as e:
            raise UnsupportedError(f"{self.opname}: {e}") from None
        for out, (shape, dtype) in zip(outputs, out_types):
            self.g.add_tensor(Tensor(out, tuple(int(d) for d in shape), dtype))
        self.g.nodes.append(n)

    def _node_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def activation(self, fused: int, x: str, out: str) -> None:
        """TFLite's fused activation (ActivationFunctionType) from ``x`` to ``out``."""
        if fused == 0:
            raise AssertionError("no activation")
        if fused == 1:
            self.node("Relu", out, [x], [out], {})
        elif fused in (2, 3):
            lo, hi = (-1.0, 1.0) if fused == 2 else (0.0, 6.0)
            self.node("Clip", out, [x], [out], {"min": lo, "max": hi})
        else:
            names = {4: "TANH", 5: "SIGN_BIT"}
            raise UnsupportedError(f"{self.opname}: fused activation {names.get(fused, fused)} is not supported")


def import_model(model, input_shapes: dict[str, tuple[int, ...]] | None = None, name: str = "model",
                 problems: list[str] | None = None, bind: dict[str, np.ndarray] | None = None) -> Graph:
    """TFLite Model -> IR (subgraph 0). ``problems`` (tinyc check): every unsupported operator is
    recorded there instead of raised (the graph is then incomplete)."""
    from ..passes.lower_qdq import lower_qdq
    from .onnx import _sanitize_name
    from .tflite_ops import import_operator, op_name

    if bind:
        raise TinycError(f"--bind: a .tflite model has no inputs to bind ({', '.join(sorted(bind))})")
    sub = model.Subgraphs(0)
    r = _Reader(model, sub, _sanitize_name(name))
    g = r.g
    shapes = dict(input_shapes or {})
    for k in range(sub.InputsLength()):
        i = int(sub.Inputs(k))
        tname = r.tname(i)
        r.opname = f"input '{tname}'"
        dtype = r.dtype(i)
        shape = r.shape(i)
        if tname in shapes:
            given = tuple(shapes.pop(tname))
            if len(given) != len(shape) or any(a != b for a, b in zip(given, shape) if b != 1):
                raise TinycError(f"input '{tname}': given shape {list(given)} conflicts with the model's {list(shape)}")
            shape = given
        if r.data(i) is not None:
            continue  # (a constant listed as an input)
        t = g.add_tensor(Tensor(g.unique_name(tname), shape, dtype))
        if dtype in ("s8", "s16"):
            t.quant = r.quant(i)
            if t.quant is None or t.quant.axis is not None:
                raise UnsupportedError(f"input '{tname}': {'int8' if dtype == 's8' else 'int16'} inputs must be "
                                       "quantized per tensor")
        r.names[i] = t.name
        g.inputs.append(t.name)
    if shapes:
        raise TinycError(f"--input-shape names unknown input(s): {', '.join(sorted(shapes))}")
    for k in range(sub.OperatorsLength()):
        op = sub.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        opname = op_name(code)
        r.opname = f"{opname} (operator {k})"
        try:
            import_operator(r, op, opname, k)
        except UnsupportedError as e:
            if problems is None:
                raise
            problems.append(str(e))
            return g
    for k in range(sub.OutputsLength()):
        i = int(sub.Outputs(k))
        if i not in r.names:
            raise TinycError(f"output '{r.tname(i)}' is never written")
        g.outputs.append(r.names[i])
    g = lower_qdq(g)
    g.verify()
    return g
