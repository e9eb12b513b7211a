"""TFLite's float UNIDIRECTIONAL_SEQUENCE_LSTM (mnist_lstm: 28 steps of 28 pixels, hidden 20,
cell_clip 10) imported as one LSTM node: the reference and the generated C against TFLite Micro's
float kernels on the sample digits (pixels / 255: each is its file's digit, top-1) and 20 random
inputs, on the host and the emulated Cortex-M4."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, rel_err, run_cli, shared_model
from .tflite_builders import run_tflm

MODEL = "tflm/mnist_lstm/trained_lstm.tflite"


def read_gray_png(path) -> np.ndarray:
    """An 8-bit grayscale, non-interlaced PNG as a uint8 array (zlib and the five row filters)."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color == 0 and interlace == 0, f"{path}: not 8-bit grayscale"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w)
    for y in range(h):
        f, line = raw[y * (w + 1)], bytearray(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a, b, c = line[x - 1] if x else 0, prev[x], prev[x - 1] if x else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(rows), np.uint8).reshape(h, w)


def _samples() -> tuple[list[int], list[np.ndarray]]:
    folder = shared_model(MODEL).parent / "samples"
    files = sorted(folder.glob("sample*.png"))
    assert len(files) == 10
    digits = [int(f.stem[len("sample"):]) for f in files]
    return digits, [(read_gray_png(f).astype(np.float32) / 255.0).reshape(1, 28, 28) for f in files]


def _inputs() -> tuple[list[int], list[np.ndarray]]:
    digits, samples = _samples()
    rng = np.random.default_rng(19)
    return digits, samples + [rng.uniform(0, 1, (1, 28, 28)).astype(np.float32) for _ in range(20)]


def test_mnist_lstm_float_is_one_lstm_node_equal_to_tflite_micro_in_reference_and_host_c(tmp_path):
    need_tools("cc")
    path = shared_model(MODEL)
    g = load_graph(path)
    assert [n.op for n in g.nodes] == ["LSTM", "Reshape", "Gemm", "Softmax"]
    assert g.nodes[0].attrs["cell_clip"] == 10.0 and g.nodes[0].attrs["layout"] == 1
    digits, xs = _inputs()
    want = [run_tflm(path.read_bytes(), [x])[0] for x in xs]  # a fresh interpreter each: the state starts at zero
    assert [int(w.argmax()) for w in want[:10]] == digits
    feeds = [{g.inputs[0]: x} for x in xs]
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path, feeds)
    for f, got, w in zip(feeds, res.outputs, want):
        assert rel_err(interpreter.run(g, f)[g.outputs[0]], w) < 1e-5
        assert rel_err(got[g.outputs[0]], w) < 1e-5


def test_mnist_lstm_float_on_cortex_m4_equals_tflite_micro(tmp_path):
    need_arm()
    path = shared_model(MODEL)
    g = load_graph(path)
    digits, xs = _samples()
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, [{g.inputs[0]: x} for x in xs])
    for x, got, digit in zip(xs, res.outputs, digits):
        w = run_tflm(path.read_bytes(), [x])[0]
        assert rel_err(got[g.outputs[0]], w) < 1e-5 and int(got[g.outputs[0]].argmax()) == digit


def test_int8_lstm_is_refused_in_one_line(tmp_path):
    r = run_cli("compile", str(shared_model("tflm/mnist_lstm/trained_lstm_int8.tflite")), "--target", "host",
                "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "UNIDIRECTIONAL_SEQUENCE_LSTM (operator" in r.stderr
