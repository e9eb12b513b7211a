"""Reading sizes from ELF files (objects and linked firmware) without binutils: section sizes and
the symbols' sizes, for the RAM/flash budget and its cross-check against report.json."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import TinycError

SHT_SYMTAB, SHT_NOBITS = 2, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    size: int

    @property
    def kind(self) -> str:
        """'code', 'rodata', 'data' (initialized RAM, copied from flash), 'bss' or '' (not loaded)."""
        if not self.flags & SHF_ALLOC:
            return ""
        if self.flags & SHF_EXECINSTR:
            return "code"
        if not self.flags & SHF_WRITE:
            return "rodata"
        return "bss" if self.type == SHT_NOBITS else "data"


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    section: str


class Elf:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        b = self.path.read_bytes()
        if b[:4] != b"\x7fELF":
            raise TinycError(f"{self.path}: not an ELF file")
        is64, little = b[4] == 2, b[5] == 1
        e = "<" if little else ">"
        if is64:
            shoff, = struct.unpack_from(e + "Q", b, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", b, 0x3A)
            fmt = e + "IIQQQQIIQQ"
        else:
            shoff, = struct.unpack_from(e + "I", b, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", b, 0x2E)
            fmt = e + "IIIIIIIIII"
        raw = [struct.unpack_from(fmt, b, shoff + i * shentsize) for i in range(shnum)]
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        names_off = raw[shstrndx][4]

        def cstr(off: int) -> str:
            return b[off:b.index(b"\0", off)].decode("latin-1")

        self.sections = [Section(cstr(names_off + r[0]), r[1], r[2], r[3], r[5]) for r in raw]
        self.symbols: list[Symbol] = []
        for r in raw:
            if r[1] != SHT_SYMTAB:
                continue
            str_off = raw[r[6]][4]
            sym_fmt, step = (e + "IBBHQQ", 24) if is64 else (e + "IIIBBH", 16)
            for i in range(1, r[5] // step):
                v = struct.unpack_from(sym_fmt, b, r[4] + i * step)
                if is64:
                    name, _, _, shndx, value, size = v
                else:
                    name, value, size, _, _, shndx = v
                sec = self.sections[shndx].name if 0 < shndx < len(self.sections) else ""
                self.symbols.append(Symbol(cstr(str_off + name), value, size, sec))

    def bytes_by_kind(self) -> dict[str, int]:
        out = {"code": 0, "rodata": 0, "data": 0, "bss": 0}
        for s in self.sections:
            if s.kind:
                out[s.kind] += s.size
        return out

    def symbol(self, name: str) -> Symbol | None:
        return next((s for s in self.symbols if s.name == name), None)
