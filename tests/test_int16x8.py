"""TFLite's 16x8 scheme on single-operator models built here (tests/tflite_cases16.py: the
operators and shapes the seanet models do not cover), against TFLite Micro (the tflite-micro
package) on the same file and random inputs over the whole int16 range, in the reference
interpreter and in generated C on the host."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.targets import get_target

from . import tflite_cases16
from .conftest import need_arm, need_tools
from .tflite_builders import model_bytes, run_tflm_all

CASES = tflite_cases16.cases()


def _feeds(g, count: int = 10, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    info = {"s16": np.iinfo(np.int16), "s8": np.iinfo(np.int8)}
    return [{n: rng.integers(info[g.tensors[n].dtype].min, info[g.tensors[n].dtype].max + 1,
                             g.tensors[n].shape).astype(np.int16 if g.tensors[n].dtype == "s16" else np.int8)
             for n in g.inputs} for _ in range(count)]


def _case(name: str, tmp_path):
    data = CASES[name]()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    feeds = _feeds(g)
    want = run_tflm_all(data, [[f[n] for n in g.inputs] for f in feeds])
    return g, feeds, want


@pytest.mark.parametrize("name", list(CASES))
def test_reference_equals_tflite_micro(name, tmp_path):
    g, feeds, want = _case(name, tmp_path)
    assert not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes)
    for k, (f, w) in enumerate(zip(feeds, want)):
        got = interpreter.run(g, f)[g.outputs[0]]
        np.testing.assert_array_equal(got, w.reshape(got.shape), err_msg=f"{name} sample {k}")


@pytest.mark.parametrize("name", list(CASES))
def test_host_c_equals_tflite_micro(name, tmp_path):
    need_tools("cc")
    g, feeds, want = _case(name, tmp_path)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", feeds)
    for k, (got, w) in enumerate(zip(res.outputs, want)):
        got = got[g.outputs[0]]
        np.testing.assert_array_equal(got, w.reshape(got.shape), err_msg=f"{name} sample {k} (host C)")


def test_int16_activations_of_an_op_without_16x8_form_are_refused_in_one_line(tmp_path):
    ts = [dict(name="x", shape=(1, 4, 4, 2), type="s16", q=((0.001,), (0,), 0)),
          dict(name="y", shape=(1, 2, 2, 2), type="s16", q=((0.001,), (0,), 0))]
    path = tmp_path / "maxpool16.tflite"
    path.write_bytes(model_bytes("MAX_POOL_2D", ts, [0], [1], [0], [1],
                                 ("Pool2DOptions", dict(padding=1, strideH=2, strideW=2, filterHeight=2, filterWidth=2))))
    with pytest.raises(UnsupportedError, match="MaxPool.*int16|int16.*MaxPool|s16") as e:
        load_graph(path)
    assert "\n" not in str(e.value)


def test_int16_activations_with_a_zero_point_are_refused(tmp_path):
    ts = [dict(name="x", shape=(1, 4), type="s16", q=((0.001,), (3,), 0)),
          dict(name="y", shape=(1, 4), type="s16", q=((0.002,), (0,), 0))]
    path = tmp_path / "lrelu16.tflite"
    path.write_bytes(model_bytes("LEAKY_RELU", ts, [0], [1], [0], [1], ("LeakyReluOptions", dict(alpha=0.1))))
    with pytest.raises(UnsupportedError, match="zero point"):
        load_graph(path)


@pytest.mark.emulator
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m55"])
def test_cortex_m4_equals_tflite_micro(target_name, tmp_path):
    """Every case on the emulated Cortex-M4, a target with DSP kernels (16x8 convolutions: SMLALD),
    and on the Cortex-M55 (Helium first, the same DSP kernel for 16x8 convolutions)."""
    need_arm()
    target = get_target(target_name)
    for name in CASES:
        g, feeds, want = _case(name, tmp_path)
        res = run_on_target(generate(g, target), target, tmp_path / name, feeds[:3])
        for k, (got, w) in enumerate(zip(res.outputs, want)):
            got = got[g.outputs[0]]
            np.testing.assert_array_equal(got, w.reshape(got.shape), err_msg=f"{name} sample {k} ({target_name})")


def test_int8_and_int16_activations_do_not_mix_in_one_op(tmp_path):
    q = ((0.001,), (0,), 0)
    ts = [dict(name="a", shape=(1, 4), type="s16", q=q), dict(name="b", shape=(1, 4), type="s8", q=q),
          dict(name="y", shape=(1, 4), type="s16", q=q)]
    path = tmp_path / "add_mixed.tflite"
    path.write_bytes(model_bytes("ADD", ts, [0, 1], [2], [0, 1], [2], ("AddOptions", dict(fusedActivationFunction=0))))
    with pytest.raises(UnsupportedError, match="do not mix"):
        load_graph(path)



@pytest.mark.emulator
@pytest.mark.parametrize("name", ["add_broadcast", "sub_relu6", "add_ties_show"])
def test_helium_add_equals_tflite_micro_on_many_values(name, tmp_path):
    """The Helium 16x8 Add/Sub (four lanes: VQRDMULH, VRSHR with the ties of negative values moved
    away from zero) on 40 random samples over the whole int16 range and the extremes; and with an
    output multiplier of 0.75 (no rounding shift after the sum) on small inputs, where the first
    operand's rescaling (a shift of one) rounds a tie for every other negative value and the output
    shows them (rounding those ties up fails this test)."""
    need_arm()
    if name == "add_ties_show":
        q = [((0.001,), (0,), 0), ((0.0013,), (0,), 0), ((2 * 0.0013 / 2**15 / 0.75,), (0,), 0)]
        ts = [dict(name=n, shape=(1, 5, 9), type="s16", q=qq) for n, qq in zip("aby", q)]
        data = model_bytes("ADD", ts, [0, 1], [2], [0, 1], [2], ("AddOptions", dict(fusedActivationFunction=0)), version=4)
    else:
        data = CASES[name]()
    g = load_graph(_write(tmp_path / f"{name}.tflite", data))
    target = get_target("cortex-m55")
    model = generate(g, target)
    assert [(n.attrs["kernel"], n.attrs.get("variant")) for n in model.graph.nodes] == [("s16.add_vec", "mve")]
    if name == "add_ties_show":
        assert model.graph.nodes[0].attrs["params"]["out_shift"] == 0 > model.graph.nodes[0].attrs["params"]["s1"]
        rng = np.random.default_rng(3)
        feeds = [{n: rng.integers(-60, 61, g.tensors[n].shape).astype(np.int16) for n in g.inputs} for _ in range(10)]
    else:
        feeds = _feeds(g, count=40, seed=7)
        for v in (-32768, 32767):
            feeds.append({n: np.full(g.tensors[n].shape, v if i == 0 else -v - 1, np.int16)
                          for i, n in enumerate(g.inputs)})
    want = run_tflm_all(data, [[f[n] for n in g.inputs] for f in feeds])
    res = run_on_target(model, target, tmp_path / "fw", feeds)
    for k, (got, w) in enumerate(zip(res.outputs, want)):
        got = got[g.outputs[0]]
        np.testing.assert_array_equal(got, w.reshape(got.shape), err_msg=f"{name} sample {k} (cortex-m55)")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
