"""tinyc: ONNX models to self-contained C for microcontrollers.

``tinyc.compile(model, target=..., quantize=..., calib=..., **options)`` -> ``tinyc.Build``: the
Python API (tinyc/api.py), imported when first used so that ``import tinyc`` stays cheap."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("compile", "Build", "VerifyResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'tinyc' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
