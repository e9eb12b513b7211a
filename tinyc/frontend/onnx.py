"""ONNX ModelProto -> tinyc IR.

Handles opsets 7 and newer, initializers also listed as graph inputs (old exporters), symbolic
dimensions (fixed to 1 unless the user gives input shapes), external data confined to the model's
folder, ``Constant`` nodes, and folding of nodes whose inputs are all constants. Every node's
output shape comes from tinyc's own inference and is checked against ONNX shape inference.

A model file is untrusted input: every node is checked against its ONNX schema (inputs, outputs,
attribute names and types) before tinyc's ops see it, and every tensor's size is checked before
anything is allocated for it (tests/fuzz_onnx.py fuzzes all of this).
"""
from __future__ import annotations

import heapq
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from ..errors import TinycError, UnsupportedError
from ..ir import DTYPES, Graph, Node, Tensor, dtype_of
from ..ops import REGISTRY, get_op
from .limits import MAX_CONSTANT_BYTES, MAX_NODES, MAX_TENSOR_BYTES
from .limits import check_size as _check_size

MIN_OPSET = 7
_DEFAULT_DOMAINS = ("", "ai.onnx")

# protobuf cannot parse more than this
MAX_MODEL_FILE_BYTES = 2**31 - 1


def _check_constants(g: Graph, what: str, adding: int) -> None:
    """Refuse constant data beyond MAX_CONSTANT_BYTES in all (before ``adding`` more bytes of it)."""
    if adding < 2**16:  # (small ones cannot get far past the limit; no need to add up)
        return
    total = adding + sum(t.data.nbytes for t in g.constants())
    if total > MAX_CONSTANT_BYTES:
        raise TinycError(f"{what}: the model's constants would take {total:,} bytes; tinyc refuses more than "
                         f"{MAX_CONSTANT_BYTES:,} bytes of constant data")


def _onnx_itemsize(elem_type: int) -> int | None:
    """Bytes per element of an ONNX element type; None for types without a fixed size (or unknown)."""
    try:
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # unknown enum values raise KeyError, others ValueError
        return None
    return dt.itemsize if dt.kind != "O" else None


