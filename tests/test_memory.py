"""Memory planner v0: valid plans, the lower bound, and how close the arena gets to it."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tinyc.frontend.onnx import load
from tinyc.memory import Buffer, greedy_by_size, lower_bound, plan

from .conftest import run_cli, shared_model


def _check_no_conflicts(bufs: list[Buffer], alignment: int) -> None:
    for i, a in enumerate(bufs):
        assert a.offset % alignment == 0
        for b in bufs[i + 1:]:
            if a.overlaps(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


@pytest.mark.parametrize("seed", range(25))
def test_random_lifetimes_give_valid_plans_above_the_bound(seed):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(3, 30))
    bufs = []
    for i in range(int(rng.integers(1, 40))):
        first = int(rng.integers(0, steps))
        last = int(rng.integers(first, steps))
        bufs.append(Buffer(f"t{i}", int(rng.integers(1, 5000)), first, last))
    arena = greedy_by_size(bufs, 16)
    _check_no_conflicts(bufs, 16)
    lb = lower_bound(bufs, steps)
    assert arena >= lb
    assert arena == max(-(-(b.offset + b.size) // 16) * 16 for b in bufs)


def test_chain_reuses_memory():
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 100, 2, 3)]
    assert greedy_by_size(bufs, 4) == 200  # a and c share bytes
    assert bufs[0].offset == bufs[2].offset
    assert lower_bound(bufs, 4) == 200


def _independent_lower_bound(path) -> int:
    """Largest sum of live activation bytes, from the ONNX graph itself (batch 1)."""
    m = onnx.load(path)
    for vi in m.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    m = onnx.shape_inference.infer_shapes(m)
    sizes = {}
    for vi in m.graph.value_info:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        sizes[vi.name] = int(np.prod(dims)) * onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).itemsize
    consts = {i.name for i in m.graph.initializer}
    for n in m.graph.node:  # nodes computing on constants only are constants too
        if all(x in consts for x in n.input):
            consts.update(n.output)
    io = {v.name for v in m.graph.input} | {v.name for v in m.graph.output} | consts
    first, last = {}, {}
    for i, n in enumerate(m.graph.node):
        for o in n.output:
            first.setdefault(o, i)
            last.setdefault(o, i)
        for x in n.input:
            last[x] = i
    act = [t for t in first if t not in io]
    return max(sum(sizes[t] for t in act if first[t] <= i <= last[t]) for i in range(len(m.graph.node)))


def test_kws_float_report_arena_is_within_one_percent_of_an_independent_lower_bound(tmp_path):
    path = shared_model("mlperf-tiny/kws_float.onnx")
    r = run_cli("compile", str(path), "--target", "cortex-m4", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    lb = _independent_lower_bound(path)
    assert rep["arena_lower_bound_bytes"] == lb
    assert rep["arena_bytes"] <= 1.01 * lb


@pytest.mark.parametrize("rel", ["mnist-8/model.onnx", "mlperf-tiny/ic_float.onnx", "mlperf-tiny/ad_float.onnx"])
def test_shared_models_plans_are_valid(rel):
    g = load(shared_model(rel))
    p = plan(g, 8)
    _check_no_conflicts(p.buffers, 8)
    assert p.arena_bytes >= p.lower_bound_bytes
    assert p.lower_bound_bytes == _independent_lower_bound(shared_model(rel))
