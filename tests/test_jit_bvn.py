"""The compiled k = 2 kernel (fastpath/_jit_bvn.py) against the numpy kernel it replaces,
route by route, and against mpmath in the far tail.

Both kernels are accurate to about 1e-13 relative in P (tests/test_orthant_fast_bvn.py
checks the compiled one, through ``_log_bvn``, against mpmath); they run the same rules
with the same nodes and formulas, so they are compared here to TOL = 2e-13 in log P
(relative in P), or relative to |log P| where |log P| > 1 (a log of -1e4 carries 1e-12 of
rounding by itself). Measured differences are ~1e-14: the compiled node loops use a
polynomial exp (within 2 ulp) and sum in four partial sums, and Owen's T is compiled
(:mod:`fastpath._jit_owens`, within a few ulp of scipy's where the route accepts it).
"""

from __future__ import annotations

import math

import mpmath
import numba
import numpy as np
import pytest
from orthant_inputs import random_bvn

from fastpath import _bvn
from fastpath._bvn_cond import _log_bvn_cond, _log_bvn_owen

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
    # the route is fixed by q as the kernels compute it (and, below _Q_FAST, by Owen's T
    # acceptance, tested below): keep the elements whose float q is in the band (k^2 =
    # h^2 +- 8q rounds by ~eps h^2, far above 8q = 1e-13 in the last band)
    q = np.abs(h - k) * np.abs(h + k) / 8
    keep = (q >= qmin) & (q < qmax)
    assert keep.sum() > 5000
    h, k, rho = h[keep], k[keep], rho[keep]
    got = jit_bvn.log_bvn_vec(h, k, rho)
    ref = _bvn._log_bvn_numpy(h, k, rho)
    assert _close(got, ref) <= TOL


@numba.njit
def _owen_vec(h, k, rho):
    out = np.empty(h.size)
    for i in range(h.size):
        out[i] = jit_bvn._owen(h[i], k[i], rho[i])
    return out


def test_owen_route_same_decisions_and_values():
    # q < 0.3 with |h|, |k| < 3.3 (where Owen's T form can be accepted): the compiled route
    # accepts exactly the elements the numpy one does, with the same log P to TOL, and
    # the whole kernel agrees with the independent conditioning integral there
    h, k, rho = _band(1e-7, _bvn._Q_FAST, 60000, seed=7)
    sel = (np.abs(h) < 3.3) & (np.abs(k) < 3.3)
    h, k, rho = h[sel], k[sel], rho[sel]
    ref, ok = _log_bvn_owen(h, k, rho)
    got = _owen_vec(h, k, rho)
    assert 0.3 < ok.mean() < 0.99  # both outcomes exercised
    np.testing.assert_array_equal(~np.isnan(got), ok)
    assert _close(got[ok], ref[ok]) <= TOL
    assert _close(jit_bvn.log_bvn_vec(h, k, rho), _log_bvn_cond(h, k, rho)) <= TOL


def test_compiled_against_numpy_random_all_magnitudes():
    h, k, rho = random_bvn(200000, seed=11, tiny_rho=True)
    q = np.abs(h - k) * np.abs(h + k) / 8
    assert (q < 1e-7).sum() > 1000 and (q < _bvn._Q_FAST).sum() > 20000
    assert _close(jit_bvn.log_bvn_vec(h, k, rho), _bvn._log_bvn_numpy(h, k, rho)) <= TOL


def test_far_tail_against_mpmath():
    # log P down to -1e4: 50 elements with h, k in [-141, -20] (rho of both signs, q from
    # ~1e-9 to ~1e3: Plackett, tier and conditioning routes), against mpmath's quadrature
    # of the conditioning integral (tests/test_orthant_fast_bvn.py's oracle) at 30 digits.
    # log P ~ -1e4 carries ~1e-12 of rounding in float64, hence relative to |log P|.
    from test_orthant_fast_bvn import mp_log_bvn

    rng = np.random.default_rng(21)
    n = 50
    h = -rng.uniform(20, 141, n)
    k = np.where(rng.random(n) < 0.4, h * (1 + 10 ** rng.uniform(-12, -2, n)),
                 -rng.uniform(20, 141, n))
    rho = np.where(rng.random(n) < 0.5, rng.uniform(-0.99, 0.99, n),
                   np.sign(rng.normal(size=n)) * (1 - 10 ** rng.uniform(-10, -2, n)))
    got = jit_bvn.log_bvn_vec(h, k, rho)
    with mpmath.workdps(30):
        ref = np.array([float(mp_log_bvn(h[i], k[i], rho[i])) for i in range(n)])
    assert ref.min() < -5000
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-13, (err.max(), int(err.argmax()))


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