def load_model_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and parse a model file, with one-line errors for the usual ways this fails."""
    p = Path(path)
    if not p.exists():
        raise TinycError(f"model file not found: {p}")
    if not p.is_file():
        raise TinycError(f"not a file: {p}")
    if p.stat().st_size > MAX_MODEL_FILE_BYTES:
        raise TinycError(f"{p}: {p.stat().st_size:,} bytes, over protobuf's limit of 2 GiB (keep the weights as external data)")
    return parse_model_proto(p.read_bytes(), str(p), p.resolve().parent)


def parse_model_proto(data: bytes, source: str, base: Path | None = None) -> onnx.ModelProto:
    """Parse a serialized model (read from ``source``, which errors name); external data is read
    from the folder ``base`` (None: an in-memory model, whose external data must be loaded)."""
    if not data:
        raise TinycError(f"{source}: empty file, not an ONNX model")
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise TinycError(f"{source}: not an ONNX model or truncated file ({str(e).splitlines()[0] or 'protobuf parse error'})") from None
    return check_model_proto(m, source, base)


def check_model_proto(m: onnx.ModelProto, source: str, base: Path | None = None) -> onnx.ModelProto:
    """``m`` checked (graph, IR version, outputs, text fields), with its external data loaded
    from the folder ``base`` (None: an in-memory model, whose external data must be loaded)."""
    if not m.HasField("graph") or m.ir_version <= 0 or not m.graph.output:
        raise TinycError(f"{source}: not an ONNX model (no graph, IR version or outputs)")
    bad = _not_utf8(m)
    if bad:
        raise TinycError(f"{source}: corrupt model: a text field ({bad}) is not valid UTF-8")
    if base is None:
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_tensors(m.graph)):
            raise TinycError(f"{source}: the model has external data; load it first "
                             "(onnx.load(path, load_external_data=True)) or give the model's path")
        return m
    _load_external_data(m, base)
    return m


def _not_utf8(msg, path: str = "model") -> str:
    """The path of the first string field holding bytes that are not UTF-8 (protobuf hands those
    over as bytes, not str), or ""."""
    for fd, value in msg.ListFields():
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED
        values = value if repeated else [value]
        if fd.type == fd.TYPE_STRING:
            if any(isinstance(v, bytes) for v in values):
                return f"{path}.{fd.name}"
        elif fd.type == fd.TYPE_MESSAGE:
            for i, v in enumerate(values):
                bad = _not_utf8(v, f"{path}.{fd.name}" + (f"[{i}]" if repeated else ""))
                if bad:
                    return bad
    return ""


def _load_external_data(m: onnx.ModelProto, base: Path) -> None:
    for t in _all_tensors(m.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        try:
            target = (base / loc).resolve() if loc and "\0" not in loc else None
        except (OSError, RuntimeError, ValueError):  # unreadable link, loop, ...
            target = None
        if target is None or os.path.isabs(loc) or base not in target.parents:
            raise TinycError(f"tensor '{t.name}': external data path {loc!r} is outside the model's folder")
        if not target.is_file():
            raise TinycError(f"tensor '{t.name}': external data file {loc!r} not found")
        size = target.stat().st_size
        offset = _external_int(t, info, "offset")
        length = _external_int(t, info, "length")
        if offset > size or (length is not None and offset + length > size):
            raise TinycError(f"tensor '{t.name}': external data file {loc!r} ({size:,} bytes) is too short for "
                             f"offset {offset:,}" + (f" and length {length:,}" if length is not None else ""))
        if length is None:
            length = size - offset
        itemsize = _onnx_itemsize(t.data_type)
        _check_size(f"tensor '{t.name}'", t.dims, itemsize or 1)
        if itemsize is not None and length != math.prod(t.dims) * itemsize:
            raise TinycError(f"tensor '{t.name}': external data of {length:,} bytes for shape {list(t.dims)}, "
                             f"which needs {math.prod(t.dims) * itemsize:,}")
        if length > MAX_TENSOR_BYTES:
            raise TinycError(f"tensor '{t.name}': {length:,} bytes of external data; tinyc refuses tensors over "
                             f"{MAX_TENSOR_BYTES:,} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            raw = f.read(length)
        if len(raw) != length:
            raise TinycError(f"tensor '{t.name}': external data file {loc!r} is too short")
        t.raw_data = raw
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]


def _external_int(t: onnx.TensorProto, info: dict[str, str], key: str) -> int | None:
    """The offset (0 when absent) or length (None when absent) of an external data entry."""
    v = info.get(key)
    if v is None or (key == "offset" and v == ""):
        return 0 if key == "offset" else None
    if not re.fullmatch(r"[0-9]+", v.strip()) or int(v) > 2**62:
        raise TinycError(f"tensor '{t.name}': external data {key} {v!r} is not a byte count")
    return int(v)


def _all_tensors(g: onnx.GraphProto):
    yield from g.initializer
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


_PLAIN_ATTRIBUTES = (onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT, onnx.AttributeProto.STRING,
                     onnx.AttributeProto.TENSOR, onnx.AttributeProto.FLOATS, onnx.AttributeProto.INTS,
                     onnx.AttributeProto.STRINGS)


def _attr_value(a: onnx.AttributeProto) -> Any:
    if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise UnsupportedError(f"attribute '{a.name}' holds a subgraph")
    if a.type not in _PLAIN_ATTRIBUTES:
        raise UnsupportedError(f"attribute '{a.name}' is of a kind tinyc does not read "
                               f"({onnx.AttributeProto.AttributeType.Name(a.type) if a.type in onnx.AttributeProto.AttributeType.values() else a.type})")
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return _to_array(v, f"attribute '{a.name}'")
    if isinstance(v, list):
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
    return v


def _to_array(t: onnx.TensorProto, what: str | None = None) -> np.ndarray:
    """A tensor's value; its declared size is checked first (nothing absurd is allocated)."""
    what = what or f"initializer '{t.name}'"
    itemsize = _onnx_itemsize(t.data_type)
    _check_size(what, t.dims, itemsize or 1)
    if itemsize is None:
        try:
            type_name = onnx.TensorProto.DataType.Name(t.data_type)
        except ValueError:
            type_name = str(t.data_type)
        raise UnsupportedError(f"{what} has unsupported element type {type_name}")
    if t.data_location == onnx.TensorProto.EXTERNAL:  # (not loaded: it is not where tinyc looks)
        raise UnsupportedError(f"{what} keeps its data in an external file where tinyc does not read it")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:  # onnx raises many types for corrupt tensors
        raise TinycError(f"{what} cannot be read: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    try:
        dtype_of(arr)
    except TinycError:
        raise UnsupportedError(f"{what} has unsupported dtype {arr.dtype}") from None
    return np.asarray(arr, order="C")


def _onnx_inferred(m: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Static shapes and IR dtypes that ONNX shape inference finds (best effort: the shapes
    cross-check tinyc's own inference; the dtypes give `tinyc check` its stand-in tensors)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False)
    except Exception:
        return {}, {}
    shapes, types = {}, {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        try:
            types[vi.name] = dtype_of(np.empty(0, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)))
        except Exception:
            pass
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if all(d is not None for d in dims):
            shapes[vi.name] = tuple(dims)
    return shapes, types


def _sanitize_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s) or "model"


def from_tflite(m: onnx.ModelProto) -> bool:
    """Whether the model is tf2onnx's conversion of a TFLite file: producer "tf2onnx" and the names
    its TFLite reader gives the quantization nodes it adds (DequantizeLinear "<tensor>_dequant"
    writing "<tensor>_dequant", QuantizeLinear "<tensor>_quantize" writing "<tensor>"). Such a
    model means TFLite's integer arithmetic where it differs from ONNX's (``Op.tflite_attrs``)."""
    if m.producer_name != "tf2onnx":
        return False
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input and n.output and n.name == n.output[0] == n.input[0] + "_dequant":
            return True
        if n.op_type == "QuantizeLinear" and n.output and n.name == n.output[0] + "_quantize":
            return True
    return False


def import_model(
    m: onnx.ModelProto,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    name: str = "model",
    problems: list[str] | None = None,
    bind: dict[str, np.ndarray] | None = None,
) -> Graph:
    """ONNX -> IR. With a ``problems`` list (tinyc check), every unsupported op or attribute
    variant is recorded there instead of raised, and import goes on past it where ONNX shape
    inference knows the failing node's outputs; the graph is then incomplete.

    ``bind`` turns graph inputs into constants with the given values (a model specialised for
    them, e.g. a shape or axes input that tinyc needs to know at compile time)."""
    opset = next((o.version for o in m.opset_import if o.domain in _DEFAULT_DOMAINS), 0)
    if opset and opset < MIN_OPSET:
        raise UnsupportedError(f"opset {opset} is older than {MIN_OPSET}; re-export the model with a newer opset")
    if not opset:
        opset = 1 if m.ir_version < 3 else MIN_OPSET
        if m.ir_version < 3:
            raise UnsupportedError("the model declares no default-domain opset")
    if opset > onnx.defs.onnx_opset_version():
        raise UnsupportedError(f"opset {opset} is newer than the ONNX package knows ({onnx.defs.onnx_opset_version()})")
    g_proto = m.graph
    if len(g_proto.node) > MAX_NODES:
        raise TinycError(f"the graph has {len(g_proto.node):,} nodes; tinyc compiles at most {MAX_NODES:,}")

    # All unsupported ops at once, with node names.
    missing: dict[str, list[str]] = {}
    for i, n in enumerate(g_proto.node):
        if n.op_type == "Constant" and n.domain in _DEFAULT_DOMAINS:
            continue
        key = n.op_type if n.domain in _DEFAULT_DOMAINS else f"{n.domain}.{n.op_type}"
        if n.domain not in _DEFAULT_DOMAINS or n.op_type not in REGISTRY or REGISTRY[n.op_type].internal:
            missing.setdefault(key, []).append(n.name or f"#{i}")
    if missing:
        parts = [f"{op} (node{'s' if len(ns) > 1 else ''} {', '.join(repr(x) for x in ns)})" for op, ns in sorted(missing.items())]
        if problems is None:
            raise UnsupportedError("unsupported op" + ("s" if len(missing) > 1 else "") + ": " + "; ".join(parts))
        problems.extend(f"unsupported op {p}" for p in parts)

    g = Graph(_sanitize_name(name))
    for init in g_proto.initializer:
        if init.name in g.tensors:
            raise TinycError(f"initializer '{init.name}' defined twice")
        arr = _to_array(init)  # (its declared size checked before reading it)
        _check_constants(g, f"initializer '{init.name}'", arr.nbytes)
        g.add_const(init.name, arr)

    # Graph inputs (those without an initializer), with symbolic dimensions fixed.
    shapes_given = dict(input_shapes or {})
    bind = dict(bind or {})
    for vi in g_proto.input:
        if vi.name in g.tensors:
            continue
        if vi.name in bind:
            _bind_input(g, vi, bind.pop(vi.name))
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedError(f"input '{vi.name}' is not a tensor")
        try:
            dtype = dtype_of(np.empty(0, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)))
        except (KeyError, TypeError, TinycError):
            try:
                type_name = onnx.TensorProto.DataType.Name(tt.elem_type)
            except ValueError:
                type_name = str(tt.elem_type)
            raise UnsupportedError(f"input '{vi.name}' has unsupported element type {type_name}") from None
        if vi.name in shapes_given:
            shape = tuple(shapes_given.pop(vi.name))
            if tt.HasField("shape") and len(tt.shape.dim) != len(shape):
                raise TinycError(f"input '{vi.name}': given shape {list(shape)} has rank {len(shape)}, the model says {len(tt.shape.dim)}")
            for d, s in zip(tt.shape.dim, shape):
                if d.HasField("dim_value") and d.dim_value != s:
                    raise TinycError(f"input '{vi.name}': given shape {list(shape)} conflicts with the model's {d.dim_value}")
        else:
            if not tt.HasField("shape"):
                raise TinycError(f"input '{vi.name}' has no shape; give one with --input-shape {vi.name}=...")
            if any(d.HasField("dim_value") and d.dim_value == 0 for d in tt.shape.dim):
                raise UnsupportedError(f"input '{vi.name}' has an empty dimension "
                                       f"{[d.dim_value if d.HasField('dim_value') else d.dim_param for d in tt.shape.dim]}; "
                                       f"tinyc does not handle empty tensors at run time; --bind {vi.name}=FILE.npy fixes its value")
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim)
        if any(d <= 0 for d in shape):
            raise TinycError(f"input '{vi.name}': shape {list(shape)} must be positive")
        _check_size(f"input '{vi.name}'", shape, DTYPES[dtype].itemsize)
        g.add_tensor(Tensor(vi.name, shape, dtype))
        g.inputs.append(vi.name)
    if shapes_given:
        raise TinycError(f"--input-shape names unknown input(s): {', '.join(sorted(shapes_given))}")
    if bind:
        raise TinycError(f"--bind names unknown input(s): {', '.join(sorted(bind))}")

    # ONNX shape inference on the model with the input shapes fixed, to cross-check ours.
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)
    bound = [vi for vi in fixed.graph.input if vi.name in g.tensors and g.tensors[vi.name].is_const
             and vi.name not in {t.name for t in fixed.graph.initializer}]
    for vi in bound:  # bound inputs are constants for inference too
        fixed.graph.initializer.append(onnx.numpy_helper.from_array(g.tensors[vi.name].data, vi.name))
        fixed.graph.input.remove(vi)
    for vi in fixed.graph.input:
        if vi.name in g.inputs:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in g.tensors[vi.name].shape:
                dims.add().dim_value = d
    # ONNX's shape inference trusts the file: a negative dimension in it can abort the process (an
    # assertion in its C++ code), so the declared shapes lose those and constants are checked first.
    for vi in list(fixed.graph.input) + list(fixed.graph.value_info) + list(fixed.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and not 0 <= d.dim_value < 2**31:
                d.ClearField("dim_value")
    for i, n in enumerate(g_proto.node):
        for a in n.attribute:
            where = f"{n.op_type} node '{n.name or f'#{i}'}': attribute '{a.name}'"
            if a.type == onnx.AttributeProto.TENSOR:
                _check_size(where, a.t.dims, _onnx_itemsize(a.t.data_type) or 1)
            elif a.type == onnx.AttributeProto.SPARSE_TENSOR:
                _check_size(where, a.sparse_tensor.dims, 1)
    onnx_shapes, onnx_types = _onnx_inferred(fixed)

    tflite = from_tflite(m)
    used_names: set[str] = set()
    checker = onnx.checker.C.CheckerContext()
    checker.ir_version = min(max(m.ir_version, 3), onnx.IR_VERSION)
    checker.opset_imports = {"": opset}
    for i, n in enumerate(_topological(g_proto, set(g.tensors))):
        node_name = n.name or f"{n.op_type}_{i}"
        if node_name in used_names:
            node_name = f"{node_name}_{i}"
        used_names.add(node_name)
        try:
            if n.domain in _DEFAULT_DOMAINS and (n.op_type in REGISTRY or n.op_type == "Constant"):
                _check_schema(n, node_name, checker, g)
            attrs = {a.name: _attr_value(a) for a in n.attribute}
        except UnsupportedError as e:
            raise UnsupportedError(f"{n.op_type} node '{node_name}': {e}") from None
        if n.op_type == "Constant":
            _import_constant(g, n, node_name, attrs)
            continue
        inputs: list[str | None] = [x if x else None for x in n.input]
        for x in inputs:
            if x is not None and x not in g.tensors:
                if problems is not None:  # produced by a node that could not be checked
                    break
                raise TinycError(f"{n.op_type} node '{node_name}' uses undefined tensor '{x}'")
        else:
            x = None
        if x is not None:
            problems.append(f"{n.op_type} node '{node_name}': not checked (its input '{x}' comes from a node above)")
            continue
        if tflite and n.op_type in REGISTRY:
            attrs.update(REGISTRY[n.op_type].tflite_attrs)
        # outputs keep their positions ("" for an unused one) until the op has been expanded
        node = Node(n.op_type, node_name, inputs, list(n.output), attrs)
        if problems is None:
            _import_node(g, node, opset, onnx_shapes)
            continue
        try:
            if n.domain not in _DEFAULT_DOMAINS or n.op_type not in REGISTRY:
                raise UnsupportedError("")  # already listed above
            _import_node(g, node, opset, onnx_shapes)
        except (UnsupportedError, TinycError) as e:
            if str(e):
                problems.append(str(e))
            for o in filter(None, node.outputs):  # stand-ins so that later nodes can be checked too
                if o in onnx_shapes and o in onnx_types and o not in g.tensors:
                    g.add_tensor(Tensor(o, onnx_shapes[o], onnx_types[o]))

    for vi in g_proto.output:
        if vi.name not in g.tensors:
            if problems is not None:
                continue
            raise TinycError(f"graph output '{vi.name}' is never produced")
        g.outputs.append(vi.name)
    _drop_unused(g)
    if problems is None:
        g.verify()
    return g


_ONNX_TYPE_NAMES = {"f32": "float", "f64": "double", "f16": "float16", "s8": "int8", "u8": "uint8", "s16": "int16",
                    "u16": "uint16", "s32": "int32", "u32": "uint32", "s64": "int64", "u64": "uint64", "bool": "bool"}


def _check_schema(n: onnx.NodeProto, node_name: str, checker, g: Graph) -> None:
    """The node against its ONNX schema: input and output counts, required inputs present,
    attribute names and types, the element types of the inputs defined so far (tinyc's ops rely
    on all of that)."""
    try:
        onnx.checker.check_node(n, checker)
    except Exception as e:  # (ValidationError; anything else from the checker means the same)
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TinycError(f"{n.op_type} node '{node_name}' is not valid ONNX: {msg}") from None
    # (the checker lets an empty name stand for a variadic input; only optional ones may be omitted)
    schema = onnx.defs.get_schema(n.op_type, checker.opset_imports[""], "")
    formal = schema.inputs
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    bound: dict[str, str] = {}  # type parameter -> the type its first input gave it
    for i, x in enumerate(n.input):
        f = formal[min(i, len(formal) - 1)] if formal else None
        if f is None:
            continue
        if not x and f.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
            raise TinycError(f"{n.op_type} node '{node_name}' is not valid ONNX: input {i} is not optional but has no name")
        t = g.tensors.get(x)
        if t is None:
            continue
        ty = f"tensor({_ONNX_TYPE_NAMES[t.dtype]})"
        ok = allowed.get(f.type_str, {f.type_str})
        if ty not in ok:
            raise TinycError(f"{n.op_type} node '{node_name}' is not valid ONNX: input {i} ('{x}') is {ty}, "
                             f"which '{f.name}' does not allow")
        heterogeneous = f.option == onnx.defs.OpSchema.FormalParameterOption.Variadic and not f.is_homogeneous
        if f.type_str in allowed and not heterogeneous and bound.setdefault(f.type_str, ty) != ty:
            raise TinycError(f"{n.op_type} node '{node_name}' is not valid ONNX: input {i} ('{x}') is {ty}, "
                             f"another input of type {f.type_str} is {bound[f.type_str]}")


def _bind_input(g: Graph, vi: onnx.ValueInfoProto, value: np.ndarray) -> None:
    tt = vi.type.tensor_type
    want = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
    value = np.asarray(value)
    if value.dtype != want:
        raise TinycError(f"--bind {vi.name}: the value is {value.dtype}, the model's input is {np.dtype(want)}")
    if tt.HasField("shape"):
        dims = tt.shape.dim
        if len(dims) != value.ndim or any(d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, value.shape)):
            raise TinycError(f"--bind {vi.name}: the value has shape {list(value.shape)}, "
                             f"the model's input is {[d.dim_value if d.HasField('dim_value') else d.dim_param for d in dims]}")
    g.add_const(vi.name, value)


