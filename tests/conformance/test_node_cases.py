"""ONNX backend node test cases (data nobody on the project wrote) for every op tinyc registers:
through the reference interpreter and through generated C compiled for the host, at the cases'
own tolerances. A case either passes or is listed in exclusions.txt with the reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinyc.conformance import CORE_OPS, cases, is_core, run_case
from tinyc.ops import REGISTRY

from ..conftest import need_tools

EXCLUSIONS = {}
for line in (Path(__file__).parent / "exclusions.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
        name, _, reason = line.partition("\t")
        EXCLUSIONS[name] = reason

CASES = cases()


def test_runner_finds_the_cases():
    assert len(CASES) > 300
    assert not set(EXCLUSIONS) - {c.name for c in CASES}, "exclusions.txt names cases that no longer exist"


def test_core_ops_coverage():
    """>= 95% of the node test cases that use only the core ops pass (test_node_case proves each
    non-excluded case passes and each excluded one is refused cleanly)."""
    assert CORE_OPS <= set(REGISTRY), f"core ops missing from the registry: {sorted(CORE_OPS - set(REGISTRY))}"
    core = [c.name for c in CASES if is_core(c)]
    assert len(core) > 350
    passing = [n for n in core if n not in EXCLUSIONS]
    assert len(passing) / len(core) >= 0.95, f"{len(passing)} of {len(core)} core cases pass"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case, tmp_path):
    need_tools("gcc")
    outcome = run_case(case, workdir=tmp_path)
    assert outcome.status != "mismatch", f"wrong result: {outcome.detail}"
    if case.name in EXCLUSIONS:
        assert outcome.status == "unsupported", "passes now: remove it from exclusions.txt"
    else:
        assert outcome.status == "pass", f"{outcome.status}: {outcome.detail} (fix it or list it in exclusions.txt)"
