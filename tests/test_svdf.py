"""SVDF (int8, int16 or int8 state) and the model state: single-operator models built here, run
over sequences by TFLite Micro (the `tflite-micro` package, which keeps the variable tensor across
invocations) as the oracle, in the reference interpreter and in generated C (the state in static
arrays, carried from call to call; <name>_reset restores the start)."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.ir_text import parse_graph, print_graph
from tinyc.targets import get_target

from .conftest import need_tools
from .tflite_builders import model_bytes, run_tflm_all

STEPS = 60  # calls per sequence (state carried)


def svdf_model(batch: int, n_in: int, units: int, rank: int, memory: int, state_type: str = "s16",
               activation: int = 0, bias: bool = True, seed: int = 0, changes: dict | None = None) -> bytes:
    """One SVDF with random weights, quantized as TFLite's converter does: int8 input/output,
    int8 feature weights, ``state_type`` time weights and state (the state a variable tensor), int32
    bias in units of state scale times time-weights scale. ``changes``: tensor name -> fields
    replaced (a defective file)."""
    rng = np.random.default_rng(seed)
    filters = units * rank
    wt_dtype, wt_max = (np.int16, 32767) if state_type == "s16" else (np.int8, 127)
    s_in, s_wf, s_wt = (float(rng.uniform(*r)) for r in ((0.02, 0.1), (0.002, 0.01), (0.001, 0.01)))
    # scales that keep state and output mostly in range (typical magnitudes: 3000 (int16) or 40
    # (int8) in the state, 40 in the output), so that the sequence shows in the outputs
    typical = 3000 if state_type == "s16" else 40
    s_st = s_in * s_wf * np.sqrt(n_in) * 74 * 73 / typical
    s_out = np.sqrt(rank * memory) * typical * wt_max / 1.73 * s_st * s_wt / 40
    st_zp = 0 if state_type == "s16" else int(rng.integers(-40, 40))
    tensors = [
        dict(name="x", shape=[batch, n_in], type="s8", q=([s_in], [int(rng.integers(-128, 10))], 0)),
        dict(name="wf", shape=[filters, n_in], type="s8", data=rng.integers(-127, 128, (filters, n_in)).astype(np.int8),
             q=([s_wf], [0], 0)),
        dict(name="wt", shape=[filters, memory], type=state_type,
             data=rng.integers(-wt_max, wt_max + 1, (filters, memory)).astype(wt_dtype), q=([s_wt], [0], 0)),
        dict(name="b", shape=[units], type="s32", data=rng.integers(-5000, 5000, units).astype(np.int32),
             q=([float(np.float32(s_st) * np.float32(s_wt))], [0], 0)),
        dict(name="state", shape=[batch, memory * filters], type=state_type, variable=True,
             q=([s_st], [st_zp], 0)),
        dict(name="y", shape=[batch, units], type="s8",
             q=([s_out], [int(rng.integers(-20, 20))], 0)),
    ]
    for t in tensors:
        t.update((changes or {}).get(t["name"], {}))
    ins = [0, 1, 2, 3 if bias else -1, 4]
    return model_bytes("SVDF", tensors, [0], [5], ins, [5], ("SVDFOptions", {"rank": rank, "fusedActivationFunction": activation}))


CASES = {
    "r1_m8": dict(batch=1, n_in=24, units=16, rank=1, memory=8),
    "r2_m10_relu": dict(batch=1, n_in=16, units=8, rank=2, memory=10, activation=1),
    "r3_m4": dict(batch=1, n_in=10, units=6, rank=3, memory=4, seed=3),
    "b2_r2_m6": dict(batch=2, n_in=12, units=5, rank=2, memory=6, seed=4),
    "r1_m32": dict(batch=1, n_in=32, units=8, rank=1, memory=32, seed=5),  # (TFLite Micro crashes without a bias)
    "s8_r1_m8": dict(batch=1, n_in=24, units=16, rank=1, memory=8, state_type="s8", seed=6),
    "s8_r2_m5_relu": dict(batch=2, n_in=9, units=7, rank=2, memory=5, state_type="s8", activation=1, seed=7),
}


def _sequence(g, steps: int = STEPS, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    t = g.tensors[g.inputs[0]]
    return [{t.name: rng.integers(-128, 128, t.shape).astype(np.int8)} for _ in range(steps)]


def _case(name: str, tmp_path):
    data = svdf_model(**CASES[name])
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    feeds = _sequence(g)
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    return g, feeds, want


@pytest.mark.parametrize("name", list(CASES))
def test_svdf_sequence_reference_equals_tflite_micro(name, tmp_path):
    g, feeds, want = _case(name, tmp_path)
    assert list(g.states) and [n.op for n in g.nodes] == ["SVDF"]
    got = interpreter.run_sequence(g, feeds)
    for k, (o, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w.reshape(o[g.outputs[0]].shape), err_msg=f"{name} call {k}")
    assert len({w.tobytes() for w in want}) > STEPS // 2  # the state matters: outputs vary


@pytest.mark.parametrize("name", list(CASES))
def test_svdf_sequence_host_c_equals_tflite_micro(name, tmp_path):
    need_tools("cc")
    g, feeds, want = _case(name, tmp_path)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", feeds)
    for k, (o, w) in enumerate(zip(res.outputs, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w.reshape(o[g.outputs[0]].shape), err_msg=f"{name} call {k}")


def test_state_is_visible_in_the_ir_and_round_trips(tmp_path):
    g, _, _ = _case("s8_r1_m8", tmp_path)
    text = print_graph(g)
    st = g.nodes[0].inputs[4]
    assert f"  state %{st} : s8[1,128]" in text and text.count("  state %") == 1
    assert f"= {g.states[st]}\n" in text.split(f"state %{st}")[1].split("\n")[0] + "\n"
    back = parse_graph(text)
    assert back.states == g.states
    feeds = _sequence(g, 5)
    for a, b in zip(interpreter.run_sequence(g, feeds), interpreter.run_sequence(back, feeds)):
        np.testing.assert_array_equal(a[g.outputs[0]], b[g.outputs[0]])


def test_interpreter_state_dict_is_carried_and_a_fresh_one_resets(tmp_path):
    g, feeds, want = _case("r2_m10_relu", tmp_path)
    state = interpreter.initial_state(g)
    first = [interpreter.run(g, f, state=state)[g.outputs[0]] for f in feeds[:10]]
    state = interpreter.initial_state(g)  # reset
    again = [interpreter.run(g, f, state=state)[g.outputs[0]] for f in feeds[:10]]
    for a, b, w in zip(first, again, want):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, w.reshape(a.shape))
    # without a state each run starts from the initial state
    alone = [interpreter.run(g, f)[g.outputs[0]] for f in feeds[:3]]
    np.testing.assert_array_equal(alone[2], interpreter.run_sequence(g, feeds[2:3])[0][g.outputs[0]])


_RESET_MAIN = """#include <stdio.h>
#include "m.h"
static const int8_t xs[%(steps)d][M_INPUT0_SIZE] = {%(xs)s};
int main(void)
{
    int8_t y[M_OUTPUT0_SIZE];
    for (int pass = 0; pass < 3; ++pass) {
        if (pass == 2) {
            m_reset();  /* after the second pass: the first pass's outputs again */
        }
        for (int s = 0; s < %(steps)d; ++s) {
            m_run(xs[s], y);
            for (int i = 0; i < M_OUTPUT0_SIZE; ++i) {
                printf("%%d ", y[i]);
            }
            printf("\\n");
        }
    }
    return 0;
}
"""


@pytest.mark.parametrize("name", ["r1_m8", "s8_r2_m5_relu"])
def test_reset_restores_the_start_in_c(name, tmp_path):
    """Host C: a sequence, the same inputs again (the state carried: other outputs), a reset, the
    sequence once more: the first outputs exactly (and TFLite Micro's)."""
    import subprocess

    need_tools("cc")
    g, feeds, want = _case(name, tmp_path)
    steps = 20
    model = generate(g, get_target("host"), name="m")
    assert "void m_reset(void);" in model.files["m.h"] and "#define M_STATE_BYTES" in model.files["m.h"]
    assert model.report["state_bytes"] == g.tensors[g.nodes[0].inputs[4]].nbytes
    for k, v in model.files.items():
        (tmp_path / k).write_text(v)
    xs = ", ".join("{" + ", ".join(str(int(v)) for v in f[g.inputs[0]].reshape(-1)) + "}" for f in feeds[:steps])
    (tmp_path / "main.c").write_text(_RESET_MAIN % dict(steps=steps, xs=xs))
    exe = tmp_path / "reset"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", str(exe), str(tmp_path / "main.c"),
                    str(tmp_path / "m.c")], check=True)
    rows = [[int(v) for v in line.split()] for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                        text=True).stdout.splitlines()]
    first, second, after_reset = rows[:steps], rows[steps:2 * steps], rows[2 * steps:]
    assert after_reset == first
    assert second != first  # without a reset the state goes on
    assert first == [w.reshape(-1).tolist() for w in want[:steps]]