def _import_node(g: Graph, node: Node, opset: int, onnx_shapes: dict[str, tuple[int, ...]]) -> None:
    """Normalize, shape-check and add one node (folding it when its inputs are constants)."""
    op = get_op(node.op)
    name, inputs, attrs = node.name, list(node.inputs), dict(node.attrs)
    needed = [(idx, what) for idx, what in sorted({**op.attr_inputs, **{i: n for i, n in op.const_inputs.items()}}.items())
              if idx < len(inputs) and inputs[idx] is not None and not g.tensors[inputs[idx]].is_const]
    if needed:
        # An op may still rewrite itself into others that take the value at run time (Clip).
        expanded = None
        if op.expands_runtime_inputs:
            with np.errstate(all="ignore"):  # (constants computed at import: IEEE arithmetic, as at run time)
                expanded = op.expand(Node(node.op, name, inputs, node.outputs, attrs), [None if x is None else g.tensors[x] for x in inputs], g)
        if expanded is None:
            idx, what = needed[0]
            raise UnsupportedError(f"{node.op} node '{name}': input {idx} ('{what}') must be a constant; "
                                   f"--bind {inputs[idx]}=FILE.npy fixes its value")
        for sub in expanded:
            _import_node(g, sub, opset, onnx_shapes)
        return
    for idx, attr_name in sorted(op.attr_inputs.items()):
        if idx < len(inputs) and inputs[idx] is not None:
            attrs[attr_name] = g.tensors[inputs[idx]].data.tolist()
            inputs[idx] = None
    while inputs and inputs[-1] is None:
        inputs.pop()
    ins = [None if x is None else g.tensors[x] for x in inputs]
    try:
        with np.errstate(all="ignore"):  # (as above)
            expanded = op.expand(Node(node.op, name, inputs, node.outputs, attrs), ins, g)
        if expanded is not None:
            for sub in expanded:
                _import_node(g, sub, opset, onnx_shapes)
            return
        attrs = op.normalize(attrs, ins, opset)
        outputs = list(node.outputs)
        while outputs and not outputs[-1]:
            outputs.pop()
        if "" in outputs:
            raise UnsupportedError(f"output {outputs.index('')} is unused while a later one is used")
        node = Node(node.op, name, inputs, outputs, attrs)
        out_types = op.infer(node, ins)
    except UnsupportedError as e:
        msg = str(e.args[0]) if e.args else ""  # (unescaped, as the name is)
        raise UnsupportedError(msg if name in msg else f"{node.op} node '{name}': {msg}") from None
    for o, (shape, dtype) in zip(node.outputs, out_types):
        if o in g.tensors:
            raise TinycError(f"tensor '{o}' is produced twice (node '{name}')")
        _check_size(f"{node.op} node '{name}': output '{o}'", shape, DTYPES[dtype].itemsize)
        known = onnx_shapes.get(o)
        if known is not None and tuple(known) != tuple(shape):
            raise TinycError(
                f"{node.op} node '{name}': output '{o}' shape {list(shape)} disagrees with ONNX shape inference {list(known)}"
            )
    if op.foldable and all(t is None or t.is_const or i in op.shape_only_inputs for i, t in enumerate(ins)):
        # Constant folding at import: the reference defines the value.
        _check_constants(g, f"{node.op} node '{name}'", sum(math.prod(s) * DTYPES[d].itemsize for s, d in out_types))
        with np.errstate(all="ignore"):  # (overflow to inf and the like: IEEE arithmetic, as at run time)
            values = op.reference(node, [None if t is None else t.data if t.is_const else np.broadcast_to(np.zeros((), DTYPES[t.dtype]), t.shape)
                                         for t in ins])
        for o, v in zip(node.outputs, values):
            g.add_const(o, np.asarray(v))
        return
    if len(g.nodes) >= MAX_NODES:
        raise TinycError(f"{node.op} node '{name}': the graph grows past {MAX_NODES:,} nodes")
    for o, (shape, dtype) in zip(node.outputs, out_types):
        g.add_tensor(Tensor(o, tuple(int(d) for d in shape), dtype))
    g.nodes.append(node)


