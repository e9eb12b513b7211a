"""Writing .tflite flatbuffers with the schema classes the `tflite-micro` package ships (its object
API: ModelT and friends), for the example models and the tests' small models.

    TfliteBuilder   tensors, operators and buffers of one subgraph, then ``model()`` (a ModelT)
    serialize(model) the ModelT as .tflite bytes
    options(fb, "Conv2DOptions", padding=...)  the (options type, options object) of an operator

Needs `flatbuffers` and `tflite-micro` (pip install tflite-micro); tinyc itself does not.
"""
from __future__ import annotations

import numpy as np


def schema():
    """(the flatbuffers module, the TFLite schema module of the tflite-micro package)."""
    try:
        import flatbuffers
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    except ImportError as e:
        raise ImportError(f"writing .tflite needs tflite-micro (pip install tflite-micro): {e}") from e
    return flatbuffers, fb


class TfliteBuilder:
    """One subgraph built tensor by tensor and operator by operator."""

    def __init__(self, description: str = "tinyc test model"):
        self.flatbuffers, self.fb = schema()
        self.description = description
        self.buffers = [self.fb.BufferT()]  # buffer 0: the empty one every file starts with
        self.tensors: list = []
        self.operators: list = []
        self.codes: list[int] = []

    def quant(self, scale, zero_point, dim: int = 0):
        q = self.fb.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(scale)]
        q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
        q.quantizedDimension = dim
        return q

    def tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None, q=None) -> int:
        t = self.fb.TensorT()
        t.name, t.shape, t.type, t.quantization = name, [int(d) for d in shape], ttype, q
        t.buffer = 0
        if data is not None:
            b = self.fb.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = self.fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def model(self, inputs: list[int], outputs: list[int]):
        fb = self.fb
        codes = []
        for c in self.codes:
            oc = fb.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            codes.append(oc)
        sub = fb.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs, sub.name = self.tensors, self.operators, inputs, outputs, "main"
        m = fb.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [sub], self.buffers
        m.description = self.description
        return m


def serialize(model) -> bytes:
    """A ModelT as .tflite bytes (file identifier TFL3)."""
    flatbuffers, _ = schema()
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def options(fb, cls: str, **fields):
    o = getattr(fb, cls + "T")()
    for k, v in fields.items():
        setattr(o, k, v)
    return getattr(fb.BuiltinOptions, cls), o
