"""Names and literals for generated C."""
from __future__ import annotations

import math
import re

import numpy as np

CTYPES = {
    "f32": "float", "s8": "int8_t", "u8": "uint8_t", "s16": "int16_t", "u16": "uint16_t",
    "s32": "int32_t", "u32": "uint32_t", "s64": "int64_t", "u64": "uint64_t",
}


def c_identifier(s: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", s).strip("_") or "model"
    if ident[0].isdigit():
        ident = "m_" + ident
    return ident.lower()


def c_comment(s: str) -> str:
    """Text safe inside /* */: printable ASCII only, no comment terminator."""
    s = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in s)
    return s.replace("*/", "*\\/").replace("/*", "/\\*")


def c_float(x: float) -> str:
    x = float(np.float32(x))
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "HUGE_VALF" if x > 0 else "-HUGE_VALF"
    return "%.9ef" % x


def c_array_body(data: np.ndarray, per_line: int = 8) -> str:
    """Initializer values, ``per_line`` to a line; floats print with 9 significant digits, which
    reads back to the same float32."""
    flat = data.reshape(-1)
    if data.dtype == np.float32:
        if not np.all(np.isfinite(flat)):
            vals = [c_float(v) for v in flat.tolist()]
        else:
            vals = ("%.8ef," * flat.size % tuple(flat.tolist())).split(",")[:-1]
    else:
        vals = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return ",\n    ".join(lines)
