"""`--optimize speed|size|balanced`: which of its kernel options each layer runs with.

- ``speed``: the fewest estimated instructions per layer;
- ``size``: the least flash per layer;
- ``balanced`` (the default): the fewest estimated cycles on the target's reference board
  (instructions + flash wait states, tinyc/kernel_cost.py).

Then the flash budget (--flash-budget, default the board's flash; 0: none): while the estimated
flash of the whole model is above the budget less ``FLASH_MARGIN`` of it, the layer switch that
loses the fewest cycles per byte saved is made, until the model fits or every layer takes its
smallest option (the measured flash is then checked against the budget as before). The mode and
an explicit budget are graph options (``Graph.options``), so that the text IR shows them.
"""
from __future__ import annotations

from .errors import TinycError
from .kernel_cost import Cost

MODES = ("speed", "balanced", "size")
DEFAULT = "balanced"
# the estimate leaves out a little of the flash (tables inside layer functions, alignment): a
# model fits when its estimate is within the budget less this share of it
FLASH_MARGIN = 0.02

_ORDER = {
    "speed": lambda c: (c.instructions, c.flash_bytes),
    "size": lambda c: (c.flash_bytes, c.cycles),
    "balanced": lambda c: (c.cycles, c.flash_bytes),
}


def check(mode: str) -> str:
    if mode not in MODES:
        raise TinycError(f"unknown --optimize '{mode}' (expected {', '.join(MODES)})")
    return mode


def set_options(g, mode: str | None, flash_budget: int | None) -> None:
    """Record a non-default mode and an explicit flash budget in the graph's options."""
    if mode is not None and check(mode) != DEFAULT:
        g.options["optimize"] = mode
    if flash_budget is not None:
        g.options["flash_budget"] = int(flash_budget)


def mode_of(g) -> str:
    return g.options.get("optimize", DEFAULT)


def budget_of(g, target) -> int:
    """The flash the kernels' choice must fit (0: no limit)."""
    return int(g.options.get("flash_budget", target.flash_bytes))


def choose(options: dict[str, list[Cost]], mode: str, budget: int, fixed_bytes: int = 0) -> dict[str, int]:
    """Per layer, the index of its option: the mode's best, then switches to smaller options, the
    fewest cycles lost per byte saved first, while the total flash (``fixed_bytes``: what no choice
    changes) is above the budget less the margin."""
    order = _ORDER[check(mode)]
    pick = {n: min(range(len(cs)), key=lambda i, cs=cs: order(cs[i])) for n, cs in options.items()}
    if not budget:
        return pick
    limit = budget * (1 - FLASH_MARGIN)
    total = fixed_bytes + sum(cs[pick[n]].flash_bytes for n, cs in options.items())
    while total > limit:
        best = None
        for n, cs in options.items():
            cur = cs[pick[n]]
            for i, c in enumerate(cs):
                if c.flash_bytes < cur.flash_bytes:
                    lost = (c.cycles - cur.cycles) / (cur.flash_bytes - c.flash_bytes)
                    if best is None or lost < best[0]:
                        best = (lost, n, i)
        if best is None:
            break
        _, n, i = best
        total -= options[n][pick[n]].flash_bytes - options[n][i].flash_bytes
        pick[n] = i
    return pick
