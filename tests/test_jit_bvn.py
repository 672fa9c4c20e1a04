"""The compiled k = 2 kernel (fastpath/_jit_bvn.py) against the numpy kernel it replaces,
route by route, and against the conditioning integral where the numpy kernel takes Owen's
T form instead (the compiled kernel uses the tier rules there).

Both kernels are accurate to about 1e-13 relative in P (tests/test_orthant_fast_bvn.py
checks the compiled one, through ``_log_bvn``, against mpmath); they are compared here to
2e-13 in log P (relative in P), or relative to |log P| where |log P| > 1 (a log of -1e4
carries 1e-12 of rounding by itself). The numpy Plackett rules are the same formulas, so
the measured differences are ~1e-14.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastpath import _bvn
from fastpath._bvn_cond import _log_bvn_cond

jit_bvn = pytest.importorskip("fastpath._jit_bvn")

TOL = 2e-13


def _close(a, b):
    fin = np.isfinite(b)
    assert np.array_equal(np.isfinite(a), fin)
    assert np.array_equal(a[~fin], b[~fin])
    err = np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))
    return float(err.max()) if err.size else 0.0


def _band(qmin, qmax, n, seed):
    """Random finite (h, k, rho) with q = |h^2 - k^2| / 8 log-uniform in [qmin, qmax)."""
    rng = np.random.default_rng(seed)
    h = np.where(rng.random(n) < 0.3, rng.uniform(-40, 8, n), rng.uniform(-4, 4, n))
    q = np.exp(rng.uniform(math.log(qmin), math.log(qmax), n))
    k2 = h * h + np.where(rng.random(n) < 0.5, 8 * q, -8 * q)
    keep = k2 > 0
    h = h[keep]
    k = np.sign(rng.normal(size=h.size)) * np.sqrt(k2[keep])
    rho = np.tanh(rng.normal(size=h.size) * 1.5)
    near = rng.random(h.size) < 0.15  # correlations within 1e-12..1e-2 of +-1
    rho[near] = np.sign(rho[near]) * (1 - 10 ** rng.uniform(-12, -2, near.sum()))
    return h, k, rho


BANDS = [(0.6, 1e4), (_bvn._Q_FAST, _bvn._Q_24)] + [
    (t[0], (_bvn._Q_FAST if i == 0 else _bvn._Q_TIERS[i - 1][0])) for i, t in enumerate(_bvn._Q_TIERS)
] + [(1e-14, _bvn._Q_TIERS[-1][0])]


@pytest.mark.parametrize("band", range(len(BANDS)))
def test_compiled_against_numpy_by_route(band):
    qmin, qmax = BANDS[band]
    h, k, rho = _band(qmin, qmax, 20000, seed=100 + band)
    got = jit_bvn.log_bvn_vec(h, k, rho)
    ref = _bvn._log_bvn_numpy(h, k, rho)
    assert _close(got, ref) <= TOL


def test_compiled_against_conditioning_integral_on_owen_elements():
    # the elements the numpy kernel hands to Owen's T (q < 0.3, |h|, |k| < 3.3): the
    # compiled tier rules against the independent conditioning integral
    h, k, rho = _band(1e-7, _bvn._Q_FAST, 40000, seed=7)
    sel = (np.abs(h) < 3.3) & (np.abs(k) < 3.3)
    h, k, rho = h[sel], k[sel], rho[sel]
    assert _close(jit_bvn.log_bvn_vec(h, k, rho), _log_bvn_cond(h, k, rho)) <= TOL


def test_special_values():
    inf, nan = np.inf, np.nan
    h = np.array([nan, 0.0, -inf, inf, 1.0, inf, 0.3, 0.3, 2.0, -2.0])
    k = np.array([0.0, 0.0, 1.0, -0.5, inf, inf, -0.2, 0.1, -2.5, -1.0])
    rho = np.array([0.5, nan, 0.2, 0.3, -0.4, 0.0, 1.0, -1.0, 0.0, -1.0])
    got = jit_bvn.log_bvn_vec(h, k, rho)
    ref = _bvn._log_bvn_numpy(h, k, rho)
    assert np.isnan(got[0]) and np.isnan(got[1])
    assert _close(got[2:], ref[2:]) <= 1e-15


def test_thread_count_does_not_change_results():
    import numba

    h, k, rho = _band(1e-9, 1e3, 30000, seed=3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = jit_bvn.log_bvn_vec(h, k, rho)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = jit_bvn.log_bvn_vec(h, k, rho)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_dispatcher_shapes():
    got = _bvn._log_bvn(np.zeros((3, 1)), np.ones((1, 4)), 0.5)
    assert got.shape == (3, 4)
    assert np.all(got == jit_bvn.log_bvn(0.0, 1.0, 0.5))
