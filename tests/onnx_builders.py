"""Small ONNX models built in tests (one node, or a short chain)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def single_node(op: str, inputs: list[tuple[str, tuple[int, ...]] | tuple[str, np.ndarray] | None],
                out_count: int = 1, opset: int = 17, **attrs) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A model with one node. An input given as (name, shape) is a graph input fed with random
    data (positive when the name ends in _pos); (name, array) is an initializer; None is an omitted
    optional input. Returns the model and the feeds."""
    rng = np.random.default_rng(7)
    graph_inputs, inits, feeds, names = [], [], {}, []
    for item in inputs:
        if item is None:
            names.append("")
            continue
        name, v = item
        names.append(name)
        if isinstance(v, np.ndarray):
            inits.append(numpy_helper.from_array(v, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(v)))
            # an input named *_pos gets positive values (for Sqrt, Log, ...)
            feeds[name] = (rng.uniform(0.1, 2.0, v) if name.endswith("_pos") else rng.standard_normal(v)).astype(np.float32)
    outs = [f"y{i}" for i in range(out_count)]
    node = helper.make_node(op, names, outs, name=f"the_{op.lower()}", **attrs)
    graph = helper.make_graph([node], f"{op.lower()}_test", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8
    return model, feeds


def weights(*shape: int, seed: int = 1, low: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if low is not None:
        return rng.uniform(low, 2.0, size=shape).astype(np.float32)
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def float_chain(nodes, inits, shape, out_shape, path):
    """A float chain (graph input x, output y), opset 13, saved as ``path``."""
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def ort_quantized(nodes, inits, shape, out_shape, path, rng, per_channel: bool = True, activation_type: str = "QInt8",
                  **options):
    """A float chain (graph input x, output y) saved next to ``path`` and quantized by onnxruntime's
    quantize_static into ``path`` (QDQ, int8 activations, or ``activation_type``, and int8 weights;
    32 random calibration inputs from ``rng``). ``options`` go to quantize_static (e.g.
    op_types_to_quantize, extra_options)."""
    import pytest

    q = pytest.importorskip("onnxruntime.quantization")
    float_path = float_chain(nodes, inits, shape, out_shape, path.with_name(path.stem + "_float.onnx"))

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(32)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(float_path), str(path), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                      activation_type=getattr(q.QuantType, activation_type), weight_type=q.QuantType.QInt8, **options)
    return path
