"""A transformer block as PyTorch exports it (examples/transformer: one nn.TransformerEncoderLayer,
two heads, trained on digits): every exporter's graph compiles in float and matches onnxruntime on
every target that runs; quantized by tinyc it keeps >= 99% top-1 agreement and >= 30 dB SQNR
against float on the held-out split, and the C runs bit-exact with the reference."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph, prepare
from tinyc.data import quantize_feeds
from tinyc.elf import Elf
from tinyc.emulator import run_on_target
from tinyc.targets import all_targets, get_target
from tinyc.toolchain import compile_object

from .conftest import ROOT, need_tools, ort_run

HERE = ROOT / "examples" / "transformer"
EXPORTS = ["digits_transformer_opset17.onnx", "digits_transformer_opset16.onnx", "digits_transformer_dynamo.onnx"]
RUNNABLE = ["host"] + [n for n, t in all_targets().items() if t.emulator.kind == "qemu"]
XTENSA = [n for n, t in all_targets().items() if t.arch == "xtensa"]
SHAPE_OPS = {"Shape", "Mod", "Where", "Equal", "Range", "Cast", "ConstantOfShape", "Expand", "Concat",
             "Slice", "Unsqueeze", "Erf", "Pow", "Sqrt", "Div"}


def _test_rows(n: int | None = None) -> np.ndarray:
    rows = np.load(HERE / "transformer_test.npz")["rows"]
    return rows if n is None else rows[:n]


def _sqnr(f: np.ndarray, q: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(f.astype(np.float64) ** 2) / np.sum((f.astype(np.float64) - q) ** 2)))


@pytest.mark.parametrize("export", EXPORTS)
def test_every_exporters_graph_folds_to_the_block_and_matches_onnxruntime(export):
    g = load_graph(HERE / export)
    ops = [n.op for n in g.nodes]
    assert not SHAPE_OPS & set(ops), ops  # shape arithmetic folded, LayerNorm and GELU recognized
    assert ops.count("LayerNormalization") == 2 and ops.count("Gelu") == 1
    for x in _test_rows(20):
        want = ort_run(HERE / export, {"rows": x[None]})[0]
        got = interpreter.run(g, {"rows": x[None]})["logits"]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.emulator
@pytest.mark.parametrize("name", RUNNABLE)
def test_float_block_runs_on_every_target(name, tmp_path):
    t = get_target(name)
    if name != "host":
        need_tools(t.cc, t.emulator.system)
    path = HERE / "digits_transformer_opset17.onnx"
    samples = [{"rows": x[None]} for x in _test_rows(8)]
    res = run_on_target(generate(load_graph(path), t), t, tmp_path, samples)
    for got, s in zip(res.outputs, samples):
        want = ort_run(path, s)[0]
        np.testing.assert_allclose(got["logits"], want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", XTENSA)
def test_float_block_compiles_for_xtensa(name, tmp_path):
    t = get_target(name)
    need_tools(t.cc, t.llc[0])
    m = generate(load_graph(HERE / "digits_transformer_opset17.onnx"), t)
    for fname, text in m.files.items():
        (tmp_path / fname).write_text(text)
    elf = Elf(compile_object(tmp_path, f"{m.name}.c", t))
    assert elf.symbol("arena").size == m.report["arena_bytes"]


@pytest.fixture(scope="module", params=EXPORTS)
def int8_block(request):
    path = HERE / request.param
    build = prepare(path, quantize="int8", calib=HERE / "transformer_calib.npz", progress=False)
    return path, build.graph, load_graph(path)


def test_int8_block_keeps_its_answers_on_held_out_digits(int8_block):
    path, q, f = int8_block
    ops = {n.op for n in q.nodes}
    assert {"LayerNormalization", "Gelu", "MatMul", "Softmax"} <= ops
    assert all(q.tensors[o].dtype == "s8" for n in q.nodes if n.op in ("LayerNormalization", "Gelu", "Softmax")
               for o in n.outputs)
    rows = _test_rows()
    labels = np.load(HERE / "transformer_labels.npy")
    fl = np.stack([interpreter.run(f, {"rows": x[None]})["logits"][0] for x in rows])
    ql = np.stack([interpreter.run(q, quantize_feeds(q, {"rows": x[None]}))["logits"][0] for x in rows])
    agree = float(np.mean(fl.argmax(1) == ql.argmax(1)))
    assert agree >= 0.99, agree
    assert _sqnr(fl, ql) >= 30.0, _sqnr(fl, ql)
    assert float(np.mean(ql.argmax(1) == labels)) >= float(np.mean(fl.argmax(1) == labels)) - 0.01


@pytest.mark.emulator
@pytest.mark.parametrize("name", ["host", "cortex-m4", "cortex-m55"])
def test_int8_block_c_is_bit_exact_with_the_reference(int8_block, name, tmp_path):
    path, q, _ = int8_block
    t = get_target(name)
    if name != "host":
        need_tools(t.cc, t.emulator.system)
    samples = [quantize_feeds(q, {"rows": x[None]}) for x in _test_rows(24)]
    res = run_on_target(generate(q, t), t, tmp_path, samples)
    for got, s in zip(res.outputs, samples):
        assert got["logits"].tobytes() == interpreter.run(q, s)["logits"].tobytes()
