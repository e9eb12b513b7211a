"""tinyc/quant/int16_lut.py against TFLite Micro: int16 LOGISTIC, TANH and SOFTMAX on one-op models
built here, every int16 input, several input scales (including the power-of-two ones that take
TFLite's special path and the ones just off a power of two that CheckedLog2 still counts as one)."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc.errors import UnsupportedError
from tinyc.quant import int16_lut

from .tflite_builders import model_bytes, run_tflm

ALL = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 65536)
Q15 = 2.0 ** -15


def unary_model(op: str, shape, in_scale: float, out_scale: float = Q15, options=None) -> bytes:
    return model_bytes(op, [dict(name="x", shape=shape, type="s16", q=([in_scale], [0], 0)),
                            dict(name="y", shape=shape, type="s16", q=([out_scale], [0], 0))],
                       [0], [1], [0], [1], options=options)


SCALES = [2.0 ** -12, 2.0 ** -12 * 1.0004, 2.0 ** -11, 2.0 ** -11 * 0.9995, 2.0 ** -10, 2.0 ** -13, 3.7e-4,
          1.0 / 3000, 1e-5, 1e-9, 0.02, 0.5, 2.5]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_sigmoid_tanh_every_input(op, scale):
    tanh = op == "TANH"
    want = run_tflm(unary_model(op, [1, 65536], scale), [ALL])[0]
    got = int16_lut.sigmoid_tanh_s16(ALL, int16_lut.sigmoid_params(op, tanh, scale, Q15))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} differ, first at {ALL.ravel()[bad[:5]]}: {got.ravel()[bad[:5]]} vs {want.ravel()[bad[:5]]}"


def test_power_of_two_paths_are_taken():
    def rescale(tanh, scale):
        p = int16_lut.sigmoid_params("t", tanh, scale, Q15)
        return p["mult"], p["shift"]
    assert rescale(False, 2.0 ** -12) == (3, 0)
    assert rescale(False, 2.0 ** -12 * 1.0004) == (3, 0)  # CheckedLog2's tolerance
    assert rescale(True, 2.0 ** -11) == (6, 0)
    assert rescale(False, 2.0 ** -11) == (24576, 12)


@pytest.mark.parametrize("kind,args", [
    ("sig", (False, 3.0, Q15)), ("sig", (True, 2.0 ** -12, 2.0 ** -14)), ("sig", (False, 2.0 ** -12, 1 / 32767.0 * 1.01)),
    ("soft", (1e-3, 1 / 256)), ("soft", (0.0, Q15))])
def test_refused(kind, args):
    with pytest.raises(UnsupportedError):
        if kind == "sig":
            int16_lut.sigmoid_params("op", *args)
        else:
            int16_lut.softmax_params("op", *args)


def _softmax_rows(rng, depth: int, rows: int) -> np.ndarray:
    x = rng.integers(-32768, 32768, size=(rows, depth))
    x[0] = 0
    x[1] = 32767
    x[2] = rng.integers(-300, 300, size=depth)  # close together
    x[3, :] = -32768
    x[3, 0] = 32767  # one far above the rest
    return x.astype(np.int16)


@pytest.mark.parametrize("depth", [1, 10, 1000])
@pytest.mark.parametrize("scale,beta", [(1e-4, 1.0), (2.0 ** -10, 1.0), (3e-3, 1.0), (0.05, 1.0), (1.0, 1.0),
                                        (3e-3, 0.5), (1e-5, 2.0)])
def test_softmax(depth, scale, beta):
    rng = np.random.default_rng(depth * 7 + int(scale * 1e5))
    x = _softmax_rows(rng, depth, 24)
    want = run_tflm(unary_model("SOFTMAX", list(x.shape), scale, options=("SoftmaxOptions", {"beta": beta})), [x])[0]
    mult, shift = int16_lut.softmax_params("Softmax", scale, Q15, beta)
    exp, recip = int16_lut.softmax_tables()
    got = int16_lut.softmax_s16(x, mult, shift, exp, recip)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} differ, first at {bad[:3].tolist()}: {got[tuple(bad[:3].T)]} vs {want[tuple(bad[:3].T)]}"
