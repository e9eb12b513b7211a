"""int8 activation x activation MatMul (TFLite BATCH_MATMUL int8 semantics): one-operator .tflite
models built here, bit for bit against TFLite Micro — tinyc's reference (qreference) and its C on
the host and Cortex-M4 — over shapes with broadcast batch dimensions, adj_x / adj_y and zero
points at both ends."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_arm, need_tools
from .tflite_builders import model_bytes, run_tflm_all

CASES = {
    # name: (lhs shape, rhs shape, adj_x, adj_y, (lhs, rhs, out) zero points)
    "2d": ((5, 7), (7, 3), False, False, (3, -2, -9)),
    "batch_3d": ((2, 4, 6), (2, 6, 5), False, False, (-128, 127, 0)),
    "adj_y_heads": ((2, 4, 3), (2, 4, 3), False, True, (7, -5, 11)),  # q @ k^T
    "adj_x": ((3, 6, 4), (3, 6, 2), True, False, (0, 0, -3)),
    "broadcast_rhs": ((2, 3, 4, 5), (5, 6), False, False, (-20, 9, 4)),
    "broadcast_both_4d": ((2, 1, 3, 4), (1, 3, 2, 4), False, True, (1, -1, 0)),
}


SA, SB = 0.031, 0.027


def _model(ls, rs, adj_x, adj_y, zps, out_shape, sy) -> bytes:
    ts = [dict(name="a", shape=ls, type="s8", q=([SA], [zps[0]], 0)),
          dict(name="b", shape=rs, type="s8", q=([SB], [zps[1]], 0)),
          dict(name="y", shape=out_shape, type="s8", q=([sy], [zps[2]], 0))]
    return model_bytes("BATCH_MATMUL", ts, [0, 1], [2], [0, 1], [2],
                       ("BatchMatMulOptions", dict(adjX=adj_x, adjY=adj_y, asymmetricQuantizeInputs=False)))


def _float_product(a, b, adj_x, adj_y, zps):
    a = (a.astype(np.float64) - zps[0]) * SA
    b = (b.astype(np.float64) - zps[1]) * SB
    return np.matmul(np.swapaxes(a, -1, -2) if adj_x else a, np.swapaxes(b, -1, -2) if adj_y else b)


def _feeds(ls, rs, seed):
    rng = np.random.default_rng(seed)
    feeds = [[rng.integers(-128, 128, ls).astype(np.int8), rng.integers(-128, 128, rs).astype(np.int8)] for _ in range(3)]
    return feeds + [[np.full(ls, v, np.int8), np.full(rs, w, np.int8)] for v, w in ((-128, 127), (127, 127), (-128, -128))]


def _case(name, tmp_path):
    ls, rs, adj_x, adj_y, zps = CASES[name]
    feeds = _feeds(ls, rs, len(name))
    y = _float_product(*feeds[0], adj_x, adj_y, zps)  # an output scale that spreads sample 0 over int8
    data = _model(ls, rs, adj_x, adj_y, zps, y.shape, float(np.abs(y).max()) / 100)
    (tmp_path / "m.tflite").write_bytes(data)
    g = load_graph(tmp_path / "m.tflite")
    want = run_tflm_all(data, feeds)
    return g, [dict(zip(g.inputs, f)) for f in feeds], want


@pytest.mark.parametrize("name", list(CASES))
def test_batch_matmul_int8_equals_tflite_micro_on_the_host(name, tmp_path):
    g, feeds, want = _case(name, tmp_path)
    mm = [n for n in g.nodes if n.op == "MatMul"]
    assert len(mm) == 1 and all(g.tensors[x].dtype == "s8" for x in mm[0].inputs + mm[0].outputs)
    assert any(w.std() > 10 for w in want), "outputs should spread over the int8 range"
    for k, (f, w) in enumerate(zip(feeds, want)):
        np.testing.assert_array_equal(interpreter.run(g, f)[g.outputs[0]], w, err_msg=f"reference, sample {k}")
    need_tools("gcc")
    got = run_on_target(generate(g, get_target("host")), get_target("host"), tmp_path / "host", feeds).outputs
    for k, (o, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=f"host C, sample {k}")


@pytest.mark.emulator
@pytest.mark.parametrize("name", ["adj_y_heads", "broadcast_both_4d"])
def test_batch_matmul_int8_equals_tflite_micro_on_cortex_m4(name, tmp_path):
    need_arm()
    g, feeds, want = _case(name, tmp_path)
    t = get_target("cortex-m4")
    got = run_on_target(generate(g, t), t, tmp_path / "m4", feeds).outputs
    for k, (o, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=f"cortex-m4, sample {k}")
