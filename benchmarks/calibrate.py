"""Calibrate the kernels' cost model (tinyc/kernel_cost.py) on `tinyc bench`: writes
tinyc/kernel_costs.json.

Every calibration model is compiled once per weight form ("wide", "int8": each layer then runs
each of its kernel options) for the calibration target (cortex-m4: the "dsp" core class) and run
in QEMU with tinyc's instruction-counting plugin: the shared MLPerf Tiny and hello-world int8 models,
the one-of-each-kernel graph of tests/backend/kernels.ir and the one-layer tail-shape cases of
tests/test_kernel_variants.py. Per kernel (template, folder, form), the
instructions of its layers are fitted by least squares (of the relative error; non-negative
coefficients, at most as many terms as distinct layers) to the terms of
tinyc.kernel_cost.features, and its code bytes are the mean size of its
layer functions in the firmware. ``overhead_bytes`` is the most flash a build measured beyond the
sum of its layers' estimates. Needs arm-none-eabi-gcc and qemu-system-arm; not a test.

    python benchmarks/calibrate.py [--models DIR]
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyc.bench import count  # noqa: E402
from tinyc.budget import measure, totals  # noqa: E402
from tinyc.codegen.emit import print_model  # noqa: E402
from tinyc.compiler import prepare  # noqa: E402
from tinyc.data import choose_samples  # noqa: E402
from tinyc.elf import Elf  # noqa: E402
from tinyc.ir_text import parse_graph  # noqa: E402
from tinyc.kernel_cost import COSTS_FILE, core_class, cost_key, features  # noqa: E402
from tinyc.passes import run_passes  # noqa: E402
from tinyc.passes.select_kernels import choose_kernels  # noqa: E402
from tinyc.targets import get_target  # noqa: E402

TARGET = "cortex-m4"
MODELS = ["mlperf-tiny/kws_int8.onnx", "mlperf-tiny/ic_int8.onnx", "mlperf-tiny/ad_int8.onnx",
          "hello-world/hello_world_int8.onnx"]
# small synthetic layers (text IR, in the repository): one of each kernel kind, 8 channels
SYNTHETIC = ["tests/backend/kernels.ir"]
FORMS = ("wide", "int8")


def graphs(models: Path, tmp: Path):
    """(name, graph) of every calibration model: the shared models, the text-IR graphs, and the
    one-layer cases of tests/test_kernel_variants.py quantized as that test does."""
    for m in MODELS:
        yield m, prepare(models / m, progress=False).graph
    for m in SYNTHETIC:
        yield m, parse_graph((ROOT / m).read_text())
    from tests.test_kernel_variants import CASES, _model

    for name, (shape, op, wshape, attrs, _) in CASES.items():
        _model(tmp / f"{name}.onnx", shape, op, wshape, attrs)
        rng = np.random.default_rng(1)
        np.savez(tmp / f"{name}.npz", x=rng.standard_normal((16,) + shape).astype(np.float32))
        yield name, prepare(tmp / f"{name}.onnx", quantize="int8", calib=tmp / f"{name}.npz", io="int8",
                            progress=False).graph


def layer_rows(g, name: str, form: str, target, tmp: Path) -> tuple[list[dict], dict]:
    """(one row per layer: cost key, MACs, outputs, instructions, code bytes; the build's sizes)."""
    kg = choose_kernels(g, target.template_variants, forms=(form,), target=target)
    kg = run_passes(kg, ["plan-memory"], None, target)
    model = print_model(kg, target, name="model", source=name)
    sample = choose_samples(g, None, 1, 0, None).feeds[0]
    build = tmp / f"{Path(name).stem}-{form}"
    r = count(model, target, build, sample)
    elf = Elf(build / "firmware.elf")
    sizes = {}
    for s in elf.symbols:
        m = re.fullmatch(r"layer(\d+)_\w+", s.name.split(".")[0])
        if m and s.section.startswith(".text"):
            sizes[int(m.group(1))] = sizes.get(int(m.group(1)), 0) + s.size
    rows = []
    for i, (node, layer) in enumerate(zip(kg.nodes, r["layers"])):
        if layer["view"]:
            continue
        a = node.attrs
        key = cost_key(a["kernel"], a.get("variant"), a.get("form", ""))
        ins = [None if x is None else kg.tensors[x] for x in node.inputs]
        terms = features(node, ins, [kg.tensors[o] for o in node.outputs], layer["macs"])
        rows.append(dict(key=key, terms=terms, instructions=layer["instructions"],
                         code_bytes=sizes.get(i, 0), node=node.name, model=name, form=form))
    report = dict(model.report)
    report["measured"] = measure(model, target)
    return rows, dict(flash=totals(report)[1], weights=model.report["weights_bytes"])


def fit(rows: list[dict]) -> dict:
    """Least squares on the relative error, over every subset of the terms that leaves no
    coefficient negative and no more terms than distinct layers; the subset with the smallest
    largest relative error wins."""
    x = np.array([r["terms"] for r in rows])
    y = np.array([r["instructions"] for r in rows], float)
    n = len({tuple(r["terms"]) for r in rows})  # distinct layers
    w = 1 / np.maximum(y, 1)
    best = None
    for cols in (c for size in range(1, x.shape[1] + 1) for c in itertools.combinations(range(x.shape[1]), size)):
        if len(cols) > n or not x[:, cols].any(axis=0).all():
            continue
        c, *_ = np.linalg.lstsq(x[:, cols] * w[:, None], y * w, rcond=None)
        if (c < 0).any():
            continue
        coef = np.zeros(x.shape[1])
        coef[list(cols)] = c
        err = float((np.abs(x @ coef - y) * w).max())
        if best is None or err < best[0] - 1e-9:
            best = (err, coef)
    err, coef = best if best is not None else (1.0, np.zeros(x.shape[1]))
    return dict(coef=[round(float(v), 6) for v in coef], code_bytes=int(round(np.mean([r["code_bytes"] for r in rows]))),
                layers=len(rows), max_rel_error=round(err, 4))


def fit_delta(rows: list[dict], key: str) -> dict | None:
    """For a kernel's int8 form: the difference to its wide form on the same layers (both forms of
    every calibration layer are measured), fitted by least squares on the same terms (any sign).
    The choice between the forms hangs on that difference (a few percent), which the two separate
    fits (each up to tens of percent off on some layers) would blur: the int8 estimate is the wide
    estimate plus this difference. None when the key is not an int8 form with a measured twin."""
    template, form = key.rsplit(":", 1)
    if form != "int8":
        return None
    wide = {(r["model"], r["node"]): r for r in rows if r["key"] == f"{template}:wide"}
    pairs = [(r, wide[(r["model"], r["node"])]) for r in rows if r["key"] == key and (r["model"], r["node"]) in wide]
    if len(pairs) < 2:
        return None
    x = np.array([r["terms"] for r, _ in pairs])
    d = np.array([r["instructions"] - w["instructions"] for r, w in pairs], float)
    y = np.array([w["instructions"] for _, w in pairs], float)
    cols = [j for j in range(x.shape[1]) if x[:, j].any()]
    c, *_ = np.linalg.lstsq(x[:, cols] / y[:, None], d / y, rcond=None)  # relative to each layer
    coef = np.zeros(x.shape[1])
    coef[cols] = c
    err = float((np.abs(x @ coef - d) / y).max())  # of the difference, relative to the layer
    return dict(delta_of=f"{template}:wide", delta_coef=[round(float(v), 6) for v in coef],
                delta_max_rel_error=round(err, 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(ROOT.parent / "shared" / "models"), help="the shared models folder")
    args = ap.parse_args()
    target = get_target(TARGET)
    rows, builds = [], []
    with tempfile.TemporaryDirectory(prefix="tinyc-calibrate-") as tmp:
        for m, g in graphs(Path(args.models), Path(tmp)):
            for form in FORMS:
                r, b = layer_rows(g, m, form, target, Path(tmp))
                rows += r
                builds.append((r, b))
                print(f"{m} {form}: {len(r)} layers, flash {b['flash']:,} B", flush=True)
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    table = {k: fit(v) for k, v in sorted(by_key.items())}
    for k, entry in table.items():
        delta = fit_delta(rows, k)
        if delta is not None:
            entry.update(delta)
    default = fit(rows)
    # what the layers' estimates (weights and code) leave out of the measured flash
    left = [b["flash"] - b["weights"] - sum(table[r["key"]]["code_bytes"] for r in rs) for rs, b in builds]
    print("flash beyond the layers' estimates per build:", left)
    overhead = max(left)
    data = dict(
        about="tinyc kernel cost model (tinyc/kernel_cost.py), written by benchmarks/calibrate.py from `tinyc bench` "
              f"on {TARGET}: instructions = coef . [MACs, outputs, MACs per output channel, input elements, output pixels, 1]",
        models=MODELS + SYNTHETIC + ["tests/test_kernel_variants.py cases"], cores={core_class(target.template_variants): table}, default=default, overhead_bytes={core_class(target.template_variants): int(overhead)})
    COSTS_FILE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {COSTS_FILE.name}: {len(table)} kernels; overhead {overhead}")
    for k, v in table.items():
        print(f"  {k:40s} {v['layers']:3d} layers, max error {v['max_rel_error']:.1%}, code {v['code_bytes']} B"
              + (f"; as {v['delta_of']} + difference, max error {v['delta_max_rel_error']:.1%}" if "delta_of" in v else ""))


if __name__ == "__main__":
    main()
