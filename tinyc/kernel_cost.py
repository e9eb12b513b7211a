"""What a kernel option costs: estimated instructions, flash bytes, flash bytes read per inference
and estimated cycles on the target's reference board (the select-kernels pass chooses by them).

- **instructions** = a x MACs + b x outputs + c x gathered inputs + d x input elements + e x
  output pixels + f (:func:`features`), the coefficients per kernel (template, the target folder
  it comes from, weight form) and core class (the target's template variants, e.g. "dsp"), fitted
  by least squares on `tinyc bench` runs (``benchmarks/calibrate.py`` writes
  ``kernel_costs.json``); a kernel's int8 form, as its wide form's estimate plus their measured
  difference fitted on the same terms (the forms' choice hangs on a few percent that two separate
  fits would blur). A kernel without calibration data takes the coefficients of the same
  template in another form or core class, else the fit over every kernel (``calibrated`` False).
- **flash bytes** = the constant arrays the kernel reads (its own layout, ``Kernel.weights``, or the
  node's constant inputs as they are) + the kernel's code (the mean size of its layer functions
  in the calibration builds).
- **flash read bytes** = those arrays' bytes x how many times one inference walks them
  (``Op.weight_passes``: e.g. once per pair of output pixels).
- **cycles** = instructions + flash wait states: every ``flash_line_bytes`` of weights read costs
  ``flash_wait_states`` cycles (the board's, tinyc/targets.py). A simplification: one cycle per
  instruction otherwise, instruction fetches and the flash accelerator's caches and prefetch
  ignored, every weight line read from flash once per pass.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

COSTS_FILE = Path(__file__).resolve().parent / "kernel_costs.json"


@dataclass(frozen=True)
class Cost:
    instructions: int
    flash_bytes: int
    flash_read_bytes: int
    cycles: int
    calibrated: bool = True


def core_class(variants: tuple[str, ...]) -> str:
    """The cores a calibration holds for: those with the same template folders (e.g. "dsp")."""
    return "+".join(variants) or "portable"


def cost_key(kernel: str, variant: str | None, form: str) -> str:
    """A kernel's name in the calibration: ``dsp/s8.gemm:wide`` (form "-" where there is no choice)."""
    return f"{variant or 'portable'}/{kernel}:{form or '-'}"


def features(node, ins, outs, macs: int) -> list[float]:
    """The model's terms: instructions = a x MACs + b x outputs + c x (MACs per output channel: the
    input values a matrix product gathers) + d x input 0's elements + e x output pixels (outputs
    per channel) + f (one call)."""
    outputs = sum(int(np.prod(o.shape)) for o in outs)
    channels = int(outs[0].shape[-1]) if outs and outs[0].shape else 1
    inputs = int(np.prod(ins[0].shape)) if ins and ins[0] is not None else 0
    return [float(macs), float(outputs), macs / max(channels, 1), float(inputs), outputs / max(channels, 1), 1.0]


@functools.lru_cache(maxsize=None)
def calibration(path: str = str(COSTS_FILE)) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {"cores": {}, "default": {"coef": [1.0, 0, 0, 0, 0, 0], "code_bytes": 256}}


def _entry(core: str, key: str) -> tuple[dict[str, Any], bool]:
    """The calibration of ``key`` on ``core`` (True), else the nearest stand-in (False)."""
    data = calibration()
    table = data["cores"].get(core, {})
    if key in table:
        return table[key], True
    for c in sorted(data["cores"]):  # the same kernel and form calibrated on other cores
        if key in data["cores"][c]:
            return data["cores"][c][key], False
    template = key.split(":")[0]
    for c in [core, *sorted(data["cores"])]:
        for k, v in sorted(data["cores"].get(c, {}).items()):
            if k.split(":")[0] == template:
                return v, False
    return data["default"], False


def instructions(core: str, key: str, terms: list[float]) -> tuple[int, bool]:
    """The estimate; an int8 form calibrated as its wide twin plus the measured difference
    (``delta_of``: the choice between the two hangs on that difference) is estimated so."""
    e, known = _entry(core, key)
    if "delta_of" in e:
        base, base_known = instructions(core, e["delta_of"], terms)
        return max(0, base + round(float(np.dot(e["delta_coef"], terms)))), known and base_known
    return max(0, round(float(np.dot(e["coef"], terms)))), known


def code_bytes(core: str, key: str) -> int:
    return int(_entry(core, key)[0]["code_bytes"])


def overhead_bytes(core: str) -> int:
    """Flash the layers' estimate leaves out (the run function, helpers, tables): the most any
    calibration build measured beyond its estimate."""
    return int(calibration().get("overhead_bytes", {}).get(core, 0))


def wait_cycles(read_bytes: int, target) -> int:
    if not target.flash_wait_states or not target.flash_line_bytes:
        return 0
    return -(-read_bytes // target.flash_line_bytes) * target.flash_wait_states


def weight_bytes(ins, kernel) -> int:
    """Bytes of the constant arrays the kernel reads: its own layout of an input, else the input."""
    own = sum(np.asarray(d).nbytes for d in kernel.weights.values() if d is not None)
    return own + sum(t.nbytes for j, t in enumerate(ins) if t is not None and t.is_const and j not in kernel.weights)


def option_cost(op, node, ins, outs, kernel, key: str, target) -> Cost:
    """The cost of running ``node`` with ``kernel`` (``key``: its cost_key) on ``target``."""
    core = core_class(target.template_variants)
    n, known = instructions(core, key, features(node, ins, outs, op.macs(node, ins, outs)))
    wb = weight_bytes(ins, kernel)
    reads = wb * op.weight_passes(node, ins, outs, kernel)
    return Cost(n, wb + code_bytes(core, key), reads, n + wait_cycles(reads, target), known)
