"""int8 bilinear Resize: TFLite's RESIZE_BILINEAR integer semantics bit for bit against TFLite
Micro (single-op .tflite files: shapes up and down, align_corners, half_pixel_centers, neither)
through tinyc's reference and the generated C on the host and an emulated Cortex-M4; ONNX linear
Resize quantized by tinyc in a small U-Net-like model."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import load_graph
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

from .conftest import need_arm
from .tflite_builders import model_bytes, run_tflm_all

CASES = {
    # name: (input NHWC, output H, W, align_corners, half_pixel_centers, input zero point)
    "x2_half_pixel": ((1, 4, 5, 3), 8, 10, False, True, -3),
    "x2_align_corners": ((1, 4, 5, 3), 8, 10, True, False, 7),
    "x2_asymmetric": ((1, 4, 5, 3), 8, 10, False, False, 0),
    "odd_up_half_pixel": ((1, 3, 7, 2), 7, 9, False, True, -128),
    "down_half_pixel": ((2, 9, 8, 4), 4, 3, False, True, 11),
    "down_align_corners": ((1, 9, 8, 1), 5, 3, True, False, -20),
    "height_only_asymmetric": ((1, 5, 6, 3), 11, 6, False, False, 5),
}


def _resize(shape, oh, ow, align, half, zp) -> bytes:
    q = ((0.04,), (zp,), 0)
    ts = [dict(name="x", shape=shape, type="s8", q=q), dict(name="size", shape=(2,), type="s32", data=np.array([oh, ow], np.int32)),
          dict(name="y", shape=(shape[0], oh, ow, shape[3]), type="s8", q=q)]
    opts = ("ResizeBilinearOptions", dict(alignCorners=align, halfPixelCenters=half))
    return model_bytes("RESIZE_BILINEAR", ts, [0], [2], [0, 1], [2], opts, version=4 if half else 3)


def _feeds(g):
    x = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(1)
    feeds = [{g.inputs[0]: rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(3)]
    return feeds + [{g.inputs[0]: np.full(x.shape, v, np.int8)} for v in (-128, 127)]


@pytest.mark.parametrize("case", list(CASES))
def test_int8_resize_bilinear_equals_tflite_micro(case, tmp_path):
    data = _resize(*CASES[case])
    (tmp_path / "m.tflite").write_bytes(data)
    g = load_graph(tmp_path / "m.tflite")
    feeds = _feeds(g)
    want = run_tflm_all(data, [[f[g.inputs[0]]] for f in feeds])
    for f, w in zip(feeds, want):
        np.testing.assert_array_equal(interpreter.run(g, f)[g.outputs[0]], w)
    targets = ["host"] + (["cortex-m4"] if case in ("x2_half_pixel", "down_align_corners", "odd_up_half_pixel") else [])
    for target in targets:
        if target != "host":
            need_arm()
        model = generate(g, get_target(target))
        assert "resize_bilinear" in str([n.attrs.get("kernel") for n in model.graph.nodes])
        got = run_on_target(model, get_target(target), tmp_path / target, feeds).outputs
        for k, (o, w) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=f"{target} sample {k}")


def _unet(path, mode):
    """A small U-Net: conv, two 2x2 max-pool downsamplings, two bilinear x2 upsamplings with an Add
    and a Concat skip connection, a conv head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up2")], []

    def conv(x, y, cin, cout, name, relu=True):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".w"),
                      numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), name + ".b")])
        nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [y + "_c" if relu else y], pads=[1, 1, 1, 1], name=name))
        if relu:
            nodes.append(helper.make_node("Relu", [y + "_c"], [y], name=name + "_relu"))

    def up(x, y, name):
        nodes.append(helper.make_node("Resize", [x, "", "up2"], [y], mode="linear", coordinate_transformation_mode=mode, name=name))

    conv("x", "e1", 1, 8, "enc1")
    nodes.append(helper.make_node("MaxPool", ["e1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="down1"))
    conv("p1", "e2", 8, 16, "enc2")
    nodes.append(helper.make_node("MaxPool", ["e2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="down2"))
    conv("p2", "m", 16, 16, "mid")
    up("m", "u2", "up2_bilinear")
    nodes.append(helper.make_node("Add", ["u2", "e2"], ["s2"], name="skip2"))
    conv("s2", "d2", 16, 8, "dec2")
    up("d2", "u1", "up1_bilinear")
    nodes.append(helper.make_node("Concat", ["u1", "e1"], ["c1"], axis=1, name="skip1"))
    conv("c1", "y", 16, 2, "head", relu=False)
    g = helper.make_graph(nodes, "unet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.parametrize("mode", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
def test_unet_with_bilinear_upsampling_quantizes_and_verifies(mode, tmp_path):
    import onnxruntime as ort

    from tinyc.pipeline import Build

    from .conftest import run_cli

    _unet(tmp_path / "unet.onnx", mode)
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 1, 1, 16, 16)).astype(np.float32))
    held_out = [{"x": rng.standard_normal((1, 1, 16, 16)).astype(np.float32)} for _ in range(8)]
    r = run_cli("check", str(tmp_path / "unet.onnx"), "-t", "cortex-m4", "--quantize", "int8")
    assert r.returncode == 0 and "fits" in r.stdout, r.stdout + r.stderr
    build = Build(tmp_path / "unet.onnx", get_target("cortex-m4"), quantize="int8", calib=tmp_path / "calib.npz", progress=False)
    g = build.graph
    assert [g.tensors[n.inputs[0]].dtype for n in g.nodes if n.op == "Resize"] == ["s8", "s8"]
    kernels = [n.attrs.get("kernel") for n in build.model.graph.nodes if n.op == "Resize"]
    assert kernels == ["s8.resize_bilinear"] * 2, kernels
    # int8 vs float (onnxruntime) on held-out inputs
    sess = ort.InferenceSession(str(tmp_path / "unet.onnx"))
    want = np.concatenate([sess.run(None, s)[0] for s in held_out])
    got = np.concatenate([interpreter.run(g, s)[g.outputs[0]] for s in held_out])
    sqnr = 10 * np.log10(np.sum(want ** 2) / np.sum((want - got) ** 2))
    print(f"{mode}: int8 vs float SQNR {sqnr:.1f} dB on {len(held_out)} held-out inputs")
    assert sqnr > 30
    if mode == "half_pixel":
        need_arm()
    r = run_cli("verify", str(tmp_path / "unet.onnx"), "-t", "host" if mode != "half_pixel" else "cortex-m4",
                "--quantize", "int8", "--calib", str(tmp_path / "calib.npz"))
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
