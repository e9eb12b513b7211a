"""Every C form of the int8 requantization against the numpy reference (Requant.apply), on the
values where they could part: the largest and smallest multipliers, shifts at the ends of their
ranges, exact ties (x.5 after the shift, both signs; ties of the first rounding too), saturation
at both clamps, accumulators next to +-2^30, channels mixed.

Forms: tinyc_requant_s8 (templates/portable/s8/fixedpoint.c.j2) in both rounding modes, on the
host; the fast form (templates/*/s8/requant_fast.c.j2, Requant.fast_form) in portable C on the
host and with SMMULR on an emulated Cortex-M4. Each runs as a small program through the
firmware's I/O layer (tinyc.emulator.runner). Also: fast_form refuses exactly when its
preconditions fail."""
from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest

from tinyc.codegen.emit import template_env
from tinyc.emulator.runner import build_program, run_program
from tinyc.quant.requant import Requant
from tinyc.quant.rounding import DOUBLE, SINGLE
from tinyc.targets import get_target

from .conftest import need_arm, need_tools

BIG = 1 << 30
MULTS = [1 << 30, (1 << 31) - 1, (1 << 30) + 1, 1518500250, 0]  # 0.5, ~1, just over 0.5, ~0.707 (Q31)
FAST_SHIFTS = [-1, -2, -16, -29, -30]  # right shifts 1..30 (31 never passes: its rounding constant is 2^30)
CLAMPS = [(-128, 127), (-5, 6), (127, 127), (-128, -128)]
CHUNK = 256  # records per read

HARNESS = """#include <stdint.h>
#include "tinyc_io.h"
{helpers}
/* input.bin: a record count, then records of six int32 (acc, three parameters, act_min, act_max);
 * output.bin: one int8 per record */
int main(void)
{{
    static int32_t r[{chunk} * 6];
    static int8_t y[{chunk}];
    uint32_t n;
    const int in = tinyc_io_open("input.bin", 0);
    const int out = tinyc_io_open("output.bin", 1);
    if (in < 0 || out < 0) {{
        return 10;
    }}
    if (tinyc_io_read(in, &n, sizeof n)) {{
        return 11;
    }}
    while (n > 0) {{
        const uint32_t k = n < {chunk} ? n : {chunk};
        if (tinyc_io_read(in, r, k * 6 * sizeof r[0])) {{
            return 12;
        }}
        for (uint32_t i = 0; i < k; i++) {{
            const int32_t *p = r + 6 * i;
            y[i] = {call};
        }}
        if (tinyc_io_write(out, y, k)) {{
            return 14;
        }}
        n -= k;
    }}
    tinyc_io_close(in);
    tinyc_io_close(out);
    return 0;
}}
"""

# the call of each form: p[0] accumulator, p[1..3] its parameters, p[4], p[5] the clamp
REFERENCE = "tinyc_requant_s8(p[0], p[1], (int)p[2], p[3], p[4], p[5])"  # multiplier, shift, zero point
FAST = "tinyc_rq_fast(p[0], p[1], p[2], (int)p[3], p[4], p[5])"  # multiplier, rounding, right shift


def run_form(template: str, call: str, target: str, records: np.ndarray, tmp_path, single: bool = False) -> np.ndarray:
    """Build the harness with ``template`` (found as the target's kernels find it) and run it on
    the (n, 6) int32 records; the n int8 results."""
    t = get_target(target)
    helpers = template_env(t.template_variants).get_template(template).render(single_rounding=single)
    src = HARNESS.format(helpers=helpers, chunk=CHUNK, call=call)
    program = build_program({"main.c": src}, t, tmp_path / target)
    packed = struct.pack("<I", len(records)) + np.ascontiguousarray(records, "<i4").tobytes()
    raw, _ = run_program(t, program, packed, timeout=300.0)
    return np.frombuffer(raw, np.int8)


