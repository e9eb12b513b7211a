"""Small int8 TFLite models built in tests, run by TFLite Micro (the `tflite-micro` package) as an
oracle. The flatbuffer is written with the schema classes that package ships; tests skip with a
reason where it is missing (outside CI)."""
from __future__ import annotations

import numpy as np

from .conftest import unavailable


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
