"""Reading model inputs and writing outputs: .npz, .npy, ONNX TensorProto (.pb) files, and ONNX
test-data folders (input_*.pb with optional output_*.pb)."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .contract import conform, entry_quant
from .errors import TinycError
from .ir import Graph


def _read_pb(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    try:
        t.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(t)
    except Exception as e:
        raise TinycError(f"{path}: not an ONNX tensor file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def load_bound_values(specs: list[str] | None) -> dict[str, np.ndarray]:
    """--bind NAME=FILE (.npy, or a TensorProto .pb): values that turn graph inputs into constants."""
    out: dict[str, np.ndarray] = {}
    for spec in specs or []:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise TinycError(f"--bind '{spec}': use NAME=FILE.npy")
        path = Path(file)
        if not path.is_file():
            raise TinycError(f"--bind {name}: file not found: {path}")
        try:
            out[name] = _read_pb(path) if path.suffix == ".pb" else np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise TinycError(f"--bind {name}: cannot read {path} ({e})") from None
        if not isinstance(out[name], np.ndarray):
            raise TinycError(f"--bind {name}: {path} holds several arrays; give one .npy")
    return out


def load_samples(path: str | Path, g: Graph, flag: str = "--input") -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]] | None]:
    """Samples (one feed dict each), checked against the input contract (tinyc/contract.py), and,
    for ONNX test-data folders, the expected outputs."""
    p = Path(path)
    if not p.exists():
        raise TinycError(f"{flag}: input file not found: {p}")
    arrays: dict[str, np.ndarray] = {}
    expected = None
    if p.is_dir():
        ins = sorted(p.glob("input_*.pb"), key=lambda q: int(q.stem.split("_")[1]))
        if not ins:
            raise TinycError(f"{p}: no input_*.pb files in this folder")
        if len(ins) != len(g.inputs):
            raise TinycError(f"{p}: {len(ins)} input files, the model has {len(g.inputs)} inputs")
        arrays = {name: _read_pb(q) for name, q in zip(g.inputs, ins)}
        outs = sorted(p.glob("output_*.pb"), key=lambda q: int(q.stem.split("_")[1]))
        if outs:
            expected = [{name: _read_pb(q) for name, q in zip(g.outputs, outs)}]
    elif p.suffix == ".pb":
        if len(g.inputs) != 1:
            raise TinycError(f"{p}: a single tensor file fits only one-input models; use a .npz")
        arrays = {g.inputs[0]: _read_pb(p)}
    elif p.suffix == ".npy":
        if len(g.inputs) != 1:
            raise TinycError(f"{p}: a .npy file fits only one-input models; use a .npz")
        try:
            arrays = {g.inputs[0]: np.load(p, allow_pickle=False)}
        except (ValueError, OSError, EOFError) as e:
            raise TinycError(f"{p}: not a .npy file ({e})") from None
    else:
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise TinycError(f"{p}: not a .npz file ({str(e).splitlines()[0]})") from None
        arrays = _pick_inputs(g, data, str(p))
    return conform(g, arrays, f"{flag} {p.name}"), expected


def _pick_inputs(g: Graph, data: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The array of each input from arrays by name (a one-input model: its only array, whatever its name)."""
    if set(g.inputs) <= set(data):
        return {k: data[k] for k in g.inputs}
    if len(g.inputs) == 1 and len(data) == 1:
        return {g.inputs[0]: next(iter(data.values()))}
    missing = sorted(set(g.inputs) - set(data))
    raise TinycError(f"{where}: no array for input(s) {', '.join(missing)} (arrays: {', '.join(sorted(data)) or 'none'})")


def samples_from(source, g: Graph, flag: str = "--input") -> list[dict[str, np.ndarray]]:
    """Samples from a file (as load_samples) or from memory: a dict input name -> array (one
    sample, or N stacked on a new first axis) or a list of such dicts, checked as a file's are."""
    if isinstance(source, dict):
        return conform(g, _pick_inputs(g, source, flag), flag)
    if isinstance(source, (list, tuple)):
        if not source or not all(isinstance(d, dict) for d in source):
            raise TinycError(f"{flag}: give a non-empty list of dicts input name -> array")
        return [s for i, d in enumerate(source) for s in conform(g, _pick_inputs(g, d, f"{flag}[{i}]"), f"{flag}[{i}]")]
    return load_samples(source, g, flag)[0]


def random_samples(g: Graph, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Deterministic random inputs: standard normal for floats (uniform over the int8 range for
    the float inputs of an int8 model), the full range for integers."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feeds = {}
        for name in g.inputs:
            t = g.tensors[name]
            q = entry_quant(g, name) if t.dtype.startswith("f") else None
            if q is not None and q.axis is None:  # float I/O of an int8 model: its int8 range
                lo, hi = (float(q.scale) * (b - int(q.zero_point)) for b in (-128, 127))
                feeds[name] = rng.uniform(lo, hi, t.shape).astype(np.float32)
            elif t.dtype.startswith("f"):
                feeds[name] = rng.standard_normal(t.shape).astype(np.float32)
            else:
                info = np.iinfo({"s8": np.int8, "u8": np.uint8, "s16": np.int16, "s32": np.int32}.get(t.dtype, np.int32))
                feeds[name] = rng.integers(info.min, info.max, size=t.shape, endpoint=True).astype(info.dtype)
        out.append(feeds)
    return out


def quantize_feeds(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feeds of an int8-input graph: float samples quantized with the input's parameters (a
    float model's calibration data or random floats fed to its quantized form); others unchanged."""
    out = {}
    for name, v in feeds.items():
        t = g.tensors[name]
        if t.quant is not None and t.dtype == "s8" and np.asarray(v).dtype.kind == "f":
            q = np.round(np.asarray(v, np.float32) / float(t.quant.scale)) + int(t.quant.zero_point)
            v = np.clip(q, -128, 127).astype(np.int8)
        out[name] = v
    return out


@dataclass
class Samples:
    """The inputs a command runs, the expected outputs when the data came with them, and where
    they come from (printed)."""

    feeds: list[dict[str, np.ndarray]]
    expected: list[dict[str, np.ndarray]] | None
    origin: str


def choose_samples(g: Graph, path: str | Path | None = None, count: int = 1, seed: int = 0,
                   calib: list[dict[str, np.ndarray]] | None = None) -> Samples:
    """Every command's inputs: the file or folder given with -i, else the calibration samples when
    given (``calib``), else ``count`` random ones from ``seed``."""
    if path:
        feeds, expected = load_samples(path, g)
        return Samples(feeds, expected, str(path))
    if calib:
        return Samples(calib, None, "calibration data")
    return Samples(random_samples(g, count, seed), None, f"{count} random sample(s), seed {seed}")


def save_outputs(path: str | Path, results: list[dict[str, np.ndarray]]) -> None:
    """One array per output: the sample's value, or the N samples stacked on a new first axis."""
    names = list(results[0])
    if len(results) == 1:
        arrays = dict(results[0])
    else:
        arrays = {k: np.stack([r[k] for r in results]) for k in names}
    np.savez(path, **arrays)
