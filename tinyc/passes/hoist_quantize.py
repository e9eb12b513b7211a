"""hoist-quantize: a QuantizeLinear after an op that commutes with quantization moves before it,
when that op reads float values no DequantizeLinear gives (the model's float input side).

onnxruntime's quantize_static leaves data movement and max pooling float where their input is not
quantized yet -- the NHWC Transpose at a model's input, a first MaxPool or Resize -- and quantizes
their output. Such an op only copies, selects or takes maxima of its input's values
(``Op.commutes_with_quantize``), so with per-tensor parameters Q(op(x)) == op(Q(x)) exactly: the
pass quantizes (and dequantizes) its input with the output's parameters instead, and lower-qdq
then sees an ordinary DequantizeLinear -> op -> QuantizeLinear cluster rather than a float op inside
an int8 model.
"""
from __future__ import annotations

from ..ir import Graph, Node, Tensor
from ..ops import get_op
from . import Pass, register
from .rewrite import consumers, producer, rounds


def _hoist_one(g: Graph) -> bool:
    cons = consumers(g)
    for q in g.nodes:
        if q.op != "QuantizeLinear" or len(q.inputs) < 2:
            continue
        p = producer(g, q.inputs[0])
        if p is None or not p.inputs or not get_op(p.op).commutes_with_quantize(p):
            continue
        x = g.tensors[p.inputs[0]]
        source = producer(g, x.name)
        if x.dtype != "f32" or (source is not None and source.op == "DequantizeLinear"):
            continue
        if [c.name for c in cons.get(q.inputs[0], [])] != [q.name] or q.inputs[0] in g.outputs:
            continue
        if any(g.tensors[v].size != 1 or not g.tensors[v].is_const for v in q.inputs[1:] if v):
            continue  # per-tensor parameters only
        xq = g.add_tensor(Tensor(g.unique_name(f"{x.name}_quantized"), x.shape, g.tensors[q.outputs[0]].dtype))
        xdq = g.add_tensor(Tensor(g.unique_name(f"{x.name}_dequantized"), x.shape, "f32"))
        at = g.nodes.index(p)
        g.nodes[at:at] = [
            Node("QuantizeLinear", g.unique_name(f"{p.name}/quantize_input"), [x.name, *q.inputs[1:]], [xq.name],
                 dict(q.attrs)),
            Node("DequantizeLinear", g.unique_name(f"{p.name}/dequantize_input"), [xq.name, *q.inputs[1:]], [xdq.name],
                 {k: v for k, v in q.attrs.items() if k == "axis"}),
        ]
        p.inputs[0] = xdq.name
        return True
    return False


@register
class HoistQuantize(Pass):
    name = "hoist-quantize"
    description = "a QuantizeLinear after data movement or max pooling of float values moves before it (exact)"

    def run(self, g: Graph) -> Graph:
        for _ in rounds(g, self.name):
            if not _hoist_one(g):
                break
        return g
