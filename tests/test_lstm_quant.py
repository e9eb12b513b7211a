"""ONNX LSTM quantized by tinyc (``--quantize int8``) runs TFLite Micro's integer LSTM (one LstmInt8 node):
generated C equals tinyc's reference bit for bit (host, emulated Cortex-M4); against the float model
(onnxruntime) on held-out inputs the accuracy matches TFLite's own int8 file of the same model (TFLite
Micro); the features the integer kernel lacks are refused in one line with exit code 2."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_arm, ort_run, run_cli, shared_model
from tests.test_lstm_int8 import float_onnx, samples, tflm
from tinyc import interpreter
from tinyc.compiler import prepare


def _data(tmp_path):
    """The float mnist_lstm as ONNX; calibration on 5 sample digits and 30 random images, held out:
    the other 5 digits and 30 other random images (pixels in [0, 1])."""
    model = tmp_path / "mnist_lstm.onnx"
    model.write_bytes(float_onnx())
    digits = (samples().astype(np.float32) + 128) / 255
    rnd = np.random.default_rng(19).random((60, 28, 28)).astype(np.float32)
    calib, held = np.concatenate([digits[:5], rnd[:30]]), np.concatenate([digits[5:], rnd[30:]])
    np.savez(tmp_path / "calib.npz", x=calib[:, :, None, :])  # the model's input is [28, 1, 28]
    np.savez(tmp_path / "held.npz", x=held[:, :, None, :])
    return model, held


def _sqnr(f, q):
    return 10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2))


def test_quantized_onnx_lstm_is_one_lstm_int8_and_as_accurate_as_tflite_int8(tmp_path):
    """Measured: tinyc's int8 vs the float model on the 35 held-out inputs: SQNR 49.3 dB, top-1 100%;
    TFLite's converter's int8 file (trained_lstm_int8.tflite, in TFLite Micro) on the same inputs:
    SQNR 49.3 dB, top-1 100% (both limited by the int8 softmax output's 1/256 step)."""
    model, held = _data(tmp_path)
    g = prepare(model, quantize="int8", calib=tmp_path / "calib.npz", progress=False).graph
    ops = [n.op for n in g.nodes]
    assert ops.count("LstmInt8") == 1 and "LSTM" not in ops and len(ops) == 6
    f = np.stack([ort_run(model, {"x": x[:, None, :]})[0] for x in held]).reshape(len(held), -1).astype(np.float64)
    out = g.outputs[0]
    got = np.stack([interpreter.run(g, {g.inputs[0]: x[:, None, :]})[out] for x in held]).reshape(f.shape)
    ours = _sqnr(f, got.astype(np.float64))
    assert np.mean(f.argmax(1) == got.argmax(1)) == 1.0
    # TFLite's int8 model of the same weights: input 1/255 with zero point -128, output 1/256, -128
    xi = np.clip(np.round(held * 255) - 128, -128, 127).astype(np.int8)
    yt = (np.stack([o[0] for o in tflm(shared_model("tflm/mnist_lstm/trained_lstm_int8.tflite").read_bytes(),
                                       xi[:, None])]).reshape(f.shape).astype(np.float64) + 128) / 256
    assert np.mean(f.argmax(1) == yt.argmax(1)) == 1.0
    theirs = _sqnr(f, yt)
    assert ours > 45 and ours > theirs - 1.0, (ours, theirs)


def _verify(target, tmp_path):
    model, _ = _data(tmp_path)
    r = run_cli("verify", str(model), "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"), "-t", target,
                "-i", str(tmp_path / "held.npz"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "35 samples" in r.stdout and r.stdout.splitlines()[-1].startswith("PASS"), r.stdout


def test_quantized_onnx_lstm_c_on_host_equals_the_reference(tmp_path):
    _verify("host", tmp_path)


@pytest.mark.emulator
def test_quantized_onnx_lstm_c_on_cortex_m4_equals_the_reference(tmp_path):
    need_arm()
    _verify("cortex-m4", tmp_path)


def _lstm(tmp_path, H=3, I=2, T=4, attrs=None, extra_inputs=(), outputs=("y",)):
    """A small random forward LSTM (x [T, 1, I]), with changes for the refusal tests."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    attrs = dict(hidden_size=H, **(attrs or {}))
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), n) for n, s in
             (("W", (dirs, 4 * H, I)), ("R", (dirs, 4 * H, H)), ("B", (dirs, 8 * H)), ("P", (dirs, 3 * H)))]
    inits += [numpy_helper.from_array(np.full(1, T, np.int32), "lens"),
              numpy_helper.from_array(np.zeros((dirs, 1, H), np.float32), "h0")]
    ins = ["x", "W", "R", "B"] + list(extra_inputs)
    node = helper.make_node("LSTM", ins, list(outputs), name="rnn", **attrs)
    shapes = {"y": [T, dirs, 1, H], "y_h": [dirs, 1, H], "y_c": [dirs, 1, H]}
    graph = helper.make_graph([node], "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, 1, I])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs if o],
                              inits)
    path = tmp_path / "lstm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(1).normal(0, 1, (8, T, 1, I)).astype(np.float32))
    return path


@pytest.mark.parametrize("change, feature", [
    (dict(attrs=dict(direction="reverse")), "direction 'reverse'"),
    (dict(attrs=dict(direction="bidirectional")), "direction 'bidirectional'"),
    (dict(attrs=dict(clip=1.0)), "clip"),
    (dict(attrs=dict(input_forget=1)), "input_forget"),
    (dict(attrs=dict(activations=["Sigmoid", "Relu", "Tanh"])), "activations"),
    (dict(extra_inputs=("", "", "", "P")), "peepholes"),
    (dict(extra_inputs=("", "h0")), "initial_h"),
    (dict(extra_inputs=("lens",)), "sequence_lens"),
    (dict(outputs=("y", "y_h")), "outputs Y_h/Y_c"),
    (dict(outputs=("", "", "y_c")), "outputs Y_h/Y_c"),
])
def test_lstm_features_without_integer_kernel_are_refused_in_one_line(change, feature, tmp_path):
    path = _lstm(tmp_path, **change)
    r = run_cli("compile", str(path), "--quantize", "int8", "--calib", str(tmp_path / "c.npz"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    err = [line for line in r.stderr.splitlines() if not line.startswith("tinyc: calibration")]
    assert len(err) == 1 and "LSTM node 'rnn'" in err[0] and feature in err[0], r.stderr


def test_small_lstm_quantizes_and_refusals_do_not_hit_the_plain_model(tmp_path):
    """The plain small LSTM (the refusal tests' base) compiles; its int8 output tracks onnxruntime."""
    path = _lstm(tmp_path)
    p = prepare(path, quantize="int8", calib=tmp_path / "c.npz", progress=False)
    g = p.graph
    out = g.outputs[0]
    xs = np.load(tmp_path / "c.npz")["x"]
    f = np.stack([ort_run(path, {"x": x})[0] for x in xs]).astype(np.float64)
    q = g.tensors[out].quant
    got = np.stack([interpreter.run(g, {g.inputs[0]: x})[out] for x in xs]).astype(np.float64)
    if q is not None:
        got = (got - float(q.zero_point)) * float(q.scale)
    assert _sqnr(f, got.reshape(f.shape)) > 30
