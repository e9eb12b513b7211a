"""Same model and options, same bytes: two compiles in different folders (model copied to two
places, different working folders and hash seeds) give byte-identical output folders."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, shared_model

CASES = [
    ("mlperf-tiny/kws_int8.onnx", ["-t", "cortex-m4", "--report", "--weights-blob"]),
    ("mlperf-tiny/ic_float.onnx", ["-t", "cortex-m55"]),
    ("digits_cnn.onnx", ["-t", "esp32c3", "--quantize", "int8", "--calib", "digits_cnn_calib.npz", "--report"]),
]


@pytest.mark.parametrize("model,options", CASES, ids=[c[0].split("/")[-1] for c in CASES])
def test_two_compiles_are_byte_identical(model, options, tmp_path):
    src = ROOT / "examples" / "digits" / model if "/" not in model else shared_model(model)
    outs = []
    for k, seed in enumerate(("1", "987654")):
        home = tmp_path / f"place{k}" / ("deeper" * k)
        home.mkdir(parents=True)
        shutil.copy(src, home / src.name)
        opts = list(options)
        if "--calib" in opts:  # the calibration images in the CNN's input shape
            pixels = np.load(src.parent / "digits_calib.npz")["pixels"]
            np.savez(home / opts[opts.index("--calib") + 1], image=pixels.reshape(-1, 1, 1, 8, 8))
        out = tmp_path / f"out{k}"
        r = run_cli("compile", src.name, "-o", str(out), *opts, cwd=home, env={"PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    a, b = ({p.relative_to(o): p.read_bytes() for p in sorted(o.rglob("*")) if p.is_file()} for o in outs)
    # .h, .c, CMakeLists.txt, .mk, report.json (and idf_component.yml on ESP32 targets)
    assert sorted(a) == sorted(b) and len(a) >= 5
    differing = [str(k) for k in a if a[k] != b[k]]
    assert differing == []
    for data in a.values():  # no path of this machine leaks into the output
        assert str(tmp_path).encode() not in data and str(ROOT).encode() not in data
