"""The weights blob: a model's weights as a separate binary file that a firmware can update in the
field (e.g. in a flash partition) without reflashing its code.

Layout (little-endian), a 64-byte header, then the payload:

    offset  size  field
    0       4     magic "TCWB"
    4       2     format version (1)
    6       2     header bytes (64)
    8       4     payload bytes
    12      4     CRC-32 of the payload (IEEE 802.3, as zlib.crc32)
    16      32    fingerprint: SHA-256 of the generated code the blob fits
    48      4     payload alignment (the target's)
    52      4     number of weight arrays
    56      8     zero

The payload holds every weight array at an offset aligned for the target (zero padding between).
The fingerprint is the SHA-256 of the generated ``<name>.c`` without its first comment (which
names the source file and tinyc's version): the code depends on the weights only through their
offsets, types and sizes -- and, where tinyc specialises code to weight values (zero-weight blocks
skipped, requantization constants), through those too, so a blob is accepted exactly when the
code generated for its weights is the code that runs.
"""
from __future__ import annotations

import hashlib
import re
import struct
import zlib

import numpy as np

MAGIC = b"TCWB"
VERSION = 1
HEADER_BYTES = 64
PLACEHOLDER = "TINYC_FINGERPRINT_PLACEHOLDER"

# error codes of <name>_load_weights (0: accepted); the test firmware exits with 20 - code
ERRORS = {
    -1: ("TRUNCATED", "shorter than its header and payload"),
    -2: ("BAD_MAGIC", "not a tinyc weights blob (bad magic)"),
    -3: ("BAD_VERSION", "unsupported blob format version"),
    -4: ("WRONG_MODEL", "made for a different model (fingerprint mismatch)"),
    -5: ("BAD_SIZE", "payload size differs from this model's"),
    -6: ("BAD_CHECKSUM", "corrupt (CRC-32 mismatch)"),
    -7: ("MISALIGNED", "not aligned for this target"),
    -8: ("NOT_LOADED", "no weights loaded"),
}


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def layout(sizes: list[int], alignment: int) -> tuple[list[int], int]:
    """Offsets (from the blob's start) of arrays of ``sizes`` bytes, and the payload size."""
    offsets, pos = [], HEADER_BYTES
    for n in sizes:
        pos = _align(pos, alignment)
        offsets.append(pos)
        pos += n
    return offsets, pos - HEADER_BYTES


def fingerprint(code: str) -> bytes:
    """SHA-256 of generated C with its first comment block removed."""
    body = re.sub(r"\A/\*.*?\*/", "", code, count=1, flags=re.S)
    return hashlib.sha256(body.encode()).digest()


def crc_table() -> list[int]:
    """The 256-entry table of the reflected CRC-32 (polynomial 0xEDB88320) for the C checker."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def pack(arrays: list[np.ndarray], offsets: list[int], payload_bytes: int, alignment: int, fp: bytes) -> bytes:
    payload = bytearray(payload_bytes)
    for a, off in zip(arrays, offsets):
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        payload[off - HEADER_BYTES: off - HEADER_BYTES + len(raw)] = raw
    header = struct.pack("<4sHHII32sII8x", MAGIC, VERSION, HEADER_BYTES, payload_bytes,
                         zlib.crc32(bytes(payload)) & 0xFFFFFFFF, fp, alignment, len(arrays))
    assert len(header) == HEADER_BYTES
    return header + bytes(payload)


def describe(code: int) -> str:
    return ERRORS.get(code, ("?", f"unknown error {code}"))[1]
