"""Reading a .tflite file safely, before the TFLite importer looks at it.

A .tflite file is a flatbuffer: tables that point at each other by offsets, which the `tflite`
package follows lazily, trusting every offset and length it finds. Nothing in the bytes is trusted
here. ``read_model`` follows every reference the importer will follow (subgraph 0, its tensors,
operators and their options, the buffers, quantization, metadata and signatures) and checks, each
defect being one line naming the file:

- the reads stay inside the file (a read outside it: "corrupt or truncated"), and each vector's
  length fits in the file before anything iterates over it;
- file identifier "TFL3", schema version 3, exactly one subgraph;
- every index is in range: tensors of operators and of the subgraph (-1, an omitted optional
  operator input, is allowed), buffers, operator codes, metadata, signatures;
- shapes: no negative dimension, no tensor over limits.MAX_TENSOR_BYTES, constants within
  limits.MAX_CONSTANT_BYTES in all, and each constant buffer holds exactly shape x element size;
- tensor types tinyc has a dtype for, builtin codes the `tflite` package knows, no custom ops, no
  sparse tensors, options of a known type that can be read whole;
- quantization: scale and zero point arrays of length 1 or the quantized dimension's size, the
  quantized dimension within the tensor's rank, positive finite scales, zero points the type holds.

Buffers stored after the flatbuffer (Buffer.offset/size, which converters write for models over
2 GB) are read from within the file. After ``read_model`` the importer may read subgraph 0 with
the package's accessors, constants through ``buffer_data``, options through ``builtin_options``
and operator codes through ``builtin_code``, without further checks.
"""
from __future__ import annotations

import functools
import inspect
import math
import struct
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

from ..errors import TinycError, UnsupportedError
from ..ir import DTYPES
from .limits import MAX_CONSTANT_BYTES, MAX_NODES, check_size

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
# A flatbuffer ends before 2 GiB; what lies beyond is buffers, far more than tinyc compiles.
MAX_FILE_BYTES = 2**31 - 1


def _enum_names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


OPERATOR_NAMES = _enum_names(tflite.BuiltinOperator)
TYPE_NAMES = _enum_names(tflite.TensorType)
_OPTIONS_NAMES = _enum_names(tflite.BuiltinOptions)
_OPTIONS2_NAMES = _enum_names(tflite.BuiltinOptions2)
# The codes the `tflite` package knows (127 only says "look at builtin_code", it is no operator).
KNOWN_BUILTIN_CODES = frozenset(OPERATOR_NAMES) - {tflite.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES}

# TFLite tensor type -> tinyc IR dtype (the types tinyc handles)
_T = tflite.TensorType
TENSOR_DTYPES: dict[int, str] = {
    _T.FLOAT32: "f32", _T.FLOAT16: "f16", _T.FLOAT64: "f64", _T.INT8: "s8", _T.UINT8: "u8", _T.INT16: "s16",
    _T.UINT16: "u16", _T.INT32: "s32", _T.UINT32: "u32", _T.INT64: "s64", _T.UINT64: "u64", _T.BOOL: "bool",
}

# What the flatbuffers reader raises when an offset or length leads outside the file
_READ_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError)


def text(raw: bytes | None) -> str:
    """A name or description from the file (arbitrary bytes) as text."""
    return raw.decode("utf-8", errors="replace") if raw else ""


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."


def _array(v) -> np.ndarray:
    """A vector read with the package's ...AsNumpy (which gives 0 for an absent vector)."""
    return np.zeros(0, np.int32) if isinstance(v, int) else v


def read_model_file(path: str | Path) -> tflite.Model:
    """Read and check a .tflite file (see read_model)."""
    p = Path(path)
    if not p.exists():
        raise TinycError(f"model file not found: {p}")
    if not p.is_file():
        raise TinycError(f"not a file: {p}")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise TinycError(f"{p}: {size:,} bytes; tinyc compiles models with at most {MAX_CONSTANT_BYTES:,} bytes of "
                         f"constant data")
    return read_model(p.read_bytes(), str(p))


def read_model(data: bytes, source: str) -> tflite.Model:
    """The model in ``data`` (read from ``source``, which errors name), checked as the module's
    docstring says; TinycError (UnsupportedError for what is valid TFLite that tinyc does not
    compile) in one line otherwise."""
    data = bytes(data)
    if len(data) < 8:
        raise TinycError(f"{source}: not a TFLite model ({len(data)} bytes)")
    if data[4:8] != FILE_IDENTIFIER:
        raise TinycError(f"{source}: not a TFLite model (file identifier {data[4:8]!r}, expected {FILE_IDENTIFIER!r})")
    check = _Check(data, source)
    try:
        model = tflite.Model.GetRootAs(data, 0)
        check.model(model)
    except _READ_ERRORS as e:
        raise TinycError(f"{source}: corrupt or truncated TFLite file (reading {check.where} led outside the "
                         f"file: {type(e).__name__})") from None
    return model


