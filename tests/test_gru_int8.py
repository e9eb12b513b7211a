"""tinyc's integer GRU (GruInt8) from an ONNX GRU quantized by tinyc (--quantize int8): on a trained
GRU digit classifier (tests/data/gru_digits/, made by its train.py), int8 against the float model
run by onnxruntime on held-out digits (no TFLite Micro oracle: TFLite has no GRU), and generated C
equal to the integer reference on the host and the emulated Cortex-M4."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_arm, run_cli

MODEL = Path(__file__).parent / "data" / "gru_digits" / "gru_digits.onnx"
SPLIT = 1400  # train.py trained (and the tests calibrate) on the first 1,400 digits


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    datasets = pytest.importorskip("sklearn.datasets")
    x = (datasets.load_digits().images / 16.0).astype(np.float32)[:, :, None, :]  # [N, 8 steps, 1, 8]
    d = tmp_path_factory.mktemp("gru")
    np.save(d / "calib.npy", x[:SPLIT])
    np.save(d / "test.npy", x[SPLIT:])
    return d


def _verify(data, target):
    return run_cli("verify", str(MODEL), "-t", target, "--quantize", "int8", "--calib", str(data / "calib.npy"),
                   "-i", str(data / "test.npy"), *(["--against", "onnxruntime"] if target == "host" else []))


def test_int8_gru_against_float_and_c_on_host(data):
    # measured: SQNR 33.8 dB, top-1 agreement 99.7% (396 of 397) against onnxruntime's float model
    r = _verify(data, "host")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max abs error 0, max rel error 0 (worst of 397 samples)" in r.stdout
    line = next(s for s in r.stdout.splitlines() if "vs onnxruntime" in s)
    sqnr = float(line.split("SQNR ")[1].split(" dB")[0])
    top1 = float(line.split("top-1 agreement ")[1].split("%")[0])
    assert sqnr >= 30.0 and top1 >= 99.0, line


def test_int8_gru_c_equals_reference_on_cortex_m4(data):
    need_arm()
    r = _verify(data, "cortex-m4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max abs error 0, max rel error 0" in r.stdout


def test_unsupported_gru_refused(tmp_path, data):
    import onnx

    m = onnx.load(MODEL)
    gru = next(n for n in m.graph.node if n.op_type == "GRU")
    gru.attribute.append(onnx.helper.make_attribute("clip", 5.0))
    p = tmp_path / "clip.onnx"
    onnx.save(m, p)
    r = run_cli("compile", str(p), "-t", "host", "--quantize", "int8", "--calib", str(data / "calib.npy"), "-o",
                str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "GRU node '/gru/GRU': int8 quantization does not support clip" in r.stderr
    assert "Traceback" not in r.stderr
