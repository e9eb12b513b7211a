"""The Python API for build scripts and notebooks: ``tinyc.compile(model, ...)`` -> ``Build``.

    import tinyc
    build = tinyc.compile("model.onnx", target="cortex-m4", quantize="int8", calib="calib.npz")
    build.report["ram_bytes"], build.report["flash_bytes"]
    build.write("out/")          # the files `tinyc compile -o out/` writes
    build.run({"input": x})      # the reference interpreter
    build.verify().ok            # the generated C on the target against the reference

A ``Build`` wraps the build every command uses (tinyc/pipeline.py); `tinyc compile` goes through
it, so the API and the command line write the same files and raise the same one-line errors
(tinyc.errors.TinycError).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import TinycError
from .pipeline import Build as _PipelineBuild
from .targets import Target
from .verify import OutputCheck

# at most this many samples go through the interpreter for the per-layer error of an HTML report
REPORT_SAMPLES = 32

# the compile options of `tinyc compile` by keyword (their command-line flag in errors)
OPTIONS = ("input_shapes", "bind", "method", "percentile", "io", "rounding", "optimize", "patch", "flash_budget",
           "ram_budget", "name", "weights_blob", "arena_section", "passes", "progress", "eval", "labels", "keep_float")

Feeds = Union[dict[str, np.ndarray], list[dict[str, np.ndarray]]]


def compile(model: str | os.PathLike | bytes | Any, target: str | Target = "host", quantize: str | None = None,
            calib: str | os.PathLike | Feeds | None = None, **options: Any) -> Build:
    """Compile ``model`` for ``target`` as `tinyc compile` does, without writing anything.

    ``model``: a path (.onnx or .tflite), the bytes of an ONNX or TFLite model (told apart by
    content), or an ``onnx.ModelProto`` (its external data loaded). ``target``: a target name
    (`tinyc targets`) or a ``tinyc.targets.Target``. ``quantize``: "int8" or "int16x8" (needs
    ``calib``). ``calib``: a .npz file (or any file `--calib` takes), or samples in memory: a
    dict input name -> array with the samples stacked on a leading axis, or a list of dicts.

    ``options`` (`tinyc compile`'s options by keyword): ``input_shapes`` (dict input name ->
    shape; "" names the only input), ``bind`` (dict input name -> array), ``method`` ("minmax",
    "percentile", "mse"), ``percentile``, ``io`` ("float", "int8"), ``rounding`` ("double",
    "single"), ``optimize`` ("speed", "balanced", "size"), ``patch`` ("auto", "off", "8",
    "8x1@LAYER": --patch), ``flash_budget`` / ``ram_budget``
    (bytes; None: the board's, 0: none), ``name`` (the C name; default: the file's stem, "model"
    in memory), ``weights_blob``, ``arena_section``, ``passes`` (graph pass names), ``progress``
    (calibration progress on a terminal; default True); with ``quantize="int8"``: ``eval`` (a
    held-out .npz: int8 vs float figures and the per-layer sensitivity in
    ``report["quantization"]["eval"]``), ``labels`` (a .npy of its class labels: both
    accuracies), ``keep_float`` (layer names that stay float, with their cost in the report).

    The model is built, measured (with the target's cross compiler when there is one) and
    checked against the budgets here: a model that `tinyc compile` refuses raises TinycError
    with the same message. An unknown option is a TypeError."""
    from .targets import get_target

    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise TypeError(f"tinyc.compile() got an unexpected keyword argument '{unknown[0]}'")
    if not isinstance(model, (str, os.PathLike, bytes, bytearray)) and not hasattr(model, "SerializeToString"):
        raise TypeError(f"tinyc.compile(): model must be a path, bytes or an onnx.ModelProto, not {type(model).__name__}")
    _check_choices(options)
    ram_budget = options.pop("ram_budget", None)
    t = get_target(target) if isinstance(target, str) else target
    # the samples of the HTML report, as `tinyc compile --report`: the calibration data, else 4 random ones
    pipeline = _PipelineBuild(model, t, quantize=quantize, calib=calib, count=4, seed=0, calib_inputs=True, **options)
    return Build(pipeline, ram_budget)


def _check_choices(options: dict[str, Any]) -> None:
    """The options the command line restricts to a few values."""
    from .optimize import MODES as OPTIMIZE
    from .quant.rounding import MODES as ROUNDING

    for key, choices in (("io", ("float", "int8")), ("method", ("minmax", "percentile", "mse")),
                         ("optimize", OPTIMIZE), ("rounding", ROUNDING)):
        v = options.get(key)
        if v is not None and v not in choices:
            raise TinycError(f"{key}={v!r}: choose {', '.join(map(repr, choices))}")


@dataclass
class VerifyResult:
    """The generated C run on the target against the reference interpreter: ``ok`` when every
    output of every sample matches (floats within ``rtol`` of the largest reference value,
    integers exactly); ``outputs``: one check per output, with its worst sample's error
    (``max_abs_error``, ``max_rel_error``) and the number of ``mismatched`` samples."""

    ok: bool
    target: str
    samples: int
    outputs: list[OutputCheck] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"{'PASS' if self.ok else 'FAIL'}: {self.samples} sample(s) on {self.target}",
                          *(c.line() for c in self.outputs)])


class Build:
    """A compiled model (made by ``tinyc.compile``): its report, its files, and the reference
    interpreter, target run and benchmark on it. ``pipeline``: the underlying build (the IR as
    ``pipeline.graph``, the generated code as ``pipeline.model``)."""

    def __init__(self, pipeline: _PipelineBuild, ram_budget: int | None = None):
        """Complete ``pipeline``'s report and check it against the budgets (None: the board's; 0:
        none), as `tinyc compile` does."""
        self.pipeline = pipeline
        pipeline.report  # noqa: B018 (errors are raised here, not at first use)
        pipeline.enforce(ram_budget, pipeline.flash_budget)
        self._html: str | None = None

    @property
    def name(self) -> str:
        """The C name of the model (its functions and files)."""
        return self.pipeline.model.name

    @property
    def target(self) -> Target:
        return self.pipeline.target

    @property
    def report(self) -> dict[str, Any]:
        """report.json as `tinyc compile` writes it: layers, memory plan, ``ram_bytes`` and
        ``flash_bytes`` (``measured`` sizes when the target's compiler is there) and, for a
        calibrated int8 build, ``quantization`` (SQNR, max error, top-1 agreement per output)."""
        return self.pipeline.report

    @property
    def files(self) -> dict[str, str | bytes]:
        """File name -> content (text, or bytes for a weights blob): exactly what `tinyc compile
        -o DIR` writes."""
        from .compiler import output_files

        return output_files(self.pipeline.model)

    def write(self, directory: str | os.PathLike) -> Path:
        """Write ``files`` into ``directory`` (created if needed; other files there are left
        alone); the directory."""
        from .compiler import write_files

        out = Path(directory)
        write_files(self.files, out)
        return out

    def _feeds(self, inputs: str | os.PathLike | Feeds) -> list[dict[str, np.ndarray]]:
        from .data import samples_from

        return samples_from(inputs, self.pipeline.graph, "inputs")

    def run(self, inputs: str | os.PathLike | Feeds) -> dict[str, np.ndarray] | list[dict[str, np.ndarray]]:
        """The reference interpreter's outputs (numpy arrays by output name; float for float
        outputs, also of an int8 model with float I/O).

        ``inputs``: a dict input name -> array of the input's shape (one sample) returns one
        dict; a dict of arrays with N samples stacked on a leading axis returns a dict of outputs
        stacked the same way; a list of such one-sample dicts returns a list of dicts; a file
        (.npz etc., as `tinyc run -i`) returns a list. Samples run in order from the initial
        state (a stateful model carries its state from one to the next, as the firmware does)."""
        from . import interpreter

        g = self.pipeline.graph
        feeds = self._feeds(inputs)
        outs = interpreter.run_sequence(g, feeds)
        if not isinstance(inputs, dict):
            return outs
        if len(feeds) != 1 or _stacked(g, inputs):
            return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
        return outs[0]

    def verify(self, inputs: str | os.PathLike | Feeds | None = None, *, samples: int = 3, seed: int = 0,
               rtol: float = 1e-4, timeout: float = 300.0, max_instructions: int | None = None,
               build_dir: str | os.PathLike | None = None) -> VerifyResult:
        """Build the generated C into a test program, run it on the target (natively for
        "host", in QEMU for the emulated targets) and compare every output with the reference
        interpreter, as `tinyc verify` does. ``inputs`` as for ``run`` (default: ``samples``
        random ones from ``seed``); ``build_dir`` keeps the build (default: a temporary folder)."""
        from . import interpreter
        from .data import random_samples
        from .emulator import run_on_target
        from .verify import check_outputs

        g, model, target = self.pipeline.graph, self.pipeline.model, self.target
        feeds = self._feeds(inputs) if inputs is not None else random_samples(g, samples, seed)
        reference = interpreter.run_sequence(g, feeds)
        with tempfile.TemporaryDirectory(prefix="tinyc-verify-") as tmp:
            result = run_on_target(model, target, Path(build_dir) if build_dir else Path(tmp), feeds,
                                   timeout=timeout, max_instructions=max_instructions)
        checks = check_outputs(g.outputs, result.outputs, [("reference", reference)], rtol)
        return VerifyResult(all(c.ok for c in checks), target.name, len(feeds), checks)

    def bench(self, inputs: str | os.PathLike | Feeds | None = None, *, seed: int = 0,
              timeout: float = 600.0) -> dict[str, Any]:
        """Exact instructions of one inference in QEMU, per layer and in total, with memory
        traffic and the estimated latency: what `tinyc bench --json` prints. ``inputs``: the
        sample (the first of them; default: a random one from ``seed``). TinycError on a target
        without QEMU (host)."""
        from .bench import count
        from .data import random_samples

        g = self.pipeline.graph
        sample = (self._feeds(inputs) if inputs is not None else random_samples(g, 1, seed))[0]
        with tempfile.TemporaryDirectory(prefix="tinyc-bench-") as tmp:
            r = count(self.pipeline.model, self.target, Path(tmp), sample, timeout=timeout)
        r.pop("outputs")
        return r

    def html(self) -> str:
        """The HTML report page (`tinyc compile --report`'s report.html)."""
        if self._html is None:
            self._html = html_report(self.pipeline)
        return self._html

    def _repr_html_(self) -> str:
        """The HTML report as a fragment for Jupyter (its styles scoped to the fragment)."""
        page = self.html()
        style = re.search(r"<style>(.*?)</style>", page, re.S)
        body = re.search(r"<body[^>]*>(.*)</body>", page, re.S)
        css = style.group(1).replace("body {", ".tinyc-report {") if style else ""
        return f'<div class="tinyc-report">\n<style>{css}</style>\n{body.group(1) if body else page}</div>\n'

    def __repr__(self) -> str:
        r = self.report
        return (f"<tinyc.Build {self.name} for {self.target.name}: RAM {r['ram_bytes']:,} B, "
                f"flash {r['flash_bytes']:,} B>")


def _stacked(g, inputs: dict[str, Any]) -> bool:
    """Whether a dict of inputs holds samples stacked on a leading axis (an array with one axis
    more than its input)."""
    if len(inputs) == 1 and len(g.inputs) == 1:
        pairs = [(g.inputs[0], next(iter(inputs.values())))]
    else:
        pairs = [(k, v) for k, v in inputs.items() if k in g.inputs]
    return any(np.ndim(v) == len(g.tensors[k].shape) + 1 for k, v in pairs)


def html_report(build: _PipelineBuild, emulate: bool = False, bench: bool = False, timeout: float = 600.0,
                rtol: float = 1e-4) -> str:
    """The HTML page of a build whose report is complete, on its samples (`tinyc report`,
    `compile --report`): ``emulate`` marks layers whose generated code differs from the
    reference, ``bench`` adds instructions per layer."""
    from .diff import compare_target, layer_errors, run_debug_build, summarize
    from .htmlreport import render

    g, target, model = build.graph, build.target, build.model
    samples = build.samples.feeds[:REPORT_SAMPLES]
    rows, refs, _ = layer_errors(g, samples) if samples else ([], [], [])
    bench_data = None
    if emulate or bench:
        with tempfile.TemporaryDirectory(prefix="tinyc-report-") as tmp:
            if emulate:
                dumps = run_debug_build(g, target, Path(tmp) / "debug", samples, name=model.name,
                                        source=build.source_name, timeout=timeout)
                compare_target(rows, refs, dumps, rtol)
            if bench:
                from .bench import count

                bench_data = count(model, target, Path(tmp) / "bench", samples[0], timeout=timeout)
                bench_data.pop("outputs")
    note = f"on {len(samples)} sample(s) ({build.samples.origin})" if samples else ""
    return render(model.report, target, [r.to_json() for r in rows], bench_data, summarize(rows) if rows else None, note)
