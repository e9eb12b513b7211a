"""A depthwise convolution whose output is smaller than its input (stride 2, valid padding) written
over its input (tinyc/ops/dw_inplace.py, the memory planner's ``inplace_smaller``): every kernel
that runs it (portable int8, the DSP int8 ring kernel, float32, 16x8) against TFLite Micro (the
.tflite models: ADD -> DEPTHWISE_CONV_2D -> ADD, so that the layer runs arena to arena) or the
reference interpreter, bit for bit against the same C with the layer not in place, on the host and
the emulated Cortex-M4 (DSP) and Cortex-M55 (Helium, whose depthwise kernel is the DSP one); the
planner's choice (only where the arena gets smaller) and its text IR (tests/backend/dwconv_inplace.*)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph, prepare
from tinyc.emulator import run_on_target
from tinyc.ir_text import parse_graph, print_graph
from tinyc.memory import plan
from tinyc.ops import dw_inplace
from tinyc.passes import run_passes
from tinyc.passes.pipeline import KERNELS
from tinyc.targets import get_target

from .conftest import need_arm, need_tools
from .test_kernel_variants import _model
from .tflite_builders import run_tflm_all
from .tflite_seeds import TfliteBuilder, _options, serialize

BACKEND = Path(__file__).parent / "backend"
SAME, VALID = 0, 1
CASES = {
    # name: (C, H, W, K, stride, padding); C 3: the portable kernel everywhere; 8, 20: the DSP
    # kernel's channel blocks (and the portable kernel's blocks of 8 and 4 on the host)
    "c3_3x3_s2_same": (3, 9, 8, 3, 2, SAME),
    "c8_3x3_s2_valid": (8, 9, 9, 3, 2, VALID),
    "c20_5x5_s2_same": (20, 10, 9, 5, 2, SAME),
    "c20_3x3_s2_valid_even": (20, 10, 10, 3, 2, VALID),
    "c8_5x5_s2_valid": (8, 11, 12, 5, 2, VALID),
    "c3_5x5_s1_valid": (3, 8, 9, 5, 1, VALID),
    "c20_3x3_s1_valid": (20, 7, 8, 3, 1, VALID),
    "c8_3x3_s1_same": (8, 6, 7, 3, 1, SAME),  # same size: in place as before (a ring of rows)
}
TARGETS = ("host", "cortex-m4", "cortex-m55")


def _out_side(n, k, stride, padding):
    return -(-n // stride) if padding == SAME else (n - k) // stride + 1


def _tflite(c, h, w, k, stride, padding, int16=False, seed=0) -> bytes:
    """ADD(x, x) -> DEPTHWISE_CONV_2D -> ADD(d, d): int8 (int32 bias, zero points), or TFLite's
    16x8 (int16 activations at zero point 0, int64 bias)."""
    rng = np.random.default_rng(seed)
    B = TfliteBuilder("depthwise in place")
    fb, T, Op = B.fb, B.fb.TensorType, B.fb.BuiltinOperator
    act, zp = (T.INT16, 0) if int16 else (T.INT8, 1)
    sx, sa, sd, sy = (0.0004, 0.0008, 0.001, 0.002) if int16 else (0.05, 0.1, 0.08, 0.16)
    oh, ow = _out_side(h, k, stride, padding), _out_side(w, k, stride, padding)
    x = B.tensor("x", [1, h, w, c], act, q=B.quant(sx, -3 * zp))
    a = B.tensor("a", [1, h, w, c], act, q=B.quant(sa, -5 * zp))
    B.op(Op.ADD, [x, x], [a], *_options(fb, "AddOptions"))
    ws = rng.uniform(0.002, 0.01, c)
    wt = B.tensor("w", [1, k, k, c], T.INT8, rng.integers(-127, 128, (1, k, k, c)).astype(np.int8), B.quant(ws, [0] * c, 3))
    bt = np.int64 if int16 else np.int32
    b = B.tensor("b", [c], T.INT64 if int16 else T.INT32, rng.integers(-3000, 3000, c).astype(bt),
                 B.quant(sa * ws, [0] * c, 0))
    d = B.tensor("d", [1, oh, ow, c], act, q=B.quant(sd * np.sqrt(k * k), 7 * zp))
    B.op(Op.DEPTHWISE_CONV_2D, [a, wt, b], [d],
         *_options(fb, "DepthwiseConv2DOptions", padding=padding, strideH=stride, strideW=stride, depthMultiplier=1,
                   dilationHFactor=1, dilationWFactor=1))
    y = B.tensor("y", [1, oh, ow, c], act, q=B.quant(sy * np.sqrt(k * k), -2 * zp))
    B.op(Op.ADD, [d, d], [y], *_options(fb, "AddOptions"))
    return serialize(B.model([x], [y]))


def _feeds(g, count=3):
    x = g.tensors[g.inputs[0]]
    info = np.iinfo(np.int16 if x.dtype == "s16" else np.int8)
    rng = np.random.default_rng(1)
    feeds = [{g.inputs[0]: rng.integers(info.min, info.max + 1, x.shape).astype(info.dtype)} for _ in range(count)]
    return feeds + [{g.inputs[0]: np.full(x.shape, v, info.dtype)} for v in (info.min, info.max)]


def _layer_by_layer(g):
    """These tests are about one layer run whole: the patch pass (which would run it in bands,
    tests/test_patch.py) is off."""
    g.options["patch"] = "off"
    return g


def _dw(model):
    return next(n for n in model.graph.nodes if n.op == "Conv")


def _not_in_place(g, target):
    """The same model with the op refusing smaller outputs in place (the planner's other choice)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(dw_inplace, "applies", lambda p: False)
    try:
        return generate(g, target)
    finally:
        mp.undo()


def _check(g, feeds, want, targets, tmp_path, exact=True, smaller=True):
    """On each target: the layer in place over its input (same offset, the ``inplace_smaller``
    decision recorded), outputs equal to ``want`` (float: close) and bit for bit those of the same
    C with the layer not in place, whose arena is larger."""
    for name in targets:
        t = get_target(name)
        model = generate(g, t)
        n = _dw(model)
        assert n.attrs.get("placement") == "in_place", name
        assert bool(n.attrs.get("inplace_smaller")) == smaller, name
        assert n.attrs["offsets"][0] == model.graph.memory_plan.offset(n.inputs[0]), name
        got = [r[g.outputs[0]] for r in run_on_target(model, t, tmp_path / name, feeds).outputs]
        for k, (o, w) in enumerate(zip(got, want)):
            if exact:
                np.testing.assert_array_equal(o, w.reshape(o.shape), err_msg=f"{name} sample {k}")
            else:
                np.testing.assert_allclose(o, w.reshape(o.shape), rtol=1e-5, atol=1e-5, err_msg=f"{name} sample {k}")
        if not smaller:
            continue
        other = _not_in_place(g, t)
        assert _dw(other).attrs.get("placement") is None and other.report["arena_bytes"] > model.report["arena_bytes"]
        ref = run_on_target(other, t, tmp_path / f"{name}.not_in_place", feeds).outputs
        for o, r in zip(got, ref):
            np.testing.assert_array_equal(o, r[g.outputs[0]], err_msg=f"{name}: in place differs")


@pytest.mark.emulator
@pytest.mark.parametrize("case", list(CASES))
def test_int8_depthwise_in_place_equals_tflite_micro(case, tmp_path):
    need_tools("cc")
    need_arm()
    c, h, w, k, stride, padding = CASES[case]
    data = _tflite(c, h, w, k, stride, padding)
    (tmp_path / "m.tflite").write_bytes(data)
    g = _layer_by_layer(load_graph(tmp_path / "m.tflite"))
    feeds = _feeds(g)
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    for f, wv in zip(feeds, want):
        np.testing.assert_array_equal(interpreter.run(g, f)[g.outputs[0]], wv)
    _check(g, feeds, want, TARGETS, tmp_path, smaller=not (stride == 1 and padding == SAME))
    kernels = {name: (_dw(generate(g, get_target(name))).attrs["kernel"]) for name in ("host", "cortex-m4")}
    assert kernels == {"host": "s8.dwconv_nhwc", "cortex-m4": "s8.dwconv_nhwc" if c % 4 else "s8.dwconv_wide"}


@pytest.mark.emulator
@pytest.mark.parametrize("case", ["c3_3x3_s2_same", "c8_5x5_s2_valid"])
def test_16x8_depthwise_in_place_equals_tflite_micro(case, tmp_path):
    """int16 activations: the portable loops (s8/conv_nhwc, 64-bit sums) on every core."""
    need_tools("cc")
    need_arm()
    data = _tflite(*CASES[case], int16=True)
    (tmp_path / "m.tflite").write_bytes(data)
    g = _layer_by_layer(load_graph(tmp_path / "m.tflite"))
    feeds = _feeds(g)
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    _check(g, feeds, want, ("host", "cortex-m4"), tmp_path)


@pytest.mark.emulator
@pytest.mark.parametrize("attrs", [dict(pads=[1, 1, 1, 1], strides=[2, 2]), dict(pads=[2, 2, 2, 2], strides=[2, 2]),
                                   dict(), dict(pads=[1, 0, 1, 0])], ids=["3x3_s2_same", "5x5_s2_same", "5x5_valid",
                                                                          "3x3_valid_wide"])
def test_float_depthwise_in_place_equals_reference(attrs, tmp_path):
    """float32 (f32/conv_nhwc): the reference interpreter's outputs, and bit for bit the C not in
    place; 20 channels, the NCHW model's layout transposes around the layer."""
    need_tools("cc")
    need_arm()
    k = 5 if attrs.get("pads", [0])[0] == 2 or not attrs else 3
    shape = (1, 20, 9, 8)
    _model(tmp_path / "m.onnx", shape, "Conv", (20, 1, k, k), dict(attrs, group=20))
    g = _layer_by_layer(prepare(tmp_path / "m.onnx", progress=False).graph)
    rng = np.random.default_rng(2)
    feeds = [{g.inputs[0]: rng.standard_normal(shape).astype(np.float32)} for _ in range(2)]
    want = [interpreter.run(g, f)[g.outputs[0]] for f in feeds]
    _check(g, feeds, want, TARGETS, tmp_path, exact=False)


def _three_layers(tmp_path, expand: int):
    """ONNX NCHW: depthwise 3x3 stride 2 -> 1x1 convolution to ``expand`` x the channels -> Relu."""
    from onnx import TensorProto, helper, numpy_helper
    import onnx
    rng = np.random.default_rng(5)
    c = 8
    inits = [numpy_helper.from_array((rng.standard_normal((c, 1, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal((c * expand, c, 1, 1)) * 0.3).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["d"], pads=[1, 1, 1, 1], strides=[2, 2], group=c),
             helper.make_node("Conv", ["d", "w2"], ["e"]), helper.make_node("Relu", ["e"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 1, c, 12, 12)).astype(np.float32))
    return _layer_by_layer(prepare(tmp_path / "m.onnx", quantize="int8", calib=tmp_path / "calib.npz", io="int8",
                                   progress=False).graph)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_the_planner_takes_it_only_where_the_arena_gets_smaller(target, tmp_path):
    """After the stride-2 depthwise layer, a 1x1 convolution to 4x the channels: the peak is there,
    where the aliased buffer would keep the input's size, so the plan without the alias is kept and
    the C is byte for byte that of tinyc without the feature. With 1x the channels the peak is the
    depthwise step, and the alias is taken (the 1x1 layer then runs in place over it too): one
    buffer of the input's size holds the input and the output."""
    t = get_target(target)
    g = _three_layers(tmp_path, 4)
    model, other = generate(g, t), _not_in_place(g, t)
    n = _dw(model)
    assert n.attrs["inplace_smaller"] is True and n.attrs.get("placement") is None
    assert model.files == other.files
    kg = run_passes(g, KERNELS, target=t)
    every = plan(kg, t.alignment)  # what plan() kept
    assert every.arena_bytes == model.report["arena_bytes"]

    g1 = _three_layers(tmp_path, 1)
    model, other = generate(g1, t), _not_in_place(g1, t)
    n = _dw(model)
    assert n.attrs.get("placement") == "in_place"
    assert model.report["arena_bytes"] < other.report["arena_bytes"]
    buf = next(b for b in model.graph.memory_plan.buffers if n.inputs[0] in b.tensors)
    assert n.outputs[0] in buf.tensors and buf.size == model.graph.tensors[n.inputs[0]].nbytes


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_decision_golden(target):
    """tests/backend/dwconv_inplace.ir (Transpose -> depthwise 3x3 stride 2 -> Transpose) after
    select-kernels and plan-memory: ``inplace_scratch`` and ``inplace_smaller`` on the node, then
    ``placement: in_place`` with the output at the input's offset and the kernel's in-place
    parameters (portable: ``ring_rows`` 0, no ring; DSP: its own ring)."""
    g = parse_graph((BACKEND / "dwconv_inplace.ir").read_text())
    kg = run_passes(g, KERNELS, target=get_target(target))
    assert print_graph(kg) == (BACKEND / f"dwconv_inplace.{target}.expected.ir").read_text()
    n = next(n for n in kg.nodes if n.op == "Conv")
    assert n.attrs["placement"] == "in_place" and n.attrs["offsets"][0] == kg.memory_plan.offset(n.inputs[0])
