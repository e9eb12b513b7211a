"""The int8 routes of a fuzzed model, besides tinyc's own calibration (``--quantize int8``):

- ``ort``, ``ort_pc``: onnxruntime's ``quantize_static`` (QDQ, int8 activations and weights,
  per tensor / per channel), as a user who quantizes with onnxruntime gets them;
- ``ort_qop``: the same in onnxruntime's QOperator format (QLinearConv, QLinearMatMul, ...; the
  ops tinyc has no QLinear form for stay float between Quantize/DequantizeLinear);
- ``qdq_extreme``: onnxruntime's per-channel QDQ graph with every activation's scale multiplied by
  a random power of two (2^-4 .. 2^4) and its zero point drawn anywhere in [-128, 127] (often at an
  end); biases are requantized to the new input scales, as a converter would write them. Values
  then saturate, scales get tiny or huge and requantization multipliers leave the usual range.
"""
from __future__ import annotations

import logging
import random
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROUTES_QDQ = ("ort", "ort_pc", "qdq_extreme", "ort_qop")


def ort_quantize(model: onnx.ModelProto, calib: list[dict[str, np.ndarray]], per_channel: bool,
                 qoperator: bool = False) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice on pre-processing, per model
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "float.onnx", Path(d) / "qdq.onnx"
        onnx.save(model, src)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                        per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"WeightSymmetric": True},
                        # QOperator: the ONNX-standard QLinear ops only (onnxruntime's others are its own domain's)
                        **({"op_types_to_quantize": ["Conv", "MatMul"]} if qoperator else {}))
        return onnx.load(dst)


def extreme(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """Perturb the activation quantization of a QDQ model (see the module docstring)."""
    r = random.Random(seed)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    # Activation Q/DQ share one (scale, zero point) pair of scalar initializers per tensor; weights
    # are DQ of an initializer, and biases DQ of an int32 one: those keep theirs.
    weight_dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    activation_params = []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) == 3 and n.input[1] in inits and \
                numpy_helper.to_array(inits[n.input[1]]).size == 1:
            if (n.input[1], n.input[2]) not in activation_params:
                activation_params.append((n.input[1], n.input[2]))
    old_scale = {}
    for s_name, z_name in activation_params:
        s = numpy_helper.to_array(inits[s_name])
        old_scale[s_name] = float(s)
        new = np.float32(float(s) * 2.0 ** r.randint(-4, 4))
        inits[s_name].CopyFrom(numpy_helper.from_array(np.asarray(new, np.float32).reshape(s.shape), s_name))
        z = numpy_helper.to_array(inits[z_name])
        zp = r.choice([-128, 127, r.randint(-128, 127), r.randint(-128, 127), 0])
        inits[z_name].CopyFrom(numpy_helper.from_array(np.asarray(zp, z.dtype).reshape(z.shape), z_name))
    # Bias of a Conv/Gemm: int32 with scale = input scale * weight scale; rewrite for the new input scale.
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3:
            continue
        bias_dq, x_dq, w_dq = (producers.get(v) for v in (n.input[2], n.input[0], n.input[1]))
        if bias_dq is None or x_dq is None or w_dq is None or bias_dq.output[0] not in weight_dq:
            continue
        x_scale_name = x_dq.input[1]
        if x_scale_name not in old_scale:
            continue
        b_int = numpy_helper.to_array(inits[bias_dq.input[0]]).astype(np.float64)
        b_scale = numpy_helper.to_array(inits[bias_dq.input[1]]).astype(np.float64)
        w_scale = numpy_helper.to_array(inits[w_dq.input[1]]).astype(np.float64)
        real = b_int * b_scale
        new_scale = (numpy_helper.to_array(inits[x_scale_name]).astype(np.float64) * w_scale).astype(np.float32)
        new_int = np.clip(np.round(real / new_scale.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
        inits[bias_dq.input[0]].CopyFrom(numpy_helper.from_array(new_int, bias_dq.input[0]))
        inits[bias_dq.input[1]].CopyFrom(numpy_helper.from_array(new_scale.reshape(b_scale.shape), bias_dq.input[1]))
    return model