def test_models_without_state_get_no_state_api(tmp_path):
    from tinyc.ir_text import parse_graph as parse

    g = parse('graph "plain" {\n  input %x : f32[1,4]\n  %y : f32[1,4] = Relu(%x)\n  output %y\n}\n')
    model = generate(g, get_target("host"), name="plain")
    assert "reset" not in model.files["plain.h"] + model.files["plain.c"]
    assert "STATE" not in model.files["plain.h"] and "state_bytes" not in model.report


def softmax_s16_model(shape, x_q, out_scale: float = 1 / 65536) -> bytes:
    """One SOFTMAX, int8 input, int16 output with TFLite's parameters (zero point -32768)."""
    tensors = [dict(name="x", shape=list(shape), type="s8", q=([x_q[0]], [x_q[1]], 0)),
               dict(name="y", shape=list(shape), type="s16", q=([out_scale], [-32768], 0))]
    return model_bytes("SOFTMAX", tensors, [0], [1], [0], [1], ("SoftmaxOptions", {"beta": 1.0}))


SOFTMAX_CASES = {"2": ((1, 2), (0.06996273, 2)), "10": ((3, 10), (0.1, -5)), "100": ((2, 100), (0.02, 10)),
                 "coarse": ((1, 12), (0.5, 0)), "scale_1.5259e-05": ((2, 7), (0.07, -3), 1.5259022e-05)}


