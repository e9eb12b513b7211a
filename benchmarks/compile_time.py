"""Benchmark (not a test): how long `tinyc compile` takes, in process (imports done once, best of
3) and as a command (wall time, best of 3), on the shared MLPerf Tiny int8 models and on a
MobileNet-style int8 model at 96x96 (MobileNetV1 with width 0.25, the visual-wake-words shape:
13 depthwise-separable blocks, random weights quantized by onnxruntime's quantize_static).

    .venv/bin/python benchmarks/compile_time.py [--target cortex-m4]

Needs onnxruntime (a test extra) for the MobileNet-style model.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models" / "mlperf-tiny"
# (output channels, stride) of the depthwise-separable blocks of MobileNetV1 at width 1.0
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def mobilenet_v1(size: int = 96, width: float = 0.25, classes: int = 2, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def conv(x, cin, cout, k, stride, group, name):
        w = rng.normal(0, np.sqrt(2.0 / (k * k * cin // group)), (cout, cin // group, k, k))
        b = rng.normal(0, 0.05, cout)
        y = f"{name}/y"
        nodes.append(helper.make_node("Conv", [x, const(f"{name}/w", w), const(f"{name}/b", b)], [y], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("Relu", [y], [f"{name}/relu"], name=f"{name}/relu"))
        return f"{name}/relu"

    c = max(8, int(32 * width))
    x = conv("input", 3, c, 3, 2, 1, "conv0")
    for i, (cout, stride) in enumerate(BLOCKS):
        cout = max(8, int(cout * width))
        x = conv(x, c, c, 3, stride, c, f"dw{i}")
        x = conv(x, c, cout, 1, 1, 1, f"pw{i}")
        c = cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat"))
    w = const("fc/w", rng.normal(0, 0.1, (classes, c)))
    nodes.append(helper.make_node("Gemm", ["flat", w, const("fc/b", np.zeros(classes))], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "mobilenet_v1_96", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def quantized_mobilenet(path: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_path = path.with_name("mobilenet_v1_96_float.onnx")
    onnx.save(mobilenet_v1(), float_path)
    rng = np.random.default_rng(1)

    class Data(CalibrationDataReader):
        def __init__(self):
            self.left = [{"input": rng.normal(0, 1, (1, 3, 96, 96)).astype(np.float32)} for _ in range(4)]

        def get_next(self):
            return self.left.pop() if self.left else None

    quantize_static(str(float_path), str(path), Data(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cortex-m4")
    args = ap.parse_args()
    from tinyc.cli import main as tinyc_main

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = [MODELS / f"{m}_int8.onnx" for m in ("kws", "ic", "ad")]
        models.append(quantized_mobilenet(tmp / "mobilenet_v1_96_int8.onnx"))
        print(f"| model | in process (s) | command (s) |\n|---|---|---|")
        for m in models:
            inproc, wall = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                rc = tinyc_main(["compile", str(m), "-t", args.target, "-o", str(tmp / "out"), "--flash-budget", "0",
                                 "--ram-budget", "0"])
                inproc.append(time.perf_counter() - t0)
                assert rc == 0, m
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "tinyc", "compile", str(m), "-t", args.target, "-o", str(tmp / "out"),
                                "--flash-budget", "0", "--ram-budget", "0"], check=True, capture_output=True, cwd=ROOT)
                wall.append(time.perf_counter() - t0)
            print(f"| {m.stem} | {min(inproc):.2f} | {min(wall):.2f} |", file=sys.stderr if False else sys.stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
