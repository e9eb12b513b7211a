"""Train a small CNN on scikit-learn's digits with PyTorch and export it with torch.onnx.export.

The export is the kind of graph PyTorch users bring: Conv -> BatchNormalization -> Relu blocks, a
flatten and a Linear (Gemm), in NCHW. tinyc folds the BatchNormalization layers into the convs and
fuses the Relus (tests/test_examples.py checks what is left).

Writes digits_cnn.onnx next to this file (input "image" float32 [1,1,8,8] in 0..1, output "logits"
[1,10]). Uses the same train/test split as train.py, so digits_test.npz is its held-out set.

Run (needs torch, e.g. `pip install torch==2.13.0 onnxscript scikit-learn`):
    python examples/digits/train_cnn_torch.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    torch.manual_seed(SEED)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(40):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"test accuracy {acc:.4f}")
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(HERE / "digits_cnn.onnx"), input_names=["image"],
                      output_names=["logits"], opset_version=18, dynamo=True, external_data=False,
                      optimize=False)  # as exported, before onnxscript's own graph optimizer
    print(f"wrote {HERE / 'digits_cnn.onnx'}")


if __name__ == "__main__":
    main()
