"""Generated C under AddressSanitizer and UndefinedBehaviorSanitizer, on the host.

Compiled with -fsanitize=address,undefined,float-cast-overflow (GCC leaves float-cast-overflow
out of "undefined": converting NaN or an out-of-range float to an integer) and no recovery (the
first report ends the program with an error, so the run fails), then run on test inputs; the
outputs must equal the reference interpreter's (exactly for integers, within float rounding for
floats):
- every shared model, float and int8, and the float MLPerf Tiny models quantized by tinyc (also one
  int8 model with single rounding and one with a weights blob); models with float inputs also run
  on inputs sprinkled with NaN, infinities and +-3e38;
- the int8 single-op cases of test_int8 and the int8 kernel-variant cases of test_kernel_variants
  (odd channel counts, tails, borders, strides, in place, batches), as the host builds them;
- every ONNX backend node test case that passes (tests/conformance), so every op's float and
  integer kernels with the attributes and dtypes the cases use.

The activations share one static arena, and ASan's redzones alone only guard its two ends; so before
each layer call the whole arena is poisoned and exactly the bytes of that layer's inputs, outputs
and scratch (from the memory plan) are unpoisoned: a kernel that touches a byte outside its own
tensors is reported like an overflow of a separate array. Weights, inputs and outputs are separate
arrays with redzones of their own. The layer's outputs and scratch (where they overlap no input)
are also filled with 0xff bytes first, so a kernel that reads them before writing them gives a
wrong result instead of stale values that happen to be right.

The last test lists the host's kernel templates (templates/portable) that none of these runs
rendered. The DSP (ACLE) and Helium (MVE) kernels cannot run on the host: they run bit-exact in
QEMU in test_kernel_variants, and test_warnings compiles every one of them with -Wconversion.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import GeneratedModel, generate
from tinyc.compiler import prepare
from tinyc.data import random_samples
from tinyc.emulator import build_firmware, run_firmware
from tinyc.errors import TinycError
from tinyc.targets import get_target

from .conftest import ROOT, recording_templates, need_tools, shared_model, unavailable

SANITIZE = ("-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1")
ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
HOST = get_target("host")
FLOAT_RTOL = 1e-5  # C against the interpreter, both float32: summation order and libm only

# Templates rendered while this module generated code (absolute paths), and the sources generated.
RENDERED: set[str] = set()
GENERATED: set[str] = set()
_lock = threading.Lock()


@pytest.fixture(scope="module", autouse=True)
def _record_templates():
    with recording_templates(RENDERED):
        yield


@pytest.fixture(autouse=True)
def _sanitizer_env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def sanitizers(tmp_path_factory) -> None:
    """gcc with its ASan and UBSan runtimes (libasan, libubsan)."""
    need_tools("gcc")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text("#include <sanitizer/asan_interface.h>\nint main(void) { return 0; }\n")
    r = subprocess.run(["gcc", *SANITIZE, "probe.c", "-o", "probe"], cwd=d, capture_output=True, text=True)
    if r.returncode != 0 or subprocess.run([str(d / "probe")], env={**os.environ, **ENV}).returncode != 0:
        unavailable(f"gcc cannot build with {' '.join(SANITIZE[:1])}: {r.stderr.strip()[:300]}")


# --- the arena, poisoned around each layer --------------------------------------------------

def layer_regions(g, model: GeneratedModel) -> dict[int, list[tuple[int, int, bool]]]:
    """Layer index -> the (offset, bytes, fresh) arena ranges the layer may touch: its planned
    inputs and outputs (each tensor's own bytes) and its scratch buffer; ``fresh`` for the ranges it
    must write before it reads them (outputs and scratch that overlap no input)."""
    plan = model.plan
    # (a tensor a pass placed inside a buffer, e.g. the patch pass's rows of a window: at its offset there)
    buffers = {t: b for b in plan.buffers for t in b.tensors}
    where = {t: b.offset + b.at.get(t, 0) for t, b in buffers.items()}
    out = {}
    for i, node in enumerate(g.nodes):
        reads = [(where[x], g.tensors[x].nbytes) for x in node.inputs if x is not None and x in where]
        writes = [(where[x], g.tensors[x].nbytes) for x in node.outputs if x in where]
        if node.name in plan.scratch:
            b = buffers[plan.scratch[node.name]]
            writes.append((b.offset, b.size))
        ranges = {r: False for r in reads}
        for off, n in writes:  # in place: an output over an input is no fresh range
            if (off, n) not in ranges:
                ranges[(off, n)] = not any(off < o + m and o < off + n for o, m in reads)
        out[i] = [(off, n, fresh) for (off, n), fresh in ranges.items()]
    return out


def poison_arena(model: GeneratedModel, g, shrink: tuple[int, int] | None = None,
                 clobber: int | None = None) -> GeneratedModel:
    """The model with its run function poisoning the arena around every layer call (see the module
    docstring), and filling the layer's fresh ranges with 0xff bytes (NaN floats, -1 integers), so
    that a kernel reading an output or its scratch before writing it gives a wrong result instead
    of stale values. To prove that both work: ``shrink=(layer, bytes)`` leaves the last bytes of
    that layer's last range poisoned, ``clobber=layer`` fills its inputs too."""
    src = model.files[f"{model.name}.c"]
    if "static uint8_t arena[" not in src:
        return model
    run = re.search(r"^int %s_run\(.*?^}" % re.escape(model.name), src, re.S | re.M)
    assert run, "the run function was not found"
    if "patch" in model.report:  # bands: the calls are the kernel graph's nodes
        if re.search(r"^ +for \(int i = 0; i < \d+; i\+\+\)", run.group(0), re.M):
            return model  # (folded into loops, codegen/loops.py: one call site runs many nodes; not poisoned)
        g = model.graph
    regions = layer_regions(g, model)

    # the calls run the layers in order (views have none); a call's function may be another
    # layer's (the bands of one layer share one: codegen's _share_bands)
    order = iter([i for i, n in enumerate(g.nodes) if n.name not in model.plan.views])

    def guard(m: re.Match) -> str:
        i, indent = next(order), m.group(1)
        ranges = [(off, n, fresh or i == clobber) for off, n, fresh in regions[i]]
        if shrink and shrink[0] == i:
            off, n, fresh = ranges[-1]
            ranges[-1] = (off, n - shrink[1], fresh)
        lines = [f"{indent}ASAN_POISON_MEMORY_REGION(arena, sizeof arena);"]
        for off, n, fresh in ranges:
            if n > 0:
                lines.append(f"{indent}ASAN_UNPOISON_MEMORY_REGION(arena + {off}, {n});")
                if fresh:
                    lines.append(f"{indent}memset(arena + {off}, 0xff, {n});")
        return "\n".join(lines) + "\n" + m.group(0)

    body, calls = re.subn(r"^( +)layer(\d+)_\w+\(", guard, run.group(0), flags=re.M)
    assert calls == len([n for n in g.nodes if n.name not in model.plan.views]), "not every layer call was guarded"
    body = re.sub(r"^( +)return 0;\n}\Z", r"\1ASAN_UNPOISON_MEMORY_REGION(arena, sizeof arena);\n\g<0>", body,
                  flags=re.M)
    src = "#include <string.h>\n#include <sanitizer/asan_interface.h>\n" + src[:run.start()] + body + src[run.end():]
    return GeneratedModel(model.name, {**model.files, f"{model.name}.c": src}, model.plan, model.report, model.binaries)


# --- building and running -------------------------------------------------------------------

def generate_c(key: str, g, patch: str = "off", **kwargs) -> GeneratedModel:
    """The host's C; layer by layer unless ``patch`` says otherwise (the poisoned arena needs one
    call per layer: a patched build's bands share functions and run in loops)."""
    import dataclasses

    model = generate(dataclasses.replace(g, options=dict(g.options, patch=patch)), HOST, **kwargs)
    with _lock:
        GENERATED.add(key)
    return model


def build_sanitized(model: GeneratedModel, g, build_dir: Path, **poison) -> tuple[GeneratedModel, Path]:
    """``model`` with the poisoned arena, built with the sanitizers: (that model, the program)."""
    model = poison_arena(model, g, **poison)
    return model, build_firmware(model, HOST, build_dir, extra_cflags=SANITIZE)


def run_program(model: GeneratedModel, program: Path, samples) -> list[dict[str, np.ndarray]]:
    """The outputs; a sanitizer report (or any failure) raises TinycError with the report's first
    lines."""
    try:
        return run_firmware(model, HOST, program, samples, timeout=120).outputs
    except TinycError as e:  # run_firmware keeps one line of stderr: get the whole report
        r = subprocess.run([str(program.resolve())], cwd=program.parent, capture_output=True, text=True, timeout=120)
        report = [ln for ln in r.stderr.splitlines() if ln.strip()][:25]
        raise TinycError(f"{e}\n" + "\n".join(report)) from None


def run_sanitized(model: GeneratedModel, g, samples, build_dir: Path, **poison) -> list[dict[str, np.ndarray]]:
    return run_program(*build_sanitized(model, g, build_dir, **poison), samples)


def mismatch(g, samples, outputs) -> str:
    """'' when the C outputs equal the interpreter's (integers exactly, floats to FLOAT_RTOL of the
    output's largest magnitude), else what differs."""
    if len(outputs) != len(samples):
        return f"{len(outputs)} outputs for {len(samples)} samples"
    # a stateful model's samples are one sequence (the state carried), as the program runs them
    wants = interpreter.run_sequence(g, samples) if g.states else [interpreter.run(g, f) for f in samples]
    for k, (want, got) in enumerate(zip(wants, outputs)):
        for name in g.outputs:
            w, c = np.asarray(want[name]), np.asarray(got[name])
            if w.dtype.kind in "fc":
                w64, c64 = w.astype(np.float64), c.reshape(w.shape).astype(np.float64)
                scale = max(float(np.nanmax(np.abs(w64), initial=0.0)), 1e-30)
                ok = np.array_equal(np.isnan(w64), np.isnan(c64)) and \
                    np.allclose(c64, w64, rtol=FLOAT_RTOL, atol=FLOAT_RTOL * scale, equal_nan=True)
            else:
                ok = np.array_equal(c.reshape(w.shape), w)
            if not ok:
                return f"sample {k}, output '{name}' differs from the interpreter"
    return ""


# --- the shared models ----------------------------------------------------------------------

MLPERF = {"kws": "mlperf-tiny/kws", "ic": "mlperf-tiny/ic", "ad": "mlperf-tiny/ad"}
MODELS = [f"{k}_{kind}" for k in MLPERF for kind in ("float", "int8", "ptq")] + [
    "hello_world_float", "hello_world_int8", "mnist", "ad_int8_single_rounding", "kws_int8_weights_blob", "kws_int8_io_float"]


def _model_graph(key: str, tmp: Path):
    """(graph, test inputs) of a shared model."""
    if key == "kws_int8_io_float":  # the QDQ model with float I/O: quantized on entry in the C
        g = prepare(shared_model("mlperf-tiny/kws_int8.onnx"), io="float", progress=False).graph
        return g, random_samples(g, 3, seed=4)
    base = key.replace("_single_rounding", "").replace("_weights_blob", "")
    if base == "mnist":
        import onnx
        from onnx import numpy_helper

        g = prepare(shared_model("mnist-8/model.onnx"), progress=False).graph
        sets = sorted(shared_model("mnist-8/model.onnx").parent.glob("test_data_set_*"))
        return g, [{g.inputs[0]: numpy_helper.to_array(onnx.load_tensor(str(d / "input_0.pb")))} for d in sets]
    if base.startswith("hello_world"):
        g = prepare(shared_model(f"hello-world/{base}.onnx"), progress=False).graph
        return g, random_samples(g, 8, seed=1)
    net, kind = base.split("_")
    if kind == "ptq":  # tinyc's own quantization, calibrated on a few random-normal inputs
        path = shared_model(f"{MLPERF[net]}_float.onnx")
        fg = prepare(path, progress=False).graph
        x = fg.inputs[0]
        rng = np.random.default_rng(0)
        np.savez(tmp / "calib.npz", **{x: rng.standard_normal((4, *fg.tensors[x].shape)).astype(np.float32)})
        g = prepare(path, quantize="int8", calib=tmp / "calib.npz", progress=False).graph
        return g, random_samples(g, 3, seed=2)
    g = prepare(shared_model(f"{MLPERF[net]}_{kind}.onnx"), progress=False).graph
    x = g.inputs[0]
    shape = g.tensors[x].shape
    samples = random_samples(g, 3, seed=3)
    real = np.load(shared_model("mlperf-tiny/samples.npz"))
    if key == "kws_int8":
        samples.insert(0, {x: real["kws_int8"].reshape(shape)})
    if net == "ad":  # real log-mel windows (quantized with the input's parameters for int8)
        rows = real["ad_float"][:4]
        q = g.tensors[x].quant
        if kind == "int8":
            rows = np.clip(np.round(rows / float(q.scale)) + int(q.zero_point), -128, 127).astype(np.int8)
        samples = [{x: r.reshape(shape)} for r in rows] + samples
    return g, samples


@pytest.mark.parametrize("key", MODELS)
def test_shared_model_is_clean_under_asan_and_ubsan(key, sanitizers, tmp_path):
    g, samples = _model_graph(key, tmp_path)
    if key.endswith("_single_rounding"):
        from tinyc.quant.rounding import set_graph

        set_graph(g, "single")
    model = generate_c(key, g, name=re.sub(r"\W", "_", key), weights_blob=key.endswith("_weights_blob"))
    model, program = build_sanitized(model, g, tmp_path / "build")
    why = mismatch(g, samples, run_program(model, program, samples))
    assert not why, why
    x = g.inputs[0]
    if g.tensors[x].dtype == "f32":  # NaN, infinities and huge values among normal ones: clean too
        rng = np.random.default_rng(5)
        special = []
        for v in (np.nan, np.inf, -np.inf, 3e38, -3e38):
            a = rng.standard_normal(g.tensors[x].shape).astype(np.float32)
            a.flat[::7] = v
            special.append({x: a})
        outputs = run_program(model, program, special)
        if key.endswith(("_ptq", "_io_float")):  # quantized at the input, then integer: still equal
            why = mismatch(g, special, outputs)
            assert not why, why


# issue 19's kernels: 16x8 (int64 accumulators, int16 elementwise, QUANTIZE between int8, int16 and
# int32), the stateful SVDF (int16 and int8 state, 20 calls as one sequence: the state arrays sit
# outside the arena, with redzones of their own), the LSTMs, int16 Sigmoid/Tanh/Softmax, float SVDF
SEQUENCE_MODELS = [f"seanet/{m}" for m in ("conv/conv9", "conv/conv20", "add/add0", "sub/sub0", "leaky_relu/leaky_relu0",
                                           "pad/pad0", "strided_slice/strided_slice0", "quantize/quantize0",
                                           "quantize/quantize1", "transpose_conv/transpose_conv0")] + [
    "keyword_scrambled/keyword_scrambled", "keyword_scrambled/keyword_scrambled_8bit", "mnist_lstm/trained_lstm_int8",
    "mnist_lstm/trained_lstm", "int16 LOGISTIC", "int16 TANH", "int16 SOFTMAX", "float SVDF",
    "int8 GRU"]


def _sequence_graph(key: str, tmp: Path):
    from tinyc.compiler import load_graph

    from . import test_int16_act, test_svdf

    if key.startswith("int16 "):
        op = key.split()[1]
        path, _, _ = test_int16_act._case(op, [3, 40] if op == "SOFTMAX" else [2, 300], 2.0 ** -11, tmp)
    elif key == "int8 GRU":  # the trained GRU of test_gru_int8, quantized by tinyc (GruInt8)
        datasets = pytest.importorskip("sklearn.datasets")
        from .test_gru_int8 import MODEL

        x = (datasets.load_digits().images / 16.0).astype(np.float32)[:, :, None, :]
        np.save(tmp / "calib.npy", x[:200])
        g = prepare(MODEL, quantize="int8", calib=tmp / "calib.npy", progress=False).graph
        return g, [{g.inputs[0]: v} for v in x[1400:1403]]
    elif key == "float SVDF":
        path = tmp / "svdf.tflite"
        path.write_bytes(test_svdf.svdf_float_model(batch=2, n_in=7, units=5, rank=2, memory=9, activation=1))
    else:
        path = shared_model(f"tflm/{key}.tflite")
    g = load_graph(path)
    samples = random_samples(g, 20 if g.states else 3, seed=6)
    out_shape = np.array(g.tensors[g.outputs[0]].shape, np.int32)
    for f in samples:  # TRANSPOSE_CONV's output-shape input: the output's shape
        f.update({x: out_shape for x in g.inputs if g.tensors[x].dtype == "s32" and g.tensors[x].shape == (4,)})
    return g, samples


@pytest.mark.parametrize("key", SEQUENCE_MODELS)
def test_sequence_and_16x8_model_is_clean_under_asan_and_ubsan(key, sanitizers, tmp_path):
    g, samples = _sequence_graph(key, tmp_path)
    model = generate_c(key, g, name="net")
    why = mismatch(g, samples, run_sanitized(model, g, samples, tmp_path / "build"))
    assert not why, why


def test_the_harness_catches_stray_accesses_stale_reads_and_undefined_behaviour(sanitizers, tmp_path):
    """What the harness claims to catch, it catches: a layer given one byte less of its last range
    (its last access lands on a poisoned byte), a layer whose inputs are overwritten like fresh
    ranges (the 0xff fill reaches the outputs), and a signed overflow (UBSan)."""
    g, samples = _model_graph("kws_int8", tmp_path)
    model = generate_c("kws_int8", g, name="kws")
    regions = layer_regions(g, model)
    last = max(i for i, r in regions.items() if r)
    with pytest.raises(TinycError, match="AddressSanitizer"):
        run_sanitized(model, g, samples[:1], tmp_path / "asan", shrink=(last, 1))
    first = min(i for i, r in regions.items() if any(not fresh for *_, fresh in r))
    assert mismatch(g, samples, run_sanitized(model, g, samples, tmp_path / "fill", clobber=first))
    src = model.files["kws.c"]
    overflow = "    { volatile int32_t big = INT32_MAX; big = big + 1; (void)big; }\n    return 0;\n}"
    src = re.sub(r"    return 0;\n}\s*\Z", overflow + "\n", src)
    model = GeneratedModel("kws", {**model.files, "kws.c": src}, model.plan, model.report, model.binaries)
    with pytest.raises(TinycError, match="signed integer overflow"):
        run_sanitized(model, g, samples[:1], tmp_path / "ubsan")


# --- int8 single ops and kernel variants ----------------------------------------------------

def _int8_graph(key: str, tmp: Path):
    from tinyc.frontend.onnx import import_model
    from tinyc.passes import run_passes

    from . import test_int8, test_kernel_variants

    kind, _, case = key.partition(":")
    if kind == "op":  # DequantizeLinear -> op -> QuantizeLinear, kept in NCHW (the int8 NCHW kernels)
        if case in ("QLinearConv", "QLinearMatMul"):
            model, feeds = test_int8._qlinear_model(case)
        else:
            op, n_in, shape, so, zo, attrs = test_int8.SINGLE_OPS[case]
            model, feeds = test_int8._single_op_qdq(op, n_in, shape, so, zo, **attrs)
        g = run_passes(import_model(model), ["canonicalize", "lower-qdq", "dead-code"])
        rng = np.random.default_rng(4)
        return g, [feeds] + [{k: rng.integers(-128, 128, v.shape).astype(np.int8) for k, v in feeds.items()}]
    shape, op, wshape, attrs = {**{k: v[:4] for k, v in test_kernel_variants.CASES.items()}, **BATCH2}[case]
    test_kernel_variants._model(tmp / "m.onnx", shape, op, wshape, attrs)
    rng = np.random.default_rng(1)
    np.savez(tmp / "calib.npz", x=rng.standard_normal((16,) + shape).astype(np.float32))
    g = prepare(tmp / "m.onnx", quantize="int8", calib=tmp / "calib.npz", io="int8", progress=False).graph
    x = g.tensors[g.inputs[0]]
    return g, [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]


# kernel-variant cases over a batch of two (input shape, op, weight shape, attributes)
BATCH2 = {"pw_batch2": ((2, 8, 3, 3), "Conv", (6, 8, 1, 1), {}),
          "conv3x3_batch2": ((2, 4, 5, 5), "Conv", (6, 4, 3, 3), dict(pads=[1, 1, 1, 1]))}


def _int8_keys() -> list[str]:
    from . import test_int8, test_kernel_variants

    return ([f"op:{c}" for c in [*test_int8.SINGLE_OPS, "QLinearConv", "QLinearMatMul"]]
            + [f"variant:{c}" for c in [*test_kernel_variants.CASES, *BATCH2]])


INT8_KEYS = _int8_keys()


@pytest.mark.parametrize("key", INT8_KEYS)
def test_int8_op_and_kernel_variant_are_clean_under_asan_and_ubsan(key, sanitizers, tmp_path):
    g, samples = _int8_graph(key, tmp_path)
    model = generate_c(key, g, name="net")
    why = mismatch(g, samples, run_sanitized(model, g, samples, tmp_path / "build"))
    assert not why, why


# --- the ONNX node test cases ---------------------------------------------------------------

def _node_cases() -> list:
    from tinyc.conformance import cases

    excluded = {line.partition("\t")[0] for line in (ROOT / "tests/conformance/exclusions.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    return [c for c in cases() if c.name not in excluded]


def _node_case_graph(case):
    """(graph, its data sets as feeds) the way tinyc.conformance imports a case (inputs that must
    be constants bound to the data set's values)."""
    from tinyc.conformance import _array, _import

    names = [vi.name for vi in case.model.graph.input if vi.name not in {t.name for t in case.model.graph.initializer}]
    sets = [dict(zip(names, [_array(v) for v in inputs])) for inputs, _ in case.data_sets]
    g, bound = _import(case, sets[0])
    if bound:  # constants from the first data set: only that one applies
        return g, [{k: v for k, v in sets[0].items() if k not in bound}]
    return g, sets


def _run_node_case(case, workdir: Path) -> str:
    try:
        g, samples = _node_case_graph(case)
        model = generate_c(f"node:{case.name}", g, name="case")
        outputs = run_sanitized(model, g, samples, workdir / case.name)
    except TinycError as e:
        return f"{case.name}: {e}"
    why = mismatch(g, samples, outputs)
    return f"{case.name}: {why}" if why else ""


@pytest.mark.slow
def test_onnx_node_cases_are_clean_under_asan_and_ubsan(sanitizers, tmp_path):
    """Every node test case that passes in tests/conformance (so every op's kernels with the
    attributes and dtypes the cases use), compiled with the sanitizers and run on its data."""
    cases = _node_cases()
    assert len(cases) > 400
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        failures = [f for f in pool.map(lambda c: _run_node_case(c, tmp_path), cases) if f]
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n\n".join(failures[:10])


@pytest.mark.parametrize("key", ["ic_int8", "ic_float", "mnist"])
def test_model_run_in_bands_is_clean_under_asan_and_ubsan(key, sanitizers, tmp_path):
    """The same models with their first stages in row bands (--patch auto): the windows' rows at
    byte offsets, the moves, the row copies and the folded loops run clean under ASan and UBSan
    (the arena is not poisoned per call here) and give the reference's outputs."""
    g, samples = _model_graph(key, tmp_path)
    model = generate_c(f"{key}:patched", g, patch="auto", name=re.sub(r"\W", "_", key))
    assert "patch" in model.report and "RowMove" in model.files[f"{model.name}.c"]
    model, program = build_sanitized(model, g, tmp_path / "build")
    why = mismatch(g, samples, run_program(model, program, samples))
    assert not why, why


# --- coverage of the host's kernel templates ------------------------------------------------

def test_every_host_kernel_template_is_exercised(tmp_path):
    """Every kernel template the host can use (templates/portable) was rendered by one of the runs
    above. Sources not generated yet in this session (e.g. with -k) are generated here, not run."""
    for key in MODELS:
        if key not in GENERATED:
            generate_c(key, _model_graph(key, tmp_path)[0])
    if "mnist:patched" not in GENERATED:
        generate_c("mnist:patched", _model_graph("mnist", tmp_path)[0], patch="auto")
    for key in INT8_KEYS:
        if key not in GENERATED:
            generate_c(key, _int8_graph(key, tmp_path / key.replace(":", "_"))[0])
    for case in _node_cases():
        if f"node:{case.name}" not in GENERATED:
            try:
                generate_c(f"node:{case.name}", _node_case_graph(case)[0])
            except TinycError:
                pass
    ref = ROOT / "templates" / "portable"
    kernels = {str(p.resolve()) for p in ref.rglob("*.j2")} - {str((ref / f).resolve()) for f in (
        "model.c.j2", "model.h.j2", "model_blob.c.j2")}
    never = sorted(Path(p).relative_to(ref.resolve()).as_posix() for p in kernels - RENDERED)
    assert not never, f"host kernel templates no sanitizer run exercises: {never}"
