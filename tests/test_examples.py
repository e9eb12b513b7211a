"""The bundled examples: a PyTorch export compiles to a lean graph and keeps its accuracy, in float
and quantized by tinyc, on the emulated Cortex-M4."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph, prepare
from tinyc.emulator import run_on_target
from tinyc.frontend.onnx import load
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, ort_run

DIGITS = ROOT / "examples" / "digits"
CNN = DIGITS / "digits_cnn.onnx"


def test_pytorch_export_is_messy_and_compiles_lean():
    raw = [n.op for n in load(CNN).nodes]
    assert "BatchNormalization" in raw and "Relu" in raw  # as PyTorch exported it
    ops = [n.op for n in load_graph(CNN).nodes]
    # NHWC; the input [1,1,8,8] -> [1,8,8,1] is a view (Reshape), no Transpose anywhere
    assert ops == ["Reshape", "Conv", "MaxPool", "Conv", "MaxPool", "Reshape", "Gemm"]


@pytest.mark.emulator
def test_pytorch_cnn_on_cortex_m4_float_and_int8(tmp_path):
    need_arm()
    data = np.load(DIGITS / "digits_test.npz")
    images = data["pixels"].reshape(-1, 1, 1, 8, 8)
    samples = [{"image": x} for x in images]
    target = get_target("cortex-m4")
    g = load_graph(CNN)
    res = run_on_target(generate(g, target), target, tmp_path / "f32", samples)
    pred = np.array([o["logits"].argmax() for o in res.outputs])
    want = np.array([ort_run(CNN, s)[0].argmax() for s in samples])
    np.testing.assert_array_equal(pred, want)
    float_acc = float(np.mean(pred == data["labels"]))
    assert float_acc > 0.95

    np.savez(tmp_path / "calib.npz", image=np.load(DIGITS / "digits_calib.npz")["pixels"].reshape(-1, 1, 1, 8, 8))
    q = prepare(CNN, quantize="int8", calib=tmp_path / "calib.npz", progress=False).graph
    assert [n.op for n in q.nodes] == ["QuantizeLinear", "Reshape", "Conv", "MaxPool", "Conv", "MaxPool", "Reshape",
                                       "Gemm", "DequantizeLinear"]
    res = run_on_target(generate(q, target), target, tmp_path / "s8", samples)
    q_pred = np.array([o["logits"].argmax() for o in res.outputs])
    ref = np.array([interpreter.run(q, s)["logits"].argmax() for s in samples])
    np.testing.assert_array_equal(q_pred, ref)
    assert float(np.mean(q_pred == data["labels"])) >= float_acc - 0.01
