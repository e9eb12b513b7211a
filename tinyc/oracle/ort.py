"""The onnxruntime oracle: the ONNX model itself on onnxruntime's CPU execution provider."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TinycError
from ..ir import DTYPES, Graph


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _feed(g: Graph, name: str, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A compiled model's input as the ONNX model takes it: the same values, or (an int8 input of
    a graph whose ONNX input is float, --io int8) dequantized, or quantized the other way round."""
    from ..compiler import _requantize_feeds
    from ..diff import dequantize

    t = g.tensors[name]
    v = np.asarray(value).astype(DTYPES[t.dtype])  # the values the target got
    if (v.dtype.kind == "f") == (dtype.kind == "f"):
        return v.astype(dtype)
    if t.quant is None:
        raise TinycError(f"--against onnxruntime: input '{name}' is {v.dtype} here and {dtype} in the ONNX model")
    if dtype.kind == "f":
        return dequantize(v, t.quant).astype(dtype)
    return _requantize_feeds(g, {name: v})[name].astype(dtype)


def ort_runner(path: Path, g: Graph, bind: dict[str, np.ndarray]) -> tuple[Callable, str, list[str]]:
    """A function (graph, sample) -> outputs by the graph's output names, the oracle's label and
    hints for a failure."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise TinycError("--against onnxruntime needs the onnxruntime package: pip install onnxruntime") from None
    import onnx
    from onnx import helper

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise TinycError(f"--against onnxruntime: onnxruntime cannot load {path.name}: {_first_line(e)}") from None
    model = onnx.load(str(path), load_external_data=False)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    ins = {i.name: np.dtype(helper.tensor_dtype_to_np_dtype(types[i.name])) for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    missing = [n for n in ins if n not in g.inputs and n not in bind]
    if missing:
        raise TinycError(f"--against onnxruntime: the ONNX model's input(s) {', '.join(missing)} are not inputs of the "
                         "compiled model (give their values with --bind NAME=FILE.npy)")
    if set(g.outputs) <= set(outs):
        names = list(g.outputs)
    elif len(outs) == len(g.outputs):  # renamed: matched by position
        names = outs
    else:
        raise TinycError(f"--against onnxruntime: the ONNX model has {len(outs)} output(s), the compiled model "
                         f"{len(g.outputs)}")

    def run(graph: Graph, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {n: _feed(graph, n, sample[n], dt) if n in sample else np.asarray(bind[n], dt) for n, dt in ins.items()}
        try:
            values = sess.run(names, feeds)
        except Exception as e:
            raise TinycError(f"--against onnxruntime: running {path.name} failed: {_first_line(e)}") from None
        return dict(zip(graph.outputs, values))

    notes = []
    if model.producer_name == "tf2onnx" and any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        notes.append("(this model is a tf2onnx export of an int8 TFLite model: its integer arithmetic is TFLite's, "
                     "which onnxruntime's float requantization does not follow; check it with --against tflm=FILE.tflite)")
    return run, f"onnxruntime {ort.__version__} ({path.name}, CPU)", notes

