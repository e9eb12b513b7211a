"""ONNX LSTM and GRU as one time-loop node each: the reference and the generated C against
onnxruntime over the features (directions, layouts, initial states, peepholes, clip, input_forget,
linear_before_reset, every gate function with its alpha/beta, unused outputs), on the host and for
one LSTM and one GRU on the emulated Cortex-M4."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.emulator import run_on_target
from tinyc.frontend.onnx import import_model
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, rel_err
from .onnx_builders import weights as W


def rnn_model(op: str, seq: int, batch: int, inp: int, hidden: int, outs: tuple[str, ...] = ("y", "y_h"),
              bias: bool = True, h0: bool = False, c0: bool = False, peep: bool = False, lens: bool = False, **attrs):
    """One LSTM/GRU node; X (and the initial states) are graph inputs, the weights initializers.
    ``outs``: the node's output names ("" for an unused one)."""
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    gates = 4 if op == "LSTM" else 3
    layout = attrs.get("layout", 0)
    rng = np.random.default_rng(11)
    xshape = [seq, batch, inp] if layout == 0 else [batch, seq, inp]
    sshape = [dirs, batch, hidden] if layout == 0 else [batch, dirs, hidden]
    inits = [numpy_helper.from_array(W(dirs, gates * hidden, inp), "w"),
             numpy_helper.from_array(W(dirs, gates * hidden, hidden, seed=2), "r")]
    names, gin, feeds = ["x", "w", "r"], [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)], {}
    feeds["x"] = rng.standard_normal(xshape).astype(np.float32)
    names.append("b" if bias else "")
    if bias:
        inits.append(numpy_helper.from_array(W(dirs, 2 * gates * hidden, seed=3), "b"))
    names.append("lens" if lens else "")
    if lens:
        inits.append(numpy_helper.from_array(np.full(batch, seq, np.int32), "lens"))
    for name, used in (("h0", h0), ("c0", c0)):
        if name == "c0" and op == "GRU":
            break
        names.append(name if used else "")
        if used:
            gin.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, sshape))
            feeds[name] = rng.standard_normal(sshape).astype(np.float32)
    if peep:
        names.append("p")
        inits.append(numpy_helper.from_array(W(dirs, 3 * hidden, seed=4), "p"))
    while names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, list(outs), name=f"the_{op.lower()}", hidden_size=hidden, **attrs)
    graph = helper.make_graph([node], "rnn", gin, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                                   for o in outs if o], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    return model, feeds


ACTS = dict(activations=["HardSigmoid", "Elu", "LeakyRelu", "Relu", "Tanh", "Sigmoid"],
            activation_alpha=[0.3, 0.8, 0.05], activation_beta=[0.45])
CASES = {
    "lstm_forward": ("LSTM", (6, 2, 5, 8), dict(outs=("y", "y_h", "y_c"))),
    "lstm_reverse_layout1": ("LSTM", (5, 3, 4, 6), dict(direction="reverse", layout=1, outs=("y", "y_h", "y_c"))),
    "lstm_bidirectional_states_peepholes": ("LSTM", (4, 2, 3, 5), dict(direction="bidirectional", h0=True, c0=True,
                                                                       peep=True, outs=("y", "y_h", "y_c"))),
    "lstm_bidirectional_layout1_states": ("LSTM", (4, 2, 3, 5), dict(direction="bidirectional", layout=1, h0=True,
                                                                     c0=True, outs=("y", "y_h", "y_c"))),
    "lstm_clip_input_forget_no_bias": ("LSTM", (7, 1, 4, 6), dict(clip=0.7, input_forget=1, bias=False)),
    "lstm_only_y_h": ("LSTM", (6, 2, 5, 8), dict(outs=("", "y_h"), lens=True)),
    "lstm_only_y_c": ("LSTM", (6, 2, 5, 8), dict(outs=("", "", "y_c"))),
    "lstm_activations_per_direction": ("LSTM", (5, 2, 4, 6), dict(direction="bidirectional", **ACTS)),
    "gru_forward": ("GRU", (6, 2, 5, 8), {}),
    "gru_linear_before_reset_bidirectional": ("GRU", (5, 2, 4, 6), dict(direction="bidirectional", linear_before_reset=1,
                                                                        h0=True)),
    "gru_layout1_reverse_states": ("GRU", (4, 3, 5, 7), dict(direction="reverse", layout=1, h0=True)),
    "gru_clip_no_bias_only_y_h": ("GRU", (6, 1, 3, 4), dict(clip=0.5, bias=False, outs=("", "y_h"))),
    "gru_activations": ("GRU", (5, 2, 4, 6), dict(activations=["HardSigmoid", "Elu"], activation_alpha=[0.3, 0.8],
                                                   activation_beta=[0.45], linear_before_reset=1)),
    "gru_activations_per_direction": ("GRU", (5, 2, 4, 6), dict(direction="bidirectional",
                                                                 activations=["Sigmoid", "LeakyRelu", "HardSigmoid", "Relu"],
                                                                 activation_alpha=[0.05, 0.25])),
}


