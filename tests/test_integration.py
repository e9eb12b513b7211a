"""The output folder drops into firmware builds: the CMake library, the ESP-IDF component (build
file and manifest), the Makefile fragment (through the bare-metal example for MPS2 AN386, built
and run in QEMU as a user would)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

from .conftest import ROOT, need_arm, need_tools, ort_run, run_cli

DIGITS = ROOT / "examples" / "digits"
EXAMPLE = ROOT / "examples" / "firmware-mps2-an386"


def _labels_by_onnxruntime() -> list[int]:
    x = np.load(DIGITS / "digits_test.npz")["pixels"][:8].astype(np.float32)
    return [int(np.argmax(ort_run(DIGITS / "digits_mlp.onnx", {"pixels": x[i:i + 1]})[0])) for i in range(8)]


def test_bare_metal_example_builds_with_the_makefile_fragment_and_runs_in_qemu(tmp_path):
    need_arm()
    need_tools("make")
    tinyc = f"{sys.executable} -m tinyc"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(["make", "-C", str(EXAMPLE), "run", f"BUILD={tmp_path / 'build'}", f"TINYC={tinyc}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    predicted = [int(m.group(1)) for m in re.finditer(r"sample \d: predicted (\d)", r.stdout)]
    assert predicted == _labels_by_onnxruntime()
    assert "8 of 8 correct" in r.stdout
    assert not (EXAMPLE / "build").exists()  # everything went to BUILD


def _compile_digits(out, target="host"):
    r = run_cli("compile", str(DIGITS / "digits_mlp.onnx"), "-t", target, "-o", str(out))
    assert r.returncode == 0, r.stderr


def test_cmake_library_links_into_an_application(tmp_path):
    need_tools("cmake", "gcc")
    _compile_digits(tmp_path / "model")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\nadd_subdirectory(model)\n"
        "add_executable(app main.c)\ntarget_include_directories(app PRIVATE ${SAMPLES})\n"
        "target_link_libraries(app PRIVATE digits_mlp)\n")
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "digits_mlp.h"\n#include "sample.h"\n'
        "int main(void) {\n    float p[10];\n    for (int i = 0; i < SAMPLE_COUNT; ++i) {\n"
        "        if (digits_mlp_run(sample_pixels[i], p)) return 1;\n        int b = 0;\n"
        "        for (int k = 1; k < 10; ++k) if (p[k] > p[b]) b = k;\n        printf(\"%d\\n\", b);\n    }\n    return 0;\n}\n")
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(tmp_path), "-B", str(build), f"-DSAMPLES={EXAMPLE}"],
                ["cmake", "--build", str(build)]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = subprocess.run([str(build / "app")], capture_output=True, text=True, check=True).stdout
    assert [int(v) for v in out.split()] == _labels_by_onnxruntime()


def test_esp_idf_component_files_are_well_formed(tmp_path):
    """idf_component.yml parses with the fields ESP-IDF's component manager reads; CMakeLists.txt
    calls idf_component_register correctly when ESP_PLATFORM is set (a stand-in for ESP-IDF's
    function records the call and builds the component with the host compiler, which the code's
    check of the compiler lets through with TINYC_SKIP_TARGET_CHECK)."""
    import yaml

    need_tools("cmake", "gcc")
    _compile_digits(tmp_path / "model", target="esp32c3")
    manifest = yaml.safe_load((tmp_path / "model" / "idf_component.yml").read_text())
    assert set(manifest) >= {"version", "description", "targets", "dependencies"}
    assert manifest["targets"] == ["esp32c3"] and manifest["dependencies"]["idf"].startswith(">=")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(idf_stand_in C)\nset(ESP_PLATFORM 1)\n"
        "add_compile_definitions(TINYC_SKIP_TARGET_CHECK)\n"
        "function(idf_component_register)\n"
        "    cmake_parse_arguments(A \"\" \"\" \"SRCS;INCLUDE_DIRS;REQUIRES;PRIV_REQUIRES\" ${ARGN})\n"
        "    if(A_UNPARSED_ARGUMENTS)\n        message(FATAL_ERROR \"unknown arguments: ${A_UNPARSED_ARGUMENTS}\")\n    endif()\n"
        "    add_library(component STATIC ${A_SRCS})\n    target_include_directories(component PUBLIC ${A_INCLUDE_DIRS})\n"
        "    set(COMPONENT_LIB component PARENT_SCOPE)\n    file(WRITE ${CMAKE_BINARY_DIR}/registered.txt \"${A_SRCS};${A_INCLUDE_DIRS}\")\n"
        "endfunction()\nadd_subdirectory(model)\n")
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(tmp_path), "-B", str(build)], ["cmake", "--build", str(build)]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (build / "registered.txt").read_text() == "digits_mlp.c;."
    assert list(build.rglob("libcomponent.a"))
