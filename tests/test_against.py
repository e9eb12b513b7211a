"""verify/diff --against: the generated code's outputs against a runtime tinyc did not write
(TFLite Micro through the `tflite-micro` package, onnxruntime)."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import ROOT, need_arm, ort_run, run_cli, shared_model
from tests.test_diff import inject_fault
from tests.test_int8 import _ort_cnn
from tinyc import interpreter
from tinyc.cli import main
from tinyc.compiler import load_graph, prepare
from tinyc.data import random_samples

KWS, AD = "mlperf-tiny/kws_int8", "mlperf-tiny/ad_int8"


def _real_inputs(key: str, tmp_path):
    """The real samples of samples.npz as an input file: KWS's MFCC, AD's 40 log-mel windows
    quantized with the model's input parameters."""
    z = np.load(shared_model("mlperf-tiny/samples.npz"))
    if key == KWS:
        x = z["kws_int8"]
    else:
        q = load_graph(shared_model(AD + ".onnx")).tensors["input_1"].quant
        x = np.clip(np.round(z["ad_float"] / float(q.scale)) + int(q.zero_point), -128, 127).astype(np.int8)
    np.savez(tmp_path / "x.npz", input_1=x)
    return tmp_path / "x.npz"


def _tflm_outputs(path, inputs: np.ndarray) -> np.ndarray:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    it = runtime.Interpreter.from_file(str(path))
    outs = []
    for x in inputs:
        it.set_input(x[None], 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return np.stack(outs)


@pytest.mark.parametrize("key", [KWS, AD])
def test_int8_models_equal_tflite_micro_on_host(key, tmp_path):
    pytest.importorskip("tflite_micro")
    tflite = shared_model(key + ".tflite")
    for inputs in (["-i", str(_real_inputs(key, tmp_path))], ["--samples", "30"]):
        r = run_cli("verify", str(shared_model(key + ".onnx")), "-t", "host", *inputs, "--against", f"tflm={tflite}")
        assert r.returncode == 0, r.stdout + r.stderr
        line = next(l for l in r.stdout.splitlines() if "vs TFLite Micro" in l)
        assert f"({tflite.name}, tflite-micro package): bit-exact" in line and line.endswith("ok")
        assert r.stdout.splitlines()[-1] == f"PASS (reference and TFLite Micro ({tflite.name}, tflite-micro package))"


@pytest.mark.emulator
def test_kws_on_cortex_m4_equals_tflite_micro(tmp_path):
    need_arm()
    pytest.importorskip("tflite_micro")
    r = run_cli("verify", str(shared_model(KWS + ".onnx")), "-t", "cortex-m4", "--samples", "5",
                "--against", f"tflm={shared_model(KWS + '.tflite')}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "target: cortex-m4"
    assert "in qemu-system-arm -M mps2-an386" in r.stdout
    assert "vs TFLite Micro (kws_int8.tflite, tflite-micro package): bit-exact" in r.stdout


def test_hello_world_float_against_onnxruntime(tmp_path):
    model = shared_model("hello-world/hello_world_float.onnx")
    x = np.linspace(0, 2 * np.pi, 50, dtype=np.float32).reshape(50, 1, 1)
    np.save(tmp_path / "x.npy", x)
    r = run_cli("verify", str(model), "-i", str(tmp_path / "x.npy"), "--against", "onnxruntime")
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(l for l in r.stdout.splitlines() if "vs onnxruntime " in l)
    assert "(hello_world_float.onnx, CPU): max abs error" in line and line.endswith("(over 50 samples)  ok")
    assert r.stdout.splitlines()[-1].startswith("PASS (reference and onnxruntime ")
    # the reported error is within --rtol of onnxruntime's own outputs
    want = np.array([ort_run(model, {"serving_default_dense_input:0": s})[0] for s in x]).ravel()
    assert float(line.split("max abs error ")[1].split(",")[0]) <= 1e-4 * np.abs(want).max()


def _with_fault(monkeypatch, layer: int, delta: int):
    """Every model generated from now on has a wrong kernel in ``layer`` (tests.test_diff)."""
    import tinyc.codegen as codegen

    real = codegen.generate

    def generate(*args, **kwargs):
        m = real(*args, **kwargs)
        m.files[f"{m.name}.c"] = inject_fault(m.files[f"{m.name}.c"], layer, delta)
        return m

    monkeypatch.setattr(codegen, "generate", generate)


def test_fault_in_generated_c_fails_against_tflite_micro(monkeypatch, capsys, tmp_path):
    """KWS's softmax (layer 12) made wrong by 3 LSB in one value: verify fails, naming the oracle."""
    pytest.importorskip("tflite_micro")
    _with_fault(monkeypatch, 12, 3)
    tflite = shared_model(KWS + ".tflite")
    code = main(["verify", str(shared_model(KWS + ".onnx")), "-i", str(_real_inputs(KWS, tmp_path)),
                 "--against", f"tflm={tflite}"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-1].startswith("FAIL against TFLite Micro (kws_int8.tflite, tflite-micro package): output 'Identity' "
                              "1 of 12 values differ in 1 of 1 sample(s), max 3 LSB")


def test_fault_in_generated_c_fails_against_onnxruntime(monkeypatch, capsys, tmp_path):
    """An onnxruntime-quantized CNN's last int8 layer made wrong by 4 LSB: beyond the 1 LSB bound."""
    path = _ort_cnn(tmp_path)
    g = load_graph(path)
    gemm = g.nodes[7]
    assert gemm.op == "Gemm" and g.nodes[8].inputs == gemm.outputs
    q = g.tensors[gemm.outputs[0]].quant
    want = 0
    for s in random_samples(g, 3, 0):  # verify's inputs
        v = interpreter.run(g, s, keep_all=True)[gemm.outputs[0]].ravel().astype(np.int64)
        v[7] = (v[7] + 4 + 128) % 256 - 128  # the fault, wrapping around as the int8 cast in C does
        y = (v - int(q.zero_point)) * float(q.scale)
        want = max(want, int(np.rint(np.abs(y - ort_run(path, s)[0].ravel()).max() / float(q.scale))))
    _with_fault(monkeypatch, 7, 4)
    # (layer by layer: the fault goes into the function of node 7)
    assert main(["verify", str(path), "--samples", "3", "--against", "onnxruntime", "--patch", "off"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "target: cortex-m4 (default)"
    ref_line = next(line for line in out if "vs reference" in line and "ELF" not in line)
    assert "MISMATCH" in ref_line
    assert out[-1].startswith("FAIL against onnxruntime ") and "(cnn_q.onnx, CPU): output 'y'" in out[-1]
    assert f"max {want} LSB" in out[-1] and want > 1


def _wrong_kws_tflite(tmp_path):
    """kws_int8.tflite with one bias of its last dense layer changed: the same I/O, other outputs."""
    data = shared_model(KWS + ".tflite").read_bytes()
    m = onnx.load(str(shared_model(KWS + ".onnx")))
    bias = next(numpy_helper.to_array(i) for i in m.graph.initializer
                if i.name == "functional_1/dense/BiasAdd/ReadVariableOp/resource")
    assert data.count(bias.tobytes()) == 1
    wrong = bias.copy()
    wrong[3] += 20000
    path = tmp_path / "kws_wrong.tflite"
    path.write_bytes(data.replace(bias.tobytes(), wrong.tobytes()))
    return path


def test_wrong_oracle_file_fails_verify_and_diff_counts_the_differences(tmp_path):
    pytest.importorskip("tflite_micro")
    wrong = _wrong_kws_tflite(tmp_path)
    model = str(shared_model(KWS + ".onnx"))
    r = run_cli("verify", model, "--samples", "10", "--against", f"tflm={wrong}")
    assert r.returncode == 1
    assert "vs reference: bit-exact" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("FAIL against TFLite Micro (kws_wrong.tflite, tflite-micro package)")
    # diff --json: the counts are TFLite Micro's own (right file against wrong file) on the same inputs
    r = run_cli("diff", model, "-t", "host", "--samples", "10", "--seed", "4", "--json", "--against", f"tflm={wrong}")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["first_divergence"] is None
    xs = np.stack([s["input_1"][0] for s in random_samples(load_graph(model), 10, 4)])
    right, bad = _tflm_outputs(shared_model(KWS + ".tflite"), xs), _tflm_outputs(wrong, xs)
    v = d["against"]["outputs"][0]
    assert d["against"]["oracle"] == "TFLite Micro (kws_wrong.tflite, tflite-micro package)" and not d["against"]["ok"]
    assert v["beyond"] == np.count_nonzero(right != bad) > 0
    assert v["max_diff"] == np.abs(right.astype(int) - bad.astype(int)).max()
    # per layer (the names tf2onnx kept from the .tflite): equal up to the dense layer whose bias changed
    layers = d["against"]["layers"]
    code = [l for l in d["layers"] if not l["view"]]
    assert [l["index"] for l in layers] == [l["index"] for l in code] and len(code) == 12
    assert all(l["mode"] == "exact" for l in layers)
    differ = [l["index"] for l in layers if l["differing"]]
    assert d["layers"][differ[0]]["op"] == "Gemm" and differ == [11, 12]


def test_missing_file_package_or_bad_oracle_is_one_line_exit_2(tmp_path):
    model = str(shared_model(KWS + ".onnx"))
    cases = {
        ("--against", f"tflm={tmp_path / 'none.tflite'}"): "--against tflm: file not found",
        ("--against", "tflm"): "--against tflm: give the original TFLite file, --against tflm=FILE.tflite",
        ("--against", f"tflm={model}"): "is not a TFLite flatbuffer",
        ("--against", "tvm"): "--against tvm: choose onnxruntime or tflm",
        ("--against", f"tflm={shared_model(AD + '.tflite')}"): "input 0 is int8 [1, 640] in ad_int8.tflite but "
                                                               "'input_1' is int8 [1, 49, 10, 1] in the compiled model",
    }
    for args, message in cases.items():
        for cmd in ("verify", "diff"):
            r = run_cli(cmd, model, "-t", "host", *args)
            assert r.returncode == 2 and r.stdout.startswith("target: ") and len(r.stdout.splitlines()) == 1, \
                r.stdout + r.stderr
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("tinyc: error: ") and message in r.stderr
    # without the package (an import that fails, as on a machine without it)
    stub = tmp_path / "stub" / "tflite_micro"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named tflite_micro')\n")
    r = run_cli("verify", model, "--against", f"tflm={shared_model(KWS + '.tflite')}",
                env={"PYTHONPATH": f"{ROOT}{os.pathsep}{stub.parent}"})
    assert r.returncode == 2 and r.stdout.startswith("target: ") and len(r.stdout.splitlines()) == 1
    assert r.stderr == "tinyc: error: --against tflm needs the tflite-micro package: pip install tflite-micro\n"


def test_lsb_bound_on_an_onnxruntime_quantized_model(tmp_path):
    """onnxruntime requantizes in float: the CNN it quantized is within 1 LSB (passes), and with
    --lsb 0 fails with exactly the differences between the reference and onnxruntime."""
    path = _ort_cnn(tmp_path)
    r = run_cli("verify", str(path), "--samples", "40", "--against", "onnxruntime")
    assert r.returncode == 0, r.stdout + r.stderr
    r0 = run_cli("verify", str(path), "--samples", "40", "--against", "onnxruntime", "--lsb", "0")
    assert r0.returncode == 1

    g = load_graph(path)
    scale = float(g.tensors[g.nodes[-1].inputs[0]].quant.scale)
    lsb = np.array([np.rint(np.abs(interpreter.run(g, s)["y"] - ort_run(path, s)[0]) / scale)
                    for s in random_samples(g, 40, 0)])
    assert lsb.max() == 1
    assert (f"{np.count_nonzero(lsb)} of 400 values differ, {np.count_nonzero(lsb)} by more than 0 LSB "
            f"(in {np.count_nonzero(lsb.reshape(40, -1).any(1))} of 40 sample(s)), max 1 LSB") in r0.stdout
    assert "FAIL against onnxruntime" in r0.stdout.splitlines()[-1]
    # diff: every layer onnxruntime computes too (names kept, NHWC ones transposed back) is within 1 LSB
    r = run_cli("diff", str(path), "-t", "host", "--samples", "10", "--json", "--against", "onnxruntime")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    layers = {l["index"]: l for l in d["against"]["layers"]}
    code = [l["index"] for l in d["layers"] if l["op"] in ("Conv", "MaxPool", "Gemm")]
    assert len(code) == 5 and set(code) <= set(layers)
    assert all(layers[i]["mode"] == "lsb" and layers[i]["max_diff"] <= 1 for i in layers)
    assert any(layers[i]["max_diff"] == 1 for i in code)


def test_model_quantized_by_tinyc_is_judged_by_sqnr_on_held_out_inputs(tmp_path):
    """--quantize int8 against onnxruntime compares with the float model: the SQNR printed is the
    one of the int8 reference against onnxruntime, computed here; it must reach --min-sqnr."""
    model = ROOT / "examples" / "digits" / "digits_cnn.onnx"
    calib = tmp_path / "calib.npz"  # the CNN takes [1, 1, 8, 8] images: N of them stacked
    np.savez(calib, image=np.load(ROOT / "examples" / "digits" / "digits_calib.npz")["pixels"].reshape(-1, 1, 1, 8, 8))
    pixels = np.load(ROOT / "examples" / "digits" / "digits_test.npz")["pixels"][:100]
    np.save(tmp_path / "x.npy", pixels.reshape(-1, 1, 1, 8, 8))
    args = ["verify", str(model), "--quantize", "int8", "--calib", str(calib), "--against", "onnxruntime"]
    r = run_cli(*args, "-i", str(tmp_path / "x.npy"))
    assert r.returncode == 0, r.stdout + r.stderr
    g = prepare(model, quantize="int8", calib=calib, progress=False).graph
    name, out = g.inputs[0], g.outputs[0]
    shape = g.tensors[name].shape
    f = np.stack([ort_run(model, {name: p.reshape(shape)})[0] for p in pixels]).astype(np.float64)
    q = g.tensors[out].quant
    got = np.stack([interpreter.run(g, {name: p.reshape(shape)})[out] for p in pixels]).reshape(f.shape)
    if q is not None and got.dtype.kind != "f":
        got = (got.astype(np.float64) - float(q.zero_point)) * float(q.scale)
    sqnr = 10 * np.log10(np.sum(f ** 2) / np.sum((f - got) ** 2))
    top1 = np.mean(f.reshape(100, -1).argmax(1) == got.reshape(100, -1).argmax(1))
    line = next(l for l in r.stdout.splitlines() if "vs onnxruntime" in l)
    assert f"SQNR {sqnr:.1f} dB" in line and f"top-1 agreement {top1:.1%}" in line and line.endswith("ok")
    assert sqnr > 30
    r = run_cli(*args, "-i", str(tmp_path / "x.npy"), "--min-sqnr", "60")
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith("FAIL against onnxruntime")
    assert "(bound: SQNR at least 60 dB (--min-sqnr))" in r.stdout
    r = run_cli(*args)  # random inputs say nothing about a calibrated model
    assert r.returncode == 2 and "give representative held-out inputs with -i" in r.stderr
