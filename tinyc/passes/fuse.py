"""Fusions on float graphs (int8 clusters are fused by lower-qdq):

- fuse-matmul-add: MatMul(x, W) + bias -> Gemm(x, W, bias) (a fully connected layer), for 2-D x
  and constant W and bias;
- fuse-activation: Relu and Clip after Conv, Gemm, Add, Sub, Mul or Div become the producer's
  clamp (``act_min``/``act_max``); Sigmoid, LeakyRelu, HardSigmoid and HardSwish become its
  ``act`` (see ops/activations.py), applied before the store.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Node
from ..ops import get_op, is_quantized
from ..ops.layout import is_nhwc
from . import Pass, register
from .dce import remove_dead
from .rewrite import consumers, only_use, producer, replace_output

def _float_node(g: Graph, n: Node) -> bool:
    return not is_quantized([g.tensors[x] if x else None for x in n.inputs], [g.tensors[o] for o in n.outputs])


def fuse_matmul_add(g: Graph) -> Graph:
    cons = consumers(g)
    for add in [n for n in g.nodes if n.op == "Add"]:
        for i in (0, 1):
            mm = producer(g, add.inputs[i])
            b = g.tensors[add.inputs[1 - i]]
            if mm is None or mm.op != "MatMul" or only_use(g, add.inputs[i], cons) is not add or not b.is_const:
                continue
            a, w, y = (g.tensors[x] for x in (mm.inputs[0], mm.inputs[1], add.outputs[0]))
            if not _float_node(g, mm) or len(a.shape) != 2 or len(w.shape) != 2 or not w.is_const:
                continue
            n_out = w.shape[1]
            if b.size not in (1, n_out) or y.shape != (a.shape[0], n_out) or b.data.squeeze().ndim > 1:
                continue
            if b.size == n_out and len(b.shape) == 2 and b.shape[0] != 1:
                continue
            bias = g.add_const(g.unique_name(f"{mm.name}/bias"), np.broadcast_to(b.data.reshape(-1), (n_out,)).astype(np.float32))
            mm.op = "Gemm"
            mm.inputs = [mm.inputs[0], mm.inputs[1], bias.name]
            mm.attrs = dict(alpha=1.0, beta=1.0, transA=0, transB=0)
            replace_output(g, add, mm)
            cons = consumers(g)
            break
    return g


def fuse_activation(g: Graph) -> Graph:
    from ..ops.activations import fused_attrs

    cons = consumers(g)
    for act in [n for n in g.nodes if get_op(n.op).activation is not None]:
        p = producer(g, act.inputs[0])
        if p is None or not get_op(p.op).hosts_activation or only_use(g, act.inputs[0], cons) is not act:
            continue
        if not _float_node(g, p) or not _float_node(g, act) or any(k in p.attrs for k in ("act_min", "act_max", "act")):
            continue
        if p.op == "MatMul":
            continue  # no fused clamp in the batched matmul kernel; fuse-matmul-add makes most of them Gemm
        if get_op(act.op).activation == "function":
            p.attrs.update(fused_attrs(act.op, act.attrs))
        else:
            lo, hi = get_op(act.op).clamp_range(act.attrs)
            if lo is not None and not math.isinf(lo):
                p.attrs["act_min"] = float(lo)
            if hi is not None and not math.isinf(hi):
                p.attrs["act_max"] = float(hi)
        replace_output(g, act, p)
        cons = consumers(g)
    return g


@register
class FuseMatMulAdd(Pass):
    name = "fuse-matmul-add"
    description = "MatMul + constant bias Add -> Gemm (fully connected)"

    def run(self, g: Graph) -> Graph:
        return remove_dead(fuse_matmul_add(g))


@register
class FuseActivation(Pass):
    name = "fuse-activation"
    description = "Relu/Clip/Sigmoid/LeakyRelu/HardSigmoid/HardSwish after Conv, Gemm, Add, ... -> inside that op"

    def run(self, g: Graph) -> Graph:
        return remove_dead(fuse_activation(g))


def fuse_pad(g: Graph) -> Graph:
    """Constant padding of the spatial axes only, read by nothing but a Conv (value 0), a MaxPool
    (value -inf) or an AveragePool that counts padding (value 0), becomes that op's pads. On int8
    tensors the padding value 0 is the zero point, which is what an int8 Conv pads with: such a Pad
    folds into the Conv too (MobileNetV2 from PyTorch pads explicitly before every strided and
    depthwise convolution). NCHW and NHWC nodes alike."""
    cons = consumers(g)
    for pad in [n for n in g.nodes if n.op == "Pad"]:
        user = only_use(g, pad.outputs[0], cons)
        a = pad.attrs
        if user is None or a["mode"] != "constant" or user.inputs[0] != pad.outputs[0]:
            continue
        x, y = g.tensors[pad.inputs[0]], g.tensors[pad.outputs[0]]
        if not _float_node(g, pad) and (user.op != "Conv" or x.quant is None or x.quant != y.quant):
            continue  # int8: a Conv reading the same parameters only
        rank = len(x.shape)
        spatial_axes = list(range(1, rank - 1)) if is_nhwc(user) else list(range(2, rank))
        p = a["pads"]
        if any(p[i] or p[i + rank] for i in range(rank) if i not in spatial_axes):
            continue  # batch or channel padding
        ok = (user.op == "Conv" and a["value"] == 0.0) or \
             (user.op == "MaxPool" and a["value"] == -math.inf) or \
             (user.op == "AveragePool" and a["value"] == 0.0 and
              (user.attrs.get("count_include_pad") or not any(user.attrs["pads"])))
        if not ok or user.attrs.get("ceil_mode"):
            continue
        spatial = [p[i] for i in spatial_axes] + [p[i + rank] for i in spatial_axes]
        user.attrs["pads"] = [q + s for q, s in zip(user.attrs["pads"], spatial)]
        if user.op == "AveragePool":
            user.attrs["count_include_pad"] = 1
        assert len(user.attrs["pads"]) == 2 * len(spatial_axes)
        user.inputs = [pad.inputs[0]] + user.inputs[1:]
        g.nodes.remove(pad)
        cons = consumers(g)
    return g


@register
class FusePad(Pass):
    name = "fuse-pad"
    description = "zero (or -inf) spatial Pad -> the pads of the Conv/MaxPool/AveragePool reading it"

    def run(self, g: Graph) -> Graph:
        return remove_dead(fuse_pad(g))
