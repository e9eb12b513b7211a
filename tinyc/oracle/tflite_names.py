"""The tensor names of a .tflite file's first subgraph, read straight from the flatbuffer (the
TFLite schema: Model.subgraphs is field 2, SubGraph.tensors field 0, Tensor.name field 3), so
that ``diff --against tflm`` can find the layers tinyc kept the names of."""
from __future__ import annotations

import struct

from ..errors import TinycError


def _u32(data: bytes, pos: int) -> int:
    return struct.unpack_from("<I", data, pos)[0]


def _field(data: bytes, table: int, index: int) -> int | None:
    """Where a table's field is stored, or None when the field is absent."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    if 4 + 2 * index >= struct.unpack_from("<H", data, vtable)[0]:
        return None
    offset = struct.unpack_from("<H", data, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _target(data: bytes, pos: int) -> int:
    return pos + _u32(data, pos)


def _vector(data: bytes, pos: int) -> list[int]:
    """The positions of a vector's offset elements."""
    v = _target(data, pos)
    n = _u32(data, v)
    if v + 4 + 4 * n > len(data):
        raise IndexError(f"a vector of {n} elements at byte {v} runs past the end")
    return [v + 4 + 4 * k for k in range(n)]


def tensor_names(data: bytes) -> list[str]:
    try:
        subgraphs = _field(data, _target(data, 0), 2)
        if subgraphs is None:
            return []
        sg = _target(data, _vector(data, subgraphs)[0])
        tensors = _field(data, sg, 0)
        names = []
        for pos in _vector(data, tensors) if tensors is not None else []:
            name = _field(data, _target(data, pos), 3)
            s = _target(data, name) if name is not None else None
            names.append(data[s + 4:s + 4 + _u32(data, s)].decode("utf-8", "replace") if s is not None else "")
        return names
    except (struct.error, IndexError):
        raise TinycError("--against tflm: the .tflite file is damaged (its tensor table cannot be read)") from None
