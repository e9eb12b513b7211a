"""Quantization on held-out data (--eval, --labels) and the per-layer sensitivity ranking.

Evaluation: the float model (the imported graph) and the int8 model (the reference interpreter's
integer arithmetic, the same as the generated C) run on the --eval samples; per output the SQNR,
the largest error and the top-1 agreement of int8 against float, and with --labels the top-1
accuracy of each against the labels (a classification-like output: one score per class).

Sensitivity: the quantized model before lowering is the float graph with QuantizeLinear ->
DequantizeLinear on every activation and every weight an int8 kernel uses (tinyc/quant/ptq.py
``qdq_graph``). For one layer, every DequantizeLinear that belongs to another layer is replaced by
the float tensor it stands for, so only that layer's weights and its output are quantized (its
input is its producer's output, counted there); the SQNR of the model's outputs against the float
model is the layer's figure. Layers are ranked worst (lowest SQNR) first. The graph inputs'
quantization is measured the same way but kept out of the ranking: every int8 model has it. So
are layers whose op passes its input's quantization through (views, Transpose, Gather, MaxPool:
``Op.commutes_with_quantize``): their output is their input's grid, whose error is counted at the
layer that made it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from .. import interpreter
from ..errors import TinycError
from ..ir import Graph, Node
from ..ops import get_op
from .ptq import quality

INPUT = ""  # the owner of the graph inputs' quantization


def sqnr_db(f: np.ndarray, q: np.ndarray) -> float:
    """10 log10(sum f^2 / sum (f - q)^2), inf when equal."""
    f, q = np.asarray(f, np.float64), np.asarray(q, np.float64)
    noise = float(np.sum((f - q) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(f ** 2) / noise))


def class_output(g: Graph) -> str | None:
    """The first output with one score per class (all its dimensions 1 but the last, > 1)."""
    for o in g.outputs:
        shape = g.tensors[o].shape
        if shape and shape[-1] > 1 and int(np.prod(shape)) == shape[-1]:
            return o
    return None


def load_labels(path: str | Path, count: int, g: Graph) -> np.ndarray:
    """--labels: a .npy of N integer class indices, one per --eval sample."""
    p = Path(path)
    if not p.exists():
        raise TinycError(f"--labels: file not found: {p}")
    try:
        y = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TinycError(f"--labels {p}: not a .npy file ({e})") from None
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise TinycError(f"--labels {p}: need shape (N,) integers, got {y.shape} {y.dtype}")
    if len(y) != count:
        raise TinycError(f"--labels {p}: {len(y)} labels for {count} --eval samples")
    if class_output(g) is None:
        raise TinycError(f"--labels: the model has no classification-like output (one score per class); outputs "
                         + ", ".join(f"'{o}' {list(g.tensors[o].shape)}" for o in g.outputs))
    return y.astype(np.int64)


def evaluate(float_graph: Graph, int8_graph: Graph, samples: list[dict[str, np.ndarray]],
             f_out: list[dict[str, np.ndarray]], labels: np.ndarray | None = None) -> dict:
    """int8 against float (whose outputs on ``samples`` are ``f_out``): per output figures; with
    ``labels`` both accuracies."""
    from ..data import quantize_feeds

    q_out = [interpreter.run(int8_graph, quantize_feeds(int8_graph, s)) for s in samples]
    res: dict = dict(samples=len(samples), outputs=quality(f_out, q_out, int8_graph))
    if labels is not None:
        name = class_output(float_graph)
        res["labels_output"] = name
        res["float_accuracy"] = float(np.mean([np.argmax(o[name]) for o in f_out] == labels))
        # (argmax of the integer values: dequantizing with a positive scale keeps the order)
        res["int8_accuracy"] = float(np.mean([np.argmax(o[name]) for o in q_out] == labels))
    return res


def _only(qdq: Graph, owners: dict[str, tuple[str, str]], layer: str) -> Graph:
    """The QDQ graph with only ``layer``'s DequantizeLinear nodes in place (the others read the
    float tensor they stand for)."""
    g = copy.copy(qdq)
    g.nodes = [Node("Identity", n.name, [owners[n.name][1]], list(n.outputs))
               if n.name in owners and owners[n.name][0] != layer else n for n in qdq.nodes]
    return g


def sensitivity(qdq: Graph, owners: dict[str, tuple[str, str]], samples: list[dict[str, np.ndarray]],
                float_outputs: list[dict[str, np.ndarray]]) -> tuple[list[dict], float | None]:
    """[{layer, sqnr_db}] worst first, and the SQNR with only the graph inputs quantized (None
    when no input is)."""
    f = np.concatenate([np.concatenate([np.ravel(o[k]) for k in sorted(o)]) for o in float_outputs])
    nodes = {n.name: n for n in qdq.nodes}
    layers = [name for name in dict.fromkeys(v[0] for v in owners.values())
              if name not in nodes or not get_op(nodes[name].op).commutes_with_quantize(nodes[name])]
    ranking, input_db = [], None
    for layer in layers:
        g = _only(qdq, owners, layer)
        outs = [interpreter.run(g, s) for s in samples]
        db = sqnr_db(f, np.concatenate([np.concatenate([np.ravel(o[k]) for k in sorted(o)]) for o in outs]))
        if layer == INPUT:
            input_db = round(db, 2)
        else:
            ranking.append(dict(layer=layer, sqnr_db=round(db, 2)))
    ranking.sort(key=lambda r: r["sqnr_db"])
    return ranking, input_db


def render(res: dict, scheme: str = "int8") -> list[str]:
    """The CLI's lines for an evaluation (``Build.evaluation``)."""
    lines = []
    for name, v in res["outputs"].items():
        lines.append(f"{scheme} vs float on {res['samples']} --eval samples, output '{name}': SQNR {v['sqnr_db']:.1f} dB, "
                     f"max abs error {v['max_abs_error']:.3g}, top-1 agreement {v['top1_agreement']:.1%}")
    if "float_accuracy" in res:
        lines.append(f"accuracy against --labels (output '{res['labels_output']}'): float {res['float_accuracy']:.1%}, "
                     f"{scheme} {res['int8_accuracy']:.1%}")
    rank = res.get("sensitivity") or []
    if rank:
        w = rank[0]
        lines.append(f"most sensitive layer: '{w['layer']}' (only it in {scheme}: output SQNR {w['sqnr_db']:.1f} dB); "
                     "ranking, worst first: " + ", ".join(f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in rank[:8])
                     + (", ..." if len(rank) > 8 else ""))
    if res.get("input_only_sqnr_db") is not None:
        lines.append(f"(the inputs' quantization alone, in every int8 model: {res['input_only_sqnr_db']:.1f} dB; "
                     "not ranked)")
    advice = res.get("advice")
    if advice:
        lines.append(advice)
    return lines


def method_advice(method: str, res: dict, minmax_outputs: dict) -> str | None:
    """A line when --calib-method ``method`` gives a lower SQNR on the eval samples than minmax."""
    worse = [(n, v["sqnr_db"], minmax_outputs[n]["sqnr_db"]) for n, v in res["outputs"].items()
             if minmax_outputs[n]["sqnr_db"] > v["sqnr_db"]]
    if not worse:
        return None
    n, a, b = worse[0]
    return (f"advice: --calib-method {method} gives {a:.1f} dB on the --eval samples (output '{n}'), minmax "
            f"{b:.1f} dB: use --calib-method minmax")
