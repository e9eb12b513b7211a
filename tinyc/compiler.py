"""The compile pipeline as a library: ONNX file -> IR -> C files and report."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .codegen import GeneratedModel, generate
from .errors import TinycError
from .frontend.onnx import load
from .ir import Graph
from .targets import Target


def load_graph(model_path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
               passes: list[str] | None = None) -> Graph:
    """Import a model and run the pass pipeline on it (the default pipeline when not given)."""
    from .passes import run_passes
    from .passes.pipeline import DEFAULT

    return run_passes(load(model_path, input_shapes), DEFAULT if passes is None else passes)


def compile_graph(g: Graph, target: Target, name: str | None = None, source: str = "") -> GeneratedModel:
    return generate(g, target, name=name, source=source)


def write_output(model: GeneratedModel, out_dir: Path) -> list[Path]:
    """Write the C files and report.json into ``out_dir`` (created if needed); nothing else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TinycError(f"output path {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in model.files.items():
        p = out_dir / fname
        p.write_text(text)
        written.append(p)
    p = out_dir / "report.json"
    p.write_text(json.dumps(model.report, indent=2) + "\n")
    written.append(p)
    return written
