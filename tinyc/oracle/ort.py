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
    from ..data import quantize_feeds
    from ..diff import dequantize

    t = g.tensors[name]
    v = np.asarray(value).astype(DTYPES[t.dtype])  # the values the target got
    if (v.dtype.kind == "f") == (dtype.kind == "f"):
        return v.astype(dtype)
    if t.quant is None:
        raise TinycError(f"--against onnxruntime: input '{name}' is {v.dtype} here and {dtype} in the ONNX model")
    if dtype.kind == "f":
        return dequantize(v, t.quant).astype(dtype)
    return quantize_feeds(g, {name: v})[name].astype(dtype)


def _layer_taps(model, g: Graph) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """The compiled graph's layer outputs that the ONNX model computes too: the same name, or the
    name before the layout pass made it NHWC (``<name>/nhwc``: transposed from NCHW), with the
    same element kind. compiled tensor -> (ONNX tensor, permutation or None)."""
    import onnx
    from onnx import helper

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a courtesy here: without it, only the final outputs
        return {}
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    taps = {}
    for n in g.nodes:
        for name in n.outputs:
            if name in g.outputs:
                continue
            t = g.tensors[name]
            base = name[:-len("/nhwc")] if name.endswith("/nhwc") else name
            if not types.get(base):
                continue
            if np.dtype(helper.tensor_dtype_to_np_dtype(types[base])).kind != DTYPES[t.dtype].kind:
                continue
            perm = (0, *range(2, len(t.shape)), 1) if base != name else None
            taps[name] = (base, perm)
    return taps


def ort_runner(path: Path, g: Graph, bind: dict[str, np.ndarray], layers: bool = False) -> tuple[Callable, str, list[str]]:
    """A function (graph, sample) -> outputs by the graph's output names (and with ``layers``,
    every layer output onnxruntime computes too, by the compiled graph's names), the oracle's
    label and hints for a failure."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise TinycError("--against onnxruntime needs the onnxruntime package: pip install onnxruntime") from None
    import onnx
    from onnx import helper

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    model = onnx.load(str(path))
    taps = _layer_taps(model, g) if layers else {}
    if taps:
        tapped = onnx.ModelProto()
        tapped.CopyFrom(model)
        seen = {o.name for o in tapped.graph.output}
        for base, _ in taps.values():
            if base not in seen:
                seen.add(base)
                tapped.graph.output.append(onnx.ValueInfoProto(name=base))
    try:
        sess = ort.InferenceSession(tapped.SerializeToString() if taps else str(path), so,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise TinycError(f"--against onnxruntime: onnxruntime cannot load {path.name}: {_first_line(e)}") from None
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    ins = {i.name: np.dtype(helper.tensor_dtype_to_np_dtype(types[i.name])) for i in sess.get_inputs()}
    outs = [o.name for o in model.graph.output]
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
        wanted = names + sorted({base for base, _ in taps.values()})
        try:
            values = dict(zip(wanted, sess.run(wanted, feeds)))
        except Exception as e:
            raise TinycError(f"--against onnxruntime: running {path.name} failed: {_first_line(e)}") from None
        out = {name: values[n] for name, n in zip(graph.outputs, names)}
        for name, (base, perm) in taps.items():
            v = values[base] if perm is None or values[base].ndim != len(perm) else np.transpose(values[base], perm)
            if tuple(v.shape) == tuple(graph.tensors[name].shape):
                out[name] = v
        return out

    notes = []
    if model.producer_name == "tf2onnx" and any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        notes.append("(this model is a tf2onnx export of an int8 TFLite model: its integer arithmetic is TFLite's, "
                     "which onnxruntime's float requantization does not follow; check it with --against tflm=FILE.tflite)")
    return run, f"onnxruntime {ort.__version__} ({path.name}, CPU)", notes

