"""The HTML report, rendered by a real browser (headless Chromium over the DevTools protocol)."""
from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from tests.browser import find_chromium, open_page
from tests.conftest import ROOT, need_arm, run_cli, shared_model, unavailable

ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots kept for people to look at

PAGE_FACTS = {
    "arena": 'document.getElementById("arena-bytes").textContent',
    "arena_card": 'document.getElementById("arena-value").textContent',
    "boxes": 'document.querySelectorAll("#memory rect.tensor").length',
    "text": "document.body.innerText",
    "rows": 'document.querySelectorAll("#layers tbody tr").length',
    # every box inside the plot: from address 0 up to the arena line, within the steps
    "geometry": 'Array.from(document.querySelectorAll("#memory rect.tensor")).map(r => '
                '[r.y.baseVal.value, r.height.baseVal.value, r.getBoundingClientRect().width])',
}


def _need_chromium():
    if find_chromium() is None:
        unavailable("chromium is not installed (bash .ci/setup installs it)")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_kws_int8_report_renders_in_chromium(tmp_path):
    """`tinyc compile --report` for KWS int8: the page loads without console errors or network
    requests, shows report.json's arena, weights and MACs, and draws one box per planned tensor;
    the screenshot is kept in build/test-artifacts/."""
    _need_chromium()
    model = shared_model("mlperf-tiny/kws_int8.onnx")
    out = tmp_path / "kws"
    r = run_cli("compile", str(model), "-t", "cortex-m4", "-o", str(out), "--report")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    page = open_page(out / "report.html", list(PAGE_FACTS.values()))
    assert page.errors == []
    v = {k: page.values[e] for k, e in PAGE_FACTS.items()}
    assert v["arena"] == f"{report['arena_bytes']:,}"
    assert v["arena_card"] == f"{report['arena_bytes']:,} B"
    planned = sum(len(b["tensors"]) for b in report["memory_plan"])
    assert v["boxes"] == planned == len(report["memory_tensors"]) > 0
    assert v["rows"] == len(report["layers"])
    for figure in (report["weights_bytes"], report["macs_total"], report["ram_bytes"], report["flash_bytes"]):
        assert f"{figure:,}" in v["text"]
    assert "Quantization error per layer" in v["text"]  # on random samples (--calib is for --quantize only)
    # boxes stay inside the plot: below the arena's top, with positive size
    arena_top = 16  # MARGIN_T: the arena line is the highest address drawn
    assert all(y >= arena_top - 0.01 and h > 0 and w > 0 for y, h, w in v["geometry"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "kws_int8_report.png"
    shot.write_bytes(page.screenshot)
    w, h = _png_size(page.screenshot)
    assert w >= 1000 and h >= 900


def test_report_with_emulation_and_bench_shows_instructions(tmp_path):
    """`tinyc report --emulate --bench` on KWS int8: the instruction total on the page is the one
    `tinyc bench` measures for the same sample, and every layer is marked equal on the M4."""
    _need_chromium()
    need_arm()
    model = shared_model("mlperf-tiny/kws_int8.onnx")
    samples = np.load(shared_model("mlperf-tiny/samples.npz"))
    x = tmp_path / "x.npz"
    np.savez(x, input_1=samples["kws_int8"])
    html = tmp_path / "out" / "kws.html"
    r = run_cli("report", str(model), "-t", "cortex-m4", "-o", str(html), "-i", str(x), "--emulate", "--bench")
    assert r.returncode == 0, r.stderr
    b = run_cli("bench", str(model), "-t", "cortex-m4", "-i", str(x), "--json")
    assert b.returncode == 0, b.stderr
    total = json.loads(b.stdout)["instructions_total"]
    page = open_page(html, ['document.getElementById("instructions-value").textContent', "document.body.innerText"])
    assert page.errors == []
    card, text = page.values.values()
    assert card == f"{total:,}"
    assert "Every layer of the generated code on cortex-m4 equals the reference." in text
    assert sorted(p.name for p in html.parent.iterdir()) == ["kws.html"]  # nothing else written


def test_report_is_self_contained(tmp_path):
    """No network and no external files: no links, script sources, imports or remote URLs."""
    model = shared_model("mlperf-tiny/ad_int8.onnx")
    html = tmp_path / "ad.html"
    r = run_cli("report", str(model), "-t", "cortex-m0plus", "-o", str(html))
    assert r.returncode == 0, r.stderr
    text = html.read_text()
    assert not re.search(r"<link\b|<script[^>]+src=|@import|url\(|<img\b|<iframe\b", text)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//|file:)", text)
    assert "http://www.w3.org/2000/svg" in text  # the SVG namespace is the only URL, and is not fetched
    assert len(re.findall(r"https?://", text)) == text.count("http://www.w3.org/2000/svg")


def test_report_names_problems_in_one_line(tmp_path):
    model = shared_model("mlperf-tiny/ad_int8.onnx")
    r = run_cli("report", str(model), "-t", "cortex-m4", "-o", str(tmp_path))
    assert r.returncode == 2 and "is a folder" in r.stderr and r.stderr.count("\n") == 1
