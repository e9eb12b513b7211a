"""The input contract: data must have the model input's element type and shape (or N samples of
it); float data for an int8 input, channel-layout mix-ups, reshape-only matches and --calib
misuse are one-line errors (exit 2) naming the facts, never a silent cast or reshape; --io float
really makes an int8 QDQ model take and give floats; every command has the same default target."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import need_arm, ort_run, run_cli, shared_model
from tests.onnx_builders import single_node, weights

KWS = "mlperf-tiny/kws_int8.onnx"


def _one_line_error(r, *facts):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: ") and "Traceback" not in r.stderr, r.stderr
    for f in facts:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _nchw_conv(path):
    """A PyTorch-style model: NCHW input [1, 3, 8, 8] into a 3x3 Conv."""
    m, _ = single_node("Conv", [("x", (1, 3, 8, 8)), ("w", weights(4, 3, 3, 3))], pads=[1, 1, 1, 1])
    onnx.save(m, path)
    return path


def _nhwc_conv(path):
    """A tf2onnx-style model: NHWC input [1, 8, 8, 3], a Transpose to NCHW, a Conv."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
             helper.make_node("Conv", ["t", "w"], ["y"], pads=[1, 1, 1, 1], name="conv")]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weights(4, 3, 3, 3), "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _kws_float_inputs(n: int, seed: int = 3) -> np.ndarray:
    """Float features over (a little beyond) the KWS input's int8 range, as a float front end gives."""
    return np.random.default_rng(seed).uniform(-130.0, 30.0, (n, 1, 49, 10, 1)).astype(np.float32)


def _kws_io_params():
    g = onnx.load(str(shared_model(KWS))).graph
    assert g.input[0].type.tensor_type.elem_type == TensorProto.INT8  # the graph input itself is int8
    from tinyc.compiler import prepare

    p = prepare(shared_model(KWS), progress=False).graph
    qi, qo = p.tensors[p.inputs[0]].quant, p.tensors[p.outputs[0]].quant
    return (float(qi.scale), int(qi.zero_point)), (float(qo.scale), int(qo.zero_point))


def _quantize(x, scale, zp):  # ONNX QuantizeLinear, computed here in numpy
    return np.clip(np.rint(x / np.float32(scale)) + zp, -128, 127).astype(np.int8)


# --- misuse: one line, exit 2, the facts named -----------------------------------------------

COMMANDS = {  # every command that takes data, with a target that needs no cross tools where it can
    "run": lambda m, x, o: ("run", m, "-i", x, "-o", str(o / "y.npz")),
    "verify": lambda m, x, o: ("verify", m, "-t", "host", "-i", x),
    "diff": lambda m, x, o: ("diff", m, "-t", "host", "-i", x),
    "report": lambda m, x, o: ("report", m, "-t", "host", "-i", x, "--emulate", "-o", str(o / "r.html")),
    "bench": lambda m, x, o: ("bench", m, "-i", x),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_float_data_for_an_int8_input_names_io_float(command, tmp_path):
    x = tmp_path / "x.npz"
    np.savez(x, input_1=np.random.default_rng(0).uniform(0, 1, (1, 49, 10, 1)).astype(np.float32))
    r = run_cli(*COMMANDS[command](str(shared_model(KWS)), str(x), tmp_path))
    _one_line_error(r, "input_1", "float32", "int8", "--io float", "scale 0.584703", "zero point 83")
    assert not (tmp_path / "y.npz").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_nhwc_data_for_an_nchw_model_names_both_layouts(command, tmp_path):
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    for i, shape in enumerate([(1, 8, 8, 3), (5, 8, 8, 3), (5, 1, 8, 8, 3), (8, 8, 3)]):
        np.savez(tmp_path / f"x{i}.npz", x=np.zeros(shape, np.float32))
        line = _one_line_error(run_cli(*COMMANDS[command](model, str(tmp_path / f"x{i}.npz"), tmp_path)),
                               "'x'", "NHWC", "NCHW", str(list(shape)), "[1, 3, 8, 8]", "transpose")
        # the advice is right: that transpose of the data gives the model's layout
        axes = eval(line.split("a.transpose(")[1].split(")")[0] + ")")
        assert np.zeros(shape).transpose(axes).shape[-3:] == (3, 8, 8)


def test_nchw_data_for_an_nhwc_model_names_both_layouts(tmp_path):
    model = str(_nhwc_conv(tmp_path / "m.onnx"))
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 3, 8, 8), np.float32))
    _one_line_error(run_cli("run", model, "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")),
                    "NCHW data", "the model takes NHWC [1, 8, 8, 3]", "a.transpose((0, 2, 3, 1))")


@pytest.mark.parametrize("shape,words", [((1, 192), "reshape"), ((4, 192), "reshape"), ((8, 3, 8), "another order"),
                                         ((3, 7), "does not fit")])
def test_shapes_that_match_only_after_a_reshape_are_errors(shape, words, tmp_path):
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    np.savez(tmp_path / "x.npz", x=np.zeros(shape, np.float32))
    _one_line_error(run_cli("verify", model, "-t", "host", "-i", str(tmp_path / "x.npz")),
                    str(list(shape)), "[1, 3, 8, 8]", words)


