"""TFLite's int8 UNIDIRECTIONAL_SEQUENCE_LSTM as one LstmInt8 node: outputs equal TFLite Micro (the
`tflite-micro` package) on the MNIST LSTM's sample digits and random inputs, in the reference and in
generated C (host, emulated Cortex-M4), and on single-op LSTMs of other sizes built here."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from tests.conftest import need_arm, run_cli, shared_model
from tinyc import interpreter
from tinyc.compiler import load_graph
from tinyc.ir_text import parse_graph, print_graph

MODEL = "tflm/mnist_lstm/trained_lstm_int8.tflite"
LSTM_OUT = "tfl.unidirectional_sequence_lstm"  # the LSTM's output tensor (index 23 in the file)


def read_png_gray(path) -> np.ndarray:
    """An 8-bit grayscale, non-interlaced PNG (the samples' format) as uint8 [H, W]."""
    data = path.read_bytes()
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, color, interlace) == (8, 0, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows, prev = [], np.zeros(w, np.int64)
    for r in range(h):
        f, line = raw[r * (w + 1)], np.frombuffer(raw[r * (w + 1) + 1:(r + 1) * (w + 1)], np.uint8).astype(np.int64)
        out = np.zeros(w, np.int64)
        for i in range(w):
            a = out[i - 1] if i else 0
            c = prev[i - 1] if i else 0
            b = prev[i]
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(f)
            if pred is None:  # Paeth
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (line[i] + pred) & 0xFF
        rows.append(out)
        prev = out
    return np.array(rows, np.uint8)


def samples() -> np.ndarray:
    """The 28x28 sample digits (sample0-9.png) as the model's input: pixel / 255 at scale 1/255, zero point -128."""
    d = shared_model(MODEL).parent / "samples"
    return np.stack([read_png_gray(p).astype(np.int64) - 128 for p in sorted(d.glob("sample*.png"))]).astype(np.int8)


def inputs() -> np.ndarray:
    rnd = np.random.default_rng(19).integers(-128, 128, (24, 28, 28)).astype(np.int8)
    return np.concatenate([samples(), rnd])


def tflm(model: bytes, xs: np.ndarray, tensors: tuple[int, ...] = ()) -> list[list[np.ndarray]]:
    """Output 0 (and the given tensors) per input, from a reset interpreter each time: TFLite Micro
    keeps the LSTM's state in variable tensors across calls, tinyc's LSTM starts from zero."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    it = runtime.Interpreter.from_bytes(model, None, None, runtime.InterpreterConfig.kPreserveAllTensors)
    outs = []
    for x in xs:
        it.reset()
        it.set_input(x, 0)
        it.invoke()
        outs.append([it.get_output(0).copy()] + [np.array(it.GetTensor(t, 0)["tensor_data"]) for t in tensors])
    return outs


def test_mnist_lstm_reference_equals_tflite_micro():
    path = shared_model(MODEL)
    g = load_graph(path)
    assert parse_graph(print_graph(g)) is not None and print_graph(parse_graph(print_graph(g))) == print_graph(g)
    assert [n.op for n in g.nodes].count("LstmInt8") == 1
    xs = inputs()
    want = tflm(path.read_bytes(), xs[:, None], (23,))
    for x, (y, h) in zip(xs, want):
        got = interpreter.run(g, {g.inputs[0]: x[None]}, keep_all=True)
        np.testing.assert_array_equal(got[LSTM_OUT], h.reshape(got[LSTM_OUT].shape))
        np.testing.assert_array_equal(got[g.outputs[0]], y)


def _compare_c(target: str, tmp_path):
    """Generated C equals the reference on every layer (the LSTM's own output too: ``tinyc diff``)
    and TFLite Micro on the final output (``verify --against``, which resets TFLite Micro's state
    before each input)."""
    path = shared_model(MODEL)
    np.savez(tmp_path / "x.npz", **{load_graph(path).inputs[0]: inputs()[:, None]})
    r = run_cli("diff", str(path), "-t", target, "-i", str(tmp_path / "x.npz"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert layers[0]["op"] == "LstmInt8" and layers[0]["target_equal"] is True
    assert all(layer["target_equal"] in (True, None) and layer["target_mismatches"] == 0 for layer in layers)
    assert layers[0]["sqnr_db"] > 40  # against the float twin (dequantized weights, float LSTM)
    r = run_cli("verify", str(path), "-t", target, "-i", str(tmp_path / "x.npz"), "--against", f"tflm={path}")
    assert r.returncode == 0 and "34 samples" in r.stdout, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == f"PASS (reference and TFLite Micro ({path.name}, tflite-micro package))"


def test_mnist_lstm_c_on_host_equals_the_reference_and_tflite_micro(tmp_path):
    _compare_c("host", tmp_path)


@pytest.mark.emulator
def test_mnist_lstm_c_on_cortex_m4_equals_the_reference_and_tflite_micro(tmp_path):
    need_arm()
    _compare_c("cortex-m4", tmp_path)


def float_onnx() -> bytes:
    """The float model (trained_lstm.tflite) as ONNX: LSTM (TFLite's gate weights reordered to ONNX's
    i, o, f, c), Reshape, Gemm, Softmax; its sequence-first input is [28, 1, 28]. For comparing tinyc's
    float LSTM with the int8 one (bench)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tinyc.frontend.tflite import load

    m = load(shared_model("tflm/mnist_lstm/trained_lstm.tflite"))
    sub = m.Subgraphs(0)
    op = sub.Operators(0)
    ins = [int(i) for i in op.InputsAsNumpy()]

    def const(i):
        t = sub.Tensors(i)
        raw = m.Buffers(t.Buffer()).DataAsNumpy()
        return np.frombuffer(raw.tobytes(), "<f4").reshape(tuple(t.ShapeAsNumpy()))

    i_f_c_o = lambda first: [const(ins[first + k]) for k in range(4)]  # noqa: E731
    onnx_order = lambda ws: np.concatenate([ws[0], ws[3], ws[1], ws[2]])[None]  # noqa: E731
    W, R, b = onnx_order(i_f_c_o(1)), onnx_order(i_f_c_o(5)), onnx_order(i_f_c_o(12))
    fc = sub.Operators(2)
    fw, fb = const(int(fc.InputsAsNumpy()[1])), const(int(fc.InputsAsNumpy()[2]))
    inits = [numpy_helper.from_array(v, n) for v, n in ((W, "W"), (R, "R"), (np.concatenate([b, np.zeros_like(b)], 1), "B"),
                                                       (np.array([1, 560], np.int64), "shape"), (fw, "fw"), (fb, "fb"))]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=20),
             helper.make_node("Reshape", ["y", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probs"])]
    graph = helper.make_graph(nodes, "mnist_lstm_float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [28, 1, 28])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_float_onnx_twin_equals_tflite_micro_float(tmp_path):
    """The float ONNX twin (the bench's float model) is the float .tflite: onnxruntime vs TFLite Micro."""
    from tests.conftest import ort_run

    path = shared_model("tflm/mnist_lstm/trained_lstm.tflite")
    xs = (samples().astype(np.float32) + 128) / 255
    want = [o[0] for o in tflm(path.read_bytes(), xs[:, None])]
    p = tmp_path / "m.onnx"
    p.write_bytes(float_onnx())
    for x, w in zip(xs, want):
        got = ort_run(p, {"x": x[:, None, :]})[0]
        np.testing.assert_allclose(got, w, atol=1e-5)


def lstm_model(B: int, T: int, I: int, H: int, time_major: bool = False, seed: int = 0, x_q=(0.02, -3),
               h_q=(0.008, 5), cell_scale: float = 2.0 ** -11, clip: float = 0.0, act: int = 4,
               peephole: bool = False, per_channel: bool = False) -> bytes:
    """One int8 UNIDIRECTIONAL_SEQUENCE_LSTM as TFLite's converter lays it out: 24 inputs (weights
    input, forget, cell, output; no peephole, projection or layer norm), the hidden and cell
    states as variable tensors."""
    from tests.tflite_builders import model_bytes

    rng = np.random.default_rng(seed)
    tensors = [dict(name="x", shape=(T, B, I) if time_major else (B, T, I), type="s8", q=([x_q[0]], [x_q[1]], 0))]
    for k in range(8):
        cols = I if k < 4 else H
        w = rng.integers(-127, 128, (H, cols)).astype(np.int8)
        scales = rng.uniform(0.004, 0.012, H if per_channel and k == 0 else 1).tolist()
        tensors.append(dict(name=f"w{k}", shape=(H, cols), type="s8", data=w, q=(scales, [0] * len(scales), 0)))
    for k in range(4):
        tensors.append(dict(name=f"b{k}", shape=(H,), type="s32",
                            data=rng.integers(-3000, 3000, H).astype(np.int32), q=([1e-4], [0], 0)))
    tensors.append(dict(name="h", shape=(B, H), type="s8", variable=True, q=([h_q[0]], [h_q[1]], 0)))
    tensors.append(dict(name="c", shape=(B, H), type="s16", variable=True, q=([cell_scale], [0], 0)))
    tensors.append(dict(name="y", shape=(T, B, H) if time_major else (B, T, H), type="s8",
                        q=([h_q[0]], [h_q[1]], 0)))
    ins = [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 9, 10, 11, 12, -1, -1, 13, 14, -1, -1, -1, -1]
    if peephole:  # cell-to-forget weights: the bias tensor stands in (only its presence matters)
        ins[10] = 10
    opts = dict(fusedActivationFunction=act, cellClip=clip, projClip=0.0, timeMajor=time_major)
    return model_bytes("UNIDIRECTIONAL_SEQUENCE_LSTM", tensors, [0], [15], ins, [15],
                       ("UnidirectionalSequenceLSTMOptions", opts))


CASES = {  # name: builder arguments
    "b1_t5_i7_h9": dict(B=1, T=5, I=7, H=9),
    "b3_t4_i6_h5": dict(B=3, T=4, I=6, H=5, seed=1),
    "time_major_b2": dict(B=2, T=6, I=8, H=4, time_major=True, seed=2),
    "clip_cell_2^-12": dict(B=1, T=8, I=5, H=11, clip=1.5, cell_scale=2.0 ** -12, seed=3),
    "cell_2^-15": dict(B=2, T=3, I=4, H=6, cell_scale=2.0 ** -15, seed=4),
    "cell_2^-9_x_zp_-128": dict(B=1, T=7, I=12, H=16, cell_scale=2.0 ** -9, x_q=(0.05, -128), h_q=(0.0078125, 0), seed=5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_op_lstm_equals_tflite_micro(case, tmp_path, target="host"):
    model = lstm_model(**CASES[case])
    path = tmp_path / "lstm.tflite"
    path.write_bytes(model)
    g = load_graph(path)
    x_shape = g.tensors[g.inputs[0]].shape
    xs = np.random.default_rng(7).integers(-128, 128, (20,) + tuple(x_shape)).astype(np.int8)
    want = tflm(model, xs)
    for x, (y,) in zip(xs, want):
        got = interpreter.run(g, {g.inputs[0]: x})[g.outputs[0]]
        np.testing.assert_array_equal(got, y.reshape(got.shape))
    assert len({bytes(np.asarray(y[0])) for y in want}) > 1  # the outputs vary with the input
    np.savez(tmp_path / "x.npz", **{g.inputs[0]: xs})
    r = run_cli("verify", str(path), "-t", target, "-i", str(tmp_path / "x.npz"), "--against", f"tflm={path}")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("PASS (reference and TFLite Micro"), \
        r.stdout + r.stderr


@pytest.mark.emulator
@pytest.mark.parametrize("case", ["b1_t5_i7_h9", "time_major_b2", "b3_t4_i6_h5"])
def test_single_op_lstm_on_cortex_m4(case, tmp_path):
    """The DSP path of the dot products (SMLAD), odd sizes' remainders included."""
    need_arm()
    test_single_op_lstm_equals_tflite_micro(case, tmp_path, "cortex-m4")


@pytest.mark.parametrize("change, message", [
    (dict(act=6), "cell activation 6 is not TANH (4)"),
    (dict(peephole=True), "LSTM with peephole weights is not supported"),
    (dict(per_channel=True), "weights 'w0' must be quantized per tensor"),
])
def test_unsupported_lstm_variants_fail_in_one_line(change, message, tmp_path):
    model = lstm_model(B=1, T=2, I=3, H=4, **change)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(model)
    r = run_cli("compile", str(path), "-t", "host", "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM (operator 0)" in r.stderr and message in r.stderr, r.stderr
