"""Names and literals for generated C."""
from __future__ import annotations

import math
import re

import numpy as np

CTYPES = {
    "f32": "float", "s8": "int8_t", "u8": "uint8_t", "s16": "int16_t", "u16": "uint16_t",
    "s32": "int32_t", "u32": "uint32_t", "s64": "int64_t", "u64": "uint64_t",
    "f64": "double", "bool": "uint8_t",
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
    elif data.dtype == np.float64:
        vals = [repr(v) if math.isfinite(v) else ("NAN" if math.isnan(v) else ("HUGE_VAL" if v > 0 else "-HUGE_VAL"))
                for v in flat.tolist()]
    elif data.dtype in (np.int64, np.uint64):  # literals past 32 bits need their suffix
        suffix = "LL" if data.dtype == np.int64 else "ULL"
        vals = [f"{v}{suffix}" if abs(v) > 2**31 - 1 else str(v) for v in flat.tolist()]
        vals = ["(-9223372036854775807LL - 1)" if v == f"{-2**63}LL" else v for v in vals]
    else:
        vals = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return ",\n    ".join(lines)
