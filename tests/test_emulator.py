"""Generated code running on an emulated Cortex-M4 (QEMU mps2-an386), compared with onnxruntime,
the ONNX model zoo's test data and tinyc's reference interpreter."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.emulator import run_on_target
from tinyc.frontend.onnx import load
from tinyc.targets import get_target

from .conftest import ROOT, need_arm, ort_run, rel_err, run_cli, shared_model

pytestmark = pytest.mark.emulator


@pytest.fixture(autouse=True)
def _arm():
    need_arm()


@pytest.mark.parametrize("dataset", [0, 1, 2])
def test_mnist8_verify_on_cortex_m4_matches_zoo_test_data(dataset, tmp_path):
    path = shared_model("mnist-8/model.onnx")
    data = path.parent / f"test_data_set_{dataset}"
    r = run_cli("verify", str(path), "--target", "cortex-m4", "--input", str(data), "--build-dir", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vs expected data" in r.stdout and "PASS" in r.stdout
    # And independently of verify's own comparison: the emulator's bytes against output_0.pb.
    g = load(path)
    x = numpy_helper.to_array(onnx.load_tensor(str(data / "input_0.pb")))
    want = numpy_helper.to_array(onnx.load_tensor(str(data / "output_0.pb")))
    res = run_on_target(generate(g, get_target("cortex-m4")), get_target("cortex-m4"), tmp_path / "fw", [{"Input3": x}])
    assert rel_err(res.outputs[0][g.outputs[0]], want) <= 1e-4


def _real_or_random(rel: str, g, count: int):
    rng = np.random.default_rng(11)
    name = g.inputs[0]
    if rel.startswith("mlperf-tiny/ad"):
        ad = np.load(shared_model("mlperf-tiny/samples.npz"))["ad_float"]
        return [{name: ad[i][None, :]} for i in range(count)]
    return [{name: rng.standard_normal(g.tensors[name].shape).astype(np.float32)} for _ in range(count)]


@pytest.mark.parametrize("rel", ["mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx", "mlperf-tiny/ad_float.onnx",
                                 "hello-world/hello_world_float.onnx"])
def test_float_models_on_cortex_m4_match_onnxruntime(rel, tmp_path):
    path = shared_model(rel)
    g = load(path)
    samples = _real_or_random(rel, g, 4)
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, samples)
    for feeds, got in zip(samples, res.outputs):
        want = ort_run(path, feeds)
        ref = interpreter.run(g, feeds)
        for name, w in zip(g.outputs, want):
            assert rel_err(got[name], w) <= 1e-4
            assert rel_err(got[name], ref[name]) <= 1e-4


@pytest.mark.parametrize("rel", ["mlperf-tiny/kws_float.onnx", "mlperf-tiny/ad_float.onnx"])
def test_verify_cli_passes_on_cortex_m4(rel):
    r = run_cli("verify", str(shared_model(rel)), "--target", "cortex-m4", "--samples", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max rel error" in r.stdout and "PASS" in r.stdout


def test_verify_exit_code_1_on_mismatch():
    # No tolerance at all: single-precision sums on the target differ from the float64 reference
    # in the last bits, which verify must report as a mismatch.
    r = run_cli("verify", str(shared_model("mlperf-tiny/kws_float.onnx")), "--target", "cortex-m4", "--rtol", "0")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH" in r.stdout and "FAIL" in r.stdout


def test_missing_cross_compiler_says_how_to_install(tmp_path):
    r = run_cli("verify", str(ROOT / "examples/digits/digits_mlp.onnx"), "--target", "cortex-m4",
                env={"PATH": str(tmp_path)})
    assert r.returncode == 2
    assert "arm-none-eabi-gcc not found" in r.stderr and "apt-get install" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_digits_example_accuracy_on_cortex_m4(tmp_path):
    model_path = ROOT / "examples/digits/digits_mlp.onnx"
    data = np.load(ROOT / "examples/digits/digits_test.npz")
    g = load(model_path)
    samples = [{"pixels": p[None, :]} for p in data["pixels"]]
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, samples)
    pred = np.array([o["probs"][0].argmax() for o in res.outputs])
    ref = np.array([interpreter.run(g, s)["probs"][0].argmax() for s in samples])
    ort = np.array([ort_run(model_path, s)[0][0].argmax() for s in samples])
    np.testing.assert_array_equal(pred, ort)
    np.testing.assert_array_equal(pred, ref)
    assert np.mean(pred == data["labels"]) >= 0.95
