"""The requantization rounding mode: a compile option recorded in the graph.

TFLite Micro builds by default with *double rounding* (``SaturatingRoundingDoublingHighMul`` rounds
to the nearest, then ``RoundingDivideByPOT`` rounds again; tinyc/quant/fixedpoint.py spells out
both); ``TFLITE_SINGLE_ROUNDING`` builds (LiteRT's reference kernels) round once, ties upward. Which one a model follows is chosen
when it is compiled (``--rounding``) and kept in ``Graph.options["rounding"]`` (absent: the
default), so that the text IR, the interpreter, the kernels and report.json all see the same mode.

Ops compute their integers from a node and its tensors, without the graph; the functions that take
a graph (code generation, the memory plan, the interpreter) make its mode the *active* one for
their duration (:func:`graph_scoped`), and an op reads it with :func:`active`.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import TinycError

DOUBLE = "double"  # TFLite Micro's default
SINGLE = "single"  # TFLITE_SINGLE_ROUNDING
MODES = (DOUBLE, SINGLE)
DEFAULT = DOUBLE

_active: ContextVar[str] = ContextVar("tinyc_rounding", default=DEFAULT)


def check(mode: str) -> str:
    """``mode`` if it is a rounding mode; TinycError otherwise."""
    if mode not in MODES:
        raise TinycError(f"unknown rounding '{mode}' (expected {' or '.join(MODES)})")
    return mode


def of_graph(g) -> str:
    """The rounding mode a graph is compiled with."""
    return g.options.get("rounding", DEFAULT)


def set_graph(g, mode: str) -> None:
    """Record ``mode`` in the graph (the default is not recorded, so the text IR stays as it was)."""
    if check(mode) == DEFAULT:
        g.options.pop("rounding", None)
    else:
        g.options["rounding"] = mode


def active() -> str:
    """The rounding mode of the graph being compiled or run (the default outside of one)."""
    return _active.get()


@contextmanager
def using(mode: str):
    """Make ``mode`` the active rounding mode inside the ``with`` block."""
    token = _active.set(check(mode))
    try:
        yield
    finally:
        _active.reset(token)


def graph_scoped(fn):
    """Decorate a function whose first argument is a graph: it runs with that graph's rounding
    mode active."""

    @functools.wraps(fn)
    def wrapper(g, *args, **kwargs):
        with using(of_graph(g)):
            return fn(g, *args, **kwargs)

    return wrapper
