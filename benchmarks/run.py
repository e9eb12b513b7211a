"""Benchmarks (not tests): `tinyc bench` on the shared MLPerf Tiny int8 models, written as a
markdown table, with TFLite Micro + CMSIS-NN's instruction counts (../shared/BENCHMARKS.md,
measured the same way) beside them, and `tinyc compile` wall time per model.

    .venv/bin/python benchmarks/run.py [--targets cortex-m4 cortex-m55] [--models kws ic ad] [-o benchmarks/RESULTS.md]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models" / "mlperf-tiny"
# TFLite Micro + CMSIS-NN on qemu-system-arm -M mps2-an386 (Cortex-M4), instructions per inference
TFLM_CMSIS_NN_M4 = {"kws": 7_697_355, "ic": 29_861_980, "ad": 582_884}


def tinyc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyc", *args], capture_output=True, text=True, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m55"])
    ap.add_argument("--models", nargs="+", default=["kws", "ic", "ad"])
    ap.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    rows = []
    for model in args.models:
        path = MODELS / f"{model}_int8.onnx"
        for target in args.targets:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                c = tinyc("compile", str(path), "-t", target, "-o", tmp, "--flash-budget", "0", "--ram-budget", "0")
                compile_s = time.perf_counter() - t0
            if c.returncode != 0:
                print(c.stderr, file=sys.stderr)
                return 1
            b = tinyc("bench", str(path), "-t", target, "--json")
            if b.returncode != 0:
                print(b.stderr, file=sys.stderr)
                return 1
            r = json.loads(b.stdout)
            tflm = TFLM_CMSIS_NN_M4.get(model) if target == "cortex-m4" else None
            rows.append((model.upper(), target, f"{r['instructions_total']:,}", f"{r['instructions_per_mac']:.2f}",
                         f"{tflm:,}" if tflm else "-", f"{r['instructions_total'] / tflm:.2f}x" if tflm else "-",
                         f"{r['arena_bytes']:,}", f"{r['code_bytes']:,}", f"{r['weights_bytes']:,}", f"{compile_s:.2f} s"))
            print(" | ".join(rows[-1]), file=sys.stderr)
    head = ("model", "target", "instructions", "instr/MAC", "TFLM+CMSIS-NN (M4)", "vs TFLM", "arena B", "code B",
            "weights B", "compile")
    lines = ["# tinyc bench results", "",
             "Exact instructions per inference in QEMU (`tinyc bench`), int8 MLPerf Tiny models; code and weight",
             "bytes from the benchmark firmware's ELF (built with -fno-ipa-icf so each layer keeps its own code; a",
             "production build may fold identical layers and be smaller). Weights on cortex-m4 are stored widened",
             "to int16 where the DSP kernels read them so (about 2x the int8 bytes); compile = `tinyc compile` wall",
             "time on this machine (a timing, not a test).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
