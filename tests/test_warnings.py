"""Generated C stays warning-free under tinyc's strict flags (toolchain.STRICT_CFLAGS: -std=c99
-Wall -Wextra -Wconversion -Werror, with -Wpedantic -Wvla -Wshadow on top) on every kind of target:
gcc on the host, the portable Arm kernels (cortex-m0plus), the DSP kernels (cortex-m4), the Helium
and DSP kernels (cortex-m55), gcc for RISC-V (esp32c3) and clang-22 for Xtensa (esp32).

-Wconversion in C includes -Wsign-conversion and -Wfloat-conversion: every narrowing (int32 to
int8 after a clamp, int64 to int32 after a shift) and every sign change (a word of four int8 read
as uint32_t and handed to an ACLE intrinsic) is an explicit cast, so an implicit one in a new
kernel is an error. The sources: every shared model (float, int8, and the float MLPerf Tiny
models quantized by tinyc), the int8 ones also with single rounding (whose requantization the fast
DSP kernels cannot do, so the DSP and Helium targets fall back to their other kernels), the int8
single-op cases and the kernel-variant cases. The last test checks that these compiles rendered
every DSP and Helium kernel template.
"""
from __future__ import annotations

import copy
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import numpy as np
import pytest

from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.errors import TinycError
from tinyc.optimize import set_options
from tinyc.quant.rounding import set_graph
from tinyc.targets import get_target
from tinyc.toolchain import STRICT_CFLAGS, compile_object, have_tools

from .conftest import ROOT, recording_templates, shared_model, unavailable

EXTRA = ("-Wpedantic", "-Wvla", "-Wshadow")
TARGETS = ["host", "cortex-m0plus", "cortex-m4", "cortex-m55", "esp32c3", "esp32"]
RENDERED: set[str] = set()
_lock = threading.Lock()


@pytest.fixture(scope="module", autouse=True)
def _record_templates():
    with recording_templates(RENDERED):
        yield


def test_strict_flags_include_conversion_warnings():
    assert {"-Wall", "-Wextra", "-Wconversion", "-Werror"} <= set(STRICT_CFLAGS)


def _compile_all(jobs: list[tuple[str, str, object]], tmp: Path) -> list[str]:
    """jobs: (label, target, graph). Generate each (in the graph's rounding), compile in parallel;
    returns the failures with the compiler's warnings."""
    work = []
    for i, (label, target, g) in enumerate(jobs):
        t = get_target(target)
        if not have_tools(t):
            unavailable(f"the compiler for {target} ({t.cc}) is not installed")
        m = generate(g, t, name="net")
        d = tmp / f"{i}_{target}"
        d.mkdir(parents=True)
        for fname, text in m.files.items():
            (d / fname).write_text(text)
        work.append((label, t, d))

    def build(item) -> str:
        label, t, d = item
        try:
            compile_object(d, "net.c", t, extra=EXTRA)
            return ""
        except TinycError:  # the whole diagnostic, not only its first line
            syntax = ["-S", "-emit-llvm", "-o", os.devnull] if t.llc else ["-fsyntax-only"]
            r = subprocess.run([t.cc, *t.cflags, *STRICT_CFLAGS, *EXTRA, "-I.", *syntax, "net.c"], cwd=d,
                               capture_output=True, text=True)
            return f"{label} on {t.name}:\n" + "\n".join(r.stderr.splitlines()[:12])

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return [f for f in pool.map(build, work) if f]


def _shared(key: str, tmp: Path):
    if key == "mnist":
        return prepare(shared_model("mnist-8/model.onnx"), progress=False).graph
    if key.startswith("hello_world"):
        return prepare(shared_model(f"hello-world/{key}.onnx"), progress=False).graph
    net, kind = key.split("_")
    if kind == "ptq":  # quantized by tinyc, calibrated on a few random-normal inputs
        path = shared_model(f"mlperf-tiny/{net}_float.onnx")
        fg = prepare(path, progress=False).graph
        x = fg.inputs[0]
        np.savez(tmp / f"{net}_calib.npz",
                 **{x: np.random.default_rng(0).standard_normal((4, *fg.tensors[x].shape)).astype(np.float32)})
        return prepare(path, quantize="int8", calib=tmp / f"{net}_calib.npz", progress=False).graph
    return prepare(shared_model(f"mlperf-tiny/{key}.onnx"), progress=False).graph


SHARED = [f"{n}_{k}" for n in ("kws", "ic", "ad") for k in ("float", "int8", "ptq")] + [
    "hello_world_float", "hello_world_int8", "mnist"]


@pytest.mark.parametrize("target", TARGETS)
def test_shared_models_compile_without_warnings(target, tmp_path):
    failures = _compile_all([(key, target, _shared(key, tmp_path)) for key in SHARED], tmp_path)
    assert not failures, "\n\n".join(failures)


# issue 19's models: stateful SVDF (int16 and int8 state), the LSTM, and one 16x8 model per
# operator directory of seanet (int64 bias, 64-bit requantization, int16 elementwise)
TFLM = ["keyword_scrambled/keyword_scrambled.tflite", "keyword_scrambled/keyword_scrambled_8bit.tflite",
        "mnist_lstm/trained_lstm.tflite", "mnist_lstm/trained_lstm_int8.tflite"] + [f"seanet/{op}/{op}{i}.tflite" for op, i in (
            ("add", 0), ("conv", 9), ("conv", 20), ("leaky_relu", 0), ("pad", 0), ("quantize", 0), ("quantize", 1),
            ("strided_slice", 0), ("sub", 0), ("transpose_conv", 0))]