def builtin_code(opcode: tflite.OperatorCode) -> int:
    """An operator code's builtin operator: the larger of the two fields (deprecated_builtin_code
    is an int8 that says 127 for the codes beyond it), as TFLite reads it."""
    o = opcode._tab.Offset(10)  # builtin_code, read raw (the package's accessor prefers the other field)
    code = opcode._tab.Get(flatbuffers.number_types.Int32Flags, o + opcode._tab.Pos) if o else 0
    return max(code, opcode.DeprecatedBuiltinCode())


def buffer_data(model: tflite.Model, index: int) -> np.ndarray | None:
    """The bytes of buffer ``index`` (uint8, read-only), None for buffer 0 and empty buffers (the
    tensor is not a constant)."""
    if index == 0:
        return None
    b = model.Buffers(index)
    if b.Offset() > 1:  # stored after the flatbuffer, at this offset from the file's start
        raw = np.frombuffer(model._tab.Bytes, np.uint8, count=b.Size(), offset=b.Offset())
    else:
        raw = _array(b.DataAsNumpy())
    return raw if raw.size else None


def builtin_options(op: tflite.Operator, cls: type, what: str):
    """The operator's options read as ``cls`` (e.g. tflite.Conv2DOptions), or None when it has none
    (TFLite's defaults apply); TinycError naming ``what`` when the file declares another type."""
    name = cls.__name__
    if hasattr(tflite.BuiltinOptions, name):
        want, kind, table, names = getattr(tflite.BuiltinOptions, name), op.BuiltinOptionsType(), op.BuiltinOptions(), _OPTIONS_NAMES
    else:
        want, kind, table, names = (getattr(tflite.BuiltinOptions2, name), op.BuiltinOptions2Type(), op.BuiltinOptions2(),
                                    _OPTIONS2_NAMES)
    if kind == 0 or table is None:
        return None
    if kind != want:
        raise TinycError(f"{what}: its options are {names.get(kind, kind)}, expected {name}")
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


