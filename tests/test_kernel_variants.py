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

CASES = {
    # name: (input shape NCHW, op, weight shape, attrs)
    "pw_odd_channels_odd_pixels": ((1, 12, 3, 5), "Conv", (7, 12, 1, 1), {}),
    "pw_channels_not_multiple_of_4": ((1, 6, 4, 4), "Conv", (8, 6, 1, 1), {}),
    "pw_same_shape_in_place": ((1, 8, 5, 3), "Conv", (8, 8, 1, 1), {}),
    "pw_wide_channels": ((1, 20, 3, 3), "Conv", (6, 20, 1, 1), {}),
    "conv3x3_pairs_with_borders": ((1, 8, 6, 7), "Conv", (6, 8, 3, 3), dict(pads=[1, 1, 1, 1])),
    "conv3x3_same_shape_in_place": ((1, 8, 5, 5), "Conv", (8, 8, 3, 3), dict(pads=[1, 1, 1, 1])),
    "conv3x3_stride2_odd_m": ((1, 8, 7, 7), "Conv", (5, 8, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    "conv_asymmetric_dilated": ((1, 4, 9, 8), "Conv", (6, 4, 3, 2), dict(pads=[2, 0, 1, 1], dilations=[2, 1])),
    "depthwise3x3_stride2": ((1, 8, 7, 6), "Conv", (8, 1, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2], group=8)),
    "fc_k_tail_odd_n": ((1, 22), "Gemm", (5, 22), dict(transB=1)),
    "fc_not_transposed": ((2, 16), "MatMul", (16, 9), {}),
}


# a phrase of each kernel's header comment
KERNEL = {"pw": "1x1 convolution", "conv3x3": "Convolution, NHWC, int8", "conv": "Convolution, NHWC, int8",
          "depthwise3x3": "Depthwise convolution", "fc": "Fully connected, int8"}


# cases with a dot product of 16 or more int8 values, where the Helium kernels use VMLADAVA
HELIUM = {"pw_wide_channels", "conv3x3_pairs_with_borders", "conv3x3_same_shape_in_place", "fc_k_tail_odd_n",
          "fc_not_transposed"}
# cases whose kernel has no DSP variant (odd output channels for the paired convolution; depthwise)
PORTABLE_ONLY = {"conv3x3_stride2_odd_m", "depthwise3x3_stride2"}


def _model(path, shape, op, wshape, attrs):
    rng = np.random.default_rng(abs(hash(str(wshape))) % 2**32)
    w = (rng.standard_normal(wshape) * 0.3).astype(np.float32)
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
    shape, op, wshape, attrs = CASES[case]
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
        assert KERNEL[case.split("_")[0]] in code, "the case no longer reaches the kernel it is meant for"
        assert ("__smlad" in code) == (target == "cortex-m4" and case not in PORTABLE_ONLY)
        assert ("vmladavaq_s8" in code) == (target == "cortex-m55" and case in HELIUM)
        got = run_on_target(model, t, tmp_path / target, samples).outputs
        for o, w in zip(got, want):
            np.testing.assert_array_equal(o[g.outputs[0]], w, err_msg=target)
