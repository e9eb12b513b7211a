"""TFLite's float UNIDIRECTIONAL_SEQUENCE_LSTM (mnist_lstm: 28 steps of 28 pixels, hidden 20,
cell_clip 10) imported as one LSTM node: the reference and the generated C against TFLite Micro's
float kernels on the sample digits (pixels / 255: each is its file's digit, top-1) and 20 random
inputs, on the host and the emulated Cortex-M4."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, rel_err, run_cli, shared_model
from .tflite_builders import model_bytes, run_tflm

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


def lstm_tflite(seq=5, batch=2, inp=3, hidden=4, time_major=False, act=4, cell_clip=0.0, extra=()) -> bytes:
    """A one-operator float UNIDIRECTIONAL_SEQUENCE_LSTM (``extra``: optional inputs to add, by
    index: 9-11 peepholes, 16 projection weights, 20 layer-norm coefficients)."""
    rng = np.random.default_rng(5)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    t = [dict(name="x", shape=[seq, batch, inp] if time_major else [batch, seq, inp], type="f32")]
    t += [dict(name=f"w{g}", shape=[hidden, inp], type="f32", data=w(hidden, inp)) for g in "ifco"]
    t += [dict(name=f"r{g}", shape=[hidden, hidden], type="f32", data=w(hidden, hidden)) for g in "ifco"]
    t += [dict(name=f"b{g}", shape=[hidden], type="f32", data=w(hidden)) for g in "ifco"]
    t += [dict(name=s, shape=[batch, hidden], type="f32", variable=True) for s in ("h", "c")]
    t += [dict(name="y", shape=[seq, batch, hidden] if time_major else [batch, seq, hidden], type="f32")]
    t += [dict(name="extra", shape=[hidden, hidden] if 16 in extra else [hidden], type="f32", data=w(hidden, hidden)
               if 16 in extra else w(hidden))]
    ins = [0] + list(range(1, 9)) + [-1] * 3 + list(range(9, 13)) + [-1, -1, 13, 14] + [-1] * 4
    for k in extra:
        ins[k] = 16
    return model_bytes("UNIDIRECTIONAL_SEQUENCE_LSTM", t, [0], [15], ins, [15],
                       ("UnidirectionalSequenceLSTMOptions", dict(fusedActivationFunction=act, cellClip=cell_clip,
                                                                  timeMajor=time_major)))


@pytest.mark.parametrize("kw", [{}, dict(time_major=True), dict(cell_clip=0.3), dict(seq=9, batch=1, inp=7, hidden=12)],
                         ids=["batch_major", "time_major", "cell_clip", "larger"])
def test_single_lstm_operator_equals_tflite_micro_in_reference_and_host_c(kw, tmp_path):
    need_tools("cc")
    data = lstm_tflite(**kw)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(data)
    g = load_graph(path)
    assert [n.op for n in g.nodes] == ["LSTM", "Reshape"]
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32) for _ in range(3)]
    want = [run_tflm(data, [x])[0] for x in xs]
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "c", [{g.inputs[0]: x} for x in xs])
    for x, got, w in zip(xs, res.outputs, want):
        assert rel_err(interpreter.run(g, {g.inputs[0]: x})[g.outputs[0]], w) < 1e-5
        assert rel_err(got[g.outputs[0]], w) < 1e-5


@pytest.mark.parametrize("kw,message", [(dict(extra=(9, 10, 11)), "peepholes"), (dict(extra=(16,)), "projection"),
                                        (dict(extra=(20, 21, 22, 23)), "layer normalization"),
                                        (dict(act=1), "fused activation 1")])
def test_unsupported_lstm_variants_are_refused_in_one_line(kw, message, tmp_path):
    path = tmp_path / "lstm.tflite"
    path.write_bytes(lstm_tflite(**kw))
    with pytest.raises(UnsupportedError, match=f"UNIDIRECTIONAL_SEQUENCE_LSTM \\(operator 0\\): {message}") as e:
        load_graph(path)
    assert "\n" not in str(e.value)
