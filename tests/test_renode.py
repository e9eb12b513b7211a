"""Renode: the generated .robot test parses with robotframework and checks the reference outputs
(its keyword library judged on lines the firmware really printed, and on corrupted ones); the
.resc is read the way Renode's monitor reads it (variables, '@' paths, files in the build folder);
the firmware it runs prints exactly those lines and its end, a fault included (run in QEMU on an
STM32F405 machine with the same memory map, since Renode itself is in no package registry); the
Renode board's memory is the board's budget; renode-test runs in a process group that a timeout
ends whole; verify says so and exits 2 when renode-test is missing."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import console, renode, renode_test
from tinyc.errors import TinycError
from tinyc.targets import all_targets, get_target

from .conftest import need_arm, run_cli, shared_model
from .resc_lint import check as lint_resc

TIMEOUT = 77.0


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
    robot = renode.build(m, t, build, samples, refs, timeout=TIMEOUT)
    return m, t, refs, robot


def _hex(m, ref):
    return "".join(ref[e["name"]].astype("<i1").tobytes().hex() for e in m.report["outputs"])


def _library(robot: Path):
    spec = importlib.util.spec_from_file_location("tinyc_check_under_test", robot.parent / "tinyc_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_robot_file_parses_and_checks_the_reference_outputs(kws_renode):
    from robot.api import TestSuiteBuilder

    m, t, refs, robot = kws_renode
    suite = TestSuiteBuilder().build(str(robot))
    (case,) = suite.tests
    assert str(case.timeout) in (f"{TIMEOUT:g} seconds", f"{TIMEOUT:g}s")  # wall clock, from --timeout
    assert any(i.name == str(robot.parent / "tinyc_check.py") for i in suite.resource.imports)
    assert "Test Teardown     Test Teardown" in robot.read_text()
    calls = [(k.name, list(k.args)) for k in case.body]
    assert calls[0] == ("Execute Script", ["${SCRIPT}"])
    assert calls[1] == ("Create Terminal Tester", ["sysbus.cpu.semihosting", f"timeout={TIMEOUT:g}"])
    checked = [a for name, a in calls if name == "Output Line Should Match"]
    name = m.report["outputs"][0]["name"]
    assert [a[1] for a in checked] == ["0", "1", "2"]
    assert [a[3] for a in checked] == [f"{name}:b:{_hex(m, r)}" for r in refs]
    assert len({a[3] for a in checked}) == 3  # the samples give different outputs
    assert calls[-1] == ("Firmware Should End Normally", ["${line}[line]"])


def test_resc_variables_expand_and_name_files_in_the_build_folder(kws_renode):
    m, t, refs, robot = kws_renode
    resc = robot.with_suffix(".resc")
    assert lint_resc(resc, writes=(renode.CONSOLE,)) == []
    text = resc.read_text()
    assert "http" not in text and "cpuType: \"cortex-m4f\"" in text and "0x08000000" in text
    # the checker sees the bug Renode 1.14 showed: '@' makes the rest a literal path
    bad = resc.with_name("bad.resc")
    bad.write_text(text.replace("$bin?=$ORIGIN", "$bin?=@$ORIGIN"))
    problems = lint_resc(bad, writes=(renode.CONSOLE,))
    bad.unlink()
    assert any("literal path" in p for p in problems) and any("not a file in the build folder" in p for p in problems)


@pytest.mark.parametrize("name", [n for n, t in all_targets().items() if t.renode])
def test_renode_board_memory_is_the_budget(name, tmp_path):
    t = get_target(name)
    text = _resc_for(t, tmp_path)
    sizes = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(\w+): Memory\.MappedMemory.*\n\s+size: 0x([0-9A-F]+)",
                                                                   text, re.M)}
    assert sizes == {"flash": t.flash_bytes, "sram": t.ram_bytes}, f"{t.board}: {sizes}"


def _resc_for(t, tmp_path) -> str:
    from tinyc.codegen.emit import template_env

    env = template_env(t.template_variants)
    return env.get_template("renode/model.resc.j2").render(name="m", target=t, renode=t.renode, console=renode.CONSOLE)


def test_the_renode_firmware_prints_those_lines_and_its_end(kws_renode):
    m, t, refs, robot = kws_renode
    lines = renode.run_in_qemu(t, robot.parent / "firmware.elf")
    assert lines == [f"tinyc-output {i} {_hex(m, r)}" for i, r in enumerate(refs)] + ["tinyc-exit 0 ok"]
    outs = console.read_outputs(m, lines, 3, "qemu")
    for got, ref in zip(outs, refs):
        assert all(np.array_equal(got[k], ref[k]) for k in ref)
    lib = _library(robot)
    specs = re.findall(r"Output Line Should Match .*\$\{RTOL\}\s+(\S+)", robot.read_text())
    assert len(specs) == 3
    for i, spec in enumerate(specs):
        lib.output_line_should_match(lines[i], str(i), "1e-4", spec)
    lib.firmware_should_end_normally(lines[-1])
    name, fmt, want = specs[0].rsplit(":", 2)
    corrupt = want[:-2] + f"{(int(want[-2:], 16) + 1) % 256:02x}"
    with pytest.raises(AssertionError, match=rf"sample 0: output '{re.escape(name)}': 1 of 12 values differ"):
        lib.output_line_should_match(lines[0], "0", "1e-4", f"{name}:{fmt}:{corrupt}")
    with pytest.raises(AssertionError, match="ended before printing its outputs: tinyc-exit 72 HardFault"):
        lib.output_line_should_match("tinyc-exit 72 HardFault", "0", "1e-4", specs[0])


def test_the_robot_library_applies_the_float_tolerance(kws_renode):
    lib = _library(kws_renode[3])
    want = np.array([1.0, -2.0, 4.0], "<f4")
    near = want + np.array([0.0, 3e-4, 0.0], "<f4")  # 7.5e-5 of the largest value
    spec = "y:f:" + want.tobytes().hex()
    lib.output_line_should_match("tinyc-output 0 " + near.tobytes().hex(), "0", "1e-4", spec)
    with pytest.raises(AssertionError, match="output 'y': max abs error"):
        lib.output_line_should_match("tinyc-output 0 " + near.tobytes().hex(), "0", "1e-5", spec)


def test_a_faulting_renode_firmware_is_reported_as_the_fault(kws_renode):
    m, t, refs, robot = kws_renode
    d = robot.parent.parent / "fault"
    shutil.copytree(robot.parent, d)
    main = d / "main.c"
    main.write_text(main.read_text().replace("int main(void)\n{\n", "int main(void)\n{\n    __asm__ volatile(\"udf #0\");\n"))
    renode.compile_firmware(m.name, t, d)
    lines = renode.run_in_qemu(t, d / "firmware.elf")
    assert lines == ["tinyc-exit 78 UsageFault: undefined instruction"]
    with pytest.raises(TinycError, match="faulted on cortex-m4 in Renode: UsageFault: undefined instruction"):
        console.read_outputs(m, lines, 3, "cortex-m4 in Renode")


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_a_renode_test_timeout_ends_its_whole_process_group(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a stand-in renode-test that starts a long-lived child (as it starts Renode) and waits
    _script(bin_dir / "renode-test", f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child\nwait\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(renode_test, "runner_python", lambda: os.path.dirname(sys.executable))
    monkeypatch.setattr(renode_test, "STARTUP_S", 0.0)
    robot = tmp_path / "m.robot"
    robot.write_text("")
    with pytest.raises(TinycError, match=r"^timeout: renode-test did not finish within 1 s"):
        renode_test.run_robot(robot, 1.0)
    child = int((tmp_path / "child").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_renode_test_without_its_python_packages_names_them(tmp_path, monkeypatch):
    _script(tmp_path / "python3", "#!/bin/sh\necho psutil yaml\n")  # a python3 that lacks them
    monkeypatch.setenv("PATH", str(tmp_path))
    if renode_test._missing_modules("/usr/bin/python3") == []:
        pytest.skip("/usr/bin/python3 has Renode's test packages")
    with pytest.raises(TinycError, match=r"needs the Python packages psutil pyyaml, missing from .*python3 .*pip install psutil pyyaml"):
        renode_test.runner_python()


def test_verify_with_renode_missing_says_so_and_exits_2(tmp_path):
    need_arm()
    if shutil.which("renode-test"):
        pytest.skip("renode-test is installed here")
    r = run_cli("verify", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "--emulator", "renode",
                "--build-dir", str(tmp_path / "b"), "--samples", "1")
    assert r.returncode == 2 and "renode-test not found" in r.stderr and r.stderr.strip().count("\n") == 0
    assert "timeout" not in r.stderr
    assert (tmp_path / "b" / "kws_int8.robot").is_file() and (tmp_path / "b" / "kws_int8.resc").is_file()