@pytest.mark.parametrize("target", TARGETS)
def test_sequence_and_16x8_models_compile_without_warnings(target, tmp_path):
    jobs = [(key, target, prepare(shared_model(f"tflm/{key}"), progress=False).graph) for key in TFLM]
    from .test_sanitizers import _sequence_graph

    jobs.append(("int8 GRU", target, _sequence_graph("int8 GRU", tmp_path)[0]))  # (GruInt8, quantized by tinyc)
    failures = _compile_all(jobs, tmp_path)
    assert not failures, "\n\n".join(failures)


def _int8_cases(tmp: Path) -> list[tuple[str, object]]:
    """(label, graph): the int8 single-op cases of test_int8 (kept in NCHW) and the int8
    kernel-variant cases of test_kernel_variants."""
    from tinyc.frontend.onnx import import_model
    from tinyc.passes import run_passes

    from . import test_int8, test_kernel_variants

    out = []
    for case, (op, n_in, shape, so, zo, attrs) in test_int8.SINGLE_OPS.items():
        model, _ = test_int8._single_op_qdq(op, n_in, shape, so, zo, **attrs)
        out.append((f"op {case}", run_passes(import_model(model), ["canonicalize", "lower-qdq", "dead-code"])))
    for case in ("QLinearConv", "QLinearMatMul"):
        model, _ = test_int8._qlinear_model(case)
        out.append((f"op {case}", run_passes(import_model(model), ["canonicalize", "lower-qdq", "dead-code"])))
    for case, (shape, op, wshape, attrs, _) in test_kernel_variants.CASES.items():
        d = tmp / case
        d.mkdir()
        test_kernel_variants._model(d / "m.onnx", shape, op, wshape, attrs)
        np.savez(d / "calib.npz", x=np.random.default_rng(1).standard_normal((16,) + shape).astype(np.float32))
        out.append((f"variant {case}", prepare(d / "m.onnx", quantize="int8", calib=d / "calib.npz", io="int8",
                                               progress=False).graph))
    return out


def _fallback_cases(tmp: Path) -> list[tuple[str, object]]:
    """int8 layers for which the DSP and Helium targets keep their other kernels: a pointwise
    convolution over a batch of two, and a fully connected layer so long (K = 70000 inputs, all
    weights 127, input zero point -128) that its offset term leaves the range of the fast kernels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from . import test_kernel_variants

    out = []
    d = tmp / "pw_batch2"
    d.mkdir()
    test_kernel_variants._model(d / "m.onnx", (2, 8, 3, 3), "Conv", (6, 8, 1, 1), {})
    np.savez(d / "calib.npz", x=np.random.default_rng(1).standard_normal((4, 2, 8, 3, 3)).astype(np.float32))
    out.append(("pointwise conv, batch 2", prepare(d / "m.onnx", quantize="int8", calib=d / "calib.npz", io="int8",
                                                   progress=False).graph))
    d = tmp / "fc_long"
    d.mkdir()
    k = 70000
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((2, k), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, d / "m.onnx")
    np.savez(d / "calib.npz", x=np.random.default_rng(1).uniform(0, 1, (4, 1, k)).astype(np.float32))
    out.append(("fully connected, K = 70000", prepare(d / "m.onnx", quantize="int8", calib=d / "calib.npz", io="int8",
                                                      progress=False).graph))
    return out


def _int8_jobs(rounding: str, tmp: Path) -> list[tuple[str, str, object]]:
    graphs = _int8_cases(tmp) + _fallback_cases(tmp)
    if rounding == "single":
        graphs += [(key, _shared(key, tmp)) for key in ("kws_int8", "ic_int8", "ad_int8", "hello_world_int8")]
    for _, g in graphs:
        set_graph(g, rounding)
    jobs = [(label, target, g) for label, g in graphs for target in ("cortex-m4", "cortex-m55", "cortex-m0plus")]
    # the DSP kernels' int8 weight form too (--optimize size takes it wherever there is one)
    for label, g in graphs:
        small = copy.copy(g)
        small.options = dict(g.options)
        set_options(small, "size", None)
        jobs.append((f"{label} (--optimize size)", "cortex-m4", small))
    return jobs


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_int8_kernels_of_every_variant_compile_without_warnings(rounding, tmp_path):
    """Each int8 case for the portable, DSP and Helium kernels, with the requantization rounding
    TFLite Micro uses (double) and the one of LiteRT's reference build (single: the DSP and Helium
    targets then use their kernels without the fast requantization; the int8 shared models too)."""
    failures = _compile_all(_int8_jobs(rounding, tmp_path), tmp_path)
    assert not failures, "\n\n".join(failures)


def test_every_dsp_and_helium_kernel_template_is_compiled(tmp_path):
    """The compiles above render every template of templates/dsp and templates/mve (a kernel no
    test renders is never checked for warnings). Templates they have not rendered in this session
    (e.g. when run alone) are looked for by generating their sources here."""
    arm = {str(p.resolve()) for v in ("dsp", "mve") for p in (ROOT / "templates" / v).rglob("*.j2")}
    if arm - RENDERED:
        for rounding in ("double", "single"):
            (tmp_path / rounding).mkdir()
            for _, target, g in _int8_jobs(rounding, tmp_path / rounding):
                generate(g, get_target(target), name="net")
    never = sorted(Path(p).relative_to((ROOT / "templates").resolve()).as_posix() for p in arm - RENDERED)
    assert not never, f"DSP/Helium templates no warning test compiles: {never}"
