"""The back end as IR stages: select-kernels and plan-memory record every decision on the graph
(golden text per kernel variant: portable, DSP, Helium), code generation only prints that graph,
and each node's kernel is chosen (and its weights laid out) once."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.codegen.emit import arena_bytes, print_model
from tinyc.ir_text import parse_graph, print_graph
from tinyc.ops import REGISTRY
from tinyc.passes import run_passes
from tinyc.passes.pipeline import KERNELS
from tinyc.targets import get_target

from .conftest import shared_model

CASES = Path(__file__).parent / "backend"
# host: the portable kernels; cortex-m4: the DSP extension's; cortex-m55: Helium's
TARGETS = ["host", "cortex-m4", "cortex-m55"]


def _kernel_graph(target: str):
    g = parse_graph((CASES / "kernels.ir").read_text())
    return g, run_passes(g, KERNELS, target=get_target(target))


@pytest.mark.parametrize("target", TARGETS)
def test_kernel_choice_golden(target):
    _, kg = _kernel_graph(target)
    assert print_graph(kg) == (CASES / f"kernels.{target}.expected.ir").read_text()


def test_the_variants_choose_different_kernels():
    """What the goldens hold, said plainly: which kernel runs each layer on each kind of core."""
    chosen = {}
    for target in TARGETS:
        _, kg = _kernel_graph(target)
        chosen[target] = {n.name: (n.attrs["kernel"], n.attrs.get("variant"), n.attrs.get("placement")) for n in kg.nodes}
    assert chosen["host"]["c3"] == ("s8.conv_nhwc_pair", None, "in_place")
    assert chosen["cortex-m4"]["c3"] == ("s8.conv_ring", "dsp", "in_place")
    assert chosen["cortex-m55"]["c3"] == ("s8.conv_ring", "mve", "in_place")  # its ring of int8 rows, as the DSP one
    assert chosen["host"]["pw"][2] == chosen["cortex-m4"]["pw"][2] == "in_place"
    assert chosen["cortex-m4"]["dw"][:2] == ("s8.dwconv_wide", "dsp")
    assert chosen["cortex-m4"]["fc"][:2] == ("s8.fc_wide_direct", "dsp")  # int8 weights, inputs widened in registers
    assert all(c["flatten"][2] == "view" for c in chosen.values())


@pytest.mark.parametrize("target", TARGETS)
def test_the_kernel_graph_means_what_the_graph_means(target):
    g, kg = _kernel_graph(target)
    rng = np.random.default_rng(0)
    for _ in range(3):
        feeds = {"x": rng.integers(-128, 128, g.tensors["x"].shape).astype(np.int8)}
        np.testing.assert_array_equal(interpreter.run(kg, feeds)["y"], interpreter.run(g, feeds)["y"])


@pytest.mark.parametrize("target", TARGETS)
def test_code_is_printed_from_the_kernel_graph_alone(target):
    """The kernel-level IR read back from text prints the same C as the compiler's own."""
    g, kg = _kernel_graph(target)
    t = get_target(target)
    direct = generate(g, t, name="m")
    reread = print_model(parse_graph(print_graph(kg)), t, name="m")
    assert reread.files == direct.files
    assert reread.report == direct.report
    assert arena_bytes(kg, t.alignment) == kg.memory_plan.arena_bytes


def test_laid_out_weights_are_constants_of_the_graph():
    _, kg = _kernel_graph("cortex-m4")
    node = next(n for n in kg.nodes if n.name == "c3")
    (j, name), (k, unread) = node.attrs["laid_out"]
    assert (j, k, unread) == (1, 2, None)  # the bias lives in the kernel's stream
    t = kg.tensors[name]
    assert name == f"{node.inputs[1]} (laid out for c3)" and t.is_const and t.dtype == "s32"


def test_each_node_chooses_its_kernel_once(monkeypatch):
    """KWS int8 on cortex-m4 (10 convolution and fully connected nodes): one kernel choice per
    node, each of its options (one per weight form) built once, and one weight packing kept (the
    memory planner and code generation used to redo it)."""
    from tinyc.compiler import prepare

    calls: dict[str, int] = {}
    for name in ("Conv", "Gemm"):
        cls = type(REGISTRY[name])
        real = cls.kernel_for

        def counted(self, node, *args, _real=real, **kw):
            calls[node.name] = calls.get(node.name, 0) + 1
            return _real(self, node, *args, **kw)

        monkeypatch.setattr(cls, "kernel_for", counted)
    g = prepare(shared_model("mlperf-tiny/kws_int8.onnx"), progress=False).graph
    m = generate(g, get_target("cortex-m4"))
    assert len(calls) == 10 and set(calls.values()) == {len(REGISTRY["Conv"].weight_forms)} == {2}
    assert sum("laid_out" in n.attrs for n in m.graph.nodes) == 10


def test_dump_ir_shows_the_kernel_stages(tmp_path):
    from .conftest import run_cli

    r = run_cli("compile", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "-o", str(tmp_path),
                "--dump-ir", "after=select-kernels,plan-memory")
    assert r.returncode == 0, r.stderr
    assert "# --- IR after select-kernels ---" in r.stdout and "# --- IR after plan-memory ---" in r.stdout
    after_select, after_plan = r.stdout.split("# --- IR after plan-memory ---")
    assert 'kernel="s8.dwconv_wide"' in after_select and "offsets=" not in after_select
    assert 'placement="in_place"' in after_plan and "scratch_offset=" in after_plan
