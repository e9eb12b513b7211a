"""A depthwise convolution whose output is smaller than its input (stride 2, valid padding), run
in place: the output is written from the start of the input's bytes, output pixel q (NHWC, one
image, as many channels as the input) over input pixel q, so each channel only ever overwrites
its own input channel. Whether that is safe depends on the geometry and on the order in which
the kernel reads its input; these are the checks, on a kernel's template parameters ``p``
(NCHW terms: H, W, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL)."""
from __future__ import annotations

import numpy as np


def first_reads(p: dict) -> np.ndarray:
    """Per output pixel in raster order, the lowest input pixel index (ih * W + iw) its window
    reads (beyond any input pixel when the whole window is padding)."""
    never = p["H"] * p["W"]

    def lowest(o, k, s, d, pad, n):  # per output coordinate, the first tap inside 0..n-1 (or n)
        i = np.arange(o)[:, None] * s + np.arange(k)[None, :] * d - pad
        i = np.where((i >= 0) & (i < n), i, n)
        return i.min(axis=1)

    ih = lowest(p["OH"], p["KH"], p["SH"], p["DH"], p["PT"], p["H"])
    iw = lowest(p["OW"], p["KW"], p["SW"], p["DW"], p["PL"], p["W"])
    first = ih[:, None] * p["W"] + iw[None, :]
    return np.where((ih[:, None] < p["H"]) & (iw[None, :] < p["W"]), first, never).reshape(-1)


def writes_behind_reads(p: dict) -> bool:
    """True when no output pixel overwrites an input pixel that a later output pixel still reads:
    every output pixel q reads its window before writing, and every pixel after q reads only
    input pixels after q. Then a kernel that walks the output pixels in order (all channels of a
    pixel before the next) needs no saved rows."""
    first = first_reads(p)
    later = np.minimum.accumulate(first[::-1])[::-1]  # the lowest pixel read from q on
    q = np.arange(len(first) - 1)
    return bool(np.all(later[1:] > q))


def saved_through(p: dict) -> np.ndarray:
    """Per output row oh, the last input row its writes overwrite (output pixels up to the end of
    row oh over the input pixels of the same index): the rows a kernel saves before writing it."""
    return ((np.arange(p["OH"]) + 1) * p["OW"] - 1) // p["W"]


def ring_rows(p: dict) -> int:
    """Input rows the portable kernels (templates/portable/_nhwc.j2) keep in scratch to write this
    smaller output over their input: none when the writes stay behind the reads; else, before each
    output row, the input rows it overwrites are saved (``saved_through``) and read from the ring
    from then on, which keeps the rows from the first one the output row reads to the last saved
    (pad_top + 1 when output rows are as wide as input rows at stride 1, as for a same-size output)."""
    if writes_behind_reads(p):
        return 0
    first = np.maximum(np.arange(p["OH"]) * p["SH"] - p["PT"], 0)
    return int(max(1, (saved_through(p) - first + 1).max()))


def ring_filled_ahead(p: dict) -> bool:
    """For the kernels that widen whole input rows into a ring before each output row (the DSP
    depthwise kernel, templates/dsp/s8/_dsp.j2 fill_ring): every input row that output rows up to
    oh overwrite has been widened before output row oh is written, so later rows read only input
    still intact."""
    oh = np.arange(p["OH"])
    filled = np.minimum(oh * p["SH"] - p["PT"] + (p["KH"] - 1) * p["DH"], p["H"] - 1)
    return bool(np.all(saved_through(p) <= filled))


def applies(p: dict) -> bool:
    """A depthwise layer (one input channel per output channel), one image, output smaller than
    the input."""
    return p["N"] == 1 and p["G"] == p["C"] == p["M"] and p["OH"] * p["OW"] < p["H"] * p["W"]