@pytest.mark.parametrize("name", list(SOFTMAX_CASES))
def test_softmax_int8_to_int16_equals_tflite_micro(name, tmp_path):
    """TFLite's int8 -> int16 softmax (keyword_scrambled's last layer), reference and host C."""
    shape, x_q, *scale = SOFTMAX_CASES[name]
    data = softmax_s16_model(shape, x_q, *scale)
    path = tmp_path / "sm.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    assert [n.op for n in g.nodes] == ["Softmax"] and g.tensors[g.outputs[0]].dtype == "s16"
    rng = np.random.default_rng(len(name))
    feeds = [{g.inputs[0]: rng.integers(-128, 128, shape).astype(np.int8)} for _ in range(40)]
    feeds.append({g.inputs[0]: np.full(shape, 7, np.int8)})  # all equal
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    got = interpreter.run_sequence(g, feeds)
    for k, (o, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w.reshape(shape), err_msg=f"reference, sample {k}")
    need_tools("cc")
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", feeds)
    for k, (o, w) in enumerate(zip(res.outputs, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w.reshape(shape), err_msg=f"host C, sample {k}")


KWS = "tflm/keyword_scrambled/keyword_scrambled"


def _int8_core(path) -> bytes:
    """keyword_scrambled without its first and last operators (QUANTIZE int16 -> int8 and int16 ->
    int32): int8 input, the SVDF and FULLY_CONNECTED layers and the int8 -> int16 SOFTMAX, every
    weight and scale as in the file, and every layer's result a model output (the final
    softmax of this scrambled model hardly moves: the layers show the state at work). TFLite Micro
    runs it as it runs the whole model."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    sub = m.subgraphs[0]
    sub.operators = sub.operators[1:-1]
    sub.inputs = [list(sub.operators[0].inputs)[0]]
    sub.outputs = [list(op.outputs)[0] for op in sub.operators]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tflm_all_outputs(data: bytes, feeds: list[np.ndarray], count: int) -> list[list[np.ndarray]]:
    """Every output of TFLite Micro for each input, invoked in order (one sequence)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(data, arena_size=256 * 1024)
    outs = []
    for x in feeds:
        it.set_input(x, 0)
        it.invoke()
        outs.append([it.get_output(k).copy() for k in range(count)])
    return outs


def _kws_case(variant: str, tmp_path, steps: int = STEPS):
    from .conftest import shared_model

    data = _int8_core(shared_model(KWS + variant + ".tflite"))
    path = tmp_path / f"kws_core{variant}.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    feeds = _sequence(g, steps, seed=7)
    want = _tflm_all_outputs(data, [f[g.inputs[0]] for f in feeds], len(g.outputs))
    return g, feeds, want


def _assert_calls(g, got: list[dict], want: list[list[np.ndarray]], what: str) -> None:
    for k, (o, ws) in enumerate(zip(got, want)):
        for name, w in zip(g.outputs, ws):
            np.testing.assert_array_equal(o[name], w.reshape(o[name].shape), err_msg=f"{what}, call {k}, '{name}'")


@pytest.mark.parametrize("variant", ["", "_8bit"])
def test_keyword_scrambled_core_reference_and_host_c_equal_tflite_micro(variant, tmp_path):
    """The int8 part of keyword_scrambled (int16 and int8 state), every layer: 60 consecutive calls."""
    g, feeds, want = _kws_case(variant, tmp_path)
    assert sum(n.op == "SVDF" for n in g.nodes) == 7 and len(g.states) == 7 and len(g.outputs) == 13
    _assert_calls(g, interpreter.run_sequence(g, feeds), want, "reference")
    if not variant:  # the first and sixth SVDF's outputs move with the sequence (the 8-bit file's
        # layers give one output whatever the input: its biases dominate)
        assert len({ws[0].tobytes() for ws in want}) == len({ws[9].tobytes() for ws in want}) == STEPS
    need_tools("cc")
    host = get_target("host")
    _assert_calls(g, run_on_target(generate(g, host), host, tmp_path / "fw", feeds).outputs, want, "host C")


@pytest.mark.emulator
def test_keyword_scrambled_core_cortex_m4_equals_tflite_micro(tmp_path):
    """One firmware on the emulated Cortex-M4 runs the 60 calls in order (state carried), every
    layer equal to TFLite Micro; and a single-op SVDF with an int8 state."""
    from .conftest import need_arm

    need_arm()
    target = get_target("cortex-m4")
    g, feeds, want = _kws_case("", tmp_path)
    _assert_calls(g, run_on_target(generate(g, target), target, tmp_path / "fw", feeds).outputs, want, "cortex-m4")
    g, feeds, want = _case("s8_r2_m5_relu", tmp_path)
    res = run_on_target(generate(g, target), target, tmp_path / "fw8", feeds)
    for k, (o, w) in enumerate(zip(res.outputs, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w.reshape(o[g.outputs[0]].shape), err_msg=f"cortex-m4, call {k}")


def test_verify_runs_the_samples_as_one_sequence_against_tflite_micro(tmp_path):
    """tinyc verify --against tflm: the firmware (host) and TFLite Micro each run the 60 samples in
    order, the state carried; the reference interpreter does the same."""
    from .conftest import run_cli

    need_tools("cc")
    path = tmp_path / "svdf.tflite"
    path.write_bytes(svdf_model(**CASES["r2_m10_relu"]))
    r = run_cli("verify", str(path), "--target", "host", "--samples", "60", "--against", "tflm")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "bit-exact (worst of 60 samples)" in out and "TFLite Micro" in out


def _kws_full(variant: str, steps: int = STEPS):
    """The whole file (int16 input, QUANTIZE int16 -> int8 ... SOFTMAX int8 -> int16, QUANTIZE int16
    -> int32): random int16 inputs over the full range, TFLite Micro's outputs over the sequence."""
    from .conftest import shared_model

    path = shared_model(KWS + variant + ".tflite")
    g = load_graph(path)
    rng = np.random.default_rng(11)
    t = g.tensors[g.inputs[0]]
    assert t.dtype == "s16" and g.tensors[g.outputs[0]].dtype == "s32"
    feeds = [{t.name: rng.integers(-32768, 32768, t.shape).astype(np.int16)} for _ in range(steps)]
    want = _tflm_all_outputs(path.read_bytes(), [f[t.name] for f in feeds], 1)
    return g, feeds, want


@pytest.mark.parametrize("variant", ["", "_8bit"])
def test_keyword_scrambled_reference_and_host_c_equal_tflite_micro(variant, tmp_path):
    """The whole model, 60 consecutive calls (state carried), reference and host C."""
    g, feeds, want = _kws_full(variant)
    _assert_calls(g, interpreter.run_sequence(g, feeds), want, "reference")
    need_tools("cc")
    host = get_target("host")
    model = generate(g, host)
    assert model.report["state_bytes"] == (10240 if not variant else 5120)
    _assert_calls(g, run_on_target(model, host, tmp_path / "fw", feeds).outputs, want, "host C")


@pytest.mark.emulator
def test_keyword_scrambled_cortex_m4_equals_tflite_micro(tmp_path):
    """The whole model on the emulated Cortex-M4: one firmware runs the 60 calls in order."""
    from .conftest import need_arm

    need_arm()
    target = get_target("cortex-m4")
    for variant in ("", "_8bit"):
        g, feeds, want = _kws_full(variant)
        _assert_calls(g, run_on_target(generate(g, target), target, tmp_path / f"fw{variant}", feeds).outputs, want,
                      f"cortex-m4{variant}")


@pytest.mark.parametrize("changes, message", [
    ({"state": {"variable": False}}, "activation state 'state' must be a variable tensor"),
    ({"x": {"type": "f32", "q": None}}, "only int8 and float32 SVDF are supported"),
    ({"b": {"q": ([1.0], [0], 0)}}, "bias scale 1.0 is not the state scale times the time weights'"),
])
def test_bad_svdf_is_one_line_with_exit_code_2(changes, message, tmp_path):
    from .conftest import run_cli

    path = tmp_path / "bad.tflite"
    path.write_bytes(svdf_model(**CASES["r1_m8"], changes=changes))
    r = run_cli("compile", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def svdf_float_model(batch: int, n_in: int, units: int, rank: int, memory: int, activation: int = 0,
                     seed: int = 0) -> bytes:
    """One float32 SVDF with random weights (state a float variable tensor)."""
    rng = np.random.default_rng(seed)
    filters = units * rank
    f = lambda *shape: (rng.standard_normal(shape) * 0.3).astype(np.float32)  # noqa: E731
    tensors = [dict(name="x", shape=[batch, n_in], type="f32"),
               dict(name="wf", shape=[filters, n_in], type="f32", data=f(filters, n_in)),
               dict(name="wt", shape=[filters, memory], type="f32", data=f(filters, memory)),
               dict(name="b", shape=[units], type="f32", data=f(units)),
               dict(name="state", shape=[batch, memory * filters], type="f32", variable=True),
               dict(name="y", shape=[batch, units], type="f32")]
    return model_bytes("SVDF", tensors, [0], [5], [0, 1, 2, 3, 4], [5],
                       ("SVDFOptions", {"rank": rank, "fusedActivationFunction": activation}))


@pytest.mark.parametrize("case", [dict(batch=1, n_in=20, units=8, rank=2, memory=6, activation=1),
                                  dict(batch=2, n_in=7, units=5, rank=1, memory=9)])
def test_float_svdf_sequence_equals_tflite_micro(case, tmp_path):
    """Float32 SVDF (the fused RELU applied, as TFLite Micro's float kernel does): 60 calls, the
    reference and host C within 1e-5 of the output's largest magnitude."""
    from tinyc.verify import compare

    data = svdf_float_model(**case)
    path = tmp_path / "f.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    assert [n.op for n in g.nodes] == ["SVDF"] and g.tensors[g.nodes[0].inputs[4]].dtype == "f32"
    rng = np.random.default_rng(3)
    t = g.tensors[g.inputs[0]]
    feeds = [{t.name: rng.standard_normal(t.shape).astype(np.float32)} for _ in range(STEPS)]
    want = run_tflm_all(data, [[f[t.name]] for f in feeds])
    need_tools("cc")
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", feeds)
    for k, (ref, c, w) in enumerate(zip(interpreter.run_sequence(g, feeds), res.outputs, want)):
        for what, got in (("reference", ref), ("host C", c)):
            r = compare(f"{what} call {k}", got[g.outputs[0]], w.reshape(got[g.outputs[0]].shape), 1e-5)
            assert r.ok, r.describe()
    if case.get("activation"):
        assert min(float(w.min()) for w in want) == 0.0
