"""Train a one-block, two-head transformer on scikit-learn's digits and export it the ways
PyTorch users do.

Each 8x8 digit is read as a sequence of 8 rows (tokens of 8 pixels, scaled to 0..1): a Linear
embeds every row into 32 features, a learned position embedding is added, one
nn.TransformerEncoderLayer (2 heads, feed-forward 64, exact GELU, post-norm) mixes the rows, the
mean over the sequence goes into a Linear classifier. Same train/test split as
examples/digits/train.py.

Writes next to this file:
  digits_transformer_opset17.onnx  torch.onnx.export(dynamo=False, opset_version=17): LayerNormalization, Erf
  digits_transformer_opset16.onnx  the same at opset 16: LayerNorm as ReduceMean/Pow/Sqrt/Div
  digits_transformer_dynamo.onnx   torch.onnx.export(dynamo=True): the dynamo exporter's graph
  transformer_calib.npz   200 training samples, "rows" [200,8,8] float32 (for --calib)
  transformer_test.npz    the held-out split: "rows" [N,8,8] float32
  transformer_labels.npy  its labels [N] int64
Input "rows" [1,8,8] float32, output "logits" [1,10].

Run (needs torch, onnxscript for the dynamo export, scikit-learn):
    python examples/transformer/train.py
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


class DigitsTransformer(nn.Module):
    def __init__(self, d: int = 32, heads: int = 2, ff: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(1, 8, d))
        self.block = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
        self.head = nn.Linear(d, 10)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        h = self.block(self.embed(rows) + self.pos)
        return self.head(h.mean(dim=1))


def main() -> None:
    torch.manual_seed(SEED)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)

    model = DigitsTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(60):
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
    print(f"held-out accuracy {acc:.4f} on {len(y_test)} digits")

    example = (torch.from_numpy(x_test[:1]),)
    names = dict(input_names=["rows"], output_names=["logits"])
    for opset in (17, 16):
        torch.onnx.export(model, example, HERE / f"digits_transformer_opset{opset}.onnx", dynamo=False,
                          opset_version=opset, **names)
    prog = torch.onnx.export(model, example, dynamo=True, **names)
    prog.save(str(HERE / "digits_transformer_dynamo.onnx"))

    rng = np.random.default_rng(SEED)
    np.savez_compressed(HERE / "transformer_calib.npz", rows=x_train[rng.choice(len(x_train), 200, replace=False)])
    np.savez_compressed(HERE / "transformer_test.npz", rows=x_test)
    np.save(HERE / "transformer_labels.npy", y_test)


if __name__ == "__main__":
    main()
