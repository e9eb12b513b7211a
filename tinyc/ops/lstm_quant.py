"""ONNX LSTM -> LstmInt8 (tinyc/ops/lstm_int.py) when tinyc quantizes a float model (``--quantize int8``),
with the scheme TFLite's converter uses for its integer LSTM:

- weights int8, symmetric, per tensor per gate matrix (scale max|w| / 127), input and recurrent
  weights each; ONNX's gate rows i, o, f, c reordered to TFLite's i, f, c, o;
- one int32 bias per gate at input scale x input-weight scale: ONNX's Wb + Rb (TFLite has no recurrent
  bias: the recurrent bias input of LstmInt8 is zero);
- input and hidden state (= output Y) int8 with their calibrated parameters;
- the cell state int16 with a power-of-two scale 2^ceil(log2(max |c|)) / 32768, from the range of the
  cell state seen in calibration (``LSTM.internal_ranges``, stored on the node as ``calibrated``);
- the gates at TFLite Micro's fixed scales (2^-12 in, 2^-15 out).

The LSTM features TFLite Micro's kernel does not have are refused, naming the node and the feature
(tinyc never keeps a float op inside an int8 model).
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Node, QuantParams, Tensor
from .lstm_int import lstm_int8_attrs

ONNX_TO_TFLITE = (0, 2, 3, 1)  # TFLite's gate k (i, f, c, o) is ONNX's gate ONNX_TO_TFLITE[k] (i, o, f, c)


def refusal(node: Node, graph_outputs: list[str], used: set[str]) -> str | None:
    """The first feature of ``node`` the integer kernel lacks, or None."""
    a = node.attrs
    ins = list(node.inputs) + [None] * (8 - len(node.inputs))
    checks = [
        (a.get("direction", "forward") != "forward", f"direction '{a.get('direction')}' (only forward)"),
        (int(a.get("layout", 0)) != 0, "layout 1 (batch first)"),
        (bool(ins[4]), "sequence_lens"),
        (bool(ins[5]) or bool(ins[6]), "initial_h/initial_c inputs (the kernel starts from zero state)"),
        (bool(ins[7]), "peepholes (P)"),
        (a.get("clip") is not None, "clip"),
        (bool(int(a.get("input_forget", 0))), "input_forget"),
        (bool(a.get("cell_clip")), "cell_clip"),
        (bool(a.get("activations")) and list(a["activations"]) != ["Sigmoid", "Tanh", "Tanh"],
         f"activations {a.get('activations')} (only Sigmoid, Tanh, Tanh)"),
        (any(o and (o in used or o in graph_outputs) for o in node.outputs[1:]), "outputs Y_h/Y_c"),
    ]
    return next((what for bad, what in checks if bad), None)


def cell_scale(node: Node) -> float:
    """The cell state's power-of-two int16 scale from its calibrated range."""
    cal = node.attrs.get("calibrated", {}).get("cell")
    if cal is None:
        raise UnsupportedError(f"LSTM node '{node.name}': int8 needs the cell state's calibrated range")
    m = max(abs(cal[0]), abs(cal[1]), 2.0 ** -15)
    return float(2.0 ** np.ceil(np.log2(m)) / 32768.0)


def _per_gate(w: np.ndarray, H: int) -> tuple[np.ndarray, list[float]]:
    """[4H, K] float in ONNX's gate order -> int8 in TFLite's, and the 4 scales."""
    blocks, scales = [], []
    for k in ONNX_TO_TFLITE:
        wk = w[k * H:(k + 1) * H].astype(np.float64)
        s = float(np.float32(np.abs(wk).max() / 127.0)) or 1.0
        blocks.append(np.clip(np.round(wk / s), -127, 127).astype(np.int8))
        scales.append(s)
    return np.concatenate(blocks), scales


def lower(cx, node: Node, out: list[str]) -> Node:
    """The LstmInt8 node (and a Reshape to ONNX's Y [seq, 1, batch, hidden]) for a float LSTM
    between DequantizeLinear and QuantizeLinear; ``cx``: lower-qdq's helper."""
    g = cx.g
    used = {x for n in g.nodes for x in n.inputs if x}
    why = refusal(node, g.outputs, used)
    if why:
        raise UnsupportedError(f"LSTM node '{node.name}': int8 quantization does not support {why}")
    x = cx.activation(node.inputs[0], node)
    y = cx.y
    W, R = (g.tensors[node.inputs[i]] for i in (1, 2))
    if W.data is None or R.data is None:
        raise UnsupportedError(f"LSTM node '{node.name}': int8 quantization needs constant weights")
    H = R.shape[2]
    wx, sx = _per_gate(W.data[0], H)
    wh, sh = _per_gate(R.data[0], H)
    b = node.inputs[3] if len(node.inputs) > 3 else None
    bsum = np.zeros(4 * H, np.float64)
    if b:
        bt = g.tensors[b]
        if bt.data is None:
            raise UnsupportedError(f"LSTM node '{node.name}': int8 quantization needs a constant bias")
        bsum = bt.data[0, :4 * H].astype(np.float64) + bt.data[0, 4 * H:]
    xq, yq = x.quant, y.quant
    row_x = np.repeat(np.float32(sx), H)
    row_h = np.repeat(np.float32(sh), H)
    bscale = np.float64(xq.scale) * row_x.astype(np.float64)
    bias = np.concatenate([bsum[k * H:(k + 1) * H] for k in ONNX_TO_TFLITE]) / bscale
    if np.any(np.abs(np.round(bias)) > 2 ** 31 - 1):
        raise UnsupportedError(f"LSTM node '{node.name}': bias does not fit int32 at this scale")
    zeros = np.zeros(4 * H, np.int32)
    consts = []
    for what, data, scale in (("input_weights", wx, row_x), ("recurrent_weights", wh, row_h),
                              ("bias", np.round(bias).astype(np.int32), bscale.astype(np.float32)),
                              ("recurrent_bias", zeros, (np.float64(yq.scale) * row_h).astype(np.float32))):
        t = g.add_const(g.unique_name(f"{node.name}/{what}"), data)
        t.quant = QuantParams(scale, zeros, 0)
        consts.append(t.name)
    cs = cell_scale(node)
    attrs = lstm_int8_attrs(float(xq.scale), int(xq.zero_point), list(zip(sx, sh)), float(yq.scale),
                            int(yq.zero_point), cs, 0.0, "tanh", True)
    attrs["cell_scale"] = cs
    T, B = x.shape[0], x.shape[1]
    mid = g.add_tensor(Tensor(g.unique_name(f"{y.name}/steps"), (T, B, H), "s8", quant=yq))
    cx.extra.append(Node("LstmInt8", node.name, [x.name] + consts, [mid.name], attrs))
    return Node("Reshape", f"{node.name}/reshape", [mid.name], out, {"shape": list(y.shape)})
