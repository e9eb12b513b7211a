"""TFLite fixed-point arithmetic: known values, and the C helpers equal to the numpy ones."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tinyc.codegen.emit import template_env
from tinyc.quant import fixedpoint as fp

from .conftest import need_tools


def test_quantize_multiplier_known_values_and_edges():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(0.5) == (1 << 30, 0)
    assert fp.quantize_multiplier(1.0) == (1 << 30, 1)
    assert fp.quantize_multiplier(0.75) == (3 << 29, 0)
    # q rounds up to 2^31: halve it and bump the shift
    assert fp.quantize_multiplier(1.0 - 2.0 ** -34) == (1 << 30, 1)
    # too small for a shift of -31: zero
    assert fp.quantize_multiplier(2.0 ** -40) == (0, 0)
    for m in np.random.default_rng(0).uniform(1e-6, 4.0, 200):
        q, s = fp.quantize_multiplier(float(m))
        assert (1 << 30) <= q < (1 << 31)
        assert abs(q * 2.0 ** (s - 31) - m) <= m * 2.0 ** -30


def test_rounding_helpers_known_values():
    assert fp.srdhm(np.array([1 << 30]), np.array([1 << 30]))[0] == 1 << 29
    assert fp.srdhm(np.array([fp.INT32_MIN]), np.array([fp.INT32_MIN]))[0] == fp.INT32_MAX
    # ties away from zero
    np.testing.assert_array_equal(fp.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1), [3, -3, 3, -3, 4, -4])
    np.testing.assert_array_equal(fp.rounding_divide_by_pot(np.array([3, -3, 2, -2]), 2), [1, -1, 1, -1])


def test_activation_range_follows_tflite():
    assert fp.activation_range(0.1, -128, 0.0, None) == (-128, 127)  # Relu at the zero point
    assert fp.activation_range(0.05, -10, 0.0, 6.0) == (-10, 110)  # Relu6: -10 + round(120)
    assert fp.activation_range(0.05, 100, 0.0, 6.0) == (100, 127)


def test_softmax_matches_float_softmax_closely():
    rng = np.random.default_rng(1)
    scale = 0.1
    x = rng.integers(-128, 128, size=(50, 12)).astype(np.int8)
    m, shift, diff_min = fp.softmax_params(scale)
    y = fp.softmax_s8(x, m, shift, diff_min).astype(np.int64)
    xf = x.astype(np.float64)
    f = np.exp(scale * (xf - xf.max(axis=1, keepdims=True)))
    want = np.clip(np.round(f / f.sum(axis=1, keepdims=True) * 256) - 128, -128, 127)
    assert np.abs(y - want).max() <= 1


HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
{helpers}
static const int32_t A[{n}] = {{ {a} }};
static const int32_t B[{n}] = {{ {b} }};
static const int32_t E[{n}] = {{ {e} }};
static const int32_t M[{n}] = {{ {m} }};
static const int32_t NEG[{n}] = {{ {neg} }};
static const int32_t POS[{n}] = {{ {pos} }};
int main(void)
{{
    for (int i = 0; i < {n}; ++i) {{
        int bits = 0;
        const int32_t r = tinyc_get_reciprocal(POS[i], 12, &bits);
        printf("%ld %ld %ld %ld %ld %d\n", (long)tinyc_srdhm(A[i], B[i]), (long)tinyc_rdbpot(A[i], E[i]),
               (long)tinyc_mbqm(A[i] >> 12, M[i], E[i] - 25),
               (long)tinyc_exp_on_negative_values(NEG[i]), (long)r, bits);
    }}
    return 0;
}}
"""


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_c_helpers_equal_numpy(tmp_path, rounding):
    need_tools("gcc")
    rng = np.random.default_rng(2)
    n = 3000
    edges = np.array([0, 1, -1, fp.INT32_MIN, fp.INT32_MAX, 1 << 30, -(1 << 30)], np.int64)
    # exact ties of srdhm (a * b an odd multiple of 2^30), both signs
    ties_a = np.array([1 << 30, -(1 << 30), 3, -3, 1 << 15, -(1 << 15), 5 << 20, -(5 << 20)], np.int64)
    ties_b = np.array([1, 1, 1 << 30, 1 << 30, -(1 << 15), 1 << 15, 1 << 10, 3 << 10], np.int64)
    k = n - len(edges) - len(ties_a)
    a = np.concatenate([edges, ties_a, rng.integers(fp.INT32_MIN, fp.INT32_MAX, k, endpoint=True)])
    b = np.concatenate([edges[::-1], ties_b, rng.integers(fp.INT32_MIN, fp.INT32_MAX, k, endpoint=True)])
    e = rng.integers(0, 31, n)
    neg = -rng.integers(0, 1 << 31, n)
    neg[:3] = [0, -1, fp.INT32_MIN]
    pos = rng.integers(1 << 19, 1 << 31, n)
    pos[:2] = [1 << 19, fp.INT32_MAX]
    m = rng.integers(0, 1 << 31, n)  # multipliers are non-negative Q31 values
    env = template_env()
    helpers = env.get_template("s8/fixedpoint.c.j2").render(single_rounding=rounding == "single")
    helpers += env.get_template("s8/softmax_helpers.c.j2").render()
    fmt = lambda v: ", ".join(f"(int32_t){int(x)}" if x != fp.INT32_MIN else "INT32_MIN" for x in v)
    src = HARNESS.format(helpers=helpers, n=n, a=fmt(a), b=fmt(b), e=fmt(e), m=fmt(m), neg=fmt(neg), pos=fmt(pos))
    (tmp_path / "h.c").write_text(src)
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "h.c", "-o", "h"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.array([[int(v) for v in line.split()] for line in
                    subprocess.run(["./h"], cwd=tmp_path, capture_output=True, text=True).stdout.splitlines()])
    np.testing.assert_array_equal(got[:, 0], fp.srdhm(a, b))
    np.testing.assert_array_equal(got[:, 1], fp.rounding_divide_by_pot(a, e))
    # x * 2^shift stays inside int32, as TFLite requires of its callers
    np.testing.assert_array_equal(got[:, 2], fp.multiply_by_quantized_multiplier(a >> 12, m, e - 25, rounding))
    np.testing.assert_array_equal(got[:, 3], fp.exp_on_negative_values(neg))
    recip, bits = fp.get_reciprocal(pos, 12)
    np.testing.assert_array_equal(got[:, 4], recip)
    np.testing.assert_array_equal(got[:, 5], bits)
