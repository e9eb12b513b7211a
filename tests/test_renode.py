"""Renode: the generated .robot test parses with robotframework and expects exactly the reference
outputs; the firmware it runs prints exactly those lines (run in QEMU on an STM32F405 machine with
the same memory map, since Renode itself is in no package registry); verify says so and exits 2
when renode-test is missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import renode
from tinyc.targets import get_target

from .conftest import need_arm, run_cli, shared_model


@pytest.fixture(scope="module")
def kws_renode(tmp_path_factory):
    need_arm()
    g = load_graph(shared_model("mlperf-tiny/kws_int8.onnx"))
    t = get_target("cortex-m4")
    rng = np.random.default_rng(4)
    x = g.tensors[g.inputs[0]]
    # small random inputs (zero-centred) give outputs that vary, not saturated ones
    samples = [{g.inputs[0]: rng.integers(-20, 20, x.shape).astype(np.int8)} for _ in range(3)]
    refs = [interpreter.run(g, s) for s in samples]
    m = generate(g, t)
    build = tmp_path_factory.mktemp("renode")
    robot = renode.build(m, t, build, samples, refs)
    return m, t, refs, robot


def test_robot_file_parses_and_expects_the_reference_outputs(kws_renode):
    from robot.api import TestSuiteBuilder

    m, t, refs, robot = kws_renode
    suite = TestSuiteBuilder().build(str(robot))
    (case,) = suite.tests
    calls = [(k.name, list(k.args)) for k in case.body]
    assert calls[0] == ("Execute Script", ["${SCRIPT}"])
    assert calls[1][0] == "Create Terminal Tester" and calls[1][1][0] == "sysbus.cpu.semihosting"
    waited = [a[0] for name, a in calls if name == "Wait For Line On Uart"]
    want = []
    for i, r in enumerate(refs):
        want.append(f"tinyc-output {i} " + r[m.report["outputs"][0]["name"]].astype(np.int8).tobytes().hex())
    assert waited == want + ["tinyc-done"]
    assert len(set(waited)) == len(waited)  # the samples give different outputs
    resc = robot.with_suffix(".resc").read_text()
    assert "http" not in resc and "cpuType: \"cortex-m4f\"" in resc and "0x08000000" in resc


def test_the_renode_firmware_prints_those_lines(kws_renode):
    m, t, refs, robot = kws_renode
    lines = renode.run_in_qemu(t, robot.parent / "firmware.elf")
    assert lines == renode.expected_lines(m, refs) + ["tinyc-done"]


def test_verify_with_renode_missing_says_so_and_exits_2(tmp_path):
    need_arm()
    if shutil.which("renode-test"):
        pytest.skip("renode-test is installed here")
    r = run_cli("verify", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "--emulator", "renode",
                "--build-dir", str(tmp_path / "b"), "--samples", "1")
    assert r.returncode == 2 and "renode-test not found" in r.stderr and r.stderr.strip().count("\n") == 0
    assert (tmp_path / "b" / "kws_int8.robot").is_file() and (tmp_path / "b" / "kws_int8.resc").is_file()