def edge_accs(rq: Requant, limit: int) -> np.ndarray:
    """Accumulators (|acc| < limit) where each channel of ``rq`` is most likely to go wrong: 0, +-1,
    +-2, next to +-limit, exact ties of the final rounding (x.5 after the shift) and of srdhm
    (acc * m an odd multiple of 2^30), values around every output from beyond -128 to beyond
    127 (both clamps saturate), and random ones."""
    rng = np.random.default_rng(len(rq.mult) * 1000 + rq.zp)
    cols = []
    for m, s in zip(rq.mult, rq.shift):
        v = [0, 1, -1, 2, -2, 3, -3, 5, -5, limit - 1, 1 - limit, limit - 2, 2 - limit]
        if m:
            real = m * 2.0 ** (s - 31)  # output steps per accumulator unit
            for out in range(-140, 141, 7):
                a = int(round(out / real))
                v += [a, a + 1, a - 1]
                half = int(round((out + 0.5) / real))  # near the tie between two outputs
                v += [half + d for d in (-1, 0, 1)]
            if m == 1 << 30:  # acc * m * 2^(s-31) = acc / 2^(1-s): ties at odd multiples of 2^-s
                step = 1 << max(-s, 0)
                odd = (limit // step - 1) | 1  # the largest odd multiple of step below limit
                v += [k * step for k in [*range(-9, 10, 2), odd, -odd, odd - 2, 2 - odd]]
        v += rng.integers(1 - limit, limit, 64).tolist()
        v += rng.integers(-1000, 1000, 32).tolist()
        cols.append([x for x in v if abs(x) < limit])
    n = max(len(c) for c in cols)
    # every channel sees all of its values; shorter columns repeat
    return np.array([[c[i % len(c)] for c in cols] for i in range(n)], np.int64)


def fast_requants() -> list[Requant]:
    """Requantizations the fast form accepts: every multiplier at every shift, several zero points
    and clamps, and per-channel mixes of them."""
    out = []
    for m, s, (lo, hi) in itertools.product(MULTS, FAST_SHIFTS, CLAMPS):
        for zp in (-128, -1, 0, 17, 127):
            out.append(Requant((m,), (s,), zp, lo, hi))
    pairs = list(itertools.product(MULTS, FAST_SHIFTS))
    for zp in (-1, 0, 3):
        out.append(Requant(tuple(m for m, _ in pairs), tuple(s for _, s in pairs), zp))
    return [rq for rq in out if rq.fast_refusal(BIG - 1) is None]


def reference_requants(rounding: str) -> list[Requant]:
    """tinyc_requant_s8's domain: shifts from -31 to TFLite's largest (30 with single rounding's
    cap; double rounding's left shifts up to 8, which TFLite keeps for small accumulators)."""
    shifts = [-31, -30, -16, -1, 0, 1, 8] + ([30] if rounding == SINGLE else [])
    out = []
    for m, s, (lo, hi) in itertools.product(MULTS, shifts, CLAMPS[:2]):
        for zp in (-128, 0, 127):
            out.append(Requant((m,), (s,), zp, lo, hi, rounding))
    pairs = list(itertools.product(MULTS, shifts))
    out.append(Requant(tuple(m for m, _ in pairs), tuple(s for _, s in pairs), -7, -128, 127, rounding))
    return out


def records(rq: Requant, accs: np.ndarray, params) -> np.ndarray:
    """(acc, p1, p2, p3, lo, hi) rows: params(c) gives channel c's three parameters."""
    rows = [(int(a), *params(c), rq.lo, rq.hi) for row in accs for c, a in enumerate(row)]
    return np.array(rows, np.int64)


def acc_limit(rq: Requant) -> int:
    """The accumulators TFLite allows a requantization, below 2^30 in any case: the scaled value
    plus the zero point must fit int32 (and with double rounding x * 2^shift, which then does)."""
    largest = max(m * 2.0 ** (s - 31) for m, s in zip(rq.mult, rq.shift))
    return max(2, min(BIG, int(2**30 / largest))) if largest else BIG


def reference_records(rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """Records for tinyc_requant_s8 and the int8 outputs the reference gives."""
    recs, want = [], []
    for rq in reference_requants(rounding):
        accs = edge_accs(rq, acc_limit(rq))
        m = np.broadcast_to(rq.mult, (accs.shape[1],))
        s = np.broadcast_to(rq.shift, (accs.shape[1],))
        recs.append(records(rq, accs, lambda c: (m[c], s[c], rq.zp)))
        want.append(rq.apply(accs, 1).reshape(-1))
    return np.concatenate(recs), np.concatenate(want)


def fast_records() -> tuple[np.ndarray, np.ndarray]:
    """Records for tinyc_rq_fast (from each Requant's fast form) and the reference's outputs;
    also channels given as constants (all-zero weights), whatever their accumulator."""
    recs, want = [], []
    for rq in fast_requants():
        accs = edge_accs(rq, BIG)
        f = rq.fast_form(BIG - 1)
        n = accs.shape[1]
        table = np.broadcast_to(np.array(f["rq_table"]).reshape(-1, 3), (n, 3))
        recs.append(records(rq, accs, lambda c: tuple(table[c])))
        want.append(rq.apply(accs, 1).reshape(-1))
    for zp, value, (lo, hi) in [(0, 127, (-128, 127)), (5, -128, (-128, 127)), (-3, 4, (-5, 6)), (0, 6, (-5, 6))]:
        rq = Requant((1 << 30, (1 << 31) - 1), (-3, -20), zp, lo, hi)
        f = rq.fast_form(BIG - 1, constants={1: value}, channels=2)
        accs = np.array([[a, 0] for a in (0, 1, -1, 1000, -1000, BIG - 1, 1 - BIG)], np.int64)
        recs.append(records(rq, accs, lambda c: tuple(f["rq_table"][3 * c:3 * c + 3])))
        want.append(np.stack([rq.apply(accs[:, :1], 1)[:, 0], np.full(len(accs), value)], 1).reshape(-1))
    return np.concatenate(recs), np.concatenate(want).astype(np.int8)


def check(got: np.ndarray, want: np.ndarray, recs: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(got != want)
    if bad.size:
        rows = "\n".join(f"  acc, params, clamp {recs[i].tolist()}: got {got[i]}, want {want[i]}" for i in bad[:10])
        pytest.fail(f"{what}: {bad.size} of {len(want)} outputs differ from the reference\n{rows}")


@pytest.mark.parametrize("rounding", [DOUBLE, SINGLE])
def test_reference_helper_equals_numpy(rounding, tmp_path):
    """tinyc_requant_s8 (the C mirror of fixedpoint.requantize) in both rounding modes."""
    need_tools("gcc")
    recs, want = reference_records(rounding)
    got = run_form("s8/fixedpoint.c.j2", REFERENCE, "host", recs, tmp_path, single=rounding == SINGLE)
    check(got, want, recs, f"tinyc_requant_s8, {rounding} rounding")


def test_portable_fast_form_equals_numpy(tmp_path):
    need_tools("gcc")
    recs, want = fast_records()
    got = run_form("s8/requant_fast.c.j2", FAST, "host", recs, tmp_path)
    check(got, want, recs, "tinyc_rq_fast, portable C")


def test_smmulr_fast_form_equals_numpy(tmp_path):
    """The DSP targets' form (SMMULR, SSAT) on an emulated Cortex-M4."""
    need_arm()
    recs, want = fast_records()
    got = run_form("s8/requant_fast.c.j2", FAST, "cortex-m4", recs, tmp_path)
    check(got, want, recs, "tinyc_rq_fast, SMMULR on cortex-m4")


def test_fast_form_uses_smmulr_on_dsp_targets():
    """(The Cortex-M4 run above is the SMMULR form, not the portable one.)"""
    src = template_env(get_target("cortex-m4").template_variants).get_template("s8/requant_fast.c.j2").render()
    assert "smmulr" in src


def preconditions_hold(rq: Requant, bound: int, constants: dict[int, int], channels: int) -> bool:
    """The fast form's preconditions, from its documentation: double rounding, |acc| < 2^30, every
    channel (other than the constant ones) a non-negative multiplier shifting right by 1..31 (a
    zero multiplier counts as shift 1) whose rounding constant 2^(r-1) + zp 2^r is below 2^30 in
    magnitude; a constant c's rounding constant 2c + 1 too."""
    if rq.rounding != DOUBLE or bound >= BIG:
        return False
    n = max(len(rq.mult), channels) if constants else len(rq.mult)
    for c in range(n):
        if c in constants:
            if abs(2 * constants[c] + 1) >= BIG:
                return False
            continue
        m, s = rq.mult[c % len(rq.mult)], rq.shift[c % len(rq.shift)]
        r = -s if m else 1
        if m < 0 or not 1 <= r <= 31 or abs(2 ** (r - 1) + rq.zp * 2 ** r) >= BIG:
            return False
    return True


def test_fast_form_refuses_exactly_when_its_preconditions_fail():
    cases = 0
    for m, s, zp, rounding, bound, constants in itertools.product(
            [0, 1, 1 << 30, (1 << 31) - 1, -1], [-33, -32, -31, -30, -29, -2, -1, 0, 1],
            [-128, -2, -1, 0, 1, 127], [DOUBLE, SINGLE], [0, BIG - 1, BIG], [{}, {1: 100}, {0: -128}]):
        for rq in (Requant((m,), (s,), zp, rounding=rounding),
                   Requant((m, 1 << 30), (s, -5), zp, rounding=rounding)):
            want = preconditions_hold(rq, bound, constants, 2)
            form = rq.fast_form(bound, constants, channels=2)
            assert (form is not None) == want, (rq, bound, constants, rq.fast_refusal(bound, constants, 2))
            assert (rq.fast_refusal(bound, constants, 2) is None) == want
            cases += 1
    assert cases > 1000
