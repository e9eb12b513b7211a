"""What `tinyc bench`'s QEMU plugin (templates/bench/insn_count.c) counts per executed block --
executions, instructions, bytes read and written per memory region, flash line reads, taken exits,
the disassembly -- and its sums per function, with the estimated cycles of tinyc/latency.py.

Regions are the emulated machine's memory map from the target (targets/*.toml [emulator]):
flash_origin/flash_bytes (code, constants and weights) and ram_origin/ram_bytes (arena, stack,
data). Accesses outside both (peripherals, semihosting buffers) are counted apart as "other", as
are writes into the flash region (none in a model's code). Instruction fetches are not memory
accesses here: only the loads and stores the instructions make."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

from . import latency
from .targets import Target


@dataclass
class Block:
    vaddr: int
    insns: int
    executions: int
    taken: int  # executions that left the block other than through its end
    flash_read: int
    flash_write: int
    sram_read: int
    sram_write: int
    other_read: int
    other_write: int
    flash_lines: int  # flash data reads of a line other than the previous flash read's
    disas: list[str] = field(default_factory=list)


def plugin_args(target: Target, out: Path) -> str:
    """The plugin's arguments for ``target``'s emulated memory map (after the plugin's path)."""
    emu = target.emulator
    return (f"out={out.resolve()},flash={emu.flash_origin:#x}:{emu.flash_bytes:#x},"
            f"ram={emu.ram_origin:#x}:{emu.ram_bytes:#x},line={target.flash_line_bytes or 16}")


def read_blocks(path: Path) -> Iterator[Block]:
    block = None
    for line in path.read_text().splitlines():
        if line.startswith("I "):
            if block is not None:
                block.disas.append(line[2:])
            continue
        if block is not None:
            yield block
        tag, vaddr, *numbers = line.split()
        block = Block(int(vaddr, 16), *map(int, numbers))
    if block is not None:
        yield block


@dataclass
class Traffic:
    """Sums over the blocks of one function (or of several)."""

    instructions: int = 0
    flash_read: int = 0
    sram_read: int = 0
    sram_write: int = 0
    other: int = 0  # bytes read or written outside the two regions, and written into the flash region
    flash_lines: int = 0
    core_cycles: float = 0.0

    def add_block(self, b: Block, model: latency.CoreModel | None) -> None:
        self.instructions += b.insns * b.executions
        self.flash_read += b.flash_read
        self.sram_read += b.sram_read
        self.sram_write += b.sram_write
        self.other += b.other_read + b.other_write + b.flash_write
        self.flash_lines += b.flash_lines
        if model is not None:
            cost = latency.block_cost(model, [latency.parse(d) for d in b.disas])
            self.core_cycles += cost.cycles * b.executions + (model.refill * b.taken if cost.control else 0)

    def __iadd__(self, other: "Traffic") -> "Traffic":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def keys(self, target: Target, model: latency.CoreModel | None) -> dict:
        """The JSON keys of `tinyc bench` (per layer and in total)."""
        wait = self.flash_lines * target.flash_wait_states
        cycles = round(self.core_cycles) + wait
        estimate = model is not None and target.clock_hz > 0
        return dict(flash_read_bytes=self.flash_read, sram_read_bytes=self.sram_read, sram_write_bytes=self.sram_write,
                    other_access_bytes=self.other, flash_line_reads=self.flash_lines,
                    flash_wait_cycles=wait if estimate else None, estimated_cycles=cycles if estimate else None,
                    estimated_latency_us=round(cycles / target.clock_hz * 1e6, 2) if estimate else None)


def estimate_note(target: Target, model: latency.CoreModel | None) -> str | None:
    """One line saying what the estimate is (None: no estimate for this target)."""
    if model is None or target.clock_hz <= 0:
        return None
    return (f"{model.name} cycle model ({model.source}) + {target.flash_wait_states} wait states per "
            f"{target.flash_line_bytes}-byte flash line read, at {target.clock_hz / 1e6:g} MHz ({target.board})")
