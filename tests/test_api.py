"""The Python API (tinyc/api.py): the README's example runs; path, bytes and ModelProto compile to
the same files as `tinyc compile`; run agrees with onnxruntime and TFLite Micro; verify, bench and
the HTML report; errors."""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import tinyc
from tinyc.errors import TinycError

from .conftest import ROOT, need_arm, ort_run, rel_err, run_cli
from .tflite_builders import mean_model, run_tflm

DIGITS = ROOT / "examples" / "digits"
MLP = DIGITS / "digits_mlp.onnx"


def _test_pixels(n: int) -> np.ndarray:
    with np.load(DIGITS / "digits_test.npz") as z:
        return z["pixels"][:n].astype(np.float32)


def _cli_files(tmp_path: Path, *args: str) -> dict[str, bytes]:
    out = tmp_path / "cli"
    r = run_cli("compile", *args, "-o", str(out))
    assert r.returncode == 0, r.stderr
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _as_bytes(files: dict[str, str | bytes]) -> dict[str, bytes]:
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()}


def test_readme_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no <!-- api-example --> python block"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(m.group(1), "README.md api-example", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue()
    assert "<tinyc.Build tiny for host" in printed and "True" in printed.splitlines()
    assert {p.name for p in (tmp_path / "tiny_c").iterdir()} >= {"tiny.c", "tiny.h", "report.json"}


def test_path_bytes_and_model_proto_give_the_cli_files(tmp_path):
    proto = onnx.load(str(MLP))
    before = proto.SerializeToString()
    by_path = tinyc.compile(MLP)
    by_bytes = tinyc.compile(MLP.read_bytes(), name="digits_mlp")
    by_proto = tinyc.compile(proto, name="digits_mlp")
    assert proto.SerializeToString() == before  # the caller's model is left as it was
    assert by_path.files == by_bytes.files == by_proto.files
    assert _as_bytes(by_path.files) == _cli_files(tmp_path, str(MLP), "-t", "host")
    assert tinyc.compile(proto).name == "model"  # in memory, without name=


def test_int8_files_and_report_equal_the_cli(tmp_path):
    calib = DIGITS / "digits_calib.npz"
    build = tinyc.compile(str(MLP), quantize="int8", calib=str(calib), progress=False)
    cli = _cli_files(tmp_path, str(MLP), "-t", "host", "--quantize", "int8", "--calib", str(calib))
    assert _as_bytes(build.files) == cli
    r = build.report
    assert r == json.loads(cli["report.json"])
    assert r["ram_bytes"] > 0 and r["flash_bytes"] > 0
    q = r["quantization"]["outputs"]
    assert set(q) == set(build.pipeline.graph.outputs) and all(v["samples"] == 200 for v in q.values())
    # the same calibration data in memory: a dict of stacked samples, and a list of one-sample dicts
    with np.load(calib) as z:
        pixels = z["pixels"]
    assert tinyc.compile(MLP, quantize="int8", calib={"pixels": pixels}, progress=False).files == build.files
    samples = [{"pixels": p[None]} for p in pixels]
    assert tinyc.compile(MLP, quantize="int8", calib=samples, progress=False).files == build.files


def test_cortex_m4_files_and_measured_report_equal_the_cli(tmp_path):
    need_arm()
    build = tinyc.compile(MLP, target="cortex-m4")
    assert _as_bytes(build.files) == _cli_files(tmp_path, str(MLP), "-t", "cortex-m4")
    assert "measured" in build.report
    written = build.write(tmp_path / "api")
    assert {p.name: p.read_bytes() for p in written.iterdir()} == _as_bytes(build.files)


def test_run_equals_onnxruntime():
    build = tinyc.compile(MLP)
    g = build.pipeline.graph
    name, out = g.inputs[0], g.outputs[0]
    x = _test_pixels(5)
    want = np.stack([ort_run(MLP, {name: s[None]})[0] for s in x])
    one = build.run({name: x[0][None]})
    assert set(one) == {out} and one[out].dtype == np.float32
    assert rel_err(one[out], want[0]) < 1e-5
    batch = build.run({name: x[:, None]})
    assert batch[out].shape == (5, *g.tensors[out].shape)
    assert rel_err(batch[out], want) < 1e-5
    listed = build.run([{name: s[None]} for s in x])
    assert len(listed) == 5 and rel_err(np.stack([o[out] for o in listed]), want) < 1e-5


