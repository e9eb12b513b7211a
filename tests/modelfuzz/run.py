"""Differential runs of fuzzed models: every oracle on every case.

A case is one random model (gen.py) by one route: ``float``, ``ptq`` (tinyc's own calibration),
``ort``/``ort_pc`` (onnxruntime's quantize_static QDQ, per tensor / per channel) or ``qdq_extreme``.
Oracles:
- float graph: tinyc's reference interpreter vs onnxruntime (``FLOAT_RTOL`` of the largest value);
- QDQ graph: tinyc's integer reference vs onnxruntime's execution of the QDQ graph, in steps of
  the output's scale (onnxruntime requantizes in float, tinyc in integers as TFLite does: one step
  per requantization, carried through the later layers' gains, bound.py);
- tflite route: tinyc's integer reference vs TFLite Micro, exactly;
- generated C vs tinyc's reference on every target the case is given: integers exactly, floats to
  ``C_RTOL``. Many cases share one program per target (each model has its own prefix), so a batch
  costs one compile and one emulator start; a batch that fails is split to find the case.
"""
from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import traceback
from pathlib import Path

import numpy as np
import onnx

from tinyc import interpreter
from tinyc.codegen import GeneratedModel, generate
from tinyc.codegen.cnames import CTYPES
from tinyc.compiler import prepare
from tinyc.emulator.runner import BUDGET_FIXED, build_program, instruction_budget, run_program
from tinyc.errors import TinycError
from tinyc.ir import DTYPES
from tinyc.optimize import set_options
from tinyc.targets import get_target

from tinyc.passes.patch import set_option as set_patch

from .bands import is_refusal, resolve
from .gen import Recipe, build
from .bound import VALUE_PRESERVING, steps_bound
from .quantize import ROUTES_QDQ, extreme, ort_quantize

ROUTES = ("float", "ptq", *ROUTES_QDQ, "tflite")
SAMPLES = 2        # inputs per case run on the targets
CALIB = 8          # calibration samples (tinyc's and onnxruntime's)
FLOAT_RTOL = 1e-4  # float reference vs onnxruntime, of the output's largest magnitude
C_RTOL = 1e-4      # float C vs the reference (the default of tinyc verify)


