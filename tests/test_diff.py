"""tinyc diff: per-layer float vs int8 reference vs the generated C on the (emulated) target."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import ROOT, need_arm, ort_run, run_cli, shared_model
from tinyc import interpreter
from tinyc.compiler import prepare
from tinyc.diff import compare_target, float_twin, layer_errors, run_debug_build, summarize, _sqnr
from tinyc.targets import get_target


def _kws_sample(tmp_path):
    samples = np.load(shared_model("mlperf-tiny/samples.npz"))
    path = tmp_path / "x.npz"
    np.savez(path, input_1=samples["kws_int8"])
    return path, {"input_1": samples["kws_int8"].reshape(1, 49, 10, 1)}


def inject_fault(code: str, layer: int, delta: int = 1) -> str:
    """A deliberately wrong kernel: layer ``layer`` changes one of its outputs by ``delta`` LSB
    after computing them (the end of its function in the generated C)."""
    m = re.search(r"static TINYC_LAYER void (layer%d_\w+)\([^)]*\)\n\{\n" % layer, code)
    assert m, f"layer {layer} not found in the generated C"
    end = code.index("\n}\n", m.end())
    return code[:end] + f"\n    out0[7] = (int8_t)(out0[7] + {delta}); /* injected fault */" + code[end:]


@pytest.mark.parametrize("layer", [1, 4, 11])
def test_fault_injected_into_one_kws_layer_is_named_first_divergence(layer, tmp_path):
    """The int8 KWS model on the emulated M4 with one layer's generated C made wrong: tinyc diff
    names exactly that layer as the first divergence, and every layer before it as equal."""
    need_arm()
    model = shared_model("mlperf-tiny/kws_int8.onnx")
    _, feeds = _kws_sample(tmp_path)
    g = prepare(model, progress=False).graph
    target = get_target("cortex-m4")
    rows, refs, _ = layer_errors(g, [feeds])

    def edit(m):
        m.files[f"{m.name}.c"] = inject_fault(m.files[f"{m.name}.c"], layer)

    dumps = run_debug_build(g, target, tmp_path / "build", [feeds], name="kws", edit=edit)
    compare_target(rows, refs, dumps, rtol=1e-4)
    s = summarize(rows)
    assert s["first_divergence"]["index"] == layer
    assert s["first_divergence"]["name"] == g.nodes[layer].name
    assert all(r.target_equal for r in rows if r.index < layer and not r.view)
    faulty = next(r for r in rows if r.index == layer)
    assert faulty.target_mismatches == 1 and faulty.target_max_diff in (1, 255)


def test_diff_cli_on_kws_int8_every_layer_equal_and_json(tmp_path):
    """Without a fault every layer on the M4 equals the reference; the JSON names the layer where
    quantization error grows most, and the last layer's SQNR is the model output's SQNR against
    the dequantized graph computed independently here."""
    need_arm()
    model = shared_model("mlperf-tiny/kws_int8.onnx")
    x, feeds = _kws_sample(tmp_path)
    r = run_cli("diff", str(model), "-t", "cortex-m4", "-i", str(x), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    code_layers = [l for l in d["layers"] if not l["view"]]
    assert len(code_layers) == 12 and all(l["target_equal"] for l in code_layers)
    assert d["first_divergence"] is None
    assert d["largest_error_growth"]["index"] in range(13)
    g = prepare(model, progress=False).graph
    out = g.outputs[0]
    q = interpreter.run(g, feeds)[out]
    t = g.tensors[out].quant
    deq = (q.astype(np.float64) - float(t.zero_point)) * float(t.scale)
    f = interpreter.run(float_twin(g), {"input_1": ((feeds["input_1"].astype(np.float64) - float(
        g.tensors["input_1"].quant.zero_point)) * float(g.tensors["input_1"].quant.scale)).astype(np.float32)})[out]
    assert d["layers"][-1]["sqnr_db"] == pytest.approx(_sqnr(f, deq), abs=1e-6)
    # the table a person reads
    r = run_cli("diff", str(model), "-t", "cortex-m4", "-i", str(x))
    assert r.returncode == 0 and "first divergence on cortex-m4: none" in r.stdout
    assert "quantization error grows most at layer" in r.stdout


def test_float_twin_of_a_tinyc_quantized_model_tracks_onnxruntime(tmp_path):
    """The float column is the float network (with the int8 weights): on the digits CNN quantized
    by tinyc its output is within weight-quantization error of onnxruntime on the float model,
    and closer to it than the int8 output is."""
    model = ROOT / "examples" / "digits" / "digits_cnn.onnx"
    pixels = np.load(ROOT / "examples" / "digits" / "digits_calib.npz")["pixels"]
    np.savez(tmp_path / "calib.npz", image=pixels.reshape(-1, 1, 1, 8, 8))  # the CNN takes 8x8 images
    p = prepare(model, quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    samples = p.calibration[:40]
    ort = np.stack([ort_run(model, s)[0] for s in samples])
    out = p.graph.outputs[0]
    twin = np.stack([interpreter.run(float_twin(p.graph), s)[out] for s in samples])
    int8 = np.stack([interpreter.run(p.graph, s)[out] for s in samples])
    assert _sqnr(ort, twin) > 35.0
    assert _sqnr(ort, twin) > _sqnr(ort, int8)


def test_diff_float_model_on_host_and_a_layer_changed(tmp_path):
    """A float model has no int8 column; the host build is compared per layer at the tolerance,
    and a changed layer is found there too."""
    model = shared_model("mnist-8/model.onnx")
    g = prepare(model, progress=False).graph
    from tinyc.data import random_samples

    feeds = random_samples(g, 2, 0)
    rows, refs, _ = layer_errors(g, feeds)
    assert all(r.sqnr_db is None for r in rows)
    target = get_target("host")
    dumps = run_debug_build(g, target, tmp_path / "ok", feeds, name="mnist")
    compare_target(rows, refs, dumps, 1e-4)
    assert summarize(rows)["first_divergence"] is None
    conv = next(i for i, n in enumerate(g.nodes) if n.op == "Conv")

    def edit(m):
        c = m.files[f"{m.name}.c"]
        mm = re.search(r"static TINYC_LAYER void (layer%d_\w+)\([^)]*\)\n\{\n" % conv, c)
        end = c.index("\n}\n", mm.end())
        m.files[f"{m.name}.c"] = c[:end] + "\n    out0[3] += 1.0f;" + c[end:]

    rows, refs, _ = layer_errors(g, feeds)
    dumps = run_debug_build(g, target, tmp_path / "bad", feeds, name="mnist", edit=edit)
    compare_target(rows, refs, dumps, 1e-4)
    assert summarize(rows)["first_divergence"]["index"] == conv


def test_diff_errors_are_one_line(tmp_path):
    r = run_cli("diff", str(tmp_path / "missing.onnx"), "-t", "host")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr


@pytest.mark.parametrize("model", ["conv/conv0", "transpose_conv/transpose_conv1", "add/add0"])
def test_16x8_layers_have_an_error_against_the_float_twin(model, tmp_path):
    """A 16x8 graph (int16 activations, int64 bias) in diff and the HTML report: the float twin
    dequantizes the int64 bias too (it once kept it and the twin's Conv failed on float input), and
    int16 activations sit far closer to float than int8 (> 60 dB on random inputs)."""
    g = prepare(shared_model(f"tflm/seanet/{model}.tflite"), progress=False).graph
    rng = np.random.default_rng(0)
    feeds = [{x: (rng.standard_normal(g.tensors[x].shape) * 3000).astype(np.int16) for x in g.inputs
              if g.tensors[x].dtype == "s16"} for _ in range(2)]
    out_shape = np.array(g.tensors[g.outputs[0]].shape, np.int32)  # (TRANSPOSE_CONV's output-shape input)
    feeds = [dict(f, **{x: out_shape for x in g.inputs if x not in f}) for f in feeds]
    rows, _, _ = layer_errors(g, feeds)
    computed = [r for r in rows if not r.view]
    assert computed and all(r.dtype == "s16" and r.sqnr_db > 60 for r in computed), [(r.op, r.sqnr_db) for r in rows]
    r = run_cli("compile", str(shared_model(f"tflm/seanet/{model}.tflite")), "--target", "host", "--report",
                "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "report.html").exists()
