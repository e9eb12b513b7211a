"""Real values -> integers with affine quantization parameters: the one spelling of it in tinyc."""
from __future__ import annotations

import numpy as np


def quantize(x, scale, zero_point, dtype=np.int8, lo: int | None = None) -> np.ndarray:
    """ONNX's QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point) in ``dtype``.

    The division happens in the types of ``x`` and ``scale`` as given: float32 values for ONNX's
    meaning (and the generated C's), float64 ones where tinyc wants the closer quotient (its own
    quantization of float constants). ``scale`` and ``zero_point`` broadcast against ``x`` (per
    axis: shaped along it). NaN goes to the zero point, as in the generated C (ONNX leaves it
    open). ``lo``: a lower bound above dtype's least value (symmetric int8 weights: -127)."""
    info = np.iinfo(dtype)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = np.rint(np.asarray(x) / scale)
    zp = np.broadcast_to(np.asarray(zero_point, np.float64), q.shape)
    q = np.where(np.isnan(q), zp, q + zp)
    return np.clip(q, info.min if lo is None else lo, info.max).astype(dtype)
