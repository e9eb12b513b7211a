"""The DSP matrix-product kernels (s8/gemm, s8/conv_ring, s8/fc_wide) in their "int8" weight form
(tinyc/ops/dot_s8.py: pairs of output channels stored as one int16 v = w_m + 256 w_m+1, so flash
holds a byte per weight), forced with select-kernels' ``forms`` knob: bit for bit against tinyc's
reference interpreter on cortex-m4 for every shape of tests/test_kernel_variants.py that reaches
them (odd channel counts, K not a multiple of 4, 1x1, strides, padding, dilation, several rows),
pruned blocks, and the fallback when a pair's second channel could exceed the form's 2^23 bound."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.passes import select_kernels as sk
from tinyc.targets import get_target

from .conftest import need_tools
from .test_kernel_variants import CASES, DSP_FC, DSP_GEMM, DSP_RING, PRUNED, _kernel_node, _model

M4 = "cortex-m4"
DSP_CASES = [c for c in CASES if CASES[c][4][1] in (DSP_GEMM, DSP_RING, DSP_FC)]


def _generate(g, t, forms, monkeypatch):
    """generate() with select-kernels taking each node's first kernel option of these forms."""
    monkeypatch.setattr(sk.SelectKernels, "run", lambda self, graph, tg: sk.select_kernels(
        graph, tg.template_variants, forms=forms))
    return generate(g, t)


def _prepare(path, shape, seed=1):
    rng = np.random.default_rng(seed)
    calib = path.with_suffix(".npz")
    np.savez(calib, x=rng.standard_normal((16,) + shape).astype(np.float32))
    g = prepare(path, quantize="int8", calib=calib, io="int8", progress=False).graph
    x = g.tensors[g.inputs[0]]
    samples = [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]
    return g, samples


def _laid_out_bytes(model, node) -> int:
    return sum(model.graph.tensors[n].data.nbytes for _, n in node.attrs["laid_out"] if n)


def _check(model, g, samples, t, tmp_path):
    got = run_on_target(model, t, tmp_path, samples).outputs
    for o, s in zip(got, samples):
        np.testing.assert_array_equal(o[g.outputs[0]], interpreter.run(g, s)[g.outputs[0]])


@pytest.mark.emulator
@pytest.mark.parametrize("case", DSP_CASES)
def test_int8_form_dsp_kernels_bit_exact_on_cortex_m4(case, tmp_path, monkeypatch):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    shape, op, wshape, attrs, kernels = CASES[case]
    _model(tmp_path / "m.onnx", shape, op, wshape, attrs)
    g, samples = _prepare(tmp_path / "m.onnx", shape)
    t = get_target(M4)
    model = _generate(g, t, ("int8",), monkeypatch)
    node = _kernel_node(model)
    # the same kernel as the wide form, its weights a byte each (the one-row fully connected copies
    # its widened inputs into scratch only where that copy is no bigger than its input and output
    # rows, else it is s8.fc_wide_direct, widening them in registers)
    want = kernels[1]
    if want == DSP_FC:
        p = node.attrs["params"]
        want = DSP_FC if 2 * p["KP"] <= p["K"] + p["N"] else ("s8.fc_wide_direct", "dsp")
    assert (node.attrs["kernel"], node.attrs.get("variant")) == want
    assert node.attrs["form"] == "int8" and node.attrs["params"]["form"] == "int8"
    if case.endswith("in_place"):
        assert node.attrs.get("placement") == "in_place"
    assert "__sxtb16" in model.files[f"{model.name}.c"]
    wide_model = _generate(g, t, ("wide",), monkeypatch)
    wide = _kernel_node(wide_model)
    assert wide.attrs["form"] == "wide"
    assert _laid_out_bytes(model, node) < _laid_out_bytes(wide_model, wide)
    _check(model, g, samples, t, tmp_path / "run")


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(PRUNED))
def test_int8_form_skips_all_zero_weight_blocks_bit_exact(case, tmp_path, monkeypatch):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    shape, op, wshape, attrs, dead = PRUNED[case]
    _model(tmp_path / "m.onnx", shape, op, wshape, attrs, dead)
    g, samples = _prepare(tmp_path / "m.onnx", shape, seed=2)
    t = get_target(M4)
    model = _generate(g, t, ("int8",), monkeypatch)
    node = _kernel_node(model)
    assert node.attrs["form"] == "int8" and node.attrs["params"]["live"] is not None
    _check(model, g, samples, t, tmp_path / "run")


def _fc_model(path, w, rows):
    """A fully connected layer (Gemm, transB) with these float weights."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, w.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w.astype(np.float32), "w"),
         numpy_helper.from_array(np.linspace(-0.5, 0.5, w.shape[0]).astype(np.float32), "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.emulator
@pytest.mark.parametrize("heavy, rows, kernel, swap", [
    # K = 300 weights of magnitude 127: 255 * 300 * 127 > 2^23 ...
    ((0, 2), 2, DSP_GEMM, None),  # ... in first channels of pairs only: the int8 DSP kernel as it is
    ((1, 3), 2, DSP_GEMM, [1, 1, 0]),  # ... in second channels: those pairs stored the other way round
    ((3, 4), 1, ("s8.fc_wide_direct", "dsp"), [0, 1, 0, 0]),  # (one row: pairs (0, 1), (2, 3); (4, padding))
    ((0, 1), 2, ("s8.fully_connected", "dsp"), None),  # ... in both of a pair: the int8-weight loops
])
def test_int8_form_bound_on_the_second_channel_of_a_pair(heavy, rows, kernel, swap, tmp_path, monkeypatch):
    need_tools("arm-none-eabi-gcc", "qemu-system-arm")
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 300)) * 0.05
    w[list(heavy)] = np.sign(rng.standard_normal((len(heavy), 300)))  # all quantized to +-127
    _fc_model(tmp_path / "m.onnx", w, rows)
    g, samples = _prepare(tmp_path / "m.onnx", (rows, 300))
    t = get_target(M4)
    model = _generate(g, t, ("int8",), monkeypatch)
    node = _kernel_node(model)
    assert (node.attrs["kernel"], node.attrs.get("variant")) == kernel
    assert node.attrs["form"] == "int8" and node.attrs["params"].get("swap") == swap
    _check(model, g, samples, t, tmp_path / "run")
