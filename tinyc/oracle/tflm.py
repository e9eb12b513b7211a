"""The TFLite Micro oracle: the original .tflite in the ``tflite-micro`` package's interpreter
(TFLM's kernels built for the host; their outputs equal TFLM with CMSIS-NN on a Cortex-M4).
Inputs and outputs are matched by position; their element types and shapes must agree."""
from __future__ import annotations

import contextlib
import os
import sys

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TinycError
from ..ir import DTYPES, Graph

INSTALL = "pip install tflite-micro"


@contextlib.contextmanager
def _quiet_stderr():
    """The package's C++ prints a line on stderr for an index out of range, the only way to find
    how many inputs and outputs a model has."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _details(it, which: str) -> list[dict]:
    get = getattr(it, f"get_{which}_details")
    out = []
    with _quiet_stderr():
        while True:
            try:
                out.append(get(len(out)))
            except (IndexError, RuntimeError, ValueError):
                return out


def _check_io(g: Graph, names: list[str], details: list[dict], which: str, path: Path) -> None:
    if len(names) != len(details):
        raise TinycError(f"--against tflm: {path.name} has {len(details)} {which}(s), the compiled model {len(names)}")
    for i, (name, d) in enumerate(zip(names, details)):
        t = g.tensors[name]
        ours, theirs = np.dtype(DTYPES[t.dtype]), np.dtype(d["dtype"])
        shape = tuple(int(x) for x in d["shape"])
        if ours != theirs or tuple(t.shape) != shape:
            quantized = any(x.quant is not None for x in g.tensors.values())
            hint = (" (compile with --io int8 to keep int8 inputs and outputs)"
                    if quantized and ours.kind == "f" and theirs.kind in "iu" else "")
            raise TinycError(f"--against tflm: {which} {i} is {theirs} {list(shape)} in {path.name} but "
                             f"'{name}' is {ours} {list(t.shape)} in the compiled model{hint}")


def _layer_taps(data: bytes, g: Graph) -> dict[str, int]:
    """The compiled graph's layer outputs whose tensors the .tflite names too (a tf2onnx export
    keeps TFLite's names): compiled tensor -> TFLite tensor index. TFLite is NHWC, so a 4-D (or
    3-D) tensor must be one tinyc made NHWC (``<name>/nhwc``); the shapes must agree."""
    from .tflite_names import tensor_names

    index = {name: i for i, name in enumerate(tensor_names(data)) if name}
    taps = {}
    for n in g.nodes:
        for name in n.outputs:
            nhwc = name.endswith("/nhwc")
            base = name[:-len("/nhwc")] if nhwc else name
            if name not in g.outputs and base in index and (nhwc or len(g.tensors[name].shape) <= 2):
                taps[name] = index[base]
    return taps


def tflm_runner(path: Path, g: Graph, layers: bool = False) -> tuple[Callable, str]:
    """A function (graph, sample) -> outputs by the graph's output names (with ``layers``, also
    the layer outputs found by name, from an interpreter that keeps every tensor), and the
    oracle's label."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise TinycError(f"--against tflm needs the tflite-micro package: {INSTALL}") from None
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":  # the flatbuffer's file identifier
        raise TinycError(f"--against tflm: {path} is not a TFLite flatbuffer (.tflite)")
    try:
        config = runtime.InterpreterConfig.kPreserveAllTensors if layers else runtime.InterpreterConfig.kAllocationRecording
        it = runtime.Interpreter.from_bytes(data, None, None, config)
    except Exception as e:  # the package raises RuntimeError, ValueError, struct.error, ...
        raise TinycError(f"--against tflm: TFLite Micro cannot load {path.name}: "
                         f"{(str(e).strip().splitlines() or [type(e).__name__])[0]}") from None
    _check_io(g, g.inputs, _details(it, "input"), "input", path)
    _check_io(g, g.outputs, _details(it, "output"), "output", path)
    taps = _layer_taps(data, g) if layers else {}

    def run(graph: Graph, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # TFLite Micro keeps every variable tensor across invocations. tinyc carries only the model
        # states of its graph (SVDF's: the samples are one sequence); a graph without any (an LSTM,
        # whose hidden and cell state start from their reset values on every call) is compared
        # with TFLite Micro reset before each sample
        if not graph.states:
            it.reset()
        for i, name in enumerate(graph.inputs):
            it.set_input(np.asarray(sample[name], DTYPES[graph.tensors[name].dtype]).reshape(graph.tensors[name].shape), i)
        it.invoke()
        out = {name: it.get_output(i).copy() for i, name in enumerate(graph.outputs)}
        for name, index in taps.items():
            t = it.GetTensor(index, 0)
            v = np.array(t["tensor_data"])
            if v.dtype == DTYPES[graph.tensors[name].dtype] and tuple(v.shape) == tuple(graph.tensors[name].shape):
                out[name] = v
        return out

    return run, f"TFLite Micro ({path.name}, tflite-micro package)"