def _import_constant(g: Graph, n: onnx.NodeProto, node_name: str, attrs: dict[str, Any]) -> None:
    if len(attrs) != 1:
        raise UnsupportedError(f"Constant node '{node_name}' needs exactly one value attribute")
    (key, v), = attrs.items()
    if key == "value":
        arr = np.asarray(v)
    elif key in ("value_float", "value_int"):
        arr = np.asarray(v, np.float32 if key == "value_float" else np.int64)
    elif key in ("value_floats", "value_ints"):
        arr = np.asarray(v, np.float32 if key == "value_floats" else np.int64)
    else:
        raise UnsupportedError(f"Constant node '{node_name}': attribute '{key}' is not supported")
    g.add_const(n.output[0], arr)


def _topological(g: onnx.GraphProto, available: set[str]) -> list[onnx.NodeProto]:
    """Nodes in an order where every input is defined first (the file's order where it allows);
    a cycle or dangling input is an error. Linear in the graph's size."""
    avail = set(available) | {""}
    nodes = list(g.node)
    waiting = [0] * len(nodes)  # inputs of each node not defined yet
    readers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in set(n.input) - avail:
            readers.setdefault(x, []).append(i)
            waiting[i] += 1
    ready = [i for i, w in enumerate(waiting) if w == 0]  # a heap: the earliest ready node of the file first
    order: list[onnx.NodeProto] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        new = [o for o in nodes[i].output if o not in avail]
        avail.update(new)
        for o in dict.fromkeys(new):
            for j in readers.pop(o, []):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
    if len(order) < len(nodes):
        n = next(n for i, n in enumerate(nodes) if waiting[i])
        bad = next(x for x in n.input if x not in avail)
        raise TinycError(f"{n.op_type} node '{n.name}' uses '{bad}', which is never defined (or the graph has a cycle)")
    return order


def _drop_unused(g: Graph) -> None:
    """Remove constants no node reads (folded shape operands, unused initializers)."""
    used = {x for n in g.nodes for x in n.inputs if x is not None} | set(g.outputs) | set(g.inputs)
    for name in [t.name for t in g.constants() if t.name not in used]:
        del g.tensors[name]


def load(path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
         bind: dict[str, np.ndarray] | None = None) -> Graph:
    """Load an ONNX file into IR (the graph is named after the file)."""
    m = load_model_proto(path)
    return import_model(m, input_shapes, name=Path(path).stem, bind=bind)
