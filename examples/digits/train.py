"""Train the bundled example model and write it as ONNX.

Data: scikit-learn's 8x8 handwritten digits (1,797 images, shipped inside scikit-learn). The
network is a multilayer perceptron, 64 -> 48 -> 24 -> 10 with ReLU and a final softmax, trained
by scikit-learn's MLPClassifier (Adam, fixed seed). It is exported with onnx.helper as
Gemm/Relu/Softmax nodes (the first Gemm stores its weight transposed, as PyTorch does).

Writes, next to this file:
  digits_mlp.onnx       the model (input "pixels" float32 [1,64] in 0..1, output "probs" [1,10])
  digits_test.npz       the held-out test split: "pixels" [N,64] float32, "labels" [N] int64
  digits_calib.npz      training images for int8 calibration: "pixels" [200,64] float32

Run:  python examples/digits/train.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
SEED = 0


def export(clf: MLPClassifier) -> onnx.ModelProto:
    inits, nodes = [], []
    x = "pixels"
    n_layers = len(clf.coefs_)
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        w = w.astype(np.float32)
        transposed = i == 0
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T if transposed else w), f"fc{i}.weight"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"fc{i}.bias"))
        y = f"fc{i}" if i < n_layers - 1 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], name=f"fc{i}",
                                      transB=1 if transposed else 0))
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1))
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tinyc-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(48, 24), max_iter=600, random_state=SEED)
    clf.fit(x_train, y_train)
    print(f"train accuracy {clf.score(x_train, y_train):.4f}, test accuracy {clf.score(x_test, y_test):.4f}")
    onnx.save(export(clf), HERE / "digits_mlp.onnx")
    np.savez_compressed(HERE / "digits_test.npz", pixels=x_test, labels=y_test)
    rng = np.random.default_rng(SEED)
    np.savez_compressed(HERE / "digits_calib.npz", pixels=x_train[rng.choice(len(x_train), 200, replace=False)])
    print(f"wrote {HERE / 'digits_mlp.onnx'}, digits_test.npz ({len(x_test)} images), digits_calib.npz")


if __name__ == "__main__":
    main()