def test_integer_data_for_a_float_input_names_both_types(tmp_path):
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.int64))
    _one_line_error(run_cli("run", model, "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")),
                    "int64 data for a float32 input")


def test_integers_out_of_an_int8_input_range_are_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.full((1, 49, 10, 1), 200, np.uint8))
    _one_line_error(run_cli("run", str(shared_model(KWS)), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")),
                    "uint8 data with values in [200, 200] for an int8 input")


def test_calib_without_quantize_and_bad_calib_data_are_errors(tmp_path):
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    np.savez(tmp_path / "good.npz", x=np.random.default_rng(1).standard_normal((4, 1, 3, 8, 8)).astype(np.float32))
    _one_line_error(run_cli("compile", model, "-t", "host", "--calib", str(tmp_path / "good.npz"), "-o", str(tmp_path / "o")),
                    "--calib", "--quantize int8")
    np.savez(tmp_path / "nhwc.npz", x=np.zeros((4, 8, 8, 3), np.float32))
    np.savez(tmp_path / "ints.npz", x=np.zeros((4, 1, 3, 8, 8), np.int8))
    for bad, facts in (("nhwc", ("--calib nhwc.npz", "NHWC", "NCHW")), ("ints", ("--calib ints.npz", "int8 data for a float32"))):
        _one_line_error(run_cli("compile", model, "-t", "host", "--quantize", "int8", "--calib", str(tmp_path / f"{bad}.npz"),
                                "-o", str(tmp_path / "o")), *facts)
    assert not (tmp_path / "o").exists()


def test_io_int8_on_a_float_model_is_an_error(tmp_path):
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    _one_line_error(run_cli("compile", model, "-t", "host", "--io", "int8", "-o", str(tmp_path / "o")),
                    "--io int8", "--quantize int8")


# --- the legitimate forms still work ---------------------------------------------------------

def test_legitimate_shapes_and_types_run_like_onnxruntime(tmp_path):
    """The model's shape, unit dimensions dropped, N samples in the batch place or on a new first
    axis, float64 for float32: every form gives onnxruntime's outputs for the same samples."""
    path = _nchw_conv(tmp_path / "m.onnx")
    xs = np.random.default_rng(2).standard_normal((3, 1, 3, 8, 8)).astype(np.float32)
    want = np.stack([ort_run(path, {"x": x})[0] for x in xs])
    forms = {"exact": (xs[:1].reshape(1, 3, 8, 8), want[:1]), "no batch axis": (xs[0].reshape(3, 8, 8), want[:1]),
             "batch place": (xs.reshape(3, 3, 8, 8), want), "new axis": (xs, want),
             "float64": (xs.astype(np.float64), want)}
    for what, (data, expect) in forms.items():
        np.savez(tmp_path / "x.npz", x=data)
        r = run_cli("run", str(path), "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz"))
        assert r.returncode == 0, (what, r.stderr)
        got = np.load(tmp_path / "y.npz")["y0"].reshape(expect.shape)
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5, err_msg=what)


def test_int8_model_accepts_in_range_integers_of_any_width(tmp_path):
    """int64 values inside int8's range are the same samples as int8 ones (checked against TFLite Micro)."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    q = np.random.default_rng(4).integers(-128, 128, (2, 49, 10, 1))
    np.savez(tmp_path / "x.npz", input_1=q.astype(np.int64))
    r = run_cli("run", str(shared_model(KWS)), "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    it = runtime.Interpreter.from_file(str(shared_model("mlperf-tiny/kws_int8.tflite")))
    for s, got in zip(q, np.load(tmp_path / "y.npz")["Identity"]):
        it.set_input(s.reshape(1, 49, 10, 1).astype(np.int8), 0)
        it.invoke()
        np.testing.assert_array_equal(got.reshape(-1), it.get_output(0).reshape(-1))


# --- --io float on a QDQ model whose graph input is int8 -------------------------------------

def _ort_float_io_model(path):
    """kws_int8.onnx wrapped in ONNX QuantizeLinear/DequantizeLinear with its own I/O parameters:
    onnxruntime's QDQ execution of the model on float inputs."""
    (si, zi), (so, zo) = _kws_io_params()
    m = onnx.load(str(shared_model(KWS)))
    g = m.graph
    inner_in, inner_out = g.input[0].name, g.output[0].name
    for n in g.node:  # the int8 graph tensors get new names; the float ones take theirs
        n.input[:] = [inner_in + "_q" if x == inner_in else x for x in n.input]
        n.output[:] = [inner_out + "_q" if x == inner_out else x for x in n.output]
    g.initializer.extend([numpy_helper.from_array(np.array(si, np.float32), "io_si"),
                          numpy_helper.from_array(np.array(zi, np.int8), "io_zi"),
                          numpy_helper.from_array(np.array(so, np.float32), "io_so"),
                          numpy_helper.from_array(np.array(zo, np.int8), "io_zo")])
    g.node.insert(0, helper.make_node("QuantizeLinear", [inner_in, "io_si", "io_zi"], [inner_in + "_q"]))
    g.node.append(helper.make_node("DequantizeLinear", [inner_out + "_q", "io_so", "io_zo"], [inner_out]))
    g.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    g.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.save(m, path)
    return path