def test_run_of_tflite_bytes_equals_tflite_micro(tmp_path):
    model = mean_model((1, 4, 4, 8), [1, 2], True, (0.05, 3), (0.04, -2))
    (tmp_path / "mean.tflite").write_bytes(model)
    build = tinyc.compile(model, name="mean")
    assert build.files == tinyc.compile(tmp_path / "mean.tflite").files
    x = np.random.default_rng(1).integers(-128, 128, (3, 1, 4, 4, 8)).astype(np.int8)
    want = run_tflm(model, list(x))
    got = build.run({build.pipeline.graph.inputs[0]: x})
    np.testing.assert_array_equal(got[build.pipeline.graph.outputs[0]], np.stack(want))


def test_verify_on_host():
    build = tinyc.compile(MLP, quantize="int8", calib=DIGITS / "digits_calib.npz", progress=False)
    res = build.verify({"pixels": _test_pixels(4)[:, None]})
    assert res.ok and res.samples == 4 and res.target == "host"
    assert [c.output for c in res.outputs] == build.pipeline.graph.outputs
    assert all(c.mismatched == 0 and c.max_abs_error == 0 for c in res.outputs)  # the same integer arithmetic and dequantization


@pytest.mark.emulator
def test_verify_and_bench_on_cortex_m4():
    need_arm()
    build = tinyc.compile(MLP, target="cortex-m4")
    res = build.verify(samples=2)
    assert res.ok and res.target == "cortex-m4" and res.samples == 2
    b = build.bench()
    assert b["instructions_total"] > 0 and len(b["layers"]) == len(build.report["layers"])


def test_bench_on_host_is_an_error():
    with pytest.raises(TinycError, match="needs a QEMU target"):
        tinyc.compile(MLP).bench()


def test_repr_and_html():
    build = tinyc.compile(MLP)
    assert repr(build) == (f"<tinyc.Build digits_mlp for host: RAM {build.report['ram_bytes']:,} B, "
                           f"flash {build.report['flash_bytes']:,} B>")
    html = build._repr_html_()
    assert html.startswith('<div class="tinyc-report">') and html.rstrip().endswith("</div>")
    assert "digits_mlp" in html
    assert not re.search(r"<!DOCTYPE|<html|<body|\bbody \{", html)


def test_errors():
    with pytest.raises(TypeError, match="'flash_budjet'"):
        tinyc.compile(MLP, flash_budjet=1000)
    with pytest.raises(TinycError, match="^model file not found: nowhere.onnx$"):
        tinyc.compile("nowhere.onnx")
    with pytest.raises(TinycError, match="not an ONNX model"):
        tinyc.compile(b"\x00garbage\x01")
    with pytest.raises(TinycError, match="needs calibration data"):
        tinyc.compile(MLP, quantize="int8")
    with pytest.raises(TinycError, match="does not fit the model's"):
        tinyc.compile(MLP, quantize="int8", calib={"pixels": np.zeros((4, 3), np.float32)})
    with pytest.raises(TinycError, match="io='int7'"):
        tinyc.compile(MLP, io="int7")
    with pytest.raises(TypeError, match="model must be"):
        tinyc.compile(42)


def test_import_tinyc_stays_cheap():
    import subprocess
    import sys

    code = "import sys, tinyc; print(sorted(m for m in ('numpy', 'onnx', 'tinyc.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_weights_blob_files_equal_the_cli(tmp_path):
    build = tinyc.compile(MLP, weights_blob=True)
    assert any(isinstance(v, bytes) for v in build.files.values())
    assert _as_bytes(build.files) == _cli_files(tmp_path, str(MLP), "-t", "host", "--weights-blob")
