"""Targets are data: one TOML file per target in targets/."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import TinycError
from .resources import data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Emulator:
    kind: str  # "native" (run on the host), "qemu", or "none" (compiled only)
    system: str = ""  # qemu-system-* binary
    machine: str = ""
    cpu: str = ""
    flash_origin: int = 0
    flash_bytes: int = 0
    ram_origin: int = 0
    ram_bytes: int = 0
    apt: tuple[str, ...] = ()
    args: tuple[str, ...] = ()  # more emulator arguments (e.g. -bios none)


@dataclass(frozen=True)
class Renode:
    """A Renode board for ``tinyc verify --emulator renode`` (memory map of its firmware)."""

    board: str
    cpu_type: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    qemu_machine: str = ""  # a QEMU machine with the same memory map, to run that firmware in CI


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str  # "host", "arm", ...
    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    alignment: int
    features: tuple[str, ...]
    board: str
    ram_bytes: int
    flash_bytes: int
    emulator: Emulator
    template_variants: tuple[str, ...] = field(default=())
    apt: tuple[str, ...] = ()
    llc: tuple[str, ...] = ()  # a second stage (LLVM IR -> object) when cc emits LLVM IR (Xtensa)
    renode: Renode | None = None

    def install_hint(self) -> str:
        pkgs = " ".join(dict.fromkeys(self.apt + self.emulator.apt))
        return f"apt-get install -y --no-install-recommends {pkgs}" if pkgs else ""


def _target(d: dict[str, Any]) -> Target:
    emu = dict(d.get("emulator", {"kind": "native"}))
    emu["apt"] = tuple(emu.get("apt", ()))
    emu["args"] = tuple(emu.get("args", ()))
    board = d.get("board", {})
    return Target(
        name=d["name"],
        description=d.get("description", ""),
        arch=d["arch"],
        cc=d["cc"],
        cflags=tuple(d.get("cflags", ())),
        ldflags=tuple(d.get("ldflags", ())),
        alignment=int(d.get("alignment", 16)),
        features=tuple(d.get("features", ())),
        board=board.get("name", ""),
        ram_bytes=int(board.get("ram_bytes", 0)),
        flash_bytes=int(board.get("flash_bytes", 0)),
        emulator=Emulator(**emu),
        template_variants=tuple(d.get("template_variants", ())),
        apt=tuple(d.get("apt", ())),
        llc=tuple(d.get("llc", ())),
        renode=Renode(**d["renode"]) if "renode" in d else None,
    )


def all_targets() -> dict[str, Target]:
    out = {}
    for p in sorted(data_dir("targets").glob("*.toml")):
        with open(p, "rb") as f:
            t = _target(tomllib.load(f))
        out[t.name] = t
    return out


def get_target(name: str) -> Target:
    targets = all_targets()
    if name not in targets:
        raise TinycError(f"unknown target '{name}' (known: {', '.join(sorted(targets))})")
    return targets[name]
