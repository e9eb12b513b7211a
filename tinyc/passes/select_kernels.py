"""select-kernels: every node gets the kernel that runs it on the target, chosen once.

After the graph passes, each node's op picks its C kernel for the target's template variants
(``Op.kernel_for``: e.g. a DSP ring convolution, a Helium matrix product, the portable loop nest)
and the node records it in attributes, so that ``--dump-ir after=select-kernels`` shows every
decision and the later stages only read them:

- ``kernel``: the template's name (``s8.conv_ring`` is ``s8/conv_ring.c.j2``), ``variant``: the
  target folder it comes from (absent: portable);
- ``form``: how the kernel stores the weights where the op offers a choice (``Kernel.form``:
  ``wide`` int16, ``int8``);
- ``params``: every constant the template uses (geometry, requantization, clamp, ...);
- ``includes``, ``preamble``: C headers and shared helpers it needs;
- ``scratch``: arena bytes for its working rows; ``inplace_scratch``: bytes with which it could
  write its output over input 0 (the memory planner decides whether it does);
- ``laid_out``: ``[input, constant]`` pairs: the kernel reads that constant, the input's values in
  its own layout (e.g. int8 weights widened and interleaved for SMLAD), instead of the input; an
  ordinary constant of the graph named ``<input> (laid out for <node>)``; ``none``: not read at all
  (e.g. a bias inside the kernel's own table).

The node's op, inputs and attributes stay as they are, so the interpreter runs this graph too.
"""
from __future__ import annotations

import dataclasses
import functools

from ..ir import Graph, Node
from ..ops import get_op
from ..quant import rounding
from ..resources import data_dir
from . import Pass, register

TEMPLATE_SUFFIX = ".c.j2"


def kernel_name(template: str) -> str:
    return template[: -len(TEMPLATE_SUFFIX)].replace("/", ".")


def template_of(node: Node) -> str:
    return node.attrs["kernel"].replace(".", "/") + TEMPLATE_SUFFIX


@functools.lru_cache(maxsize=None)
def variant_of(template: str, variants: tuple[str, ...]) -> str | None:
    """The first of the target's template folders holding ``template`` (None: the portable one)."""
    root = data_dir("templates")
    return next((v for v in variants if (root / v / template).is_file()), None)


def copy_graph(g: Graph) -> Graph:
    """The graph with its own node list and attributes (tensors are shared: the pass adds
    constants but changes none), so the caller's graph is left as it was."""
    return dataclasses.replace(g, tensors=dict(g.tensors), inputs=list(g.inputs), outputs=list(g.outputs),
                               nodes=[Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in g.nodes])


@rounding.graph_scoped  # the kernels' requantization follows the graph's rounding mode
def select_kernels(g: Graph, variants: tuple[str, ...], forms: tuple[str, ...] | None = None) -> Graph:
    """``forms`` (an internal knob, e.g. for tests): each node takes the first of its kernel
    options whose weight form is in ``forms`` (else the first option)."""
    g = copy_graph(g)
    for node in g.nodes:
        op = get_op(node.op)
        ins = [None if x is None else g.tensors[x] for x in node.inputs]
        outs = [g.tensors[o] for o in node.outputs]
        if forms is None:
            k = op.kernel_for(node, ins, outs, variants)
        else:
            options = op.kernel_options(node, ins, outs, variants)
            k = next((o for o in options if o.form in forms), options[0])
        a = node.attrs
        a["kernel"] = kernel_name(k.template)
        variant = variant_of(k.template, variants)
        if variant is not None:
            a["variant"] = variant
        if k.form:
            a["form"] = k.form
        a["params"] = k.params
        if k.includes:
            a["includes"] = list(k.includes)
        if k.preamble:
            a["preamble"] = list(k.preamble)
        if k.scratch:
            a["scratch"] = k.scratch
        if not op.inplace:
            need = op.inplace_scratch(node, ins, outs, k)
            if need is not None:
                a["inplace_scratch"] = need
        laid_out = []
        for j, data in sorted(k.weights.items()):
            if data is None:
                laid_out.append([j, None])
            else:
                t = g.add_const(g.unique_name(f"{node.inputs[j]} (laid out for {node.name})"), data)
                laid_out.append([j, t.name])
        if laid_out:
            a["laid_out"] = laid_out
    return g


@register
class SelectKernels(Pass):
    name = "select-kernels"
    description = "every node -> its C kernel for the target (template, parameters, scratch, weights in the kernel's layout)"
    needs_target = True

    def run(self, g: Graph, target) -> Graph:
        return select_kernels(g, target.template_variants)
