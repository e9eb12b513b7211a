"""The depthwise DSP kernel with its weights kept int8 in flash (form "int8" of s8/dwconv_wide,
tinyc/ops/dot_s8.py), forced with select-kernels' ``forms`` knob, bit for bit against TFLite Micro
(and tinyc's reference interpreter) on emulated DSP cores: channel blocks and their tails, strides,
padding, dilation, 3x3, 5x5 and 1x3 kernels, ReLU and ReLU6 clamps, pruned (all-zero) channels,
per-tensor and per-channel requantization, input zero points at both ends; in place against tinyc's
reference. Its weights take a byte each where the int16 form's take two."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph, prepare
from tinyc.emulator import run_on_target
from tinyc.passes import select_kernels as sk
from tinyc.targets import get_target

from .conftest import need_arm
from .test_kernel_variants import _model
from .tflite_builders import model_bytes, run_tflm_all

SAME, VALID = 0, 1
NONE, RELU, RELU6 = 0, 1, 3
CASES = {
    # name: (C, H, W, KH, KW, stride, dilation, padding, activation, input zero point, dead channels,
    #        per-channel scales, target)
    "c4_3x3_relu": (4, 6, 5, 3, 3, 1, 1, SAME, RELU, 3, (), True, "cortex-m4"),
    "c8_3x3_stride2_relu6": (8, 7, 6, 3, 3, 2, 1, SAME, RELU6, -128, (), True, "cortex-m4"),
    "c12_5x5": (12, 7, 7, 5, 5, 1, 1, SAME, NONE, 127, (), True, "cortex-m4"),
    "c20_3x3_dilation2_blocks": (20, 9, 8, 3, 3, 1, 2, SAME, RELU, -7, (), True, "cortex-m4"),
    "c8_1x3_valid_per_tensor": (8, 5, 9, 1, 3, 1, 1, VALID, NONE, 0, (), False, "cortex-m4"),
    "c12_pruned_relu6": (12, 6, 6, 3, 3, 1, 1, SAME, RELU6, 5, (0, 1, 2, 3, 9), True, "cortex-m4"),
    "c16_5x5_stride2_m7": (16, 9, 9, 5, 5, 2, 1, SAME, RELU, -20, (), True, "cortex-m7"),
    "c8_3x3_m33": (8, 5, 6, 3, 3, 1, 1, VALID, RELU6, 11, (5,), True, "cortex-m33"),
}
IN_PLACE = {
    # name: (input shape NCHW, weight shape, attrs) of an ONNX depthwise layer between the layout
    # transposes (arena to arena: its output may go over its input)
    "c12_3x3": ((1, 12, 5, 4), (12, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=12)),
    "c8_5x5_dilation2": ((1, 8, 9, 7), (8, 1, 5, 5), dict(pads=[4, 4, 4, 4], dilations=[2, 2], group=8)),
}


def _depthwise(c, h, w, kh, kw, stride, dilation, padding, act, x_zp, dead, per_channel, seed=0) -> bytes:
    """A one-operator DEPTHWISE_CONV_2D .tflite model with random int8 weights."""
    rng = np.random.default_rng(seed)
    wq = rng.integers(-127, 128, (1, kh, kw, c)).astype(np.int8)
    wq[..., list(dead)] = 0
    ws = list(rng.uniform(0.002, 0.01, c)) if per_channel else [0.006] * c
    sx = 0.05
    bias = rng.integers(-4000, 4000, c).astype(np.int32)
    if padding == SAME:
        oh, ow = -(-h // stride), -(-w // stride)
    else:
        oh, ow = (h - (kh - 1) * dilation - 1) // stride + 1, (w - (kw - 1) * dilation - 1) // stride + 1
    qy = ((0.02 * np.sqrt(kh * kw),), (-9,), 0)  # outputs spread over the int8 range, clamps inside it
    ts = [dict(name="x", shape=(1, h, w, c), type="s8", q=((sx,), (x_zp,), 0)),
          dict(name="w", shape=(1, kh, kw, c), type="s8", data=wq, q=(ws, [0] * c, 3)),
          dict(name="b", shape=(c,), type="s32", data=bias, q=([sx * s for s in ws], [0] * c, 0)),
          dict(name="y", shape=(1, oh, ow, c), type="s8", q=qy)]
    opts = ("DepthwiseConv2DOptions", dict(padding=padding, strideH=stride, strideW=stride, depthMultiplier=1,
                                           fusedActivationFunction=act, dilationHFactor=dilation,
                                           dilationWFactor=dilation))
    return model_bytes("DEPTHWISE_CONV_2D", ts, [0], [3], [0, 1, 2], [3], opts, version=3)


def _generate(g, target, forms):
    """generate() with select-kernels picking the kernel options of these weight forms."""
    run = sk.SelectKernels.run
    sk.SelectKernels.run = lambda self, graph, t: sk.select_kernels(graph, t.template_variants, forms=forms)
    try:
        return generate(g, target)
    finally:
        sk.SelectKernels.run = run


def _conv(g):
    """The convolution node of a kernel-level graph (or of a generated model's)."""
    return next(n for n in getattr(g, "graph", g).nodes if n.op == "Conv")


def _check(g, target, feeds, want, tmp_path, in_place=False):
    """The int8 form on ``target``: the kernel the IR records, outputs equal to ``want``, a byte
    per weight where the int16 form takes two (same bias and requantization tables)."""
    t = get_target(target)
    model = _generate(g, t, ("int8",))
    node = _conv(model)
    chosen = (node.attrs["kernel"], node.attrs.get("variant"), node.attrs.get("form"))
    assert chosen == ("s8.dwconv_wide", "dsp", "int8")
    assert (node.attrs.get("placement") == "in_place") == in_place
    code = model.files[f"{model.name}.c"]
    assert "sxtb16 %0, %1, ror #8" in code and "TINYC_LDR_W(w, wq, 0)" in code and "__smlabb" in code
    got = run_on_target(model, t, tmp_path / target, feeds).outputs
    for k, (o, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=f"{target} sample {k}")
    wide = _generate(g, t, ("wide",))
    assert _conv(wide).attrs.get("form") == "wide"
    i8_bytes, wide_bytes = (next(l["weights_bytes"] for l in m.report["layers"] if l["op"] == "Conv")
                            for m in (model, wide))
    w = g.tensors[_conv(model).inputs[1]]
    assert wide_bytes - i8_bytes == w.data.size


def _feeds(g):
    x = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(1)
    feeds = [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]
    return feeds + [{g.inputs[0]: np.full(x.shape, v, np.int8)} for v in (-128, 127)]  # the offset's extremes


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(CASES))
def test_int8_weight_depthwise_equals_tflite_micro_on_dsp_cores(case, tmp_path):
    need_arm()
    *geometry, target = CASES[case]
    data = _depthwise(*geometry)
    (tmp_path / "m.tflite").write_bytes(data)
    g = load_graph(tmp_path / "m.tflite")
    feeds = _feeds(g)
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    for f, w in zip(feeds, want):
        np.testing.assert_array_equal(interpreter.run(g, f)[g.outputs[0]], w)
    _check(g, target, feeds, want, tmp_path)


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(IN_PLACE))
def test_int8_weight_depthwise_in_place_equals_reference(case, tmp_path):
    need_arm()
    shape, wshape, attrs = IN_PLACE[case]
    _model(tmp_path / "m.onnx", shape, "Conv", wshape, attrs, dead=(1,))
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16,) + shape).astype(np.float32))
    g = prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", io="int8", progress=False).graph
    feeds = _feeds(g)
    _check(g, "cortex-m4", feeds, [interpreter.run(g, f)[g.outputs[0]] for f in feeds], tmp_path, in_place=True)


def test_forms_knob_takes_the_first_option_of_a_listed_form(tmp_path):
    """select_kernels(forms=...): a depthwise node on a DSP core has both forms; a node without a
    choice keeps its only kernel; forms=None is kernel_for's default choice."""
    (tmp_path / "m.tflite").write_bytes(_depthwise(8, 5, 5, 3, 3, 1, 1, SAME, RELU, 0, (), True))
    g = load_graph(tmp_path / "m.tflite")
    t = get_target("cortex-m4")
    kg = [sk.select_kernels(g, t.template_variants, forms=f) for f in (None, ("wide",), ("int8",), ("nothing",))]
    assert [_conv(k).attrs.get("form") for k in kg] == ["wide", "wide", "int8", "wide"]
    host = _conv(sk.select_kernels(g, get_target("host").template_variants, forms=("int8",)))
    assert host.attrs["kernel"] == "s8.dwconv_nhwc" and "form" not in host.attrs
