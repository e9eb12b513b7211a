"""The differential model fuzzer's fixed-seed batch, its regression models and the sanitizer runs.

- ``test_batch``: CI_CASES random models (seeds 0..), each by one route (float, tinyc's PTQ,
  onnxruntime QDQ per tensor and per channel, QDQ with extreme scales and zero points), run on the
  host and on one emulated target (round robin: every target gets at least MIN_PER_TARGET), with
  every oracle of run.py. Any failure fails the test with the recipe to reproduce it
  (``python -m tests.modelfuzz --seed S --count 1 --shrink`` writes the minimal model).
- ``test_regression``: every minimal model the fuzzer found (tests/modelfuzz/regressions/), on the
  host and on the targets it failed on.
- ``test_sanitized``: a sample of fuzzed models built with ASan/UBSan, the arena poisoned around
  every layer (tests/test_sanitizers.py), outputs equal to the reference.
"""
from __future__ import annotations

import json
import os

import pytest

from ..conftest import need_tools
from .campaign import EMULATED, Totals, recipe_of, route_of, run_chunk
from .gen import Recipe
from .run import ROUTES, run_cases
from .shrink import REGRESSIONS

CI_CASES = int(os.environ.get("TINYC_FUZZ_CASES", "490"))
CHUNK = 50
MIN_PER_TARGET = 30


@pytest.fixture(scope="module")
def batch() -> Totals:
    need_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm", "riscv64-unknown-elf-gcc", "qemu-system-riscv32")
    totals = Totals()
    for start in range(0, CI_CASES, CHUNK):
        totals.merge(run_chunk((start, min(CHUNK, CI_CASES - start), "all")))
    print(totals.summary())
    return totals


def test_batch_has_no_failure(batch: Totals):
    assert not batch.failures, "\n".join(
        f"{f['key']} ({f['recipe']}): " + " | ".join(f["problems"]) for f in batch.failures)


def test_batch_covers_routes_and_targets(batch: Totals):
    assert batch.cases == CI_CASES
    for route in ROUTES:
        assert batch.by_route[route] >= 15, f"route {route}: only {batch.by_route[route]} cases compiled"
    for t in ("host", *EMULATED):
        assert batch.by_target[t] >= (MIN_PER_TARGET if CI_CASES >= 490 else 1), \
            f"{t}: only {batch.by_target[t]} cases ran ({dict(batch.by_target)})"
    # the patch pass gets exercised: forced --patch specs it follows, on the host and the emulated cores
    assert batch.patch["patched"] >= (40 if CI_CASES >= 490 else 1), dict(batch.patch)
    assert sum(v for k, v in batch.patch.items() if k.startswith("patched on cortex")) >= (20 if CI_CASES >= 490 else 0)
    # the generator itself stays valid: onnxruntime (or its quantizer) refuses few of its models
    assert batch.by_status["invalid"] <= batch.cases // 20, dict(batch.invalid)


REGRESSION_FILES = sorted(REGRESSIONS.glob("*.json"))


@pytest.mark.parametrize("path", REGRESSION_FILES, ids=[p.stem for p in REGRESSION_FILES])
def test_regression(path):
    spec = json.loads(path.read_text())
    need_tools(*(["arm-none-eabi-gcc", "qemu-system-arm"] if any(t.startswith("cortex") for t in spec["targets"]) else []),
               *(["riscv64-unknown-elf-gcc", "qemu-system-riscv32"] if "esp32c3" in spec["targets"] else []))
    case = run_cases([Recipe.from_json(spec["recipe"])], [spec["route"]], lambda i, c: spec["targets"])[0]
    assert case.status == "ok", f"{spec['found']} -> now {case.status}: {case.problems or case.refusal}"
    assert sorted(case.targets_run) == sorted(spec["targets"])
    if "patched" in spec:  # a model found in bands (--patch) still runs in the same bands
        assert (case.patch, sorted(case.patched)) == (spec["patch"], spec["patched"])


SANITIZED = 40  # cases (seeds from 100,000: not the batch's), of which the compiled ones run


def test_sanitized():
    from ..test_sanitizers import ENV, SANITIZE, poison_arena

    need_tools("gcc")
    os.environ.update(ENV)
    seeds = range(100_000, 100_000 + SANITIZED)
    # (the kernel-level graph: a model in bands has its band steps as layers, rows of windows as tensors)
    cases = run_cases([recipe_of(s) for s in seeds], [route_of(s) for s in seeds], lambda i, c: ["host"],
                      extra_cflags=SANITIZE, transform=lambda case, m: poison_arena(m, m.graph))
    ran = [c for c in cases if "host" in c.targets_run]
    assert len(ran) >= SANITIZED // 4, [c.refusal for c in cases]
    assert all(c.status != "fail" for c in cases), [c.problems for c in cases if c.status == "fail"]


def _inject(case, m, fault: str):
    """The generated model with a fault in its run function: 'flip' changes the top bit of the
    first output's first element (a sign for floats, 128 for integers), 'trap' stops the program."""
    from tinyc.codegen import GeneratedModel

    src = m.files[f"{m.name}.c"]
    head, sep, tail = src.rpartition("    return 0;\n}")
    assert sep, "no run function end found"
    stmt = ("    ((unsigned char *)output0)[sizeof *output0 - 1] ^= 0x80u;\n" if fault == "flip"
            else "    __builtin_trap();\n")
    return GeneratedModel(m.name, {**m.files, f"{m.name}.c": head + stmt + sep + tail}, m.plan, m.report, m.binaries)


@pytest.mark.parametrize("fault", ["flip", "trap"])
def test_harness_finds_an_injected_fault(fault):
    """The oracles can fail: one model of a batch gets a fault; exactly that case fails, named."""
    need_tools("gcc")
    seeds = [s for s in range(200, 260) if route_of(s) in ("float", "tflite")][:8]
    victim = seeds[3]
    cases = run_cases([recipe_of(s) for s in seeds], [route_of(s) for s in seeds], lambda i, c: ["host"],
                      transform=lambda case, m: _inject(case, m, fault) if case.recipe.seed == victim else m)
    failed = [c.recipe.seed for c in cases if c.status == "fail"]
    assert failed == [victim], [(c.key, c.status, c.problems, c.refusal) for c in cases]
    assert "C on host" in cases[3].problems[0]
    assert sum(c.status == "ok" for c in cases) >= 5


def test_generator_covers_the_op_registry():
    """Every op tinyc registers is generated by some layer of the fuzzer, or listed with a reason."""
    from tinyc.ops import REGISTRY

    from .gen import NOT_GENERATED, random_recipe, build

    seen = set()
    for seed in range(400):
        seen |= set(build(random_recipe(seed))[1])
    public = {n for n, op in REGISTRY.items() if not op.internal}
    assert public - seen - set(NOT_GENERATED) == set(), "ops the fuzzer never generates"
    assert set(NOT_GENERATED) <= public, "NOT_GENERATED names an op tinyc does not have"
