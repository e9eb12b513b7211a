"""Generated C: warning-free under strict flags (host and Arm), no heap, no VLAs, deterministic."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyc.codegen import generate
from tinyc.frontend.onnx import load
from tinyc.targets import get_target

from .conftest import ROOT, need_tools, shared_model

MODELS = ["mnist-8/model.onnx", "mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx",
          "mlperf-tiny/ad_float.onnx", "hello-world/hello_world_float.onnx"]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wvla", "-Wshadow", "-O2", "-c"]
ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
# Everything the generated code may take from the C library: no allocation, no I/O.
ALLOWED_UNDEFINED = {"memcpy", "expf", "memset"}


def _model_path(rel: str) -> Path:
    if rel == "digits":
        return ROOT / "examples" / "digits" / "digits_mlp.onnx"
    return shared_model(rel)


def _emit(rel: str, target: str, out: Path) -> Path:
    m = generate(load(_model_path(rel)), get_target(target), name="net")
    for fname, text in m.files.items():
        (out / fname).write_text(text)
    return out / "net.c"


@pytest.mark.parametrize("rel", MODELS + ["digits"])
@pytest.mark.parametrize("cc", ["gcc", "arm-none-eabi-gcc"])
def test_generated_c_compiles_cleanly_and_uses_no_heap(rel, cc, tmp_path):
    need_tools(cc, "nm")
    src = _emit(rel, "cortex-m4" if cc != "gcc" else "host", tmp_path)
    flags = STRICT + (ARM if cc != "gcc" else [])
    r = subprocess.run([cc, *flags, str(src), "-o", str(tmp_path / "net.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    nm = "arm-none-eabi-nm" if cc != "gcc" else "nm"
    need_tools(nm)
    undefined = set(subprocess.run([nm, "-u", str(tmp_path / "net.o")], capture_output=True, text=True).stdout.split()) - {"U"}
    assert undefined <= ALLOWED_UNDEFINED, undefined
    text = src.read_text()
    for word in ("malloc", "calloc", "realloc", "free(", "alloca"):
        assert word not in text


def test_generation_is_deterministic(tmp_path):
    path = shared_model("mlperf-tiny/kws_float.onnx")
    a = generate(load(path), get_target("cortex-m4"), name="kws", source=path.name)
    # Same model from another folder: no path may leak into the output.
    copy = tmp_path / "elsewhere" / path.name
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    b = generate(load(copy), get_target("cortex-m4"), name="kws", source=copy.name)
    assert a.files == b.files
    assert a.report == b.report


def test_weights_are_const_and_arena_is_static(tmp_path):
    src = _emit("mnist-8/model.onnx", "cortex-m4", tmp_path).read_text()
    assert "static uint8_t arena[NET_ARENA_BYTES]" in src
    assert src.count("static const float w") == 6
    header = (tmp_path / "net.h").read_text()
    for macro in ("NET_ARENA_BYTES", "NET_INPUT0_SIZE 784", "NET_OUTPUT0_SIZE 10", "int net_run(const float *input0, float *output0);"):
        assert macro in header
