"""The bundled demo: compile the digits model for Cortex-M4, run the held-out test images on an
emulated Cortex-M4 (QEMU mps2-an386), and print predictions and accuracy.

Run from the repository root:  python examples/digits/demo.py [--target cortex-m4] [--out build/digits]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.compiler import prepare
from tinyc.emulator import run_on_target
from tinyc.targets import get_target

HERE = Path(__file__).resolve().parent
ASCII = " .:-=+*#%@"


def sketch(pixels: np.ndarray) -> list[str]:
    img = pixels.reshape(8, 8)
    return ["".join(ASCII[min(int(v * (len(ASCII) - 1) + 0.5), len(ASCII) - 1)] * 2 for v in row) for row in img]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--out", default="build/digits", help="folder for the generated C and the firmware")
    args = ap.parse_args()
    model_path = Path(os.path.relpath(HERE / "digits_mlp.onnx"))
    out = Path(args.out)

    # 1. The command a user types.
    cmd = [sys.executable, "-m", "tinyc", "compile", str(model_path), "--target", args.target, "-o", str(out)]
    print("$ tinyc compile", " ".join(cmd[4:]))
    subprocess.run(cmd, check=True)

    # 2. Run all held-out images on the emulated target in one firmware run.
    data = np.load(HERE / "digits_test.npz")
    pixels, labels = data["pixels"], data["labels"]
    g = prepare(model_path).graph
    target = get_target(args.target)
    model = generate(g, target, name="digits_mlp", source=model_path.name)
    samples = [{"pixels": p[None, :]} for p in pixels]
    print(f"\nrunning {len(samples)} test images on {target.name} "
          f"({target.emulator.system or 'host'} {('-M ' + target.emulator.machine) if target.emulator.machine else ''})...")
    result = run_on_target(model, target, out / "firmware", samples)
    probs = np.stack([o["probs"][0] for o in result.outputs])
    pred = probs.argmax(axis=1)
    ref = np.stack([interpreter.run(g, s)["probs"][0] for s in samples])

    # 3. Show a few, then the totals.
    print()
    for i in range(4):
        mark = "ok" if pred[i] == labels[i] else "WRONG"
        art = sketch(pixels[i])
        print(f"image {i}: label {labels[i]}, predicted {pred[i]} (p={probs[i, pred[i]]:.3f}) {mark}")
        print("\n".join("    " + line for line in art))
    print("\n  #  label  predicted  confidence")
    for i in range(4, 16):
        print(f"{i:3d}  {labels[i]:5d}  {pred[i]:9d}  {probs[i, pred[i]]:10.3f}{'' if pred[i] == labels[i] else '  <- wrong'}")
    acc = float(np.mean(pred == labels))
    ref_acc = float(np.mean(ref.argmax(axis=1) == labels))
    max_err = float(np.abs(probs - ref).max())
    print(f"\naccuracy on the emulated {target.name}: {acc:.2%} ({int((pred == labels).sum())}/{len(labels)} test images)")
    print(f"reference interpreter (numpy): {ref_acc:.2%}; largest difference in any probability: {max_err:.2e}")
    print(f"generated C and report: {out}/  (firmware build: {out / 'firmware'})")

    # 4. The same model quantized to int8 by tinyc (calibrated on 200 training images).
    calib = HERE / "digits_calib.npz"
    cmd = [sys.executable, "-m", "tinyc", "compile", str(model_path), "--target", args.target, "--quantize", "int8",
           "--calib", str(calib), "-o", str(out) + "_int8"]
    print("\n$ tinyc compile", " ".join(cmd[4:]))
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    q = prepare(model_path, quantize="int8", calib=calib, progress=False).graph
    q_model = generate(q, target, name="digits_mlp", source=model_path.name)
    q_res = run_on_target(q_model, target, Path(str(out) + "_int8") / "firmware", samples)
    q_pred = np.stack([o["probs"][0] for o in q_res.outputs]).argmax(axis=1)
    q_ref = np.stack([interpreter.run(q, s)["probs"][0] for s in samples]).argmax(axis=1)
    q_acc = float(np.mean(q_pred == labels))
    print(f"int8 accuracy on the emulated {target.name}: {q_acc:.2%} (float: {acc:.2%}); "
          f"int8 C equals the int8 reference on {int((q_pred == q_ref).sum())}/{len(labels)} images; "
          f"weights {q_model.report['weights_bytes']:,} B vs {model.report['weights_bytes']:,} B in float")
    ok = np.array_equal(pred, ref.argmax(axis=1)) and np.array_equal(q_pred, q_ref)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
