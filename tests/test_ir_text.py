"""The textual IR: printed, parsed back, identical; errors point at the problem."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.errors import TinycError
from tinyc.frontend.onnx import load
from tinyc.ir import Graph, Node, QuantParams, Tensor
from tinyc.ir_text import parse_graph, print_graph

from .conftest import shared_model

SMALL = """\
graph "tiny" {
  input %x : f32[1,4]
  const %w : f32[4,2] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
  const %b : f32[2] = [0.5, -0.5]
  %y : f32[1,2] = Gemm(%x, %w, %b) {alpha=1.0, beta=1.0, transA=0, transB=0} @"fc"
  %z : f32[1,2] = Relu(%y) @"relu"
  output %z
}
"""


def test_small_graph_round_trips_and_runs():
    g = parse_graph(SMALL)
    assert print_graph(g) == SMALL
    out = interpreter.run(g, {"x": np.array([[1, 0, -1, 0.5]], np.float32)})["z"]
    # x @ w = [1-5+3.5, 2-6+4] = [-0.5, 0]; + b = [0, -0.5]; relu = [0, 0]
    np.testing.assert_array_equal(out, [[0.0, 0.0]])


def test_quantization_names_and_optional_inputs_round_trip():
    g = Graph("q")
    g.add_tensor(Tensor("in:0", (1, 2), "s8", quant=QuantParams(np.array(0.5, np.float32), np.array(-3, np.int32))))
    g.inputs.append("in:0")
    g.add_const("w", np.arange(-3, 3, dtype=np.int8).reshape(3, 2))
    g.tensors["w"].quant = QuantParams(np.array([0.1, 0.2, 0.3], np.float32), np.zeros(3, np.int32), axis=0)
    g.add_const("big", np.linspace(-1, 1, 100, dtype=np.float32))  # printed as hex
    g.add_tensor(Tensor("out \"q\"", (1, 3), "s32"))
    g.nodes.append(Node("Foo", "node with spaces", ["in:0", None, "w", "big"], ["out \"q\""],
                        {"ints": [1, -2], "f": 0.1, "s": "SAME_UPPER", "empty": [], "neg": -7}))
    g.outputs.append("out \"q\"")
    text = print_graph(g)
    g2 = parse_graph(text, check_types=False)  # "Foo" is no real op: structure only
    assert print_graph(g2) == text
    assert g2.tensors["w"].quant == g.tensors["w"].quant
    np.testing.assert_array_equal(g2.tensors["big"].data, g.tensors["big"].data)
    assert g2.nodes[0].inputs == ["in:0", None, "w", "big"]
    assert g2.nodes[0].attrs == g.nodes[0].attrs


@pytest.mark.parametrize("rel", ["mnist-8/model.onnx", "mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx"])
def test_real_models_round_trip_exactly(rel):
    g = load(shared_model(rel))
    text = print_graph(g)
    g2 = parse_graph(text)
    assert print_graph(g2) == text
    feeds = {n: np.random.default_rng(3).standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}
    a, b = interpreter.run(g, feeds), interpreter.run(g2, feeds)
    for k in g.outputs:
        np.testing.assert_array_equal(a[k], b[k])


REQUANTIZE = """\
graph "rq"{options} {{
  input %x : s8[2]{{scale=1.0, zp=0}}
  %y : s8[2]{{scale=4.0, zp=0}} = Requantize(%x) @"rq"
  output %y
}}
"""


def test_rounding_option_is_in_the_header_and_decides_the_integers():
    """5 / 4 = 1.25: double rounding gives 2 (2.5 rounds to 3 first, then 1.5 to 2), single
    rounding 1; the header records the mode only when it is not the default."""
    single = REQUANTIZE.format(options=' {rounding="single"}')
    g = parse_graph(single)
    assert g.options == {"rounding": "single"} and print_graph(g) == single
    assert print_graph(parse_graph(REQUANTIZE.format(options=""))) == REQUANTIZE.format(options="")
    x = {"x": np.array([5, -5], np.int8)}
    assert interpreter.run(g, x)["y"].tolist() == [1, -1]
    assert interpreter.run(parse_graph(REQUANTIZE.format(options="")), x)["y"].tolist() == [2, -1]


@pytest.mark.parametrize("text,fragment", [
    (REQUANTIZE.format(options=' {rounding="triple"}'), "unknown rounding 'triple'"),
    (REQUANTIZE.format(options=' {speed="high"}'), "unknown graph option"),
    ('graph "g" { input %x : f32[1 }', "line 1"),
    ('graph "g" { %y : f32[1] = Relu(%x) @"r"\n output %y }', "before it is defined"),
    ('graph "g" { const %c : f32[3] = [1.0, 2.0] }', "needs 3"),
    ('graph "g" { input %x : q7[1] }', "bad IR"),
])
def test_parse_errors_are_one_line_tinyc_errors(text, fragment):
    with pytest.raises(TinycError) as e:
        parse_graph(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
