"""One build of one model, shared by every command: the steps from the model file to measured C
code, each computed when first asked for and then kept.

    import -> quantize (--quantize int8) -> graph passes -> emit -> measure
                                                    `-> run (the reference interpreter on samples)

A command asks for what it needs: `tinyc run` stops at the graph, `tinyc compile` goes on to the
measured report; `tinyc check` builds with ``problems`` to hear of every unsupported op at once.
``stages`` is the order `tinyc compile --passes` prints.
"""
from __future__ import annotations

import copy
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .codegen import GeneratedModel
from .data import Samples
from .errors import TinycError
from .frontend.tflite import FILE_IDENTIFIER, is_tflite
from .ir import Graph
from .targets import Target


def _is_tflite_bytes(data: bytes) -> bool:
    """A TFLite flatbuffer: the file identifier at bytes 4..8 (anything else is taken for ONNX)."""
    return bytes(data[4:8]) == FILE_IDENTIFIER


def stages(quantize: bool) -> list[tuple[str, str]]:
    """(name, description) of every step of a build in order: the front end, the graph passes,
    the back end."""
    from .passes import PASSES
    from .passes.pipeline import BACKEND, DEFAULT, FRONTEND

    front = [(k, v) for k, v in FRONTEND.items() if quantize or k != "quantize"]
    return front + [(name, PASSES[name].description) for name in DEFAULT] + list(BACKEND.items())


