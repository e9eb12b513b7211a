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
        it.set_input(x[None], 0)
        it.invoke()
        outs.append([it.get_output(0).copy()] + [np.array(it.GetTensor(t, 0)["tensor_data"]) for t in tensors])
    return outs


def test_mnist_lstm_reference_equals_tflite_micro():
    path = shared_model(MODEL)
    g = load_graph(path)
    assert [n.op for n in g.nodes].count("LstmInt8") == 1
    xs = inputs()
    want = tflm(path.read_bytes(), xs, (23,))
    for x, (y, h) in zip(xs, want):
        got = interpreter.run(g, {g.inputs[0]: x[None]}, keep_all=True)
        np.testing.assert_array_equal(got[LSTM_OUT], h.reshape(got[LSTM_OUT].shape))
        np.testing.assert_array_equal(got[g.outputs[0]], y)


def _compare_c(target: str, tmp_path):
    """Generated C equals the reference on every layer (the LSTM's own output too: ``tinyc diff``),
    and the reference equals TFLite Micro on the same inputs (the test above)."""
    path = shared_model(MODEL)
    np.savez(tmp_path / "x.npz", **{load_graph(path).inputs[0]: inputs()[:, None]})
    r = run_cli("diff", str(path), "-t", target, "-i", str(tmp_path / "x.npz"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert layers[0]["op"] == "LstmInt8" and layers[0]["target_equal"] is True
    assert all(layer["target_equal"] in (True, None) and layer["target_mismatches"] == 0 for layer in layers)
    assert layers[0]["sqnr_db"] > 40  # against the float twin (dequantized weights, float LSTM)


def test_mnist_lstm_c_on_host_equals_the_reference(tmp_path):
    _compare_c("host", tmp_path)


@pytest.mark.emulator
def test_mnist_lstm_c_on_cortex_m4_equals_the_reference(tmp_path):
    need_arm()
    _compare_c("cortex-m4", tmp_path)
