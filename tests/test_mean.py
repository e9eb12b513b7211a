"""The int8 mean's two meanings (issue 15). A model converted from TFLite by tf2onnx gets TFLite
Micro's integer MEAN, bit for bit against the `tflite-micro` package running a .tflite with the
same MEAN; any other QDQ model gets ONNX's dequantize -> mean -> quantize, exactly, checked against
exact rational arithmetic written here and against onnxruntime (which computes in float32)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.emulator import run_on_target
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import import_model
from tinyc.ir_text import parse_graph, print_graph
from tinyc.passes import run_passes
from tinyc.passes.pipeline import DEFAULT
from tinyc.targets import get_target

from .conftest import need_arm, need_tools
from .tflite_builders import mean_model, run_tflm

SAMPLES = 200


def _const(name: str, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _qdq_mean(shape, axes, keepdims, x_q, y_q, tail=None, tf2onnx=True, producer="tf2onnx", op="ReduceMean"):
    """DequantizeLinear -> ReduceMean -> QuantizeLinear on an int8 input, then optionally the int8
    Reshape or Squeeze to [N, C] that Keras' GlobalAveragePooling2D leaves (its own DQ/Q pair, as
    tf2onnx writes every TFLite op). With ``tf2onnx`` the nodes have the names tf2onnx's TFLite
    reader gives them ("<tensor>_dequant", "<tensor>_quantize" writing "<tensor>")."""
    dq, mean, q = ("x_dequant", "y_prequant", "y_quantize") if tf2onnx else ("dq", "mean", "q")
    inits = [_const("xs", np.float32(x_q[0])), _const("xz", np.int8(x_q[1])),
             _const("ys", np.float32(y_q[0])), _const("yz", np.int8(y_q[1]))]
    attrs = {} if op == "GlobalAveragePool" else dict(axes=axes, keepdims=keepdims)
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], [dq if tf2onnx else "xf"], name=dq),
             helper.make_node(op, [dq if tf2onnx else "xf"], [mean], name=mean, **attrs),
             helper.make_node("QuantizeLinear", [mean, "ys", "yz"], ["y"], name=q)]
    out = "y"
    if tail:
        kept = [d for i, d in enumerate(shape) if i not in axes]
        nodes.append(helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["y_dequant"], name="y_dequant"))
        if tail == "reshape":
            inits.append(_const("new_shape", np.array(kept, np.int64)))
            nodes.append(helper.make_node("Reshape", ["y_dequant", "new_shape"], ["z_prequant"], name="z_prequant"))
        else:
            inits.append(_const("squeezed", np.array(axes, np.int64)))
            nodes.append(helper.make_node("Squeeze", ["y_dequant", "squeezed"], ["z_prequant"], name="z_prequant"))
        nodes.append(helper.make_node("QuantizeLinear", ["z_prequant", "ys", "yz"], ["z"], name="z_quantize"))
        out = "z"
    graph = helper.make_graph(nodes, "main", [helper.make_tensor_value_info("x", TensorProto.INT8, list(shape))],
                              [helper.make_tensor_value_info(out, TensorProto.INT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name=producer)
    model.ir_version = 8
    return model


def _compiled(model):
    return run_passes(import_model(model), DEFAULT)


def _inputs(shape, count=SAMPLES, seed=15):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=shape).astype(np.int8) for _ in range(count)]


def _reference(g, xs):
    return [interpreter.run(g, {"x": x})[g.outputs[0]] for x in xs]


def _exact_mean(x, axes, x_q, y_q):
    """ONNX's meaning in exact rational arithmetic: the real mean of the dequantized values
    (float32 scales taken exactly), divided by the output scale, rounded half to even."""
    sx, sy = Fraction(float(np.float32(x_q[0]))), Fraction(float(np.float32(y_q[0])))
    count = int(np.prod([x.shape[a] for a in axes]))
    sums = x.astype(np.int64).sum(axis=tuple(axes))
    q = [round(sx * (int(s) - x_q[1] * count) / (count * sy)) + y_q[1] for s in sums.reshape(-1)]
    return np.clip(q, -128, 127).astype(np.int8).reshape(sums.shape)


# (shape, axes): the brief's shapes over H and W of NHWC, and two reductions along other axes
# (TFLite Micro's general path is the same for every axis set)
TFLITE_SHAPES = [((1, 25, 5, 64), [1, 2]), ((1, 7, 7, 3), [1, 2]), ((1, 1, 1, 8), [1, 2]), ((1, 13, 1, 16), [1, 2]),
                 ((1, 6, 5, 12), [1]), ((1, 10, 6), [2])]
# input and output (scale, zero point): equal, finer output, coarser output
QUANTS = {"equal": ((0.05, 3), (0.05, 3)), "finer_out": ((0.05, -7), (0.02, 11)), "coarser_out": ((0.1, 0), (0.3, -20))}
TAILS = [None, "reshape", "squeeze", "keepdims0"]


@pytest.mark.parametrize("quant", list(QUANTS))
@pytest.mark.parametrize("case", range(len(TFLITE_SHAPES)))
def test_model_from_tflite_gets_tflite_micro_mean_bit_for_bit(case, quant):
    shape, axes = TFLITE_SHAPES[case]
    x_q, y_q = QUANTS[quant]
    tail = TAILS[(case + list(QUANTS).index(quant)) % len(TAILS)]
    keep = tail not in ("keepdims0",)
    model = _qdq_mean(shape, axes, int(keep), x_q, y_q, tail=tail if keep else None)
    g = _compiled(model)
    assert 'rounding="tflite_mean"' in print_graph(g, elide=True)
    assert not any(n.op in ("QuantizeLinear", "DequantizeLinear", "Requantize") for n in g.nodes)
    xs = _inputs(shape)
    want = run_tflm(mean_model(shape, axes, keep, x_q, y_q), xs)
    got = _reference(g, xs)
    differ = sum(int(np.count_nonzero(a.reshape(-1) != w.reshape(-1))) for a, w in zip(got, want))
    assert differ == 0, f"{differ} values differ from TFLite Micro"


def test_tflite_mean_in_nchw_becomes_a_global_pool_and_stays_tflite_micro_exact():
    """tf2onnx's transpose optimizer can leave the mean over H and W of an NCHW tensor: canonicalize
    makes it a GlobalAveragePool, which keeps rounding="tflite_mean" (NHWC after the layout pass)."""
    x_q, y_q = QUANTS["finer_out"]
    for h, w, c in [(25, 5, 64), (7, 7, 3)]:
        g = _compiled(_qdq_mean((1, c, h, w), [2, 3], 0, x_q, y_q))
        assert [n.attrs.get("rounding") for n in g.nodes if n.op == "GlobalAveragePool"] == ["tflite_mean"]
        xs = _inputs((1, h, w, c))
        want = run_tflm(mean_model((1, h, w, c), [1, 2], False, x_q, y_q), xs)
        for x, wv in zip(xs, want):
            got = interpreter.run(g, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[g.outputs[0]]
            np.testing.assert_array_equal(got, wv)


def test_other_qdq_models_get_the_exact_onnx_mean():
    """Not from TFLite (onnxruntime's quantizer, PyTorch, tf2onnx from a TensorFlow graph): the
    exact dequantize-mean-quantize, on every value, for NCHW spatial means (GlobalAveragePool), the
    NHWC one and a mean over channels, with equal and different parameters."""
    cases = [((1, 64, 25, 5), [2, 3], "ReduceMean"), ((1, 6, 4, 4), [2, 3], "GlobalAveragePool"),
             ((1, 10, 2, 2), [2, 3], "ReduceMean"), ((1, 7, 7, 3), [1, 2], "ReduceMean"), ((1, 12, 5, 5), [1], "ReduceMean")]
    for shape, axes, op in cases:
        for name, (x_q, y_q) in QUANTS.items():
            model = _qdq_mean(shape, axes, 1, x_q, y_q, tf2onnx=False, producer="onnx.quantize", op=op)
            g = _compiled(model)
            assert 'rounding="half_even"' in print_graph(g, elide=True)
            xs = _inputs(shape, count=50)
            for x, got in zip(xs, _reference(g, xs)):
                np.testing.assert_array_equal(got.reshape(-1), _exact_mean(x, axes, x_q, y_q).reshape(-1),
                                              err_msg=f"{op} {shape} over {axes}, {name}")


def test_exact_onnx_mean_against_onnxruntime():
    """onnxruntime dequantizes, averages and divides by the scale in float32: it agrees with the
    exact mean except within float32 error of a tie (x.5 LSB), and everywhere when the scales are
    powers of two (every float32 step exact). tinyc before issue 15 (TFLite's average pool
    rounding, then a Requantize) differed from it on 12,138 of 53,500 such values."""
    import onnxruntime as ort

    near_tie = compared = 0
    for shape, axes in [((1, 64, 25, 5), [2, 3]), ((1, 10, 2, 2), [2, 3]), ((1, 7, 7, 3), [1, 2])]:
        for x_q, y_q, exact_steps in [((0.05, -7), (0.02, 11), False), ((0.05, 3), (0.05, 3), False),
                                      ((0.25, -1), (0.125, 4), True), ((2.0 ** -6, 0), (2.0 ** -4, -9), True)]:
            model = _qdq_mean(shape, axes, 1, x_q, y_q, tf2onnx=False, producer="onnx.quantize")
            g = _compiled(model)
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            count = int(np.prod([shape[a] for a in axes]))
            for x in _inputs(shape, count=40, seed=3):
                got = interpreter.run(g, {"x": x})["y"].reshape(-1)
                want = sess.run(None, {"x": x})[0].reshape(-1)
                compared += got.size
                if exact_steps:
                    np.testing.assert_array_equal(got, want)
                    continue
                real = (x.astype(np.int64).sum(axis=tuple(axes)).reshape(-1) - x_q[1] * count) \
                    * np.float64(np.float32(x_q[0])) / (count * np.float64(np.float32(y_q[0])))
                apart = got != want
                assert np.all(np.abs(np.abs(real - np.floor(real)) - 0.5)[apart] < 1e-4)
                near_tie += int(np.count_nonzero(apart))
    assert near_tie < compared // 50


def test_origin_needs_tf2onnx_and_its_tflite_naming():
    """A tf2onnx model without the TFLite reader's names (converted from a TensorFlow graph) and a
    model with such names from another producer keep the ONNX meaning."""
    shape, axes, (x_q, y_q) = (1, 5, 5, 4), [1, 2], QUANTS["finer_out"]
    for tf2onnx_names, producer, want in [(True, "tf2onnx", "tflite_mean"), (False, "tf2onnx", "half_even"),
                                          (True, "pytorch", "half_even")]:
        g = import_model(_qdq_mean(shape, axes, 1, x_q, y_q, tf2onnx=tf2onnx_names, producer=producer))
        mean = next(n for n in g.nodes if n.op == "ReduceMean")
        assert mean.attrs.get("rounding", "half_even") == want, (tf2onnx_names, producer)


@pytest.mark.parametrize("origin", ["tflite", "onnx"])
def test_generated_c_equals_reference(origin, tmp_path):
    """Both meanings in C (host), for an NHWC GlobalAveragePool (NCHW ReduceMean after the layout
    pass) and an int8 ReduceMean over NHWC's H and W, bit for bit with the reference."""
    need_tools("gcc")
    x_q, y_q = QUANTS["finer_out"]
    tflite = origin == "tflite"
    host = get_target("host")
    for shape, axes in [((1, 25, 5, 64), [1, 2]), ((1, 16, 13, 1), [2, 3]), ((1, 12, 5, 5), [1])]:
        g = _compiled(_qdq_mean(shape, axes, 1, x_q, y_q, tf2onnx=tflite, producer="tf2onnx" if tflite else "x"))
        xs = _inputs(shape, count=100, seed=9)
        res = run_on_target(generate(g, host), host, tmp_path / f"{shape[1]}_{len(axes)}", [{"x": x} for x in xs])
        for out, ref in zip(res.outputs, _reference(g, xs)):
            np.testing.assert_array_equal(out["y"], ref)
        if tflite and axes == [1, 2]:
            want = run_tflm(mean_model(shape, axes, True, x_q, y_q), xs)
            for out, w in zip(res.outputs, want):
                np.testing.assert_array_equal(out["y"].reshape(-1), w.reshape(-1))


def test_unknown_rounding_and_out_of_reach_scales_are_clear_errors():
    g = parse_graph('''graph "g" {
  input %x : s8[1,4,3,3]{scale=0.05, zp=0}
  %y : s8[1,4,1,1]{scale=0.05, zp=0} = GlobalAveragePool(%x) {rounding="nearest"} @"gap"
  output %y
}''')
    with pytest.raises(UnsupportedError, match="rounding 'nearest'"):
        interpreter.run(g, {"x": np.zeros((1, 4, 3, 3), np.int8)})
    g = parse_graph('''graph "g" {
  input %x : s8[1,4,30,30]{scale=1000.0, zp=0}
  %y : s8[1,4,1,1]{scale=1e-06, zp=0} = GlobalAveragePool(%x) {rounding="tflite_mean"} @"gap"
  output %y
}''')
    with pytest.raises(UnsupportedError, match="overflows int32"):
        generate(g, get_target("host"))


@pytest.mark.emulator
def test_both_meanings_on_cortex_m0plus_equal_reference(tmp_path):
    """The exact mean divides in int64 (libgcc on Armv6-M): the emulated Cortex-M0+ gives the
    reference's bytes for both meanings."""
    need_arm()
    x_q, y_q = QUANTS["finer_out"]
    target = get_target("cortex-m0plus")
    shape = (1, 13, 1, 16)
    for tflite in (True, False):
        g = _compiled(_qdq_mean(shape, [1, 2], 1, x_q, y_q, tf2onnx=tflite, producer="tf2onnx" if tflite else "x"))
        xs = _inputs(shape, count=20)
        res = run_on_target(generate(g, target), target, tmp_path / str(tflite), [{"x": x} for x in xs])
        for out, ref in zip(res.outputs, _reference(g, xs)):
            np.testing.assert_array_equal(out["y"], ref)
