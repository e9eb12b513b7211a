"""The patch pass under the fuzzer: CNN-shaped recipes big enough for it, and a --patch per case.

- ``cnn``: a share of the seeds (an RNG of its own, so the other recipes stay as they were) get an
  image CNN instead: 16x16 to 48x48, N=1, convolutions of every kind the pass cuts into row bands
  (pointwise, strided, dilated, depthwise), pooling with and without padding, residual Adds,
  Relu/Clip, channel counts giving rows of 4-byte multiples and some not; the tflite route gets
  bigger images and more layers of its own kinds.
- ``draw``: every recipe's --patch: mostly ``BANDS@#k`` (forced: BANDS bands ending at the k-th
  layer, modulo, of those that end a stage the pass accepts), sometimes ``BANDS`` (the pass picks
  the stage), ``auto``, ``off`` or nothing (the default, auto).
- ``resolve``: the concrete --patch of a prepared case (``BANDS@#k`` -> ``BANDS@LAYER``).

The oracles do not change: the C of the graph in bands must equal the reference of the graph as it
was (integers exactly), so any wrong row, pad or window offset fails the case. A forced spec the
pass refuses ("no stage ... can run in N bands": rows that are not 4-byte multiples, ...) counts as
refused and the case runs without it.
"""
from __future__ import annotations

import dataclasses
import random

from .gen import Recipe

CNN_SHARE = 0.25
# Layer kinds of the CNN-shaped recipes (ONNX routes) and how often each is drawn.
CNN_WEIGHTS = {"cnn_conv": 8, "cnn_pool": 2, "conv": 1, "pool": 1, "residual": 2, "activation": 1,
               "const_binary": 1, "concat": 1, "se": 1}
TFLITE_KINDS = ("conv", "conv", "dwconv", "dwconv", "pool", "add", "add")


def cnn(recipe: Recipe, tflite: bool) -> Recipe:
    """``recipe``, or for CNN_SHARE of the seeds an image CNN in its place (same seed and route)."""
    r = random.Random(f"cnn-{recipe.seed}")
    if r.random() >= CNN_SHARE:
        return recipe
    h = r.randint(16, 48)
    w = h if r.random() < 0.5 else r.randint(16, 48)
    c = r.choice([1, 2, 3, 3, 4, 8])
    if tflite:
        steps = [(r.choice(TFLITE_KINDS), r.randrange(2**31)) for _ in range(r.randint(2, 7))]
        nhwc = False
    else:
        kinds = list(CNN_WEIGHTS)
        steps = [(r.choices(kinds, weights=[CNN_WEIGHTS[k] for k in kinds])[0], r.randrange(2**31))
                 for _ in range(r.randint(2, 8))]
        nhwc = r.random() < 0.3
    steps.append(("head", r.randrange(2**31)))
    return dataclasses.replace(recipe, shape=(1, c, h, w), steps=steps, nhwc_input=nhwc)


BANDS = [1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 8, 12, 16, 33, 64]


def draw(recipe: Recipe) -> Recipe:
    """``recipe`` with its --patch drawn (an RNG of its own)."""
    r = random.Random(f"patch-{recipe.seed}")
    x = r.random()
    if x < 0.12:
        spec = ""
    elif x < 0.24:
        spec = "auto"
    elif x < 0.30:
        spec = "off"
    else:
        nb = r.choice(BANDS)
        spec = f"{nb}" if r.random() < 0.15 else f"{nb}@#{r.randrange(1000)}"
    return dataclasses.replace(recipe, patch=spec)


def stage_ends(g) -> list[str]:
    """The layers that end a stage the pass accepts (any start), in graph order."""
    from tinyc.passes.patch import stages

    ends = {st.nodes[-1].name for st in stages(g, range(len(g.nodes)))}
    return [n.name for n in g.nodes if n.name in ends]


def resolve(g, spec: str) -> str:
    """The --patch of a prepared graph: ``BANDS@#k`` names the k-th stage end (modulo); without
    any, the spec stays ``BANDS`` (the pass then says whether it can)."""
    if "@#" not in spec:
        return spec
    nb, k = spec.split("@#")
    ends = stage_ends(g)
    return f"{nb}@{ends[int(k) % len(ends)]}" if ends else nb


def is_refusal(msg: str) -> bool:
    """The pass's one-line error for a forced spec it cannot follow."""
    return msg.startswith("--patch ") and "can run in" in msg
