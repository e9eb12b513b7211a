"""The compile pipeline as a library: ONNX file -> IR -> C files and report."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .codegen import GeneratedModel, generate
from .errors import TinycError
from .frontend.onnx import load
from .ir import Graph
from .quant.rounding import DEFAULT as DEFAULT_ROUNDING
from .targets import Target


def load_graph(model_path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
               passes: list[str] | None = None) -> Graph:
    """Import a model and run the pass pipeline on it (the default pipeline when not given)."""
    from .passes import run_passes
    from .passes.pipeline import DEFAULT

    return run_passes(load(model_path, input_shapes), DEFAULT if passes is None else passes)


@dataclass
class Prepared:
    """A model ready for code generation, and what is needed to judge its quantization."""

    graph: Graph
    float_graph: Graph | None = None  # the float model, when tinyc quantized it or calibration data came along
    calib: list[dict[str, np.ndarray]] = field(default_factory=list)


def prepare(model_path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
            quantize: str | None = None, calib: str | os.PathLike | None = None, method: str = "minmax",
            percentile: float = 99.99, io: str | None = None, progress: bool = True,
            after_pass=None, bind: dict[str, np.ndarray] | None = None, rounding: str = DEFAULT_ROUNDING) -> Prepared:
    """Import, quantize if asked (``quantize="int8"`` with calibration data), run the passes and
    give the I/O the types ``io`` asks for: None keeps the model's (float for a model tinyc
    quantizes), "float" makes int8 inputs/outputs float (quantized/dequantized in the model),
    "int8" makes quantized float inputs/outputs int8. ``rounding``: the requantization rounding the
    graph is compiled with (tinyc/quant/rounding.py), recorded in it."""
    from .data import load_samples
    from .passes import run_passes
    from .passes.pipeline import BEFORE_QUANTIZATION, DEFAULT
    from .quant.io import add_io_quantization, has_int8_io, strip_io_quantization
    from .quant.ptq import quantize_graph
    from .quant.rounding import set_graph

    g = load(model_path, input_shapes, bind)
    set_graph(g, rounding)
    if quantize not in (None, "int8"):
        raise TinycError(f"--quantize {quantize}: only int8 is supported")
    if calib and not quantize:
        raise TinycError("--calib is only used with --quantize int8 (calibration data quantizes a float model); "
                         "give samples to run with -i")
    samples = load_samples(calib, g, "--calib")[0] if calib else []
    if quantize and not samples:
        raise TinycError("--quantize int8 needs calibration data: --calib FILE.npz")
    float_graph = copy.deepcopy(g) if samples else None
    if quantize:
        if any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes):
            raise TinycError("the model is already quantized (QDQ); compile it without --quantize")
        g = quantize_graph(run_passes(g, BEFORE_QUANTIZATION), samples, method, percentile, io, progress)
    if after_pass is not None:
        after_pass("import", g)
    g = run_passes(g, DEFAULT, after_pass)
    if io == "int8" and not quantize:
        g = strip_io_quantization(g)
        if not has_int8_io(g):
            raise TinycError("--io int8: the model has no int8 inputs or outputs (a float model needs "
                             "--quantize int8 --calib FILE first)")
    elif io == "float" and not quantize:
        g = add_io_quantization(g)
    return Prepared(g, float_graph, samples)


def quantization_quality(p: Prepared) -> dict | None:
    """int8 vs float on the calibration samples (SQNR, max error, top-1 agreement per output)."""
    from . import interpreter
    from .quant.ptq import quality

    if p.float_graph is None or not p.calib or p.graph.outputs != p.float_graph.outputs:
        return None
    if not any(t.quant is not None for t in p.graph.tensors.values()):
        return None
    f_out = [interpreter.run(p.float_graph, s) for s in p.calib]
    q_feeds = [_requantize_feeds(p.graph, s) for s in p.calib]
    q_out = [interpreter.run(p.graph, s) for s in q_feeds]
    return quality(f_out, q_out, p.graph)


def _requantize_feeds(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float samples for an int8-input graph are quantized with the input's parameters."""
    from .quant.affine import quantize

    out = {}
    for name, v in feeds.items():
        t = g.tensors[name]
        if t.quant is not None and t.dtype == "s8" and np.asarray(v).dtype.kind == "f":
            v = quantize(np.asarray(v, np.float32), np.float32(t.quant.scale), int(t.quant.zero_point))
        out[name] = v
    return out


def compile_graph(g: Graph, target: Target, name: str | None = None, source: str = "") -> GeneratedModel:
    return generate(g, target, name=name, source=source)


def write_output(model: GeneratedModel, out_dir: Path) -> list[Path]:
    """Write the C files, the weights blob if any and report.json into ``out_dir`` (created if
    needed); nothing else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TinycError(f"output path {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in model.files.items():
        p = out_dir / fname
        p.write_text(text)
        written.append(p)
    for fname, data in sorted(model.binaries.items()):
        p = out_dir / fname
        p.write_bytes(data)
        written.append(p)
    p = out_dir / "report.json"
    p.write_text(json.dumps(model.report, indent=2) + "\n")
    written.append(p)
    return written
