"""The I/O types of an int8 model (``--io``): int8 inputs and outputs (the caller quantizes), or
float ones that the generated code quantizes on entry and dequantizes on exit with the int8
tensors' own parameters."""
from __future__ import annotations

from ..errors import TinycError
from ..ir import Graph, Node, Tensor
from ..passes.dce import remove_dead


def strip_io_quantization(g: Graph) -> Graph:
    """int8 I/O: drop QuantizeLinear on graph inputs and DequantizeLinear on graph outputs, so the
    caller passes and receives int8 (the header documents their scale and zero point)."""
    boundary = [(n, n.inputs[0], n.outputs[0]) for n in g.nodes if n.op == "QuantizeLinear" and n.inputs[0] in g.inputs]
    boundary += [(n, n.outputs[0], n.inputs[0]) for n in g.nodes if n.op == "DequantizeLinear" and n.outputs[0] in g.outputs]
    for node, io_name, int8_name in boundary:
        # the int8 tensor takes over the float I/O tensor's name and place
        g.nodes.remove(node)
        del g.tensors[io_name]
        g.rename(int8_name, io_name)
    return remove_dead(g)


def _int8_io(g: Graph, names: list[str]) -> list[str]:
    out = []
    for name in dict.fromkeys(names):
        t = g.tensors[name]
        if t.dtype == "s8" and t.quant is not None and not t.is_const:
            if t.quant.axis is not None:
                raise TinycError(f"--io float: '{name}' is quantized per channel; only per-tensor int8 inputs "
                                 "and outputs can become float (use --io int8)")
            out.append(name)
    return out


def add_io_quantization(g: Graph) -> Graph:
    """float I/O for an int8 graph (an imported QDQ model whose graph inputs/outputs are int8):
    each int8 input becomes a float input followed by QuantizeLinear, each int8 output a
    DequantizeLinear of the int8 value; the I/O tensors keep their names."""
    ins, outs = _int8_io(g, g.inputs), _int8_io(g, [o for o in g.outputs if o not in g.inputs])
    taken = {n.name for n in g.nodes}

    def node_name(base: str) -> str:
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name

    for name in ins + outs:
        q_name = g.unique_name(f"{name}/q")
        g.rename(name, q_name)
        g.add_tensor(Tensor(name, g.tensors[q_name].shape, "f32"))
        if name in ins:
            g.inputs = [name if x == q_name else x for x in g.inputs]
            g.nodes.insert(0, Node("QuantizeLinear", node_name(f"{name}/quantize"), [name], [q_name], {"to": "s8"}))
        else:
            g.outputs = [name if x == q_name else x for x in g.outputs]
            g.nodes.append(Node("DequantizeLinear", node_name(f"{name}/dequantize"), [q_name], [name]))
    g.verify()
    return g


def has_int8_io(g: Graph) -> bool:
    return any(g.tensors[x].dtype == "s8" for x in g.inputs + g.outputs)