def test_io_float_on_kws_int8_quantizes_like_onnxruntime_and_tflite_micro(tmp_path):
    """`--io float` on kws_int8.onnx (graph input int8): float samples are quantized with the
    input's scale and zero point inside the model. The reference and the generated C (host) equal
    TFLite Micro run on the same samples quantized in numpy (outputs dequantized in numpy),
    exactly; that numpy quantization is onnxruntime's QuantizeLinear. (onnxruntime's own int8
    execution of KWS differs from TFLite Micro by up to 16 LSB at the softmax on random inputs,
    with int8 inputs as with float ones: it requantizes in float.)"""
    from tinyc.codegen import generate
    from tinyc.compiler import prepare
    from tinyc.emulator import run_on_target
    from tinyc.targets import get_target

    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    (si, zi), (so, zo) = _kws_io_params()
    xs = _kws_float_inputs(12)
    np.savez(tmp_path / "x.npz", input_1=xs)
    r = run_cli("run", str(shared_model(KWS)), "--io", "float", "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    ref = np.load(tmp_path / "y.npz")["Identity"]
    assert ref.dtype == np.float32

    g = prepare(shared_model(KWS), io="float", progress=False).graph
    assert g.tensors["input_1"].dtype == g.tensors["Identity"].dtype == "f32"
    target = get_target("host")
    c_out = np.stack([o["Identity"] for o in
                      run_on_target(generate(g, target), target, tmp_path / "b", [{"input_1": x} for x in xs]).outputs])

    it = runtime.Interpreter.from_file(str(shared_model("mlperf-tiny/kws_int8.tflite")))
    tflm = []
    for x in xs:
        it.set_input(_quantize(x, si, zi), 0)
        it.invoke()
        tflm.append((it.get_output(0).astype(np.int32) - zo).astype(np.float32) * np.float32(so))
    tflm = np.stack(tflm)
    np.testing.assert_array_equal(ref.reshape(tflm.shape), tflm)
    np.testing.assert_array_equal(c_out.reshape(tflm.shape), tflm)

    # the numpy quantization above is onnxruntime's: its QDQ execution of the model on the float
    # samples equals the int8 model run on the numpy-quantized samples
    ort_model = _ort_float_io_model(tmp_path / "kws_float_io.onnx")
    for x in xs:
        via_float = ort_run(ort_model, {"input_1": x})[0]
        via_int8 = (ort_run(shared_model(KWS), {"input_1": _quantize(x, si, zi)})[0].astype(np.int32) - zo) * np.float32(so)
        np.testing.assert_array_equal(via_float, via_int8.astype(np.float32))
    q = _quantize(xs, si, zi)
    assert len(np.unique(q)) == 256 and np.any(xs / si + zi > 127.5) and np.any(xs / si + zi < -128.5)  # range and saturation


def test_verify_io_float_on_kws_int8(tmp_path):
    """The user's command: `tinyc verify kws_int8.onnx --io float -i float.npz` passes."""
    np.savez(tmp_path / "x.npz", input_1=_kws_float_inputs(3))
    r = run_cli("verify", str(shared_model(KWS)), "-t", "host", "--io", "float", "-i", str(tmp_path / "x.npz"))
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    # int8 data for the float input it now has is an error naming both types and --io int8
    np.savez(tmp_path / "q.npz", input_1=np.zeros((1, 49, 10, 1), np.int8))
    _one_line_error(run_cli("verify", str(shared_model(KWS)), "-t", "host", "--io", "float", "-i", str(tmp_path / "q.npz")),
                    "int8 data for a float32 input", "--io int8")


@pytest.mark.emulator
def test_verify_io_float_on_kws_int8_cortex_m4(tmp_path):
    need_arm()
    r = run_cli("verify", str(shared_model(KWS)), "--io", "float", "--samples", "2")
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "target: cortex-m4 (default)"


# --- one default target, said first --------------------------------------------------------

@pytest.mark.emulator
def test_every_command_defaults_to_cortex_m4_and_says_so_first(tmp_path):
    need_arm()
    model = str(_nchw_conv(tmp_path / "m.onnx"))
    runs = {"compile": ("-o", str(tmp_path / "o")), "check": (), "verify": ("--samples", "1"), "diff": (),
            "report": ("-o", str(tmp_path / "r.html")), "bench": ()}
    for command, extra in runs.items():
        r = run_cli(command, model, *extra)
        assert r.returncode == 0, (command, r.stderr)
        assert r.stdout.splitlines()[0] == "target: cortex-m4 (default)", (command, r.stdout)
    r = run_cli("compile", model, "-t", "host", "-o", str(tmp_path / "h"))
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "target: host"
    r = run_cli("bench", model, "--json")  # JSON on stdout: the target line goes to stderr
    assert r.returncode == 0 and r.stderr.splitlines()[0] == "target: cortex-m4 (default)" and r.stdout.startswith("{")
