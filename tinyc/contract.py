"""The input contract: data given for a model input must already have the input's element type
and shape. Nothing is cast between float and integer, transposed or reshaped behind the user's
back; a mismatch is an error that says what was given, what the model takes and what to do.

Accepted for an input of shape S: an array of shape S, or of S with unit dimensions dropped or
added (the same values in the same order, e.g. (49, 10) for (1, 49, 10, 1)), or N such arrays
stacked on a new first axis (N samples). Floats of any width fit a float input; integers fit an
integer input when every value is in its range."""
from __future__ import annotations

import numpy as np

from .errors import TinycError
from .ir import DTYPES, Graph, QuantParams

# channels-first and channels-last layout names by rank
_LAYOUTS = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}


def entry_quant(g: Graph, name: str) -> QuantParams | None:
    """The quantization a float input gets on entry to an int8 model (float I/O), if any."""
    for n in g.nodes:
        if n.op == "QuantizeLinear" and n.inputs[0] == name and g.tensors[n.outputs[0]].quant is not None:
            return g.tensors[n.outputs[0]].quant
    return None


def check_dtype(g: Graph, name: str, a: np.ndarray, where: str) -> np.ndarray:
    """``a`` converted to the input's dtype where that changes no value; else an error."""
    t = g.tensors[name]
    want = DTYPES[t.dtype]
    got = a.dtype
    if got == want:
        return a
    if want.kind == "f":
        if got.kind == "f":
            return a.astype(want)
        hint = " or compile with --io int8 to pass int8" if entry_quant(g, name) is not None else ""
        raise TinycError(f"{where}: {got.name} data for a {want.name} input; convert it to {want.name} "
                         f"yourself (tinyc does not cast or scale inputs){hint}")
    if got.kind == "f":
        if t.quant is not None and t.dtype in ("s8", "u8") and t.quant.axis is None:
            raise TinycError(f"{where}: {got.name} data for an {want.name} input (scale {float(t.quant.scale):.6g}, "
                             f"zero point {int(t.quant.zero_point)}); quantize it yourself, or use --io float to have "
                             "the model quantize float inputs")
        raise TinycError(f"{where}: {got.name} data for an {want.name} input; give {want.name} values")
    if got.kind in "iub" and want.kind in "iub":
        if want.kind == "b" or got.kind == "b":
            if got.kind != want.kind:
                raise TinycError(f"{where}: {got.name} data for a {want.name} input")
            return a
        info = np.iinfo(want)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < info.min or hi > info.max:
            raise TinycError(f"{where}: {got.name} data with values in [{lo}, {hi}] for an {want.name} input "
                             f"(range [{info.min}, {info.max}]); give {want.name} values")
        return a.astype(want)
    raise TinycError(f"{where}: {got.name} data for a {want.name} input")


def _strip(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def split_samples(g: Graph, name: str, a: np.ndarray, where: str) -> list[np.ndarray]:
    """The samples in ``a`` (one, or N stacked on a new first axis), each of the input's shape."""
    shape = g.tensors[name].shape
    if a.shape == shape or _strip(a.shape) == _strip(shape):
        return [a.reshape(shape)]
    if a.ndim >= 1 and a.shape[0] > 0 and _strip(a.shape[1:]) == _strip(shape):
        return [s.reshape(shape) for s in a]
    raise TinycError(f"{where}: {_shape_problem(a.shape, shape)}")


def _layout_problem(given: tuple[int, ...], shape: tuple[int, ...]) -> str | None:
    """A message when ``given`` (an array's shape) is ``shape`` in the other channel layout: as one
    sample (or N in the batch place), as N samples on a new first axis, or without the batch axis."""
    k = len(shape)
    if k not in _LAYOUTS:
        return None
    first, last = _LAYOUTS[k]
    to_first = (0, k - 1) + tuple(range(1, k - 1))  # a.transpose(to_first): channels-last -> first
    to_last = (0,) + tuple(range(2, k)) + (1,)
    # candidate sample shapes, and the axes of the array that their axes are
    candidates = [(given, tuple(range(k)))]
    if len(given) == k + 1:
        candidates.append((given[1:], tuple(range(1, k + 1))))
    if len(given) == k - 1:
        candidates.append(((1,) + given, (None,) + tuple(range(k - 1))))
    # the model's layout as its input suggests: fewer channels than positions (both when unclear)
    options = [(to_first, to_last, last, first), (to_last, to_first, first, last)]
    options = [o for o, keep in zip(options, (shape[1] <= shape[-1], shape[-1] <= shape[1])) if keep]
    for c, axes in candidates:
        if len(c) != k:
            continue
        for fix, undo, data_layout, model_layout in options:
            if c[1:] == tuple(shape[p] for p in undo[1:]) and _strip(c[1:]) != _strip(shape[1:]):
                order = tuple(a for a in [axes[f] for f in fix] if a is not None)
                if len(given) == k + 1:
                    order = (0,) + order
                return (f"array of shape {list(given)} is {data_layout} data, the model takes {model_layout} "
                        f"{list(shape)}; transpose it (numpy: a.transpose({order})); tinyc does not transpose inputs")
    return None


def _shape_problem(given: tuple[int, ...], shape: tuple[int, ...]) -> str:
    size = int(np.prod(shape))
    layout = _layout_problem(tuple(given), tuple(shape))
    if layout:
        return layout
    for c in (given, given[1:]):
        if len(c) and sorted(_strip(c)) == sorted(_strip(shape)):
            return (f"array of shape {list(given)} has the model's dimensions {list(shape)} in another order; "
                    "transpose it to the model's axis order (tinyc does not transpose inputs)")
    n = int(np.prod(given))
    if n == size or (len(given) and given[0] and n // given[0] == size and n % given[0] == 0):
        return (f"array of shape {list(given)} has the element count of the model's {list(shape)} but another "
                "shape; reshape it yourself if that is its layout (tinyc does not reshape inputs)")
    return f"array of shape {list(given)} does not fit the model's {list(shape)} (or N of them stacked on a new first axis)"


def conform(g: Graph, arrays: dict[str, np.ndarray], where: str) -> list[dict[str, np.ndarray]]:
    """Samples (one feed dict each) from one array per input, checked against the contract."""
    per_input = {}
    for name, a in arrays.items():
        at = f"{where}: input '{name}'"
        a = np.asarray(a)
        per_input[name] = split_samples(g, name, check_dtype(g, name, a, at), at)
    counts = {len(v) for v in per_input.values()}
    if len(counts) != 1:
        raise TinycError(f"{where}: inputs hold different numbers of samples "
                         f"({', '.join(f'{k}: {len(v)}' for k, v in per_input.items())})")
    n = counts.pop()
    return [{name: per_input[name][i] for name in g.inputs} for i in range(n)]
