"""Sizes every frontend refuses before allocating anything: a model file is untrusted input.

No microcontroller comes near these: a model that declares more is broken or hostile.
"""
from __future__ import annotations

import math

from ..errors import TinycError

# One tensor (an input, an activation, a constant):
MAX_TENSOR_BYTES = 2**28
# All constant data together (initializers and what import folds), which becomes C source:
MAX_CONSTANT_BYTES = 2**25
# Nodes in the imported graph (after ops expand into others, e.g. an RNN unrolled); the passes take
# minutes well before this:
MAX_NODES = 100_000


def check_size(what: str, shape, itemsize: int) -> None:
    """Refuse a shape with a negative dimension or one of more than MAX_TENSOR_BYTES."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise TinycError(f"{what}: shape {dims} has a negative dimension")
    nbytes = math.prod(max(d, 1) for d in dims) * itemsize  # (an empty tensor's other dimensions count too)
    if nbytes > MAX_TENSOR_BYTES:
        raise TinycError(f"{what}: shape {dims} needs {nbytes:,} bytes; tinyc refuses tensors over "
                         f"{MAX_TENSOR_BYTES:,} bytes")
