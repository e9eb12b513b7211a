"""Shrinking a failing case to a minimal one, and saving it as a regression test.

The recipe is cut down step by step (each layer dropped if the case still fails the same oracle),
then the input is made smaller (spatial sizes halved, fewer channels). What is left is saved under
tests/modelfuzz/regressions/ as the model (.onnx) and a .json with the route, the recipe and the
oracle that failed; test_modelfuzz runs every saved case on host and on the targets it failed on.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx

from .gen import Recipe, build
from .run import run_cases

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def _oracles(problems: list[str]) -> set[str]:
    return {p.split(":", 1)[0] for p in problems}


def still_fails(recipe: Recipe, route: str, targets: list[str], oracles: set[str]) -> bool:
    case = run_cases([recipe], [route], lambda i, c: targets)[0]
    return case.status == "fail" and bool(_oracles(case.problems) & oracles)


def shrink(recipe: Recipe, route: str, targets: list[str], oracles: set[str], budget: int = 200) -> Recipe:
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        for i in range(len(recipe.steps)):  # drop one step
            if i >= len(recipe.steps):
                break
            cand = dataclasses.replace(recipe, steps=recipe.steps[:i] + recipe.steps[i + 1:])
            tries += 1
            if cand.steps and still_fails(cand, route, targets, oracles):
                recipe, changed = cand, True
        n, c, *sp = recipe.shape
        smaller = [(n, c, *[max(1, d // 2) if j == k else d for j, d in enumerate(sp)]) for k in range(len(sp))]
        smaller += [(n, max(1, c // 2), *sp), (n, 1, *sp)]
        for shape in smaller:
            if shape == recipe.shape:
                continue
            cand = dataclasses.replace(recipe, shape=tuple(shape))
            tries += 1
            if still_fails(cand, route, targets, oracles):
                recipe, changed = cand, True
                break
        if not recipe.nhwc_input:
            continue
        cand = dataclasses.replace(recipe, nhwc_input=False)
        tries += 1
        if still_fails(cand, route, targets, oracles):
            recipe, changed = cand, True
    return recipe


def shrink_and_save(failure: dict, name: str | None = None) -> Path:
    """``failure``: an entry of Totals.failures. Returns the saved .json."""
    recipe = Recipe.from_json(failure["recipe"])
    oracles = _oracles(failure["problems"])
    targets = sorted({p.split(" on ", 1)[1] for p in oracles if p.startswith("C on ")} | {"host"})
    small = shrink(recipe, failure["route"], targets, oracles)
    case = run_cases([small], [failure["route"]], lambda i, c: targets)[0]
    return save(small, failure["route"], targets, case.problems, name or failure["key"], patched=case.patched,
                patch=case.patch)


def save(recipe: Recipe, route: str, targets: list[str], found: list[str], name: str, why: str = "",
         patched: list[str] = (), patch: str = "") -> Path:
    """Write a regression case: the model (to read) and its recipe, route and targets (to run);
    with a --patch, the spec it resolved to and the targets whose C ran in bands (the test checks
    that it still does)."""
    REGRESSIONS.mkdir(exist_ok=True)
    if route == "tflite":
        from .tflite_route import build_pair

        model, tflite = build_pair(recipe)
        (REGRESSIONS / f"{name}.tflite").write_bytes(tflite)
    else:
        model, _ = build(recipe)
    onnx.save(model, REGRESSIONS / f"{name}.onnx")
    path = REGRESSIONS / f"{name}.json"
    extra = dict(patch=patch, patched=sorted(patched)) if patched else {}
    path.write_text(json.dumps(dict(route=route, recipe=recipe.to_json(), targets=targets, found=found, why=why,
                                    nodes=[n.op_type for n in model.graph.node], **extra), indent=1) + "\n")
    return path
