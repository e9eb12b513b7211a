"""int8 kernels for cores that multiply-accumulate several values per instruction: Arm's DSP
extension (SMLAD: two 16-bit products into an int32) and Helium (VMLADAVA: sixteen 8-bit products).

tinyc knows every weight at compile time, so these kernels read them in their own layout, made
here (the model's int8 array is then not emitted):

- ``dsp``: weights widened to int16 and packed two per int32 word. Within each group of four k the
  order is the one SXTB16 widens a loaded word in (bytes 0 and 2, then 1 and 3), so the gathered
  activations need no shuffling.
- ``mve``: int8 rows padded to a multiple of 16 (one vector load each).
- ``dsp``, form "int8" (``Kernel.form``; gemm, conv_ring, fc_wide): flash holds a byte per weight.
  Output channels in pairs (m, m + 1), per k one int16 v = w[m, k] + 256 w[m + 1, k], laid out as
  the int16 weights are (:func:`pair_rows`). Per word of two v: SMLAD with the activations sums
  S_m + 256 S_m+1 (mod 2^32), SMLAD with SXTB16 of the word (each v's low byte: w[m]) sums S_m, so
  S_m+1 is their difference >> 8, exact while |S_m+1| < 2^23 (checked per pair at compile time; a
  pair whose m + 1 could exceed it is stored the other way round, and a layer with a pair where
  neither fits takes the portable kernel). One SXTB16 serves both rows of the 2x2 product.

Kernels (DSP ones read one int32 stream per layer: per block of output channels the doubled
bias, the weights and the requantization constants, see :func:`stream`):

- ``s8/gemm.c.j2`` (Conv with one group and fully connected; DSP: where no ring kernel applies):
  the input values of two output pixels (rows) are gathered, im2col-style, into arena scratch, and
  two pixels x two output channels are accumulated at a time, so every load feeds two
  multiply-accumulates. DSP: rows widened to int16 with the input offset added (padding is then
  zero). Helium: rows stay int8 with padding at the input zero point, and the offset's share is a
  per-channel constant.
- ``s8/conv_ring.c.j2`` (DSP, channels a multiple of 4): input rows widened once into a small ring
  of padded int16 rows, so a kernel row's taps are one contiguous run: no im2col.
- ``s8/dwconv_wide.c.j2`` (depthwise, DSP): the same ring per block of channels; four channels per
  step with SMLABB/SMLATT, every tap unrolled. Form "int8": the weights stay int8 (a word of four
  channels per tap, widened in registers) and the ring holds the activations doubled instead.
- ``s8/fc_wide.c.j2`` (fully connected with one row, DSP): inputs widened in registers, four output
  channels per word, no scratch. Form "int8": the inputs widened once into scratch (an LDRD per
  four), or ``s8/fc_wide_direct.c.j2``, widened in registers, where that copy would take more
  arena than the layer's input and output rows together (2 x K > K + N).

Blocks of output channels whose weights are all zero (pruned) run no multiply-accumulates and keep
no weights: their output is the requantized bias, a constant of the requantization table.

Requantization uses the fast form (tinyc.quant.requant.Requant.fast_form) where its preconditions
hold (checked at compile time) and the reference helper otherwise; both give the integers of
tinyc.quant.fixedpoint. The builders read the node's requantization as ``p["requant"]``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import FIXEDPOINT, Kernel, dw_inplace, offset_term

REQUANT_FAST = ("s8/requant_fast.c.j2",)
LDRD = ("s8/ldrd.c.j2",)
WEIGHTS8 = ("s8/weights8.c.j2",)
# the most arena a depthwise kernel's ring of widened rows may take (it sets the channel block)
RING_BYTES = 1024
# the int8 form recovers a pair's second channel from the top 24 bits of an int32 (dsp_stream)
PAIR_BOUND = 2**23
# output channels per row of the matrix the kernels' weight layout is made of, by form
CHANNELS_PER_ROW = {"wide": 1, "int8": 2}


def dot_variant(variants: tuple[str, ...]) -> str | None:
    """The first of the target's variants with dot-product kernels ("mve" or "dsp")."""
    return next((v for v in variants if v in ("mve", "dsp")), None)


