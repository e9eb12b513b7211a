"""tinyc's intermediate representation.

A :class:`Graph` holds tensors by name and nodes in topological order. A tensor is either a graph
input, a constant (``data`` set), or produced by exactly one node. Shapes are always static and
fully known after import (symbolic dimensions are fixed by the frontend).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import TinycError

# IR dtype names (short, as in kernel suffixes) and their numpy equivalents.
DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "f16": np.dtype(np.float16),
    "s8": np.dtype(np.int8),
    "u8": np.dtype(np.uint8),
    "s16": np.dtype(np.int16),
    "u16": np.dtype(np.uint16),
    "s32": np.dtype(np.int32),
    "u32": np.dtype(np.uint32),
    "s64": np.dtype(np.int64),
    "u64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
}
_NP_TO_IR = {v: k for k, v in DTYPES.items()}


def dtype_of(array: np.ndarray) -> str:
    try:
        return _NP_TO_IR[array.dtype]
    except KeyError:
        raise TinycError(f"unsupported numpy dtype {array.dtype}") from None


def itemsize(dtype: str) -> int:
    return DTYPES[dtype].itemsize


@dataclass
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``, per tensor or along ``axis``."""

    scale: np.ndarray  # float32, shape () or (C,)
    zero_point: np.ndarray  # int32, same shape as scale
    axis: int | None = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, QuantParams)
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None  # set for constants
    quant: QuantParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * itemsize(self.dtype)


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str | None]  # None marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # set by the plan-memory pass: the arena plan (buffers, lower bounds) behind the nodes' offsets
    memory_plan: Any = field(default=None, repr=False, compare=False)
    # set by the patch pass when it runs a first stage in bands: what it did, for the report
    patch: Any = field(default=None, repr=False, compare=False)
    # compile options the graph's meaning depends on (printed in the text IR's header), e.g.
    # "rounding" (tinyc/quant/rounding.py); absent keys take their defaults
    options: dict[str, Any] = field(default_factory=dict)
    # model state: tensors that keep their values from one run to the next (a stateful op such as
    # SVDF reads and updates them in place, ``Op.state_inputs``), name -> the integer value every
    # element has at the start and after a reset (TFLite Micro's: the zero point of an int8 state, 0
    # otherwise). Neither inputs, constants nor arena tensors: generated C keeps them in static
    # state arrays, ``<name>_reset`` restores them.
    states: dict[str, int] = field(default_factory=dict)

    # -- construction helpers -------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        if t.name in self.tensors:
            raise TinycError(f"tensor '{t.name}' defined twice")
        self.tensors[t.name] = t
        return t

    def add_const(self, name: str, data: np.ndarray) -> Tensor:
        data = np.asarray(data, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
        return self.add_tensor(Tensor(name, tuple(int(d) for d in data.shape), dtype_of(data), data))

    def unique_name(self, base: str) -> str:
        if base not in self.tensors:
            return base
        i = 1
        while f"{base}_{i}" in self.tensors:
            i += 1
        return f"{base}_{i}"

    def rename(self, old: str, new: str) -> None:
        """Give tensor ``old`` the name ``new`` everywhere (``new`` must be free)."""
        if new in self.tensors:
            raise TinycError(f"cannot rename '{old}' to '{new}': the name is taken")
        t = self.tensors.pop(old)
        t.name = new
        self.tensors[new] = t
        for n in self.nodes:
            n.inputs = [new if x == old else x for x in n.inputs]
            n.outputs = [new if x == old else x for x in n.outputs]
        self.inputs = [new if x == old else x for x in self.inputs]
        self.outputs = [new if x == old else x for x in self.outputs]

    # -- queries --------------------------------------------------------------------------
    def producers(self) -> dict[str, int]:
        return {o: i for i, n in enumerate(self.nodes) for o in n.outputs}

    def consumers(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for x in n.inputs:
                if x is not None:
                    out.setdefault(x, []).append(i)
        return out

    def constants(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.is_const]

    def verify(self) -> None:
        """Check the structural invariants; raise TinycError naming the first violation."""
        defined = set(self.inputs)
        for name in self.inputs:
            t = self.tensors.get(name)
            if t is None or t.is_const:
                raise TinycError(f"graph input '{name}' is not a non-constant tensor")
        defined.update(t.name for t in self.constants())
        for name in self.states:
            t = self.tensors.get(name)
            if t is None or t.is_const or name in self.inputs:
                raise TinycError(f"state '{name}' is not a tensor of its own (no input, no constant)")
        defined.update(self.states)
        seen_nodes: set[str] = set()
        for n in self.nodes:
            if n.name in seen_nodes:
                raise TinycError(f"node name '{n.name}' used twice")
            seen_nodes.add(n.name)
            for x in n.inputs:
                if x is not None and x not in defined:
                    raise TinycError(f"node '{n.name}' ({n.op}) uses '{x}' before it is defined")
            for o in n.outputs:
                if o in defined:
                    raise TinycError(f"tensor '{o}' is defined more than once (node '{n.name}')")
                t = self.tensors.get(o)
                if t is None:
                    raise TinycError(f"node '{n.name}' output '{o}' has no tensor")
                if t.is_const:
                    raise TinycError(f"node '{n.name}' writes constant '{o}'")
                defined.add(o)
        for o in self.outputs:
            if o not in defined:
                raise TinycError(f"graph output '{o}' is never defined")
        for t in self.tensors.values():
            if any((not isinstance(d, int)) or d < 0 for d in t.shape):
                raise TinycError(f"tensor '{t.name}' has a non-static shape {t.shape}")
            if t.dtype not in DTYPES:
                raise TinycError(f"tensor '{t.name}' has unknown dtype {t.dtype}")
            if t.data is not None and (tuple(t.data.shape) != t.shape or dtype_of(t.data) != t.dtype):
                raise TinycError(f"constant '{t.name}' data does not match its type")
