"""Every int8 kernel variant, bit for bit against the reference on the targets that run it: the DSP
(ACLE) kernels on cortex-m4, the Helium (MVE) ones on cortex-m55, the portable ones on cortex-m3
and the host. Shapes chosen to hit the
tails: odd channel counts, channels not a multiple of 4, odd pixel counts, borders, strides,
depthwise, in-place layers."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_tools

# kernels as select-kernels records them on the node: (kernel, variant folder; None: portable)
PW, DW, FC = ("s8.pwconv_nhwc", None), ("s8.dwconv_nhwc", None), ("s8.fully_connected", None)
CONV, CONV_ODD_M = ("s8.conv_nhwc_pair", None), ("s8.conv_nhwc", None)
DSP_GEMM, DSP_RING, DSP_DW, DSP_FC = ("s8.gemm", "dsp"), ("s8.conv_ring", "dsp"), ("s8.dwconv_wide", "dsp"), ("s8.fc_wide", "dsp")
MVE_GEMM, MVE_RING = ("s8.gemm", "mve"), ("s8.conv_ring", "mve")

CASES = {
    # name: (input shape NCHW, op, weight shape, attrs, kernel: portable, DSP (cortex-m4), Helium (cortex-m55))
    "pw_odd_channels_odd_pixels": ((1, 12, 3, 5), "Conv", (7, 12, 1, 1), {}, (PW, DSP_GEMM, MVE_GEMM)),
    "pw_channels_not_multiple_of_4": ((1, 6, 4, 4), "Conv", (8, 6, 1, 1), {}, (PW, DSP_GEMM, MVE_GEMM)),
    "pw_same_shape_in_place": ((1, 8, 5, 3), "Conv", (8, 8, 1, 1), {}, (PW, DSP_GEMM, MVE_GEMM)),
    "pw_wide_channels": ((1, 20, 3, 3), "Conv", (6, 20, 1, 1), {}, (PW, DSP_GEMM, MVE_GEMM)),
    "pw_stride2": ((1, 8, 7, 6), "Conv", (6, 8, 1, 1), dict(strides=[2, 2]), (CONV, DSP_GEMM, MVE_GEMM)),
    "conv3x3_pairs_with_borders": ((1, 8, 6, 7), "Conv", (6, 8, 3, 3), dict(pads=[1, 1, 1, 1]), (CONV, DSP_RING, MVE_GEMM)),
    "conv3x3_same_shape_in_place": ((1, 8, 5, 5), "Conv", (8, 8, 3, 3), dict(pads=[1, 1, 1, 1]), (CONV, DSP_RING, MVE_RING)),
    "conv3x3_stride2_odd_m": ((1, 8, 7, 7), "Conv", (5, 8, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2]),
                              (CONV_ODD_M, DSP_RING, MVE_GEMM)),
    "conv_asymmetric_dilated": ((1, 4, 9, 8), "Conv", (6, 4, 3, 2), dict(pads=[2, 0, 1, 1], dilations=[2, 1]),
                                (CONV, DSP_RING, MVE_GEMM)),
    "conv_horizontal_dilation": ((1, 4, 6, 9), "Conv", (4, 4, 2, 3), dict(pads=[1, 2, 0, 2], dilations=[1, 2]),
                                 (CONV, DSP_GEMM, MVE_GEMM)),
    "conv_one_channel_first_layer": ((1, 1, 15, 8), "Conv", (6, 1, 5, 4), dict(pads=[2, 1, 2, 2], strides=[2, 2]),
                                     (CONV, DSP_GEMM, MVE_GEMM)),
    "conv3x3_long_rows_in_place": ((1, 32, 4, 5), "Conv", (32, 32, 3, 3), dict(pads=[1, 1, 1, 1]),
                                   (CONV, DSP_RING, MVE_RING)),
    "conv3x3_row_tail_same_shape": ((1, 6, 5, 6), "Conv", (6, 6, 3, 3), dict(pads=[1, 1, 1, 1]), (CONV, DSP_GEMM, MVE_RING)),
    "conv3x3_odd_channels_same_shape": ((1, 5, 5, 5), "Conv", (5, 5, 3, 3), dict(pads=[1, 1, 1, 1]),
                                      (CONV_ODD_M, DSP_GEMM, MVE_RING)),
    # (a ring of one-pixel rows is smaller than two gathered windows: Helium's ring off the in-place case)
    "conv3x1_narrow_stride2_dilated_odd_m": ((1, 8, 7, 1), "Conv", (5, 8, 3, 1),
                                             dict(pads=[2, 0, 1, 0], strides=[2, 1], dilations=[2, 1]),
                                             (CONV_ODD_M, DSP_RING, MVE_RING)),
    "conv_three_channels": ((1, 3, 6, 6), "Conv", (4, 3, 3, 3), dict(pads=[1, 1, 1, 1]), (CONV, DSP_GEMM, MVE_GEMM)),
    "depthwise3x3_stride2": ((1, 8, 7, 6), "Conv", (8, 1, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2], group=8),
                             (DW, DSP_DW, DSP_DW)),
    "depthwise3x3_in_place": ((1, 12, 5, 4), "Conv", (12, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=12),
                              (DW, DSP_DW, DSP_DW)),
    "depthwise_channels_not_multiple_of_4": ((1, 6, 5, 5), "Conv", (6, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=6),
                                             (DW, DW, DW)),
    "fc_k_tail_odd_n": ((1, 22), "Gemm", (5, 22), dict(transB=1), (FC, DSP_FC, MVE_GEMM)),
    "fc_one_row_k_multiple_of_8": ((1, 40), "Gemm", (7, 40), dict(transB=1), (FC, DSP_FC, MVE_GEMM)),
    # more outputs than inputs (the int8 form copies its widened inputs into scratch), K not a multiple of 4
    "fc_one_row_more_outputs": ((1, 22), "Gemm", (40, 22), dict(transB=1), (FC, DSP_FC, MVE_GEMM)),
    "fc_not_transposed": ((2, 16), "MatMul", (16, 9), {}, (FC, DSP_GEMM, MVE_GEMM)),
    "fc_three_rows": ((3, 40), "Gemm", (6, 40), dict(transB=1), (FC, DSP_GEMM, MVE_GEMM)),
}
KIND = {"cortex-m4": 1, "cortex-m55": 2, "cortex-m3": 0, "host": 0}


def _kernel_node(model):
    """The convolution or fully connected node of the kernel-level graph the C was printed from."""
    return next(n for n in model.graph.nodes if n.op in ("Conv", "Gemm"))


def _model(path, shape, op, wshape, attrs, dead=()):
    rng = np.random.default_rng(abs(hash(str(wshape))) % 2**32)
    w = (rng.standard_normal(wshape) * 0.3).astype(np.float32)
    if dead:  # pruned output channels (all-zero weights)
        (w if op == "Conv" or attrs.get("transB") else w.T)[list(dead)] = 0.0
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if op in ("Conv", "Gemm"):
        inits.append(numpy_helper.from_array((rng.standard_normal(wshape[0]) * 0.1).astype(np.float32), "b"))
        inputs.append("b")
    nodes = [helper.make_node(op, inputs, ["y"], **attrs)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(CASES))
def test_int8_kernel_variants_are_bit_exact_on_every_target_kind(case, tmp_path):
    need_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    shape, op, wshape, attrs, kernels = CASES[case]
    _model(tmp_path / "m.onnx", shape, op, wshape, attrs)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16,) + shape).astype(np.float32))
    p = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", io="int8", progress=False)
    g = p.graph
    x = g.tensors[g.inputs[0]]
    samples = [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]
    want = [interpreter.run(g, s)[g.outputs[0]] for s in samples]
    for target in ("cortex-m4", "cortex-m55", "cortex-m3", "host"):
        t = get_target(target)
        model = generate(g, t)
        code = model.files[f"{model.name}.c"]
        node = _kernel_node(model)
        assert (node.attrs["kernel"], node.attrs.get("variant")) == kernels[KIND[target]], \
            f"{target}: the case no longer reaches the kernel it is meant for"
        # (same shape: in place where the kernel keeps a ring, the DSP gather does not)
        if case.endswith("in_place") or (case.endswith("same_shape") and kernels[KIND[target]] == MVE_RING):
            assert node.attrs.get("placement") == "in_place", target
        assert ("__smla" in code) == (kernels[KIND[target]] in (DSP_GEMM, DSP_RING, DSP_DW, DSP_FC))
        assert ("vmladavaq_s8" in code) == (kernels[KIND[target]] in (MVE_GEMM, MVE_RING))
        got = run_on_target(model, t, tmp_path / target, samples).outputs
        for o, w in zip(got, want):
            np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=target)


PRUNED = {
    # name: (input shape, op, weight shape, attrs, dead output channels)
    "pw": ((1, 16, 3, 5), "Conv", (12, 16, 1, 1), {}, (2, 3, 8, 9, 10, 11)),
    "conv3x3": ((1, 8, 6, 6), "Conv", (6, 8, 3, 3), dict(pads=[1, 1, 1, 1]), (0, 1)),
    "fc": ((1, 32), "Gemm", (12, 32), dict(transB=1), (4, 5, 6, 7)),
}


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(PRUNED))
def test_dsp_kernels_skip_all_zero_weight_blocks_bit_exact(case, tmp_path):
    """Pruning-aware DSP kernels: blocks of output channels whose weights are all zero keep only
    their bias in flash and run no multiply-accumulates; outputs stay bit-exact, fewer instructions
    and fewer weight bytes than the same layer unpruned."""
    need_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    from tinyc.bench import count

    shape, op, wshape, attrs, dead = PRUNED[case]
    t = get_target("cortex-m4")
    rng = np.random.default_rng(2)
    res = {}
    for name, d in (("dense", ()), ("pruned", dead)):
        _model(tmp_path / f"{name}.onnx", shape, op, wshape, attrs, d)
        np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16,) + shape).astype(np.float32))
        g = prepare(tmp_path / f"{name}.onnx", quantize="int8", calib=tmp_path / "calib.npz", io="int8",
                    progress=False).graph
        x = g.tensors[g.inputs[0]]
        sample = {g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)}
        model = generate(g, t)
        assert (_kernel_node(model).attrs["params"]["live"] is not None) == bool(d)  # blocks skipped
        r = count(model, t, tmp_path / name, sample)
        np.testing.assert_array_equal(r["outputs"][g.outputs[0]], interpreter.run(g, sample)[g.outputs[0]])
        res[name] = r
    assert res["pruned"]["instructions_total"] < res["dense"]["instructions_total"]
    assert res["pruned"]["weights_bytes"] < res["dense"]["weights_bytes"]
