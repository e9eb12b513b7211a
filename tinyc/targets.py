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


# features with kernel templates of their own (templates/<feature>/), most preferred first
KERNEL_FEATURES = ("mve", "dsp")
FEATURES = ("dsp", "mve", "mve-fp", "fpu-sp", "fpu-dp")


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str  # "host", "arm", ...
    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    alignment: int
    features: tuple[str, ...]  # what the core has; "mve" and "dsp" choose the kernel templates
    board: str
    ram_bytes: int
    flash_bytes: int
    emulator: Emulator
    apt: tuple[str, ...] = ()
    llc: tuple[str, ...] = ()  # a second stage (LLVM IR -> object) when cc emits LLVM IR (Xtensa)
    renode: Renode | None = None
    # the reference board's core clock and flash: wait states per flash access of
    # flash_line_bytes (the estimated latency of `tinyc bench` and the balanced kernel choice)
    clock_hz: int = 0
    flash_wait_states: int = 0
    flash_line_bytes: int = 0

    @property
    def template_variants(self) -> tuple[str, ...]:
        """The template folders searched before templates/portable/, in order of preference: one
        per feature that has kernels of its own (Helium first, then the DSP extension)."""
        return tuple(f for f in KERNEL_FEATURES if f in self.features)

    def install_hint(self) -> str:
        pkgs = " ".join(dict.fromkeys(self.apt + self.emulator.apt))
        return f"apt-get install -y --no-install-recommends {pkgs}" if pkgs else ""


def _features(d: dict[str, Any]) -> tuple[str, ...]:
    features = tuple(d.get("features", ()))
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise TinycError(f"target '{d.get('name')}': unknown feature {', '.join(unknown)} (known: {', '.join(FEATURES)})")
    cflags = d.get("cflags", ())
    if d.get("arch") == "arm" and ("fpu-sp" in features) != ("-mfloat-abi=hard" in cflags):
        have = "declares" if "fpu-sp" in features else "does not declare"
        raise TinycError(f"target '{d.get('name')}' {have} the feature fpu-sp but its cflags "
                         f"{'lack' if 'fpu-sp' in features else 'have'} -mfloat-abi=hard: float kernels would "
                         f"{'run in software' if 'fpu-sp' in features else 'need an FPU the core lacks'}")
    return features


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
        features=_features(d),
        board=board.get("name", ""),
        ram_bytes=int(board.get("ram_bytes", 0)),
        flash_bytes=int(board.get("flash_bytes", 0)),
        clock_hz=int(board.get("clock_hz", 0)),
        flash_wait_states=int(board.get("flash_wait_states", 0)),
        flash_line_bytes=int(board.get("flash_line_bytes", 0)),
        emulator=Emulator(**emu),
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
