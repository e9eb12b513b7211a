"""Op traits: what passes, the planner and the quantizer know about an op lives on the op.

The passes query ``get_op(name).<trait>``; these tests check that no pass keeps its own list of op
names, that the traits agree with each other, and that a new op is handled by every pass through
its traits alone (registered here for the test, then removed).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.ir_text import parse_graph, print_graph
from tinyc.memory import plan
from tinyc.ops import REGISTRY, Op, register
from tinyc.passes import run_passes

ROOT = Path(__file__).resolve().parents[1] / "tinyc"
# where op properties were once name lists: the passes, the planner, the quantizer, code generation
QUERYING = sorted(ROOT.glob("passes/*.py")) + sorted(ROOT.glob("quant/*.py")) + sorted(ROOT.glob("codegen/*.py")) + \
    [ROOT / "memory.py", ROOT / "diff.py", ROOT / "compiler.py"]


def _name_lists(source: str) -> list[tuple[int, list[str]]]:
    """Module- and class-level constants that are collections of two or more op names."""
    found = []
    tree = ast.parse(source)
    for scope in [tree] + [n for n in tree.body if isinstance(n, ast.ClassDef)]:
        for stmt in scope.body:
            if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or stmt.value is None:
                continue
            for node in ast.walk(stmt.value):
                elts = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
                ops = [e.value for e in elts or [] if isinstance(e, ast.Constant) and e.value in REGISTRY]
                if len(ops) >= 2:
                    found.append((stmt.lineno, ops))
    return found


def test_no_pass_planner_or_quantizer_keeps_a_list_of_op_names():
    found = [f"{p.relative_to(ROOT.parent)}:{line} {ops}" for p in QUERYING for line, ops in _name_lists(p.read_text())]
    assert found == []


def test_the_name_list_check_finds_one():
    src = (ROOT / "passes" / "fuse.py").read_text()
    assert _name_lists(src + '\nHOSTS = {"Conv", "Gemm"}\nclass P:\n    ORDER = ("Relu", "Clip")\n') == \
        [(len(src.splitlines()) + 2, ["Conv", "Gemm"]), (len(src.splitlines()) + 4, ["Relu", "Clip"])]


def _overrides(op: Op, method: str) -> bool:
    return getattr(type(op), method) is not getattr(Op, method)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_traits_agree(name):
    op = REGISTRY[name]
    if op.view:  # same bytes: quantization passes through, int8 too
        assert op.quant_transparent and op.int8_pass_through
    if op.requantizes_inputs:
        assert op.int8_pass_through
    if op.activation == "clamp":  # a clamp fuses into its host and may run in place
        lo, hi = op.clamp_range({"min": -1.0, "max": 1.0})
        assert lo is not None and op.inplace
    if op.int8_pass_through:  # lower-qdq keeps the op on int8 tensors: the interpreter must run it
        assert _overrides(op, "qreference") or op.quant_transparent, f"{name} passes int8 through without an int8 reference"
    if op.global_pool is not None:
        assert REGISTRY[op.global_pool].nhwc_form
    if op.quant_only:
        assert not op.lowers_to_int8


def test_hosts_of_a_fused_activation_are_the_same_in_float_and_int8():
    """The float fuser and the int8 lowering read one trait (they once disagreed on Div)."""
    hosts = {n for n, op in REGISTRY.items() if op.hosts_activation}
    assert {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div"} <= hosts
    assert {n for n, op in REGISTRY.items() if op.activation == "clamp"} == {"Relu", "Clip"}


@pytest.fixture
def new_ops():
    """Registers two ops no pass has heard of, described by traits only."""
    class Fold(Op):  # a view under a new name
        name = "TestFold"
        view = True
        quant_transparent = True
        int8_pass_through = True

        def infer(self, node, ins):
            return [(tuple(node.attrs["shape"]), ins[0].dtype)]

        def reference(self, node, xs):
            return [xs[0].reshape(node.attrs["shape"])]

    class Twice(Op):  # elementwise, may run in place, hosts a fused clamp
        name = "TestTwice"
        pointwise = True
        inplace = True
        hosts_activation = True

        def infer(self, node, ins):
            return [(ins[0].shape, ins[0].dtype)]

        def reference(self, node, xs):
            from tinyc.ops import float_activation

            return [float_activation(node, (xs[0] * 2).astype(xs[0].dtype))]

    for cls in (Fold, Twice):
        register(cls)
    yield
    for cls in (Fold, Twice):
        del REGISTRY[cls.name]


GRAPH = """graph "traits" {
  input %x : f32[1,4,2,2]
  %s : f32[1,4,2,2] = TestFold(%x) {shape=[1, 4, 2, 2]} @"same_shape"
  %a : f32[1,4,2,2] = TestTwice(%s) @"twice"
  %r : f32[1,4,2,2] = Relu(%a) @"relu"
  %f : f32[1,16] = TestFold(%r) {shape=[1, 16]} @"fold"
  %b : f32[1,16] = TestTwice(%f) @"twice2"
  %y : f32[1,16] = Relu(%b) @"relu2"
  %z : f32[1,16] = TestTwice(%y) @"twice3"
  output %z
}
"""


def test_a_new_op_is_handled_by_its_traits(new_ops):
    g = parse_graph(GRAPH)
    x = np.random.default_rng(0).normal(size=(1, 4, 2, 2)).astype(np.float32)
    want = interpreter.run(g, {"x": x})["z"]
    g = run_passes(g, ["canonicalize", "fuse-activation"])
    text = print_graph(g)
    assert "same_shape" not in text  # a view that keeps the shape is removed
    assert "Relu" not in text and "act_min=0.0" in text  # fused into the new host
    np.testing.assert_array_equal(interpreter.run(g, {"x": x})["z"], want)
    mp = plan(g)
    assert mp.views == {"fold"}  # no code, the input's bytes
    assert "twice2" in mp.inplace  # elementwise over its input
