""".tflite input: every operator the TFLite frontend reads (int8 and float32) and the shared
TFLite models against TFLite Micro (the `tflite-micro` package, run on the same file), in the
reference interpreter and in generated C; the same kernels and arena as the models' ONNX form;
clean refusals."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.errors import TinycError, UnsupportedError
from tinyc.targets import get_target
from tinyc.verify import compare

from . import tflite_cases
from .conftest import need_arm, need_tools, run_cli, shared_model
from .tflite_builders import run_tflm_all

CASES = tflite_cases.cases()
MODELS = {
    "hello_world": "hello-world/hello_world_int8",
    "kws": "mlperf-tiny/kws_int8",
    "ic": "mlperf-tiny/ic_int8",
    "ad": "mlperf-tiny/ad_int8",
}
RTOL = 1e-5  # float: relative to the output's largest magnitude (tinyc verify's measure)


def _random_feeds(g, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feed = {}
        for name in g.inputs:
            t = g.tensors[name]
            feed[name] = (rng.integers(-128, 128, t.shape).astype(np.int8) if t.dtype == "s8"
                          else (rng.standard_normal(t.shape) * 2).astype(np.float32))
        out.append(feed)
    return out


def _assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    want = want.reshape(got.shape)
    if np.issubdtype(want.dtype, np.integer):
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        c = compare(what, got, want, RTOL)
        assert c.ok, c.describe()


def _case_graph(name: str, tmp_path):
    data = CASES[name]()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    return data, load_graph(path)


@pytest.mark.parametrize("name", list(CASES))
def test_single_operator_equals_tflite_micro(name, tmp_path):
    data, g = _case_graph(name, tmp_path)
    assert not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes
                   if n.inputs[0] not in g.inputs and n.outputs[0] not in g.outputs)
    feeds = _random_feeds(g, 20)
    want = run_tflm_all(data, [[f[n] for n in g.inputs] for f in feeds])
    for k, (f, w) in enumerate(zip(feeds, want)):
        _assert_same(interpreter.run(g, f)[g.outputs[0]], w, f"{name} sample {k}")


@pytest.mark.parametrize("name", list(CASES))
def test_single_operator_host_c_equals_tflite_micro(name, tmp_path):
    need_tools("cc")
    data, g = _case_graph(name, tmp_path)
    feeds = _random_feeds(g, 20)
    want = run_tflm_all(data, [[f[n] for n in g.inputs] for f in feeds])
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path / "fw", feeds)
    for k, (got, w) in enumerate(zip(res.outputs, want)):
        _assert_same(got[g.outputs[0]], w, f"{name} sample {k} (host C)")


@pytest.mark.emulator
def test_single_operators_cortex_m4_equal_tflite_micro(tmp_path):
    """Every single-operator model on the emulated Cortex-M4 (one firmware each)."""
    need_arm()
    target = get_target("cortex-m4")
    for name in CASES:
        data, g = _case_graph(name, tmp_path)
        feeds = _random_feeds(g, 20)
        want = run_tflm_all(data, [[f[n] for n in g.inputs] for f in feeds])
        res = run_on_target(generate(g, target), target, tmp_path / name, feeds)
        for k, (got, w) in enumerate(zip(res.outputs, want)):
            _assert_same(got[g.outputs[0]], w, f"{name} sample {k} (cortex-m4)")


def _model_feeds(key: str, g, count: int = 20) -> list[dict[str, np.ndarray]]:
    """The real samples shared/ has (KWS, AD) and ``count`` random int8 inputs."""
    name = g.inputs[0]
    t = g.tensors[name]
    out = []
    samples = np.load(shared_model("mlperf-tiny/samples.npz"))
    if key == "kws":
        out.append({name: samples["kws_int8"].reshape(t.shape)})
    if key == "ad":
        q = t.quant
        for row in samples["ad_float"][:10]:
            out.append({name: np.clip(np.round(row / float(q.scale)) + int(q.zero_point), -128, 127)
                        .astype(np.int8).reshape(t.shape)})
    rng = np.random.default_rng(17)
    return out + [{name: rng.integers(-128, 128, t.shape).astype(np.int8)} for _ in range(count)]


def _tflm_file(key: str, feeds) -> list[np.ndarray]:
    data = shared_model(MODELS[key] + ".tflite").read_bytes()
    return run_tflm_all(data, [list(f.values()) for f in feeds], arena=512 * 1024)


@pytest.mark.parametrize("key", list(MODELS))
def test_model_reference_equals_tflite_micro(key):
    g = load_graph(shared_model(MODELS[key] + ".tflite"))
    feeds = _model_feeds(key, g)
    for k, (f, w) in enumerate(zip(feeds, _tflm_file(key, feeds))):
        _assert_same(interpreter.run(g, f)[g.outputs[0]], w, f"{key} sample {k}")


@pytest.mark.emulator
@pytest.mark.parametrize("key", list(MODELS))
def test_model_cortex_m4_equals_tflite_micro(key, tmp_path):
    need_arm()
    g = load_graph(shared_model(MODELS[key] + ".tflite"))
    feeds = _model_feeds(key, g)
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, feeds)
    for k, (got, w) in enumerate(zip(res.outputs, _tflm_file(key, feeds))):
        _assert_same(got[g.outputs[0]], w, f"{key} sample {k} (cortex-m4)")


def _kernels(path, target) -> list[tuple]:
    """(op, kernel, variant, params) of every node after select-kernels, and the arena bytes."""
    seen = {}

    def keep(step, graph):
        if step == "select-kernels":
            seen["g"] = graph

    from tinyc.pipeline import Build

    b = Build(path, target, after_step=keep, patch="off")  # (layer by layer: the kernels of the layers)
    report = b.model.report
    g = seen["g"]
    rows = [(n.op, n.attrs.get("kernel"), n.attrs.get("variant"), repr(n.attrs.get("params"))) for n in g.nodes]
    return rows, report["arena_bytes"]


@pytest.mark.parametrize("key", ["kws", "ic", "ad"])
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_same_kernels_and_arena_as_the_onnx_form(key, target):
    t = get_target(target)
    tfl, arena_tfl = _kernels(shared_model(MODELS[key] + ".tflite"), t)
    onx, arena_onnx = _kernels(shared_model(MODELS[key] + ".onnx"), t)
    assert sorted(tfl) == sorted(onx)  # (IC's residual branches may come in another order)
    assert arena_tfl == arena_onnx


def test_int8_transpose_conv_is_refused(tmp_path):
    p = tmp_path / "tc.tflite"
    p.write_bytes(tflite_cases.transpose_conv(True))
    with pytest.raises(UnsupportedError, match=r"TRANSPOSE_CONV \(operator 0\): int8 TRANSPOSE_CONV is not supported"):
        load_graph(p)


def test_cli_compiles_tflite_and_dump_ir_shows_the_file_names(tmp_path):
    need_tools("cc")
    r = run_cli("compile", str(shared_model(MODELS["hello_world"] + ".tflite")), "--target", "host",
                "-o", str(tmp_path / "build"), "--dump-ir", "after=import")
    assert r.returncode == 0, r.stderr
    assert '%"serving_default_dense_input:0" : s8[1,1]' in r.stdout
    assert (tmp_path / "build" / "hello_world_int8.c").exists()


@pytest.mark.slow
def test_mobilenet_v2_224_host_c_equals_tflite_micro(tmp_path):
    """MobileNetV2 224x224 int8 from PyTorch through ONNX into TFLite (PAD, MEAN, TRANSPOSE, an NCHW
    input; 300 M MACs): generated C on the host, two random inputs."""
    need_tools("cc")
    path = shared_model("tflm/mobilenet_v2_pytorch/mobilenet_v2_quantized_1x3x224x224.tflite")
    g = load_graph(path)
    feeds = _random_feeds(g, 2)
    want = run_tflm_all(path.read_bytes(), [list(f.values()) for f in feeds], arena=8 * 1024 * 1024)
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path, feeds)
    for k, (got, w) in enumerate(zip(res.outputs, want)):
        _assert_same(got[g.outputs[0]], w, f"mobilenet_v2 sample {k} (host C)")


def test_mobilenet_v2_224_check_says_by_how_much_it_misses_cortex_m55():
    r = run_cli("check", str(shared_model("tflm/mobilenet_v2_pytorch/mobilenet_v2_quantized_1x3x224x224.tflite")),
                "--target", "cortex-m55")
    # (its first stages in row bands, tests/test_patch.py; layer by layer the arena is 1,404,960 B)
    assert "RAM   303,424 B (arena 151,680 B" in r.stdout and "of 524,288 B" in r.stdout, r.stdout + r.stderr


@pytest.mark.emulator
def test_diff_and_report_take_tflite(tmp_path):
    """Every command takes .tflite: diff (layer by layer on the emulated target) and the HTML report,
    with the file's tensor names."""
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    path = shared_model("mlperf-tiny/kws_int8.tflite")
    r = run_cli("diff", str(path), "-t", "cortex-m4")
    assert r.returncode == 0, r.stderr
    assert "first divergence on cortex-m4: none, every layer equals the reference" in r.stdout
    r = run_cli("report", str(path), "-t", "cortex-m4", "-o", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    assert "functional_1/dense/BiasAdd" in (tmp_path / "r.html").read_text()


def test_a_constant_shared_by_operators_with_different_input_scales(tmp_path):
    """Two CONV_2D share their weights and their int32 bias but read inputs of different scales:
    TFLite adds the bias's integers in each reader's units (input scale x weight scale), so each
    reader gets its own; a tensor read by several operators stays one tensor otherwise."""
    import copy

    from .tflite_builders import _schema

    flatbuffers, fb = _schema()
    m = fb.ModelT.InitFromPackedBuf(tflite_cases.conv(True), 0)
    sg = m.subgraphs[0]
    x2, y2 = copy.deepcopy(sg.tensors[0]), copy.deepcopy(sg.tensors[3])
    x2.name, x2.quantization.scale, x2.quantization.zeroPoint = "x2", [0.2], [-7]
    y2.name, y2.quantization.scale, y2.quantization.zeroPoint = "y2", [0.3], [2]
    sg.tensors += [x2, y2]
    op2 = copy.deepcopy(sg.operators[0])
    op2.inputs, op2.outputs = [4, 1, 2], [5]
    sg.operators.append(op2)
    sg.inputs, sg.outputs = [0, 4], [5, 3]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path = tmp_path / "shared.tflite"
    path.write_bytes(bytes(b.Output()))
    rng = np.random.default_rng(0)
    feeds = [[rng.integers(-128, 128, (1, 9, 9, 4)).astype(np.int8) for _ in range(2)] for _ in range(3)]
    want = run_tflm_all(path.read_bytes(), feeds)  # output 0: y2, the reader whose scale the bias does not say
    g = load_graph(path)
    assert sum(n.inputs[1] == g.nodes[0].inputs[1] for n in g.nodes if n.op == "Conv") == 2  # one weight tensor
    for f, w in zip(feeds, want):
        _assert_same(interpreter.run(g, dict(zip(g.inputs, f)))["y2"], w, "y2")
