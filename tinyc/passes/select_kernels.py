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
  write its output over input 0 (the memory planner decides whether it does); ``inplace_smaller``:
  that output is smaller than input 0 (a depthwise layer at stride 2 or with valid padding, written
  from the start of the input's bytes: the planner takes it only where the arena gets smaller);
- ``laid_out``: ``[input, constant]`` pairs: the kernel reads that constant, the input's values in
  its own layout (e.g. int8 weights widened and interleaved for SMLAD), instead of the input; an
  ordinary constant of the graph named ``<input> (laid out for <node>)``; ``none``: not read at all
  (e.g. a bias inside the kernel's own table);
- ``form`` and ``options`` where the op offers more than one kernel (``Op.kernel_options``, e.g.
  weights widened to int16 or kept int8): the chosen weight form, and every option's
  ``[form, kernel, estimated instructions, flash bytes, flash bytes read per inference,
  estimated cycles]`` (tinyc/kernel_cost.py) that ``--optimize`` and the flash budget chose by
  (tinyc/optimize.py).

The node's op, inputs and attributes stay as they are, so the interpreter runs this graph too.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

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


def _tensors(g: Graph, node: Node) -> tuple[list, list]:
    return [None if x is None else g.tensors[x] for x in node.inputs], [g.tensors[o] for o in node.outputs]


def distinct(options: list) -> list:
    """The options without repeats: two that run the same template on the model's own arrays (no
    laid-out weights) are the same kernel whatever their form says."""
    out = []
    for k in options:
        if not any(o.template == k.template and not o.weights and not k.weights for o in out):
            out.append(k)
    return out


def _costs(g: Graph, nodes, kernels: dict[str, list], variants: tuple[str, ...], target) -> dict[str, list]:
    from ..kernel_cost import cost_key, option_cost

    costs = {}
    for node in nodes:
        op = get_op(node.op)
        ins, outs = _tensors(g, node)
        costs[node.name] = [option_cost(op, node, ins, outs, k,
                                        cost_key(kernel_name(k.template), variant_of(k.template, variants), k.form), target)
                            for k in kernels[node.name]]
    return costs


def _choose(g: Graph, kernels: dict[str, list], costs: dict[str, list], target) -> dict[str, int]:
    """The mode's choice within the flash budget (tinyc/optimize.py) among the nodes with options."""
    from ..kernel_cost import overhead_bytes, core_class
    from ..optimize import budget_of, choose, mode_of

    options = {n: cs for n, cs in costs.items() if len(cs) > 1}
    fixed = sum(cs[0].flash_bytes for n, cs in costs.items() if len(cs) == 1) + overhead_bytes(core_class(target.template_variants))
    pick = choose(options, mode_of(g), budget_of(g, target), fixed)
    return {n: pick.get(n, 0) for n in kernels}


def select_kernels(g: Graph, variants: tuple[str, ...], forms: tuple[str, ...] | None = None) -> Graph:
    """Every node's kernel among its op's options (Op.kernel_options): with ``forms``, the first
    whose weight form is in ``forms`` (else its first option); without, its first option."""
    return choose_kernels(g, variants, forms)


@rounding.graph_scoped  # the kernels' requantization follows the graph's rounding mode
def choose_kernels(g: Graph, variants: tuple[str, ...], forms: tuple[str, ...] | None = None, target=None) -> Graph:
    """select_kernels, and with ``target`` (without ``forms``) the choice of the graph's
    --optimize mode within its flash budget (tinyc/optimize.py); with ``target``, nodes with more
    than one option record their estimates: ``options``, [form, kernel, estimated instructions,
    flash bytes, flash bytes read per inference, estimated cycles] each (and ``form``, the chosen
    option's, in any case)."""
    g = copy_graph(g)
    kernels = {}
    for node in g.nodes:
        op = get_op(node.op)
        ins, outs = _tensors(g, node)
        kernels[node.name] = distinct(op.kernel_options(node, ins, outs, variants))
    multi = {n for n, ks in kernels.items() if len(ks) > 1}
    # the bands of one layer (the patch pass's ``band_of``) choose once, by their first band
    first = {}
    for node in g.nodes:
        first.setdefault(node.attrs.get("band_of", node.name), node.name)
    choosers = [n for n in g.nodes if first[n.attrs.get("band_of", n.name)] == n.name]
    costs = _costs(g, choosers, kernels, variants, target) if target is not None and multi else {}
    if forms is not None:
        pick = {n: next((i for i, k in enumerate(ks) if k.form in forms), 0) for n, ks in kernels.items()}
    elif costs:
        pick = _choose(g, {n.name: kernels[n.name] for n in choosers}, costs, target)
        for node in g.nodes:  # the other bands take their first band's form
            if node.name not in pick:
                form = kernels[first[node.attrs["band_of"]]][pick[first[node.attrs["band_of"]]]].form
                pick[node.name] = next((i for i, k in enumerate(kernels[node.name]) if k.form == form), 0)
    else:
        pick = {n: 0 for n in kernels}
    for node in g.nodes:
        k = kernels[node.name][pick[node.name]]
        _apply(g, node, k, variants)
        if k.form:
            node.attrs["form"] = k.form
        if node.name in multi and node.name in costs:
            node.attrs["options"] = [[o.form, kernel_name(o.template), c.instructions, c.flash_bytes, c.flash_read_bytes,
                                      c.cycles] for o, c in zip(kernels[node.name], costs[node.name])]
    return g


def _apply(g: Graph, node: Node, k, variants: tuple[str, ...]) -> None:
    """Record kernel ``k`` in the node's attributes (its weights in its layout: new constants)."""
    op = get_op(node.op)
    ins, outs = _tensors(g, node)
    a = node.attrs
    a["kernel"] = kernel_name(k.template)
    variant = variant_of(k.template, variants)
    if variant is not None:
        a["variant"] = variant
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
            if outs[0].nbytes < ins[0].nbytes:  # from the start of the input's bytes, where the planner finds it pays
                a["inplace_smaller"] = True
    laid_out = []
    for j, data in sorted(k.weights.items()):
        if data is None:
            laid_out.append([j, None])
            continue
        name = f"{node.inputs[j]} (laid out for {a.get('band_of', node.name)})"
        t = g.tensors.get(name)  # the bands of one layer share its laid-out weights
        if not ("band_of" in a and t is not None and t.is_const and t.data.dtype == data.dtype
                and np.array_equal(t.data, data)):
            t = g.add_const(g.unique_name(name), data)
        laid_out.append([j, t.name])
    if laid_out:
        a["laid_out"] = laid_out


@register
class SelectKernels(Pass):
    name = "select-kernels"
    description = "every node -> its C kernel for the target (template, parameters, scratch, weights in the kernel's layout)"
    needs_target = True

    def run(self, g: Graph, target) -> Graph:
        return choose_kernels(g, target.template_variants, target=target)