class Build:
    """A model (a file, or in memory: ONNX or TFLite bytes or an onnx.ModelProto), the options
    every command shares (shapes, bound inputs, quantization, I/O types, target, C name) and the
    steps' results as properties.

    ``after_step(name, graph)`` sees the graph after import, after quantization, after every
    graph pass and after the back-end passes select-kernels and plan-memory (--dump-ir). ``problems``: a list makes the import record every unsupported op
    or attribute in it and go on (tinyc check) instead of stopping at the first. Samples (the
    run step's inputs): the file ``inputs``, else the calibration samples when
    ``calib_inputs``, else ``count`` random ones from ``seed``. ``calib``: a file, or samples in
    memory (tinyc/data.py samples_from)."""

    def __init__(self, model: str | os.PathLike | bytes | Any, target: Target | None = None, *,
                 input_shapes: dict[str, tuple[int, ...]] | None = None, bind: dict[str, np.ndarray] | None = None,
                 quantize: str | None = None, calib: str | os.PathLike | dict | list | None = None, method: str = "minmax",
                 percentile: float = 99.99, io: str | None = None, name: str | None = None,
                 weights_blob: bool = False, passes: list[str] | None = None, inputs: str | os.PathLike | None = None,
                 count: int = 1, seed: int = 0, calib_inputs: bool = False, progress: bool = True,
                 after_step: Callable[[str, Graph], None] | None = None, problems: list[str] | None = None,
                 rounding: str | None = None, optimize: str | None = None, flash_budget: int | None = None,
                 patch: str | None = None,
                 arena_section: str | None = None, eval: str | os.PathLike | None = None,
                 labels: str | os.PathLike | None = None, keep_float: list[str] | None = None,
                 placeholder_calib: bool = False):
        from .passes.pipeline import DEFAULT
        from .quant import rounding as rounding_modes

        # the model: a file (path), or in memory: a serialized ONNX or TFLite model (bytes) or an onnx.ModelProto
        self.source = model if isinstance(model, (bytes, bytearray)) or hasattr(model, "SerializeToString") else Path(model)
        self.path = self.source if isinstance(self.source, Path) else None
        self.tflite = is_tflite(self.path) if self.path else isinstance(model, (bytes, bytearray)) and _is_tflite_bytes(model)
        self.target = target  # needed from emit on
        self.input_shapes = dict(input_shapes or {})  # "" names the only input
        self.bind = bind or {}
        self.quantize, self.calib, self.method, self.percentile, self.io = quantize, calib, method, percentile, io
        self.name = name or (self.path.stem if self.path else "model")
        # the model file's name in the generated files; in memory: the C name with the format's suffix
        self.source_name = self.path.name if self.path else self.name + (".tflite" if self.tflite else ".onnx")
        self.weights_blob = weights_blob
        self.arena_section = arena_section  # the arena's linker section (codegen's ARENA_ATTRIBUTES default)
        self.passes = DEFAULT if passes is None else passes
        self.inputs, self.count, self.seed, self.calib_inputs = inputs, count, seed, calib_inputs
        self.progress = progress
        self.reference_step: Callable[[int], None] | None = None  # progress of the run step, per sample
        self.after_step = after_step
        self.problems = problems
        self.rounding = rounding_modes.DEFAULT if rounding is None else rounding_modes.check(rounding)
        # the kernels' choice (tinyc/optimize.py): --optimize and the flash budget it must fit
        self.optimize, self.flash_budget = optimize, flash_budget
        # --patch: the first stage in row bands (tinyc/passes/patch.py), checked here
        from .passes.patch import check as check_patch
        self.patch = None if patch is None else check_patch(patch)
        # held-out data for the quantization's figures, and layers kept float (tinyc/quant/mixed.py)
        self.eval, self.labels, self.keep_float = eval, labels, tuple(keep_float or ())
        # --quantize without --calib (tinyc check, fit advice): random samples stand in for calibration
        # data; kernels, arena and I/O do not depend on the ranges they give (weights and code only
        # where a requantization's form does), accuracy does
        self.placeholder_calib = placeholder_calib

    def _after(self, name: str, g: Graph) -> None:
        if self.after_step is not None:
            self.after_step(name, g)

    @cached_property
    def imported(self) -> Graph:
        """import: the model as tinyc IR, as written (for a model tinyc quantizes, the float model)."""
        from .quant.rounding import set_graph

        g = self._import_tflite() if self.tflite else self._import_onnx()
        set_graph(g, self.rounding)  # the requantization rounding the graph is compiled with
        self._after("import", g)
        return g

    def _import_onnx(self) -> Graph:
        from .frontend.onnx import check_model_proto, import_model, load_model_proto, parse_model_proto

        if self.path:
            proto = load_model_proto(self.path)
        elif isinstance(self.source, (bytes, bytearray)):
            proto = parse_model_proto(bytes(self.source), "the model (bytes)")
        else:
            proto = check_model_proto(self.source, "the model (ModelProto)")
        inits = {i.name for i in proto.graph.initializer}
        shapes = self._shapes([i.name for i in proto.graph.input if i.name not in inits])
        return import_model(proto, shapes, name=self._stem, problems=self.problems, bind=self.bind)

    def _import_tflite(self) -> Graph:
        from .frontend import tflite

        from .frontend.tflite_file import read_model

        model = tflite.load(self.path) if self.path else read_model(bytes(self.source), "the model (bytes)")
        shapes = self._shapes(tflite.input_names(model))
        return tflite.import_model(model, shapes, name=self._stem, problems=self.problems, bind=self.bind)

    @property
    def _stem(self) -> str:
        """The imported graph's name: the file's stem, "model" in memory."""
        return self.path.stem if self.path else "model"

    def _shapes(self, input_names: list[str]) -> dict[str, tuple[int, ...]]:
        """--input-shape with the unnamed shape given to the only input."""
        shapes = dict(self.input_shapes)
        if "" in shapes:
            if len(input_names) != 1:
                raise TinycError("--input-shape without a name needs a one-input model; use NAME=DIMS")
            shapes[input_names[0]] = shapes.pop("")
        return shapes

    @cached_property
    def calibration(self) -> list[dict[str, np.ndarray]]:
        """The --calib samples (none without --calib)."""
        from .data import samples_from

        return samples_from(self.calib, self.imported, "--calib") if self.calib else []

    def _quantized(self) -> Graph:
        """quantize: a copy of the imported graph (which stays the float model), with --quantize
        int8 calibrated on the --calib samples after the passes that keep float semantics."""
        from .passes import run_passes
        from .passes.pipeline import BEFORE_QUANTIZATION
        from .quant.ptq import SCHEMES, quantize_graph

        g = copy.deepcopy(self.imported)
        if self.quantize not in (None, *SCHEMES):
            raise TinycError(f"--quantize {self.quantize}: only {' or '.join(SCHEMES)} is supported")
        if self.calib and not self.quantize:
            raise TinycError("--calib is only used with --quantize int8 (calibration data quantizes a float model); "
                             "give samples to run with -i")
        if (self.eval or self.labels or self.keep_float) and self.quantize != "int8":
            flag = "--eval" if self.eval else "--labels" if self.labels else "--keep-float"
            raise TinycError(f"{flag} is for a model tinyc quantizes: add --quantize int8 --calib FILE.npz")
        if self.labels and not self.eval:
            raise TinycError("--labels needs --eval FILE.npz (the samples they label)")
        self._eval_data  # noqa: B018 (bad --eval or --labels are errors before calibration)
        if not self.quantize:
            return g
        samples = self.calibration or self._placeholder_samples()
        if self.io == "int8" and self.quantize != "int8":
            raise TinycError(f"--io int8 is for int8 models; a --quantize {self.quantize} model has float I/O")
        if any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes):
            raise TinycError("the model is already quantized (QDQ); compile it without --quantize")
        g = quantize_graph(run_passes(g, BEFORE_QUANTIZATION), samples, self.method, self.percentile, self.io,
                           self.progress and bool(self.calibration), scheme=self.quantize, keep_float=self.keep_float)
        self._after("quantize", g)
        return g

    def _placeholder_samples(self) -> list[dict[str, np.ndarray]]:
        """Random inputs of the model's shapes in place of calibration data (placeholder_calib)."""
        from .data import random_samples

        if not self.placeholder_calib:
            raise TinycError(f"--quantize {self.quantize} needs calibration data: --calib FILE.npz")
        return random_samples(self.imported, 2, 0)

    def variant(self, **changes: Any) -> "Build":
        """The same build with some options changed (fit advice, the all-int8 twin of --keep-float,
        minmax for --eval's advice): the import (and, unless ``calib`` changes, the calibration
        samples) is shared, every later step is computed anew; no --eval."""
        b = copy.copy(self)
        kept = ("imported",) if "calib" in changes else ("imported", "calibration")
        for key, value in vars(type(self)).items():
            if isinstance(value, cached_property) and key not in kept:
                b.__dict__.pop(key, None)
        b.after_step = b.eval = b.labels = None
        for key, value in changes.items():
            setattr(b, key, value)
        return b

    @cached_property
    def graph(self) -> Graph:
        """The graph passes on the quantized graph, then the I/O types --io asks for: None keeps
        the model's (float for a model tinyc quantizes), "float" makes int8 inputs/outputs float
        (quantized/dequantized in the model), "int8" makes quantized float inputs/outputs int8."""
        from .optimize import set_options
        from .passes import run_passes
        from .passes.patch import set_option as set_patch
        from .quant.io import add_io_quantization, has_int8_io, strip_io_quantization

        g = run_passes(self._quantized(), self.passes, self.after_step)
        if self.io == "int8" and not self.quantize:
            g = strip_io_quantization(g)
            if not has_int8_io(g):
                raise TinycError("--io int8: the model has no int8 inputs or outputs (a float model needs "
                                 "--quantize int8 --calib FILE first)")
        elif self.io == "float" and not self.quantize:
            g = add_io_quantization(g)
        set_options(g, self.optimize, self.flash_budget)
        set_patch(g, self.patch)
        return g

    @cached_property
    def float_graph(self) -> Graph | None:
        """The float model the quantization is judged against: the imported graph, when calibration
        data came along."""
        return self.imported if self.calibration else None

    @cached_property
    def model(self) -> GeneratedModel:
        """emit: the C files and report.json for the target (kernel selection, memory plan and
        printing, all in tinyc.codegen.generate)."""
        from .codegen import generate

        return generate(self.graph, self.target, name=self.name, source=self.source_name, weights_blob=self.weights_blob,
                        after_pass=self.after_step, arena_section=self.arena_section)

    @cached_property
    def quality(self) -> dict | None:
        """int8 vs float on the calibration samples (SQNR, max error, top-1 agreement per output);
        None without calibration data or an int8 graph."""
        from . import interpreter
        from .data import quantize_feeds
        from .quant.ptq import quality

        g, fg = self.graph, self.float_graph
        if fg is None or g.outputs != fg.outputs or not any(t.quant is not None for t in g.tensors.values()):
            return None
        f_out = [interpreter.run(fg, s) for s in self.calibration]
        q_out = [interpreter.run(g, quantize_feeds(g, s)) for s in self.calibration]
        return quality(f_out, q_out, g)

    @cached_property
    def _eval_data(self) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None]:
        """The --eval samples and the --labels (None without), checked."""
        from .data import load_samples
        from .quant import evaluate

        samples = load_samples(self.eval, self.imported, "--eval")[0] if self.eval else []
        return samples, evaluate.load_labels(self.labels, len(samples), self.imported) if self.labels else None

    @cached_property
    def evaluation(self) -> dict | None:
        """--eval: int8 against float on the held-out samples (tinyc/quant/evaluate.py), with
        --labels both accuracies, and the per-layer sensitivity ranking; None without --eval."""
        from . import interpreter
        from .passes import run_passes
        from .passes.pipeline import BEFORE_QUANTIZATION
        from .quant import evaluate
        from .quant.ptq import qdq_graph

        if not self.eval:
            return None
        g = self.graph
        samples, labels = self._eval_data
        f_out = [interpreter.run(self.imported, s) for s in samples]
        res = evaluate.evaluate(self.imported, g, samples, f_out, labels)
        owners: dict[str, tuple[str, str]] = {}
        qdq = qdq_graph(run_passes(copy.deepcopy(self.imported), BEFORE_QUANTIZATION), self.calibration, self.method,
                        self.percentile, False, owners=owners)
        res["sensitivity"], res["input_only_sqnr_db"] = evaluate.sensitivity(qdq, owners, samples, f_out)
        if self.method != "minmax":  # the same figures with minmax calibration, for advice
            twin = self.variant(method="minmax")
            mm = evaluate.evaluate(self.imported, twin.graph, samples, f_out)["outputs"]
            res["minmax_sqnr_db"] = {n: v["sqnr_db"] for n, v in mm.items()}
            res["advice"] = evaluate.method_advice(self.method, res, mm)
        return res

    @cached_property
    def all_int8(self) -> Build | None:
        """With --keep-float: the same model with every layer int8 (its cost is against this one)."""
        return self.variant(keep_float=()) if self.keep_float else None

    @cached_property
    def sizes(self) -> dict[str, Any] | None:
        """measure: code, data, bss and stack bytes of the compiled object (None on a native target
        or without the target's compiler)."""
        from .budget import measure

        return measure(self.model, self.target) if self.target.emulator.kind != "native" else None

    @cached_property
    def report(self) -> dict[str, Any]:
        """The emitted model's report.json completed: quantization quality, measured sizes and the
        RAM and flash totals."""
        from .budget import totals

        r = self.model.report
        if self.quality is not None:
            r["quantization"] = dict(method=self.method if self.quantize else "from the model (QDQ)",
                                     rounding=r["rounding"], outputs=self.quality)
        if self.evaluation is not None:
            r["quantization"]["eval"] = {k: v for k, v in self.evaluation.items() if k != "sensitivity"}
            r["quantization"]["sensitivity"] = self.evaluation["sensitivity"]
        if self.sizes is not None:
            r["measured"] = self.sizes
        r["ram_bytes"], r["flash_bytes"] = totals(r)
        if self.all_int8 is not None and "quantization" in r:
            a = self.all_int8.report
            r["quantization"]["keep_float"] = dict(
                layers=list(self.keep_float), ram_bytes=r["ram_bytes"] - a["ram_bytes"],
                flash_bytes=r["flash_bytes"] - a["flash_bytes"], all_int8_ram_bytes=a["ram_bytes"],
                all_int8_flash_bytes=a["flash_bytes"], bytes_measured="measured" in r,
                instructions="tinyc bench --keep-float measures them against all-int8")
        return r

    def enforce(self, ram_budget: int | None = None, flash_budget: int | None = None) -> None:
        """A model over budget (the board's, when not given; 0: none) is an error listing the
        options that would make it fit."""
        from .budget import enforce
        from .fit import options

        enforce(self.report, self.target, ram_budget, flash_budget, lambda r, f: options(self, r, f))

    @cached_property
    def samples(self) -> Samples:
        """The inputs the run step and the commands that run the model use."""
        from .data import choose_samples

        return choose_samples(self.graph, self.inputs, self.count, self.seed,
                              self.calibration if self.calib_inputs else None)

    @cached_property
    def reference(self) -> list[dict[str, np.ndarray]]:
        """run: the reference interpreter's outputs on the samples, in order as one sequence (a
        stateful model carries its state from each sample to the next, as the firmware does)."""
        from . import interpreter

        return interpreter.run_sequence(self.graph, self.samples.feeds, self.reference_step)