@functools.cache
def default_options(cls: type):
    """An options table of class ``cls`` with every field at the schema's default: how FlatBuffers,
    and TFLite's own reader, read an operator whose options are absent."""
    b = flatbuffers.Builder(16)
    b.StartObject(0)
    b.Finish(b.EndObject())
    data = bytes(b.Output())
    obj = cls()
    obj.Init(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    return obj


@functools.cache
def _readers(cls: type) -> tuple[str, ...]:
    """The accessors of a generated table class that take no argument (scalars, strings, whole
    vectors as numpy, vector lengths, nested tables)."""
    out = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or name == "Init" or not inspect.isfunction(fn):
            continue
        if len(inspect.signature(fn).parameters) == 1:
            out.append(name)
    return tuple(out)


def _read_whole(obj, depth: int = 0) -> None:
    """Call every argument-less accessor of a table (and of the tables it holds): any offset or
    length that leads outside the file raises."""
    for name in _readers(type(obj)):
        v = getattr(obj, name)()
        if hasattr(v, "_tab") and depth < 4:
            _read_whole(v, depth + 1)


class _Check:
    def __init__(self, data: bytes, source: str):
        self.data, self.source = data, source
        self.where = "the model table"
        self.n_buffers = 0
        self.buffer_bytes: list[int] = []
        self.codes: dict[int, int] = {}

    def fail(self, message: str, cls: type[TinycError] = TinycError):
        raise cls(f"{self.source}: {message}")

    def count(self, n: int, what: str, item: int = 4) -> int:
        """A vector's length, refused when its entries cannot fit in the file."""
        if n * item > len(self.data):
            self.fail(f"corrupt or truncated TFLite file ({what}: {n:,} entries do not fit in its {len(self.data):,} "
                      f"bytes)")
        return n

    def indices(self, values, limit: int, what: str, allow_omitted: bool = False) -> None:
        for j, v in enumerate(values.tolist()):
            if not (0 <= v < limit or (allow_omitted and v == -1)):
                self.fail(f"{what} {j} is tensor index {v}, out of range (the subgraph has {limit} tensors)")

    # ---- the model ------------------------------------------------------------------------

    def model(self, m: tflite.Model) -> None:
        version = m.Version()
        if version != SCHEMA_VERSION:
            self.fail(f"TFLite schema version {version}; tinyc reads version {SCHEMA_VERSION}")
        n_sub = self.count(m.SubgraphsLength(), "subgraphs")
        if n_sub == 0:
            self.fail("the model has no subgraph")
        if n_sub > 1:
            self.fail(f"the model has {n_sub} subgraphs; tinyc compiles models with one (control flow such as IF, "
                      f"WHILE or CALL_ONCE is not supported)", UnsupportedError)
        text(m.Description())
        self.buffers(m)
        self.n_codes = self.count(m.OperatorCodesLength(), "operator codes")
        self.where = "subgraph 0"
        n_tensors = self.subgraph(m, m.Subgraphs(0))
        self.metadata(m, n_tensors)

    def buffers(self, m: tflite.Model) -> None:
        self.n_buffers = self.count(m.BuffersLength(), "buffers")
        for j in range(self.n_buffers):
            self.where = f"buffer {j}"
            b = m.Buffers(j)
            data, offset, size = _array(b.DataAsNumpy()), b.Offset(), b.Size()
            if offset > 1:
                if data.size:
                    self.fail(f"buffer {j} has both data and an offset ({offset:,}) into the file")
                if offset + size > len(self.data):
                    self.fail(f"buffer {j}: {size:,} bytes at offset {offset:,} lie outside the file "
                              f"({len(self.data):,} bytes)")
                self.buffer_bytes.append(size)
            else:
                self.buffer_bytes.append(int(data.size))

    def metadata(self, m: tflite.Model, n_tensors: int) -> None:
        self.where = "the metadata"
        for j, v in enumerate(_array(m.MetadataBufferAsNumpy()).tolist()):
            if not 0 <= v < self.n_buffers:
                self.fail(f"metadata buffer {j} is buffer index {v}, out of range (the model has {self.n_buffers} buffers)")
        for j in range(self.count(m.MetadataLength(), "metadata")):
            md = m.Metadata(j)
            if not 0 <= md.Buffer() < self.n_buffers:
                self.fail(f"metadata '{_short(text(md.Name()))}' is buffer index {md.Buffer()}, out of range (the model "
                          f"has {self.n_buffers} buffers)")
        for j in range(self.count(m.SignatureDefsLength(), "signatures")):
            self.where = f"signature {j}"
            sig = m.SignatureDefs(j)
            if sig.SubgraphIndex() != 0:
                self.fail(f"signature {j} names subgraph {sig.SubgraphIndex()}, out of range (the model has one)")
            text(sig.SignatureKey())
            for kind, n, get in (("input", sig.InputsLength(), sig.Inputs), ("output", sig.OutputsLength(), sig.Outputs)):
                for k in range(self.count(n, f"signature {kind}s")):
                    tm = get(k)
                    text(tm.Name())
                    if not 0 <= tm.TensorIndex() < n_tensors:
                        self.fail(f"signature {j} {kind} {k} is tensor index {tm.TensorIndex()}, out of range (the "
                                  f"subgraph has {n_tensors} tensors)")

    # ---- subgraph 0 -----------------------------------------------------------------------

    def subgraph(self, m: tflite.Model, sg: tflite.SubGraph) -> int:
        text(sg.Name())
        n_tensors = self.count(sg.TensorsLength(), "tensors")
        constants: set[int] = set()
        for i in range(n_tensors):
            self.where = f"tensor {i}"
            b = self.tensor(i, sg.Tensors(i))
            if b is not None:
                constants.add(b)
        total = sum(self.buffer_bytes[b] for b in constants)
        if total > MAX_CONSTANT_BYTES:
            self.fail(f"the model's constants take {total:,} bytes; tinyc refuses more than {MAX_CONSTANT_BYTES:,} bytes "
                      f"of constant data")
        self.where = "the subgraph's inputs and outputs"
        self.indices(_array(sg.InputsAsNumpy()), n_tensors, "subgraph input")
        outputs = _array(sg.OutputsAsNumpy())
        self.indices(outputs, n_tensors, "subgraph output")
        if not outputs.size:
            self.fail("the subgraph has no outputs")
        n_ops = self.count(sg.OperatorsLength(), "operators")
        if n_ops > MAX_NODES:
            self.fail(f"the subgraph has {n_ops:,} operators; tinyc compiles at most {MAX_NODES:,}")
        written: dict[int, int] = {}
        for k in range(n_ops):
            self.where = f"operator {k}"
            self.operator(m, k, sg.Operators(k), n_tensors, written)
        return n_tensors

    def tensor(self, i: int, t: tflite.Tensor) -> int | None:
        """Check tensor i; its buffer index when it is a constant."""
        label = f"tensor {i} '{_short(text(t.Name()))}'"
        shape = [int(d) for d in _array(t.ShapeAsNumpy()).tolist()]
        _array(t.ShapeSignatureAsNumpy())
        ttype = t.Type()
        if ttype not in TENSOR_DTYPES:
            self.fail(f"{label} has type {TYPE_NAMES.get(ttype, ttype)}, which tinyc does not handle (it takes "
                      f"{', '.join(TYPE_NAMES[k] for k in TENSOR_DTYPES)})", UnsupportedError)
        itemsize = DTYPES[TENSOR_DTYPES[ttype]].itemsize
        check_size(f"{self.source}: {label}", shape, itemsize)
        if t.Sparsity() is not None:
            self.fail(f"{label} is sparse; tinyc does not compile sparse tensors", UnsupportedError)
        if t.VariantTensorsLength():
            self.fail(f"{label} has variant subtypes; tinyc does not compile them", UnsupportedError)
        q = t.Quantization()
        if q is not None:
            self.quantization(label, q, shape, ttype)
        b = t.Buffer()
        if not 0 <= b < self.n_buffers:
            self.fail(f"{label} is buffer index {b}, out of range (the model has {self.n_buffers} buffers)")
        if b == 0 or not self.buffer_bytes[b]:
            return None
        need = math.prod(shape) * itemsize
        if self.buffer_bytes[b] != need:
            self.fail(f"{label}: buffer {b} holds {self.buffer_bytes[b]:,} bytes, but shape {shape} of "
                      f"{TYPE_NAMES[ttype]} needs {need:,}")
        return b

    def quantization(self, label: str, q: tflite.QuantizationParameters, shape: list[int], ttype: int) -> None:
        scale, zero_point = _array(q.ScaleAsNumpy()), _array(q.ZeroPointAsNumpy())
        _array(q.MinAsNumpy()), _array(q.MaxAsNumpy())
        if q.DetailsType() != 0:
            self.fail(f"{label} has custom quantization details; tinyc does not compile them", UnsupportedError)
        if not scale.size and not zero_point.size:
            return
        dim = q.QuantizedDimension()
        if not 0 <= dim < max(len(shape), 1):
            self.fail(f"{label}: quantized_dimension {dim} is out of range for shape {shape}")
        channels = shape[dim] if shape else 1
        for what, values in (("scale", scale), ("zero_point", zero_point)):
            if values.size not in (0, 1, channels):
                self.fail(f"{label}: {values.size} {what} values; expected 1 or {channels} (the size of quantized "
                          f"dimension {dim})")
        bad = [float(s) for s in scale.tolist() if not (math.isfinite(s) and s > 0)]
        if bad:
            self.fail(f"{label}: quantization scale {bad[0]} is not a positive finite number")
        dtype = DTYPES[TENSOR_DTYPES[ttype]]
        if dtype.kind in "iu" and zero_point.size:
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
            out = [int(z) for z in zero_point.tolist() if not lo <= z <= hi]
            if out:
                self.fail(f"{label}: zero point {out[0]} is out of range for {TYPE_NAMES[ttype]}")

    def operator(self, m: tflite.Model, k: int, op: tflite.Operator, n_tensors: int, written: dict[int, int]) -> None:
        index = op.OpcodeIndex()
        if not 0 <= index < self.n_codes:
            self.fail(f"operator {k}: opcode index {index} out of range (the model has {self.n_codes} operator codes)")
        code = self.codes.get(index)
        if code is None:
            code = self.codes[index] = builtin_code(m.OperatorCodes(index))
        if code == tflite.BuiltinOperator.CUSTOM:
            custom = _short(text(m.OperatorCodes(index).CustomCode()))
            self.fail(f"operator {k}: custom op '{custom}' is not supported", UnsupportedError)
        if code not in KNOWN_BUILTIN_CODES:
            self.fail(f"operator {k}: unknown builtin operator code {code} (this reader knows codes up to "
                      f"{max(KNOWN_BUILTIN_CODES)})", UnsupportedError)
        what = f"operator {k} ({OPERATOR_NAMES[code]})"
        self.indices(_array(op.InputsAsNumpy()), n_tensors, f"{what}: input", allow_omitted=True)
        outputs = _array(op.OutputsAsNumpy())
        self.indices(outputs, n_tensors, f"{what}: output")
        self.indices(_array(op.IntermediatesAsNumpy()), n_tensors, f"{what}: intermediate", allow_omitted=True)
        for o in outputs.tolist():
            if o in written:
                self.fail(f"{what}: tensor {o} is also written by operator {written[o]}")
            written[o] = k
        _array(op.MutatingVariableInputsAsNumpy())
        _array(op.CustomOptionsAsNumpy())
        offset, size = op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()
        if offset > 1 and offset + size > len(self.data):
            self.fail(f"{what}: {size:,} bytes of custom options at offset {offset:,} lie outside the file")
        for names, kind, table in ((_OPTIONS_NAMES, op.BuiltinOptionsType(), op.BuiltinOptions()),
                                   (_OPTIONS2_NAMES, op.BuiltinOptions2Type(), op.BuiltinOptions2())):
            if kind not in names:
                self.fail(f"{what}: unknown options type {kind}", UnsupportedError)
            if kind and table is not None:
                options = getattr(tflite, names[kind])()
                options.Init(table.Bytes, table.Pos)
                _read_whole(options)
