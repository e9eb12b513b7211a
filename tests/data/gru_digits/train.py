"""Generator (not run by the tests): trains the small GRU digit classifier in gru_digits.onnx.

scikit-learn's 8x8 digits read as a sequence: 8 steps (rows) of 8 pixels (/16), a GRU of 16 units
(PyTorch's, so linear_before_reset=1), a fully connected layer on the last hidden state. The first
1,400 images train it (and calibrate the int8 model in tests/test_gru_int8.py), the other 397 are
held out. Needs torch and scikit-learn:  python tests/data/gru_digits/train.py
"""
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

SPLIT = 1400


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(8, 16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):  # x: [8 steps, batch, 8]
        _, h = self.gru(x)
        return self.fc(h[0])


def main():
    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor((d.images / 16.0).astype(np.float32)).permute(1, 0, 2)  # [8, N, 8]
    y = torch.tensor(d.target)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for epoch in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x[:, :SPLIT]), y[:SPLIT])
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (net(x[:, SPLIT:]).argmax(1) == y[SPLIT:]).float().mean().item()
    print(f"loss {loss.item():.4f}, held-out accuracy {acc:.4f}")
    out = Path(__file__).with_name("gru_digits.onnx")
    torch.onnx.export(net, (x[:, :1],), str(out), input_names=["x"], output_names=["logits"], dynamo=False)


if __name__ == "__main__":
    main()
