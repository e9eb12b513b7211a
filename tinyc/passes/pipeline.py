"""The default pass order of `tinyc compile`."""
from __future__ import annotations

DEFAULT = [
    "lower-qdq",  # quantized clusters -> integer ops
    "dead-code",
]
