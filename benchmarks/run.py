"""Benchmarks (not tests): `tinyc bench` on the shared MLPerf Tiny int8 models in each `--optimize`
mode, written as a markdown table, with TFLite Micro + CMSIS-NN's instructions and flash
(../shared/BENCHMARKS.md, measured the same way) beside them, and `tinyc compile` wall time.

    .venv/bin/python benchmarks/run.py [--targets cortex-m4 cortex-m55] [--models kws ic ad]
                                       [--modes balanced speed size] [-o benchmarks/RESULTS.md]
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
# TFLite Micro + CMSIS-NN on qemu-system-arm -M mps2-an386 (Cortex-M4): instructions per inference,
# and flash = its int8-only code + the .tflite it keeps in flash (bytes)
TFLM_CMSIS_NN_M4 = {"kws": 7_697_355, "ic": 29_861_980, "ad": 582_884}
TFLM_FLASH = {"kws": 111_028, "ic": 153_392, "ad": 308_284}
HEAD = ("model", "target", "--optimize", "instructions", "TFLM+CMSIS-NN (M4)", "vs TFLM", "flash B", "vs TFLM flash", "flash read B/inference",
        "est. latency", "arena B", "compile")


def tinyc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyc", *args], capture_output=True, text=True, cwd=ROOT)


def ratio(a: int | float, b: int | float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def row(model: str, target: str, mode: str, r: dict, compile_s: float) -> tuple[str, ...]:
    tflm = TFLM_CMSIS_NN_M4.get(model) if target == "cortex-m4" else None
    flash = r["code_bytes"] + r["weights_bytes"]
    latency = r.get("estimated_latency_us")
    read = r.get("flash_read_bytes")
    return (model.upper(), target, mode, f"{r['instructions_total']:,}", f"{tflm:,}" if tflm else "-",
            ratio(r["instructions_total"], tflm),
            f"{flash:,}", ratio(flash, TFLM_FLASH.get(model)) if target == "cortex-m4" else "-",
            f"{read:,}" if read is not None else "-", f"{latency:,.0f} µs" if latency is not None else "-",
            f"{r['arena_bytes']:,}", f"{compile_s:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m55"])
    ap.add_argument("--models", nargs="+", default=["kws", "ic", "ad"])
    ap.add_argument("--modes", nargs="+", default=["balanced", "speed", "size"])
    ap.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    rows = []
    for model in args.models:
        path = MODELS / f"{model}_int8.onnx"
        for target in args.targets:
            for mode in args.modes:
                opt = ("--optimize", mode)
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    c = tinyc("compile", str(path), "-t", target, "-o", tmp, *opt)
                    compile_s = time.perf_counter() - t0
                if c.returncode != 0:
                    print(c.stderr, file=sys.stderr)
                    return 1
                b = tinyc("bench", str(path), "-t", target, "--json", *opt)
                if b.returncode != 0:
                    print(b.stderr, file=sys.stderr)
                    return 1
                rows.append(row(model, target, mode, json.loads(b.stdout), compile_s))
                print(" | ".join(rows[-1]), file=sys.stderr)
    lines = ["# tinyc bench results", "",
             "Exact instructions per inference in QEMU (`tinyc bench`), int8 MLPerf Tiny models, in each",
             "`--optimize` mode (balanced is the default). flash = code + weights bytes of the benchmark firmware's",
             "ELF (built with -fno-ipa-icf so each layer keeps its own code; a production build may fold identical",
             "layers and be smaller); TFLM's flash is its int8-only code + the .tflite. flash read = bytes the",
             "inference loads from the flash region (the QEMU plugin's count). est. latency = an ESTIMATE on the",
             "target's reference board (README: the per-instruction-class cycle model plus flash wait states).",
             "compile = `tinyc compile` wall time on this machine (a timing, not a test).", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
