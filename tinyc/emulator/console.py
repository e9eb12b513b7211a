"""The console of the firmware with built-in samples (templates/firmware/main_embedded.c.j2):
"tinyc-output <sample> <hex>" per sample, then "tinyc-exit <code> <what it means>", read back
into outputs the way the QEMU runner reads output.bin."""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..codegen import GeneratedModel
from ..errors import TinycError
from .runner import EXIT_CODES, FAULTS, _unpack_outputs

_OUTPUT = re.compile(r"tinyc-output (\d+) ([0-9a-f]*)$")
_EXIT = re.compile(r"tinyc-exit (-?\d+)\b ?(.*)$")


def exit_status(lines: Sequence[str]) -> tuple[int, str] | None:
    """(code, what the firmware said it means) from its exit line; None when it printed none."""
    for line in lines:
        m = _EXIT.match(line.strip())
        if m:
            return int(m.group(1)), m.group(2)
    return None


def read_outputs(model: GeneratedModel, lines: Sequence[str], count: int, where: str) -> list[dict[str, np.ndarray]]:
    """The outputs of ``count`` samples from the console ``lines``; a fault, a failure or missing
    lines are a TinycError naming them (``where``: the target and emulator, for the message)."""
    status = exit_status(lines)
    if status is not None and status[0] != 0:
        code, said = status
        kind = "faulted" if code in FAULTS else "failed"
        raise TinycError(f"the firmware {kind} on {where}: {EXIT_CODES.get(code, said or f'exit code {code}')}")
    printed = {}
    for line in lines:
        m = _OUTPUT.match(line.strip())
        if m:
            printed[int(m.group(1))] = bytes.fromhex(m.group(2))
    missing = [s for s in range(count) if s not in printed]
    if missing:
        end = "it did not end" if status is None else "it ended normally"
        raise TinycError(f"the firmware printed no outputs for sample {missing[0]} on {where} ({end})")
    return [_unpack_outputs(model, printed[s], 1)[0] for s in range(count)]
