"""ONNX backend node test cases (data nobody on the project wrote) for every op tinyc registers:
through the reference interpreter and through generated C compiled for the host, at the cases'
own tolerances. A case either passes or is listed in exclusions.txt with the reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinyc.conformance import cases, run_case

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
