"""The compiler as a library: a model file -> its IR (through tinyc/pipeline.py), and the
generated files written out."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .codegen import GeneratedModel
from .errors import TinycError
from .ir import Graph
from .pipeline import Build
from .quant.rounding import DEFAULT as DEFAULT_ROUNDING


def load_graph(model_path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
               passes: list[str] | None = None) -> Graph:
    """Import a model and run the pass pipeline on it (the default pipeline when not given)."""
    return Build(model_path, input_shapes=input_shapes, passes=passes).graph


def prepare(model_path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
            quantize: str | None = None, calib: str | os.PathLike | None = None, method: str = "minmax",
            percentile: float = 99.99, io: str | None = None, progress: bool = True,
            after_pass=None, bind: dict[str, np.ndarray] | None = None, rounding: str = DEFAULT_ROUNDING) -> Build:
    """A build with its graph made: import, quantize if asked (``quantize="int8"`` with
    calibration data), the passes and the I/O types ``io`` asks for (see ``Build.graph``);
    ``rounding``: the requantization rounding recorded in the graph (tinyc/quant/rounding.py)."""
    build = Build(model_path, input_shapes=input_shapes, bind=bind, quantize=quantize, calib=calib, method=method,
                  percentile=percentile, io=io, progress=progress, after_step=after_pass, rounding=rounding)
    build.graph  # noqa: B018 (errors are raised here, not at first use)
    return build


def output_files(model: GeneratedModel) -> dict[str, str | bytes]:
    """What `tinyc compile -o DIR` writes, by file name in the order written: the C files and build
    glue (text), the weights blob if any (bytes) and report.json."""
    files: dict[str, str | bytes] = dict(model.files)
    files.update(sorted(model.binaries.items()))
    files["report.json"] = json.dumps(model.report, indent=2) + "\n"
    return files


def write_output(model: GeneratedModel, out_dir: Path) -> list[Path]:
    """Write the C files, the weights blob if any and report.json into ``out_dir`` (created if
    needed); nothing else."""
    return write_files(output_files(model), out_dir)


def write_files(files: dict[str, str | bytes], out_dir: Path) -> list[Path]:
    """Write ``files`` (name -> text or bytes) into ``out_dir`` (created if needed)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TinycError(f"output path {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, content in files.items():
        p = out_dir / fname
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        written.append(p)
    return written