@dataclasses.dataclass
class Case:
    recipe: Recipe
    route: str
    ops: list[str] = dataclasses.field(default_factory=list)
    model: onnx.ModelProto | None = None    # what tinyc compiles (float or QDQ)
    float_model: onnx.ModelProto | None = None
    graph: object = None                    # tinyc's prepared graph
    samples: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    calib: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    ref: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    status: str = "new"                     # ok | refused | invalid | fail
    problems: list[str] = dataclasses.field(default_factory=list)  # "oracle: what" per failure
    refusal: str = ""
    targets_run: list[str] = dataclasses.field(default_factory=list)
    lsb_max: int = 0                        # largest int8-vs-onnxruntime step seen
    tflite: bytes = b""                     # tflite route: the .tflite twin (compiled directly too)
    patch: str = ""                         # the --patch its C is built with (bands.resolve)
    patched: list[str] = dataclasses.field(default_factory=list)  # targets whose C ran stages in bands
    patch_refused: str = ""                 # the pass's error for a forced --patch (then built without)

    @property
    def key(self) -> str:
        return f"seed{self.recipe.seed}-{self.route}"

    def fail(self, oracle: str, what: str) -> None:
        self.status = "fail"
        self.problems.append(f"{oracle}: {what}")


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _data(recipe: Recipe, model: onnx.ModelProto, count: int, salt: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng([recipe.seed, salt])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return [{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(count)]


def output_scale(model: onnx.ModelProto) -> float | None:
    """The scale of the DequantizeLinear that gives the graph output (through ops that keep values)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    name = model.graph.output[0].name
    while name in producers and producers[name].op_type in VALUE_PRESERVING:
        name = producers[name].input[0]
    n = producers.get(name)
    if n is None or n.op_type != "DequantizeLinear" or n.input[1] not in inits:
        return None
    s = onnx.numpy_helper.to_array(inits[n.input[1]])
    return float(s) if s.size == 1 else None


def _onnx_model(case: Case) -> list[np.ndarray]:
    """The float model, quantized by the case's QDQ route; onnxruntime's outputs on the samples."""
    case.float_model, case.ops = build(case.recipe)
    case.calib = _data(case.recipe, case.float_model, CALIB, 1)
    case.samples = _data(case.recipe, case.float_model, SAMPLES, 2)
    for feeds in case.samples:
        _ort(case.float_model, feeds)
    if case.route in ROUTES_QDQ:
        case.model = ort_quantize(case.float_model, case.calib, per_channel=case.route != "ort",
                                  qoperator=case.route == "ort_qop")
        if case.route == "qdq_extreme":
            case.model = extreme(case.model, case.recipe.seed)
    else:
        case.model = case.float_model
    return [_ort(case.model, feeds)[0] for feeds in case.samples]


def _tflite_model(case: Case) -> list[np.ndarray]:
    """The tf2onnx-style model and its .tflite twin; TFLite Micro's outputs on int8 samples."""
    from .tflite_route import build_pair, run_tflm

    case.model, case.tflite = build_pair(case.recipe)
    tflite = case.tflite
    case.float_model = case.model
    case.ops = sorted({n.op_type for n in case.model.graph.node} - {"QuantizeLinear", "DequantizeLinear"})
    rng = np.random.default_rng([case.recipe.seed, 3])
    shape = [d.dim_value for d in case.model.graph.input[0].type.tensor_type.shape.dim]
    case.samples = [{"input": rng.integers(-128, 128, size=shape).astype(np.int8)} for _ in range(SAMPLES)]
    return run_tflm(tflite, [f["input"] for f in case.samples], arena=256 * 1024)


def prepare_case(recipe: Recipe, route: str, workdir: Path) -> Case:
    """Build the case's model, compile it to tinyc's graph and check the reference against
    onnxruntime. A model onnxruntime cannot run is ``invalid`` (a generator problem, counted);
    one tinyc refuses with a clear error is ``refused``; anything else unexpected is a failure."""
    case = Case(recipe, route)
    try:
        if route == "tflite":
            want = _tflite_model(case)
        else:
            want = _onnx_model(case)
    except Exception as e:  # noqa: BLE001 -- the generator or onnxruntime's quantizer gave up
        case.status, case.refusal = "invalid", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        return case
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{case.key}.onnx"
    onnx.save(case.model, path)
    calib_path = workdir / f"{case.key}_calib.npz"
    if route == "ptq":
        np.savez(calib_path, input=np.stack([c["input"] for c in case.calib]))
    try:
        if route == "ptq":
            case.graph = _ptq_graph(case, path, calib_path)
        else:
            case.graph = prepare(path, progress=False).graph
        case.ref = [interpreter.run(case.graph, feeds) for feeds in case.samples]
    except TinycError as e:
        case.status, case.refusal = "refused", str(e).splitlines()[0]
        return case
    except Exception:  # noqa: BLE001 -- an internal error is a bug
        case.fail("compile", traceback.format_exc(limit=-3).strip().splitlines()[-1])
        return case
    case.status = "ok"
    if route == "ptq":
        return case  # no outside oracle for tinyc's own quantization: C vs reference below
    if route == "tflite":
        _against_tflm(case, want, "reference vs TFLite Micro")
        # the .tflite itself through tinyc's TFLite frontend: its reference must equal TFLite Micro
        # too, and it is the graph the targets then run
        path = workdir / f"{case.key}.tflite"
        path.write_bytes(case.tflite)
        try:
            case.graph = prepare(path, progress=False).graph
            case.ref = [interpreter.run(case.graph, feeds) for feeds in case.samples]
        except TinycError as e:
            case.fail("TFLite frontend", f"refuses a file TFLite Micro runs: {str(e).splitlines()[0]}")
            return case
        except Exception:  # noqa: BLE001 -- an internal error is a bug
            case.fail("TFLite frontend", traceback.format_exc(limit=-3).strip().splitlines()[-1])
            return case
        _against_tflm(case, want, "reference of the .tflite vs TFLite Micro")
        return case
    scale = output_scale(case.model) if route in ROUTES_QDQ else None
    bound = steps_bound(case.model) if scale is not None else None
    if route in ROUTES_QDQ and bound is None:
        return case  # no int8 output, or an op the bound does not know: C vs reference only
    for k, (w, got) in enumerate(zip(want, case.ref)):
        ref = np.asarray(got[case.graph.outputs[0]], np.float64).reshape(w.shape)
        w = np.asarray(w, np.float64)
        if scale is not None:
            steps = np.abs(np.round((ref - w) / scale))
            case.lsb_max = max(case.lsb_max, int(steps.max(initial=0)))
            if case.lsb_max > bound:
                case.fail("reference vs onnxruntime (QDQ)", f"sample {k}: {int(steps.max())} steps of the output "
                          f"scale (bound {bound}), {int((steps > 0).sum())}/{steps.size} differ")
                break
        else:
            finite = np.isfinite(w)  # infinities and NaN (a max pool window in the padding) must match too
            same_nonfinite = np.array_equal(np.isfinite(ref), finite) and \
                np.array_equal(ref[~finite], w[~finite], equal_nan=True)
            tol = FLOAT_RTOL * max(float(np.abs(w[finite]).max(initial=0)), 1e-6)
            err = float(np.abs(ref[finite] - w[finite]).max(initial=0)) if same_nonfinite else float("nan")
            if not same_nonfinite or err > tol:
                case.fail("reference vs onnxruntime", f"sample {k}: max abs error {err:.3g} > {tol:.3g}"
                          + ("" if same_nonfinite else " (infinities or NaN differ)"))
                break
    return case


KEEP_FLOAT = 0.3  # of the ptq cases: one random layer stays float (--keep-float)
# Layers whose float C equals the float reference bit for bit (they move, compare or add values;
# Resize interpolates as the C does): a kept layer's output is quantized again, so a last-bit
# difference at a rounding tie would be a whole step there. A kept convolution, pooling average,
# reduction or table op may round one step apart from the reference: not drawn. Nor Relu, Clip:
# kept alone, without the layer that hosts them, tinyc refuses the model (that layer's output is
# not quantized).
KEEP_EXACT = {"MaxPool", "GlobalMaxPool", "Max", "Min", "Concat", "Pad", "Resize", "DepthToSpace", "Abs", "Neg",
              "Add", "Sub", "Mul"}


def _ptq_graph(case: Case, path: Path, calib_path: Path):
    """tinyc's int8 graph of the case, sometimes with one random layer kept float (a seeded choice
    among the ONNX nodes of KEEP_EXACT; one that a pass fused away is drawn again)."""
    from tinyc.pipeline import Build

    r = random.Random(f"keep-{case.recipe.seed}")
    names = [n.name for n in case.model.graph.node if n.op_type in KEEP_EXACT]
    keep = r.random() < KEEP_FLOAT
    while True:
        kept = [names.pop(r.randrange(len(names)))] if keep and names else []
        try:
            graph = Build(path, quantize="int8", calib=calib_path, progress=False, keep_float=kept).graph
        except TinycError as e:
            if kept and str(e).startswith("--keep-float: no layer named"):
                continue
            raise
        if kept:
            case.ops.append("keep-float")
        return graph


def _against_tflm(case: Case, want: list[np.ndarray], oracle: str) -> None:
    """The case's reference outputs must equal TFLite Micro's exactly."""
    for k, (w, got) in enumerate(zip(want, case.ref)):
        ref = np.asarray(got[case.graph.outputs[0]]).reshape(w.shape)
        if ref.dtype != w.dtype or not np.array_equal(ref, w):
            diff = np.abs(ref.astype(np.int64) - w.astype(np.int64))
            case.lsb_max = max(case.lsb_max, int(diff.max(initial=0)))
            case.fail(oracle, f"sample {k}: {int((diff > 0).sum())}/{w.size} values differ, "
                      f"by up to {int(diff.max(initial=0))} ({ref.dtype} vs {w.dtype})")
            return


# --- many models in one program per target ------------------------------------------------------

MAIN = """/* Fuzz batch: every model's samples in turn, from input.bin to output.bin. */
#include <stdint.h>
#include "tinyc_io.h"
{includes}
{buffers}
int main(void)
{{
    const int in = tinyc_io_open("input.bin", 0);
    const int out = tinyc_io_open("output.bin", 1);
    if (in < 0 || out < 0) {{
        return 10;
    }}
{runs}
    tinyc_io_close(in);
    tinyc_io_close(out);
    return 0;
}}
"""


def _batch_main(models: list[GeneratedModel]) -> str:
    includes, buffers, runs = [], [], []
    for m in models:
        includes.append(f'#include "{m.name}.h"')
        args, reads, writes = [], [], []
        for kind, key in (("in", "inputs"), ("out", "outputs")):
            for i, e in enumerate(m.report[key]):
                var = f"{m.name}_{kind}{i}"
                size = int(np.prod(e["shape"], dtype=np.int64))
                buffers.append(f"static {CTYPES[e['dtype']]} {var}[{size}];")
                args.append(var)
                (reads if kind == "in" else writes).append(var)
        body = [f"        if (tinyc_io_read(in, {v}, sizeof {v}) != 0) {{\n            return 12;\n        }}" for v in reads]
        body.append(f"        if ({m.name}_run({', '.join(args)}) != 0) {{\n            return 13;\n        }}")
        body += [f"        if (tinyc_io_write(out, {v}, sizeof {v}) != 0) {{\n            return 14;\n        }}" for v in writes]
        runs.append(f"    for (int s = 0; s < {SAMPLES}; ++s) {{\n" + "\n".join(body) + "\n    }")
    return MAIN.format(includes="\n".join(includes), buffers="\n".join(buffers), runs="\n".join(runs))


def _pack(case: Case, m: GeneratedModel) -> bytes:
    parts = []
    for feeds in case.samples:
        for e in m.report["inputs"]:
            a = np.asarray(feeds[e["name"]], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
            parts.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def _compare(case: Case, m: GeneratedModel, raw: bytes, pos: int, target: str) -> int:
    for k, want in enumerate(case.ref):
        for e in m.report["outputs"]:
            dt = DTYPES[e["dtype"]].newbyteorder("<")
            n = int(np.prod(e["shape"], dtype=np.int64)) * dt.itemsize
            got = np.frombuffer(raw[pos:pos + n], dt).astype(DTYPES[e["dtype"]])
            pos += n
            w = np.asarray(want[e["name"]]).reshape(-1)
            if got.size != w.size:
                case.fail(f"C on {target}", f"output '{e['name']}': {got.size} values for {w.size}")
                continue
            if w.dtype.kind == "f":
                w64, g64 = w.astype(np.float64), got.astype(np.float64)
                tol = C_RTOL * max(float(np.nanmax(np.abs(w64), initial=0.0)), 1e-30)
                bad = ~((np.abs(g64 - w64) <= tol) | (np.isnan(g64) & np.isnan(w64)))
            else:
                bad = got != w
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                case.fail(f"C on {target}", f"sample {k}, output '{e['name']}': {int(bad.sum())}/{w.size} values "
                          f"differ from the reference (first at {i}: {got[i]} vs {w[i]})")
    return pos


FUZZ_MODES = ("balanced", "speed", "size")


def ram_needed(m: GeneratedModel) -> int:
    """The RAM a model's test needs on the emulated machine: its arena and I/O buffers."""
    r = m.report
    io = sum(int(np.prod(e["shape"])) * DTYPES[e["dtype"]].itemsize for e in r["inputs"] + r["outputs"])
    return r["arena_bytes"] + io


def run_batch(cases: list[Case], target_name: str, build_dir: Path, extra_cflags: tuple[str, ...] = (),
              transform=None) -> None:
    """Run ``cases`` (prepared, status ok) on one target in as few programs as fit the emulated
    machine; record failures on the cases. ``transform(case, model)`` may rewrite a generated model
    before it is built (the sanitizer runs poison the arena)."""
    target = get_target(target_name)
    ram = target.emulator.ram_bytes if target.emulator.kind == "qemu" else 0
    flash = target.emulator.flash_bytes if target.emulator.kind == "qemu" else 0
    todo: list[tuple[Case, GeneratedModel]] = []
    for i, case in enumerate(cases):
        # every kernel choice gets fuzzed: the case's --optimize mode follows its seed (on the DSP
        # cores speed takes the widened weights, size the int8 ones, balanced a mix)
        set_options(case.graph, FUZZ_MODES[case.recipe.seed % len(FUZZ_MODES)], None)
        try:
            try:
                m = generate(case.graph, target, name=f"m{i}")
            except TinycError as e:  # a forced --patch the pass cannot follow: the case runs without it
                if not is_refusal(str(e)) or "patch" not in case.graph.options:
                    raise
                case.patch_refused = str(e).splitlines()[0]
                del case.graph.options["patch"]
                m = generate(case.graph, target, name=f"m{i}")
        except TinycError as e:  # a clear error (exit 2) for this target: a refusal, not a wrong result
            case.status, case.refusal = "refused", f"{target_name}: {str(e).splitlines()[0]}"
            continue
        except Exception:  # noqa: BLE001
            case.fail(f"codegen for {target_name}", traceback.format_exc(limit=-3).strip().splitlines()[-1])
            continue
        if "patch" in m.report:
            case.patched.append(target_name)
        if transform is not None:
            m = transform(case, m)
        if ram and ram_needed(m) > ram // 2:
            continue  # too big for this emulated machine: not run here
        todo.append((case, m))
    groups, current, used, wbytes = [], [], 0, 0
    for case, m in todo:
        need, w = ram_needed(m), m.report.get("weights_bytes", 0)
        if current and (len(current) >= 40 or (ram and used + need > ram // 2) or (flash and wbytes + w > flash // 3)):
            groups.append(current)
            current, used, wbytes = [], 0, 0
        current.append((case, m))
        used, wbytes = used + need, wbytes + w
    if current:
        groups.append(current)
    for gi, group in enumerate(groups):
        _run_group(group, target, build_dir / f"{target_name}_{gi}", extra_cflags)


def _run_group(group: list[tuple[Case, GeneratedModel]], target, build_dir: Path, extra_cflags) -> None:
    files = {"main.c": _batch_main([m for _, m in group])}
    for _, m in group:
        files.update({f: t for f, t in m.files.items() if f.endswith((".c", ".h"))})
    packed = b"".join(_pack(c, m) for c, m in group)
    budget = BUDGET_FIXED + sum(instruction_budget(m, SAMPLES) for _, m in group)
    try:
        program = build_program(files, target, build_dir, extra_cflags)
        raw, _ = run_program(target, program, packed, timeout=120, max_instructions=budget)
    except TinycError as e:
        if len(group) > 1:  # find the case(s) at fault
            half = len(group) // 2
            _run_group(group[:half], target, build_dir.with_name(build_dir.name + "a"), extra_cflags)
            _run_group(group[half:], target, build_dir.with_name(build_dir.name + "b"), extra_cflags)
        else:
            group[0][0].fail(f"C on {target.name}", str(e).splitlines()[0])
        return
    pos = 0
    for case, m in group:
        case.targets_run.append(target.name)
        pos = _compare(case, m, raw, pos, target.name)
    shutil.rmtree(build_dir, ignore_errors=True)


def run_cases(recipes: list[Recipe], routes: list[str], targets_for, workdir: Path | None = None,
              extra_cflags: tuple[str, ...] = (), transform=None) -> list[Case]:
    """Prepare every (recipe, route) case and run it on its targets (``targets_for(index, case)``:
    the target names of the index-th case; host is always one of them)."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="tinyc-modelfuzz-")) if own else workdir
    try:
        cases = [prepare_case(rec, route, workdir / "models") for rec, route in zip(recipes, routes)]
        for case in cases:
            if case.status == "ok" and case.recipe.patch:
                case.patch = resolve(case.graph, case.recipe.patch)
                set_patch(case.graph, case.patch)
        by_target: dict[str, list[Case]] = {}
        for i, case in enumerate(cases):
            if case.status == "ok":
                for t in targets_for(i, case):
                    by_target.setdefault(t, []).append(case)
        for t, group in by_target.items():
            run_batch(group, t, workdir / "build", extra_cflags, transform)
        return cases
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