def acc_bound(w2d: np.ndarray, bias: np.ndarray | None, x_range: int = 255) -> int:
    """max |accumulator| over channels: |bias| + x_range * sum |w| (x_range bounds |x - zp|)."""
    w = np.abs(np.asarray(w2d, np.int64)).reshape(w2d.shape[0], -1).sum(axis=1) * x_range
    if bias is not None:
        w = w + np.abs(np.asarray(bias, np.int64).reshape(-1))
    return int(w.max()) if w.size else 0


def dead_outputs(p: dict, w2d: np.ndarray, bias: np.ndarray | None) -> dict[int, int]:
    """Output channels whose weights are all zero: their (constant) int8 output, the reference
    requantization of the bias."""
    dead = [c for c in range(w2d.shape[0]) if not np.any(w2d[c])]
    if not dead:
        return {}
    b = np.zeros(w2d.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    out = p["requant"].apply(b, 0)
    return {c: int(out[c]) for c in dead}


def live_bias(w2d: np.ndarray, bias: np.ndarray | None) -> np.ndarray | None:
    """The bias with the channels of all-zero weights set to 0 (their output is a constant that
    the requantization table gives; a pruned channel's bias can be huge in int32 units)."""
    if bias is None:
        return None
    b = np.array(bias, np.int64).reshape(-1)
    b[[c for c in range(w2d.shape[0]) if not np.any(w2d[c])]] = 0
    return b


def pack16(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Two int16 values per int32 word (lo in the low half), as SMLAD reads them."""
    lo = np.asarray(lo, np.int64) & 0xFFFF
    hi = np.asarray(hi, np.int64) & 0xFFFF
    return ((hi << 16) | lo).astype(np.uint32).view(np.int32)


def _interleave4(rows: np.ndarray) -> np.ndarray:
    """Every group of four columns as SXTB16 widens a word: (k0, k2) then (k1, k3)."""
    g = rows.reshape(rows.shape[0], -1, 4)
    return np.stack([pack16(g[:, :, 0], g[:, :, 2]), pack16(g[:, :, 1], g[:, :, 3])], axis=-1)


def _natural4(rows: np.ndarray) -> np.ndarray:
    g = rows.reshape(rows.shape[0], -1, 4)
    return np.stack([pack16(g[:, :, 0], g[:, :, 1]), pack16(g[:, :, 2], g[:, :, 3])], axis=-1)


def gemm_geometry(K: int, run: int, pointwise: bool) -> dict:
    """How the gather writes a row of K values made of runs of ``run`` contiguous input bytes (the
    channels of one tap; the whole row for 1x1 and fully connected): words (four values, widened
    in SXTB16 order) when every run starts on a multiple of four, else one value at a time."""
    wide = (run // 4) * 4 if (pointwise or run % 4 == 0) else 0
    return dict(K=K, KP=-(-K // 4) * 4, run=run, wide=wide)


def dsp_gemm_weights(w2d: np.ndarray, geo: dict, block: int = 2) -> np.ndarray:
    """int8 (M, K) -> int32 words: per block of output channels (two, or four), per group of four
    k, each channel's two words in turn (M is padded with zero channels to a whole block)."""
    m, k = w2d.shape
    mp, kp = -(-m // block) * block, geo["KP"]
    w = np.zeros((mp, kp), np.int64)
    w[:m, :k] = w2d
    if geo["wide"]:
        # words where the gather widens whole words, natural pairs in each run's tail
        run, wide = geo["run"], geo["wide"]
        words = np.empty((mp, kp // 4, 2), np.int32)
        for g in range(kp // 4):
            k0 = 4 * g
            interleaved = (k0 % run) + 4 <= wide  # inside the part of a run gathered as words
            cols = w[:, k0:k0 + 4]
            words[:, g] = (_interleave4(cols) if interleaved else _natural4(cols))[:, 0]
    else:
        words = _natural4(w)
    # (blocks, groups, channel of the block, word)
    return words.reshape(mp // block, block, kp // 4, 2).transpose(0, 2, 1, 3).reshape(-1).astype(np.int32)


def stream(words: np.ndarray, start: np.ndarray, rq: dict, skip_zero: bool = True
           ) -> tuple[np.ndarray, list[int] | None]:
    """One int32 stream the DSP kernels walk with a single pointer: per block of output channels
    (rows of ``words``), the accumulators' initial values, the weights, then (per channel) the
    requantization's multiplier, rounding and shift. Pruning-aware: a block whose weights are all
    zero keeps only its bias and constants (its outputs are requantized biases) and the second
    value lists which blocks have weights (None when all do)."""
    n = words.shape[0]
    words = np.asarray(words, np.int64).reshape(n, -1)
    start = np.asarray(start, np.int64).reshape(n, -1)
    table = np.zeros((n, 3 * start.shape[1] if rq["per_channel"] else 0), np.int64)
    if rq["per_channel"]:
        table.reshape(-1)[:len(rq["rq_table"])] = rq["rq_table"]
    live = [int(np.any(words[b]) or not skip_zero) for b in range(n)]
    parts = [np.concatenate([start[b], words[b] if live[b] else words[b, :0], table[b]]) for b in range(n)]
    return np.concatenate(parts).astype(np.int32), (None if all(live) else live)


def pair_rows(w2d: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[int] | None] | None:
    """The int8 form's pairs of output channels (m, m + 1) (M padded to even with a zero channel):
    per pair and k the int16 v = w[lo, k] + 256 w[hi, k] (two bytes for two weights), the pair's
    two accumulators' initial values, bias[lo] (it sums x * SXTB16(v) = x * w[lo]) and bias[lo] +
    256 bias[hi] mod 2^32 (it sums x * v = S_lo + 256 S_hi, wrapping), and which pairs are
    swapped (None: none). The kernel takes acc_hi = (second - first) >> 8, exact while |acc_hi| <
    2^23 (PAIR_BOUND; |bias| + 255 sum |w| bounds it): hi is m + 1 unless only m is within the
    bound (swapped: lo = m + 1); None when neither is."""
    n = w2d.shape[0]
    w = np.zeros((n + n % 2, w2d.shape[1]), np.int64)
    w[:n] = w2d
    b = np.zeros(len(w), np.int64)
    if bias is not None:
        b[:n] = np.asarray(bias, np.int64).reshape(-1)
    fits = np.abs(b) + 255 * np.abs(w).sum(axis=1) < PAIR_BOUND
    if not np.all(fits[0::2] | fits[1::2]):
        return None
    swap = ~fits[1::2]
    lo, hi = np.where(swap, 1, 0) + np.arange(0, len(w), 2), np.where(swap, 0, 1) + np.arange(0, len(w), 2)
    start = np.stack([b[lo], (b[lo] + 256 * b[hi] + 2**31) % 2**32 - 2**31], axis=1)
    return w[lo] + 256 * w[hi], start, ([int(x) for x in swap] if swap.any() else None)


def dsp_stream(p: dict, w2d: np.ndarray, bias: np.ndarray | None, block: int, layout,
               skip_zero: bool = True, form: str = "wide") -> tuple[dict, dict] | None:
    """What every DSP kernel shares: the fast requantization (channels with all-zero weights as
    constants) and the stream of ``block`` output channels at a time, weights laid out by
    ``layout`` (int8 (M, K) doubled -> words; ``form`` "int8": the (M/2, K) matrix of
    :func:`pair_rows`). (template parameters, Kernel.weights), or None when the requantization's
    (or the pairs') preconditions fail."""
    consts = dead_outputs(p, w2d, bias)
    live = live_bias(w2d, bias)
    rq = p["requant"].fast_form(acc_bound(w2d, live), consts, channels=w2d.shape[0])
    if rq is None:
        return None
    n = w2d.shape[0]
    if form == "int8":
        pairs = pair_rows(w2d, live)
        if pairs is None:
            return None
        start = np.zeros((-(-n // block) * block // 2, 2), np.int64)
        start[:len(pairs[1])] = pairs[1]
        words = layout(pairs[0]).reshape(len(start) * 2 // block, -1)
        data, blocks = stream(words, start.reshape(-1, block), rq, skip_zero)
        weights = {1: data} if bias is None else {1: data, 2: None}
        # (the kernel's stores double both sums for the fast requantization; GW: words per group
        # of four k and pair of channels, 4 in the wide form)
        return dict(rq, doubled=True, form="int8", GW=2, off2=int(pack16(p["in_offset"], p["in_offset"])),
                    live=blocks, swap=pairs[2] and pairs[2] + [0] * (len(start) - len(pairs[2]))), weights
    start = np.zeros(-(-n // block) * block, np.int64)  # 2 x bias: the weights are doubled too
    if live is not None:
        start[:n] = 2 * live
    words = layout(2 * np.asarray(w2d, np.int64)).reshape(len(start) // block, -1)
    data, blocks = stream(words, start.reshape(-1, block), rq, skip_zero)
    weights = {1: data}
    if bias is not None:
        weights[2] = None  # in the stream
    return dict(rq, doubled=True, off2=int(pack16(p["in_offset"], p["in_offset"])), live=blocks), weights


def dsp_kernel(template: str, q: dict, weights: dict, scratch: int = 0, inplace: bool = False) -> Kernel:
    """``inplace``: the kernel's scratch (its ring or gathered rows) also lets it write the output
    over its input."""
    return Kernel(template, q, preamble=FIXEDPOINT + REQUANT_FAST + LDRD, includes=("string.h",), weights=weights,
                  scratch=scratch, inplace_scratch=scratch if inplace else None, form=q.get("form", "wide"))


def gemm_layout(geo: dict, block: int, form: str):
    """The weight layout of the kernels that take ``block`` output channels at a time (two, or
    four) in ``form``: :func:`dsp_gemm_weights` of the matrix :func:`dsp_stream` hands it."""
    return lambda w: dsp_gemm_weights(w, geo, block=block // CHANNELS_PER_ROW[form])


def ring_geometry(p: dict) -> tuple[int, int]:
    """(padded row width, ring rows) of the kernels that widen input rows once into a ring."""
    right = max(0, (p["OW"] - 1) * p["SW"] + (p["KW"] - 1) * p["DW"] + 1 - p["PL"] - p["W"])
    return p["PL"] + p["W"] + right, (p["KH"] - 1) * p["DH"] + 1


def gemm_kernel(kind: str, p: dict, w2d: np.ndarray, bias: np.ndarray | None, geo: dict, rows: dict,
                form: str = "wide") -> Kernel | None:
    """The int8 matrix-product kernel (``kind`` "dsp" or "mve") for out[q, m] = requant(bias[m] +
    sum_k (a[q, k] - zp) * w[m, k]) where ``rows`` describes how row q is gathered (template
    parameters of the gather); ``p`` holds the requantization and clamp parameters. None when a
    precondition fails (the caller then uses its portable kernel). It may run in place when each
    row is gathered whole before its outputs are written (``gather`` "row"); ``gather`` "direct"
    (Helium, one row): the row is read where it is, the tail of a row under a predicate, no scratch.
    ``form``: how the DSP kernel stores the weights ("wide" int16, "int8"; Helium's are int8)."""
    m = w2d.shape[0]
    scratch = 0 if rows["gather"] == "direct" else gemm_scratch(kind, geo["K"], rows["P"])
    inplace = rows["gather"] == "row"
    if kind == "dsp":
        shared = dsp_stream(p, w2d, bias, 2, gemm_layout(geo, 2, form), form=form)
        if shared is None:
            return None
        return dataclasses.replace(dsp_kernel("s8/gemm.c.j2", dict(p, **geo, **rows, M=m, **shared[0]), shared[1], scratch,
                                              inplace), weight_passes=-(-rows["P"] // 2))  # once per pair of rows
    kp = -(-geo["K"] // 16) * 16
    k = mve_kernel("s8/gemm.c.j2", dict(p, **dict(geo, KP=kp), **rows, M=m), w2d, bias,
                   mve_rows(w2d, kp).reshape(-1), scratch, inplace)
    return None if k is None else dataclasses.replace(k, weight_passes=-(-rows["P"] // 2))


def mve_rows(w2d: np.ndarray, kp: int) -> np.ndarray:
    """int8 weight rows padded with zeros to ``kp`` and to an even count of channels."""
    m = w2d.shape[0]
    wp = np.zeros((m + m % 2, kp), np.int8)
    wp[:m, :w2d.shape[1]] = w2d
    return wp


def mve_kernel(template: str, q: dict, w2d: np.ndarray, bias: np.ndarray | None, laid_out: np.ndarray,
               scratch: int, inplace: bool) -> Kernel | None:
    """What the Helium kernels share: the weights ``laid_out`` (int8, made from ``w2d``), each
    accumulator's initial value bias + the input offset's share (the table ``start``: the kernels
    multiply raw int8 inputs, padding at the input zero point) and the fast requantization where it
    applies. None when a constant leaves int32."""
    m = w2d.shape[0]
    term = offset_term(q["in_offset"], w2d)
    if term is None:
        return None
    start = np.zeros(m + m % 2, np.int64)  # each accumulator's initial value: bias + offset term
    if bias is not None:
        start[:m] = np.asarray(bias, np.int64).reshape(-1)
    start[:m] += np.asarray(term, np.int64)
    if np.abs(start).max() >= 2**31:
        return None
    weights = {1: laid_out}
    if bias is not None:
        weights[2] = None  # in the kernel's table of initial values
    q = dict(q, start=start.tolist())
    rq = q["requant"].fast_form(acc_bound(w2d, bias))
    if rq:
        q.update(rq)
    return Kernel(template, q, preamble=FIXEDPOINT + (REQUANT_FAST if rq else ()), includes=("string.h",),
                  weights=weights, scratch=scratch, inplace_scratch=scratch if inplace else None, form="int8")


def gemm_scratch(kind: str, K: int, P: int) -> int:
    """The gathered rows (two, or one when the product has one): int16 for the DSP kernel, int8
    padded to 16 for Helium."""
    rows = 2 if P > 1 else 1
    return rows * 2 * (-(-K // 4) * 4) if kind == "dsp" else rows * (-(-K // 16) * 16)


def dwconv_weights(w2d: np.ndarray, form: str = "wide") -> np.ndarray:
    """Depthwise (C, taps) -> per group of four channels, per tap, two words of int16: channels
    (0, 2) then (1, 3), as SXTB16 widens a loaded word of four channels; ``form`` "int8": one
    word, the four channels' int8 values in order (SXTB16 of it and of it rotated by 8 bits
    give the same pairs in registers)."""
    c, t = w2d.shape
    w = np.zeros((-(-c // 4) * 4, t), np.int64)
    w[:c] = w2d
    g = w.reshape(-1, 4, t)
    if form == "int8":
        b = g & 0xFF
        return (b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16 | b[:, 3] << 24).astype(np.uint32).view(np.int32).reshape(-1)
    return np.stack([pack16(g[:, 0], g[:, 2]), pack16(g[:, 1], g[:, 3])], axis=-1).reshape(-1).astype(np.int32)


def dwconv_kernel(p: dict, w2d: np.ndarray, bias: np.ndarray | None, form: str = "wide") -> Kernel | None:
    """Depthwise int8 convolution for cores with the DSP extension (``s8/dwconv_wide.c.j2``), or
    None when it does not apply (channels not a multiple of 4, the fast requantization's
    preconditions, offsets beyond LDRD's reach). ``form``: the weights widened to int16 and
    doubled ("wide"), or kept int8 ("int8": the ring holds the activations doubled instead, so
    the accumulators are doubled all the same)."""
    c = p["M"]
    if c % 4 or p["N"] != 1:
        return None
    # input rows are widened once into a ring of int16 rows with the padding columns as zeros,
    # channels in blocks (depthwise channels are independent) so that the ring stays small
    wp, ring = ring_geometry(p)
    cb = max([b for b in range(4, c + 1, 4) if c % b == 0 and (ring + 1) * wp * b * 2 <= RING_BYTES] or [4])
    if (p["KW"] - 1) * p["DW"] * cb * 2 > 1020:  # LDRD's immediate offsets
        return None
    # (the kernel finds each block of four channels at a fixed stride: no block is skipped)
    # (dsp_stream hands the layout the weights doubled: the int8 form halves them back)
    layout = dwconv_weights if form == "wide" else lambda w: dwconv_weights(w // 2, form)
    shared = dsp_stream(p, w2d, bias, 4, layout, skip_zero=False)
    if shared is None:
        return None
    k = dsp_kernel("s8/dwconv_wide.c.j2", dict(p, **shared[0], WP=wp, RING=ring, CB=cb, form=form), shared[1],
                   (ring + 1) * wp * cb * 2, inplace=True)  # and a row of zeros
    if dw_inplace.applies(p) and dw_inplace.ring_filled_ahead(p):  # a smaller output over its input
        k = dataclasses.replace(k, inplace_smaller=k.scratch)
    return k if form == "wide" else dataclasses.replace(k, form=form, preamble=k.preamble + WEIGHTS8)


def conv_ring_kernel(p: dict, w2d: np.ndarray, bias: np.ndarray | None, form: str = "wide") -> Kernel | None:
    """Convolution (one group, channels a multiple of 4, no horizontal dilation) for cores with the
    DSP extension without im2col (``s8/conv_ring.c.j2``): input rows widened once into a ring, the
    taps of a kernel row read as one contiguous run. None when it does not apply."""
    if p["C"] % 4 or p["DW"] != 1 or p["N"] != 1:
        return None
    geo = gemm_geometry(w2d.shape[1], p["C"], pointwise=False)
    shared = dsp_stream(p, w2d, bias, 2, gemm_layout(geo, 2, form), form=form)
    if shared is None:
        return None
    wp, ring = ring_geometry(p)
    k = dsp_kernel("s8/conv_ring.c.j2", dict(p, **shared[0], WP=wp, RING=ring), shared[1], ring * wp * p["C"] * 2,
                   inplace=True)
    return dataclasses.replace(k, weight_passes=p["OH"] * -(-p["OW"] // 2))  # once per pair of output pixels


def mve_ring_kernel(p: dict, w2d: np.ndarray, bias: np.ndarray | None) -> Kernel | None:
    """Convolution (one group, no horizontal dilation) for Helium without im2col
    (``s8/conv_ring.c.j2`` of templates/mve/): int8 input rows copied once into a ring of rows
    padded at the input zero point, plus one row at the zero point for kernel rows outside the
    input, so a kernel row's taps are one contiguous run of KW x C bytes (a tail shorter than 16
    read under a predicate). Weights per pair of output channels, per kernel row, per 16 bytes of
    the run (padded with zeros): the two channels' vectors in turn, so one pointer walks them. In
    place like the DSP ring. None when it does not apply or costs more than the gather."""
    if p["DW"] != 1 or p["N"] != 1:
        return None
    run = p["KW"] * p["C"]
    runp = -(-run // 16) * 16
    wp, ring = ring_geometry(p)
    scratch = (ring + 1) * wp * p["C"]
    # Taken when it lets the layer run in place (same shape, stride 1: the memory planner then
    # decides), else only when it costs no more than the gather: no more scratch, and at most twice
    # its vector steps (the gather pads a whole window to 16 once, the ring each kernel row)
    kp = -(-w2d.shape[1] // 16) * 16
    same_shape = (p["OH"], p["OW"], p["M"], p["SH"], p["SW"]) == (p["H"], p["W"], p["C"], 1, 1)
    if not same_shape and (scratch > gemm_scratch("mve", w2d.shape[1], p["OH"] * p["OW"]) or p["KH"] * runp > 2 * kp):
        return None
    m = w2d.shape[0]
    w = np.zeros((m + m % 2, p["KH"], runp), np.int8)
    w[:m, :, :run] = w2d.reshape(m, p["KH"], run)
    w = w.reshape(-1, 2, p["KH"], runp // 16, 16).transpose(0, 2, 3, 1, 4).reshape(-1)
    return mve_kernel("s8/conv_ring.c.j2", dict(p, M=w2d.shape[0], WP=wp, RING=ring, RUN=run, RUNP=runp), w2d, bias,
                      np.ascontiguousarray(w), scratch, inplace=True)


def fc_wide_kernel(p: dict, w2d: np.ndarray, bias: np.ndarray | None, rows: int, form: str = "wide") -> Kernel | None:
    """Fully connected for cores with the DSP extension when the product has one row per weight
    use (``s8/fc_wide.c.j2``): no scratch; each word of four inputs is widened in registers and
    feeds four output channels' SMLADs; weights widened, doubled and laid out at compile time."""
    n, k = w2d.shape
    geo = gemm_geometry(k, k, pointwise=True)
    geo["wide"] = geo["KP"]  # the last word is read zero-padded, so every group is in SXTB16 order
    shared = dsp_stream(p, w2d, bias, 4, gemm_layout(geo, 4, form), form=form)
    if shared is None:
        return None
    # (int8 form: each row's inputs widened once into scratch, as the weights' SXTB16 is a step more,
    # unless that copy would take more arena than the layer's input and output rows together: then
    # widened in registers as in the wide form)
    xscratch = form == "int8" and 2 * geo["KP"] <= k + n
    q = dict(p, **shared[0], **geo, N=n, P=rows, **({"xscratch": xscratch} if form == "int8" else {}))
    template = "s8/fc_wide_direct.c.j2" if form == "int8" and not xscratch else "s8/fc_wide.c.j2"
    return dsp_kernel(template, q, shared[1], 2 * geo["KP"] if xscratch else 0)
