"""Small int8 TFLite models built in tests, run by TFLite Micro (the `tflite-micro` package) as an
oracle. The flatbuffer is written with the schema classes that package ships; tests skip with a
reason where it is missing (outside CI)."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np

from .conftest import ROOT, unavailable


def examples_module(name: str):
    """examples/NAME.py (or examples/DIR/NAME.py for ``DIR/NAME``), imported once under its file's
    name, as the example scripts import each other (examples/ is not a package)."""
    short = name.rsplit("/", 1)[-1]
    if short not in sys.modules:
        spec = importlib.util.spec_from_file_location(short, ROOT / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[short] = module
        spec.loader.exec_module(module)
    return sys.modules[short]


def _schema():
    try:
        import flatbuffers
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    except ImportError as e:
        unavailable(f"tflite-micro (with its flatbuffer schema) is not installed: {e}")
    return flatbuffers, fb


def mean_model(shape: tuple[int, ...], axes: list[int], keep_dims: bool, x_q: tuple[float, int],
               y_q: tuple[float, int]) -> bytes:
    """One int8 MEAN over ``axes`` with input parameters x_q and output parameters y_q (scale, zero
    point), as the TFLite converter writes it: the axes in an int32 constant, ReducerOptions."""
    flatbuffers, fb = _schema()

    def quant(scale, zero_point):
        q = fb.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
        return q

    def tensor(name, dims, ttype, buffer, q=None):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, list(dims), ttype, buffer, q
        return t

    out_shape = [1 if i in axes else d for i, d in enumerate(shape) if keep_dims or i not in axes]
    empty, axes_buf = fb.BufferT(), fb.BufferT()
    axes_buf.data = list(np.asarray(axes, "<i4").tobytes())
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.MEAN
    code.version = 2
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = fb.BuiltinOptions.ReducerOptions
    op.builtinOptions = fb.ReducerOptionsT()
    op.builtinOptions.keepDims = keep_dims
    sub = fb.SubGraphT()
    sub.tensors = [tensor("x", shape, fb.TensorType.INT8, 0, quant(*x_q)),
                   tensor("axes", [len(axes)], fb.TensorType.INT32, 1),
                   tensor("y", out_shape, fb.TensorType.INT8, 0, quant(*y_q))]
    sub.inputs, sub.outputs, sub.operators = [0], [2], [op]
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sub], [empty, axes_buf]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_tflm(model: bytes, samples: list[np.ndarray], arena: int = 64 * 1024) -> list[np.ndarray]:
    """Output 0 of TFLite Micro's reference kernels for each input sample (``arena``: bytes beside
    8 per input element)."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        unavailable(f"tflite-micro is not installed: {e}")
    it = runtime.Interpreter.from_bytes(model, arena_size=arena + 8 * max(s.size for s in samples))
    outs = []
    for s in samples:
        it.set_input(s, 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return outs


def model_bytes(op_name: str, tensors: list[dict], inputs: list[int], outputs: list[int], op_inputs: list[int],
                op_outputs: list[int], options: tuple[str, dict] | None = None, version: int = 1) -> bytes:
    """A one-operator model. ``tensors``: dicts with name, shape, type ("f32", "s8", "s16", "s32", "s64"),
    optional data (a numpy array: a constant), q = (scales, zero points, quantized_dimension) and
    variable (a state tensor);
    ``options``: (the BuiltinOptions name, e.g. "Conv2DOptions", {field: value})."""
    flatbuffers, fb = _schema()
    types = {"f32": fb.TensorType.FLOAT32, "s8": fb.TensorType.INT8, "s32": fb.TensorType.INT32,
             "s16": fb.TensorType.INT16, "s64": fb.TensorType.INT64}
    buffers = [fb.BufferT()]
    ts = []
    for spec in tensors:
        t = fb.TensorT()
        t.name, t.shape, t.type = spec["name"], list(spec["shape"]), types[spec["type"]]
        t.buffer, t.isVariable = 0, bool(spec.get("variable"))
        if spec.get("data") is not None:
            b = fb.BufferT()
            b.data = list(np.ascontiguousarray(spec["data"]).astype(spec["data"].dtype.newbyteorder("<")).tobytes())
            buffers.append(b)
            t.buffer = len(buffers) - 1
        if spec.get("q") is not None:
            scales, zps, dim = spec["q"]
            q = fb.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = [float(s) for s in scales], [int(z) for z in zps], dim
            t.quantization = q
        ts.append(t)
    code = fb.OperatorCodeT()
    builtin = getattr(fb.BuiltinOperator, op_name)
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, list(op_inputs), list(op_outputs)
    if options is not None:
        kind, fields = options
        op.builtinOptionsType = getattr(fb.BuiltinOptions, kind)
        o = getattr(fb, kind + "T")()
        for k, v in fields.items():
            setattr(o, k, v)
        op.builtinOptions = o
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = ts, list(inputs), list(outputs), [op]
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sub], buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_tflm_all(model: bytes, feeds: list[list[np.ndarray]], arena: int = 256 * 1024) -> list[np.ndarray]:
    """Output 0 of TFLite Micro for each list of inputs (every model input set)."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        unavailable(f"tflite-micro is not installed: {e}")
    it = runtime.Interpreter.from_bytes(model, arena_size=arena)
    outs = []
    for xs in feeds:
        for k, x in enumerate(xs):
            it.set_input(x, k)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return outs
