"""A fuzzing campaign: which route and targets each seed gets, and the totals of a run."""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

from . import bands
from .gen import Recipe, random_recipe
from .tflite_route import random_tflite_recipe
from .run import ROUTES, Case, run_cases

EMULATED = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "esp32c3")


def route_of(seed: int) -> str:
    return ROUTES[seed % len(ROUTES)]


def recipe_of(seed: int) -> Recipe:
    """The seed's recipe: random layers, or an image CNN (bands.cnn), with its --patch drawn."""
    if route_of(seed) == "tflite":
        return bands.draw(bands.cnn(random_tflite_recipe(seed), tflite=True))
    recipe = random_recipe(seed, int8=route_of(seed) != "float")
    if route_of(seed) == "ort_qop":  # (QOperator leaves Relu, Add, pooling float: tinyc refuses such CNNs)
        return bands.draw(recipe)
    return bands.draw(bands.cnn(recipe, tflite=False))


def targets_of(seed: int, allowed: str = "all") -> list[str]:
    """host, and one emulated target: the seeds of one route (every len(ROUTES)-th) take the
    targets in turn, so every route meets every target equally often."""
    names = EMULATED if allowed == "all" else tuple(t for t in allowed.split(",") if t != "host")
    out = ["host"]
    if names:
        out.append(names[(seed // len(ROUTES)) % len(names)])
    return out


@dataclasses.dataclass
class Totals:
    cases: int = 0
    by_status: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_route: collections.Counter = dataclasses.field(default_factory=collections.Counter)   # route -> ok cases
    by_target: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # target -> cases run
    by_op: collections.Counter = dataclasses.field(default_factory=collections.Counter)      # op -> ok cases
    refusals: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    invalid: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    lsb: collections.Counter = dataclasses.field(default_factory=collections.Counter)       # max steps vs ORT
    # run cases by --patch drawn (forced, auto, off, none), and: patched (in bands on some target),
    # refused (a forced spec the pass could not follow), "patched on T" per target
    patch: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: list[dict] = dataclasses.field(default_factory=list)

    def add(self, case: Case) -> None:
        self.cases += 1
        self.by_status[case.status] += 1
        if case.status == "refused":
            self.refusals[_reason(case.refusal)] += 1
        if case.status == "invalid":
            self.invalid[case.refusal[:80]] += 1
        if case.status in ("ok", "fail"):
            self.by_route[case.route] += 1
            self.by_op.update(case.ops)
            self.by_target.update(case.targets_run)
            if case.route not in ("float", "ptq", "tflite"):
                self.lsb[case.lsb_max] += 1
            drawn = case.recipe.patch
            self.patch["forced" if drawn[:1].isdigit() else drawn or "none"] += 1
            self.patch.update(["patched"] * bool(case.patched) + ["refused"] * bool(case.patch_refused)
                              + [f"patched on {t}" for t in case.patched])
        if case.status == "fail":
            self.failures.append(dict(key=case.key, route=case.route, recipe=case.recipe.to_json(),
                                      problems=case.problems, targets=case.targets_run, patch=case.patch,
                                      patched=case.patched, repro=repro(case)))

    def merge(self, other: "Totals") -> None:
        self.cases += other.cases
        for f in ("by_status", "by_route", "by_target", "by_op", "refusals", "invalid", "lsb", "patch"):
            getattr(self, f).update(getattr(other, f))
        self.failures += other.failures

    def as_dict(self) -> dict:
        return {f.name: (dict(v.most_common()) if isinstance(v, collections.Counter) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def summary(self) -> str:
        lines = [f"{self.cases} cases: " + ", ".join(f"{k} {v}" for k, v in self.by_status.most_common()),
                 "run (ok or failing) by route: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_route.items())),
                 "run by target: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_target.items())),
                 "by op: " + ", ".join(f"{k} {v}" for k, v in self.by_op.most_common()),
                 "QDQ cases by largest step vs onnxruntime: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.lsb.items())),
                 "--patch: " + ", ".join(f"{k} {v}" for k, v in sorted(self.patch.items())),
                 "refusals: " + "; ".join(f"{v}x {k}" for k, v in self.refusals.most_common(12)),
                 "invalid (onnxruntime or its quantizer refused): " + "; ".join(
                     f"{v}x {k}" for k, v in self.invalid.most_common(5))]
        for f in self.failures:
            lines.append(f"FAIL {f['key']} (--patch {f['patch'] or 'default'}, in bands on "
                         f"{', '.join(f['patched']) or 'none'}): " + " | ".join(f["problems"]) + f"\n  repro: {f['repro']}")
        return "\n".join(lines)


def repro(case: Case) -> str:
    """The command that runs the case again (same recipe, route, --patch and targets)."""
    emulated = [t for t in case.targets_run if t != "host"] or ["host"]
    return f".venv/bin/python -m tests.modelfuzz --seed {case.recipe.seed} --count 1 --jobs 1 --targets {emulated[0]}"


def _reason(msg: str) -> str:
    """A refusal's message without the node names and numbers, to count kinds."""
    import re

    msg = re.sub(r"'[^']*'", "'…'", msg)
    return re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", msg)[:140]


def run_chunk(spec: tuple[int, int, str], workdir: Path | None = None) -> Totals:
    start, count, allowed = spec
    seeds = list(range(start, start + count))
    recipes = [recipe_of(s) for s in seeds]
    routes = [route_of(s) for s in seeds]
    cases = run_cases(recipes, routes, lambda i, case: targets_of(seeds[i], allowed), workdir)
    totals = Totals()
    for c in cases:
        totals.add(c)
    return totals
