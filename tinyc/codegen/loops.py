"""The run function's calls, with repeating runs of band calls folded into C loops.

The patch pass runs a stage in bands: after the first rows, every band calls the same layer
functions with pointers that move by the same number of bytes from one band to the next (a window
sits at the same offset each time; the image's rows advance). Printed one call per step, a
MobileNetV2 at 224x224 would spend tens of KB of flash on call sites. Here a run of R >= 3 blocks of P
calls, each block calling the same functions as the first with every number in its arguments
moved by the same amount as the block before, becomes ``for (i = 0; i < R; i++)`` around the first
block with ``+ step * i`` on the numbers that move. Python finds the runs and their steps; the
template only loops. Only calls of the patch pass's nodes are folded, so the code of a model it
does not touch stays as it was.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PERIOD = 96  # calls per repeated block at most
MIN_REPEATS = 3

_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


@dataclass
class Call:
    fn: str
    args: list[str]
    foldable: bool
    index: int = 0  # the layer's index (debug dumps)
    dumps: list = field(default_factory=list)


def _shape(call: Call) -> tuple[str, tuple[str, ...], tuple[int, ...]]:
    """(function, arguments with their numbers replaced by {}, the numbers)."""
    numbers: list[int] = []

    def keep(m):
        numbers.append(int(m.group(0)))
        return "{}"

    args = tuple(_NUMBER.sub(keep, a) for a in call.args)
    return call.fn, args, tuple(numbers)


def fold(calls: list[Call]) -> list[dict]:
    """The run function's body: ``dict(call=...)`` for one call, ``dict(loop=count, body=[(fn,
    [arg, ...]), ...])`` for a folded run (arguments with ``+ step * i`` where they move)."""
    shapes = [_shape(c) for c in calls]
    out: list[dict] = []
    i = 0
    while i < len(calls):
        best = None  # (calls saved, period, repeats)
        for p in range(1, MAX_PERIOD + 1):
            if i + MIN_REPEATS * p > len(calls):
                break
            if not all(calls[i + j].foldable and not calls[i + j].dumps for j in range(p)):
                break
            r = _repeats(shapes, i, p)
            if r >= MIN_REPEATS and (best is None or p * (r - 1) > best[0]):
                best = (p * (r - 1), p, r)
        if best is None:
            out.append(dict(call=calls[i]))
            i += 1
            continue
        _, p, r = best
        body = []
        for j in range(p):
            fn, templ, first = shapes[i + j]
            step = [b - a for a, b in zip(first, shapes[i + p + j][2])]
            body.append((fn, _fill(templ, first, step)))
        out.append(dict(loop=r, body=body))
        i += p * r
    return out


def _repeats(shapes, i: int, p: int) -> int:
    """How many blocks of p calls from i repeat block i with numbers moving by a constant step."""
    first = shapes[i:i + p]
    r = 1
    step = None
    while i + (r + 1) * p <= len(shapes):
        block = shapes[i + r * p:i + (r + 1) * p]
        prev = shapes[i + (r - 1) * p:i + r * p]
        if any(b[0] != a[0] or b[1] != a[1] for a, b in zip(first, block)):
            break
        s = [tuple(y - x for x, y in zip(a[2], b[2])) for a, b in zip(prev, block)]
        if step is None:
            step = s
        elif s != step:
            break
        r += 1
    return r


def _fill(templ: tuple[str, ...], numbers: tuple[int, ...], step: list[int]) -> list[str]:
    it = iter(zip(numbers, step))
    out = []
    for a in templ:
        parts = a.split("{}")
        text = parts[0]
        for rest in parts[1:]:
            n, s = next(it)
            text += str(n) if s == 0 else f"({n} + {s} * i)" if s > 0 else f"({n} - {-s} * i)"
            text += rest
        out.append(text)
    return out