def _ort(model, feeds):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _oracle(op, sizes, kw):
    """The model, its feeds and onnxruntime's outputs. onnxruntime has no layout 1: for it the same
    node in layout 0 runs on the transposed inputs, its outputs transposed back."""
    model, feeds = rnn_model(op, *sizes, **kw)
    if kw.get("layout", 0) == 0:
        return model, feeds, _ort(model, feeds)
    model0, _ = rnn_model(op, *sizes, **dict(kw, layout=0))
    want = _ort(model0, {k: np.ascontiguousarray(np.transpose(v, (1, 0, 2))) for k, v in feeds.items()})
    return model, feeds, [np.transpose(w, (2, 0, 1, 3) if w.ndim == 4 else (1, 0, 2)) for w in want]


@pytest.mark.parametrize("key", sorted(CASES))
def test_rnn_is_one_node_equal_to_onnxruntime_in_reference_and_host_c(key, tmp_path):
    need_tools("gcc")
    op, sizes, kw = CASES[key]
    model, feeds, want = _oracle(op, sizes, kw)
    g = import_model(model, name="case")
    assert [n.op for n in g.nodes] == [op]
    got = interpreter.run(g, feeds)
    for name, w in zip(g.outputs, want):
        assert got[name].shape == w.shape
        assert rel_err(got[name], w) < 1e-5, f"reference differs from onnxruntime for {name}"
    host = get_target("host")
    res = run_on_target(generate(g, host), host, tmp_path, [feeds])
    for name, w in zip(g.outputs, want):
        assert rel_err(res.outputs[0][name], w) < 1e-5, f"generated C differs from onnxruntime for {name}"


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_rnn_on_cortex_m4_equals_onnxruntime(op, tmp_path):
    need_arm()
    model, feeds = rnn_model(op, 12, 1, 10, 16, direction="bidirectional", h0=True, outs=("y", "y_h"))
    want = _ort(model, feeds)
    g = import_model(model, name="case")
    target = get_target("cortex-m4")
    res = run_on_target(generate(g, target), target, tmp_path, [feeds])
    for name, w in zip(g.outputs, want):
        assert rel_err(res.outputs[0][name], w) < 1e-5, f"cortex-m4 differs from onnxruntime for {name}"


def test_rnn_kernel_takes_one_steps_gates_and_the_state_as_scratch():
    from tinyc.ops import get_op

    model, _ = rnn_model("LSTM", 28, 1, 28, 20, outs=("y",))
    g = import_model(model)
    node = g.nodes[0]
    ins, outs = [None if x is None else g.tensors[x] for x in node.inputs], [g.tensors[o] for o in node.outputs]
    assert get_op("LSTM").macs(node, ins, outs) == 28 * 4 * 20 * (28 + 20)
    # floats: the gates of one step (4 x 20) and the state h, c (2 x 20), not 28 steps' projections
    assert get_op("LSTM").kernel(node, ins, outs).scratch == 4 * (4 * 20 + 2 * 20)
