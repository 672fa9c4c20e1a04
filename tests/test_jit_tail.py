"""The compiled tail slices (fastpath/_jit_tail.py, _jit_tail_slices.py) against numpy's (_cone_tail.py).

Both implement the same slices, windows, cuts and adaptive rule; they differ by rounding
and by the order of their sums. Far out the moments are sensitive to the rounding of the
inputs themselves: the facet offsets relative to the nearest point x* carry ~eps |x*|, which
moves the relative weight of two lower facets by ~eps d^2 (the notes of _cone_tail), and
the two implementations round those offsets differently. The tolerances are therefore
2e-13 + 2 eps d^2 for the mean (relative to sqrt(trace Cov), plus 8 ulps of E[z|P] - mean
itself, which is ~d sd while the truncated sd can be ~sd/d) and the covariance (relative
to itself); measured on 4 seeds x 4 kinds (S = 2, 3; bounded, unbounded; seeds 2 and 3
not among the tests) at d = 8-266: the mean within its 8 ulps, the covariance 1.0e-12 at
most (0.68 of the bound), log m0 1.2e-15. Accuracy
against mpmath is tested through the public path in tests/test_far_tail_fast.py and
tests/test_exact_far_tail.py, which now run these kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import switched
from scipy.special import erfcx

from fastpath import _cone_tail, _cones, _jit_tail, _jit_tail_slices
from fastpath._polyhedron import polyhedron_geometry
from fastpath._threads import threads

EPS = float(np.finfo(float).eps)


def _table(rng: np.random.Generator, s: int, n: int, bounded: bool):
    """n random polyhedra of dimension s; the unbounded ones open toward -e_1."""
    geoms = []
    while len(geoms) < n:
        m = int(rng.integers(s + 3, s + 8)) if bounded else int(rng.integers(s + 1, s + 6))
        C = rng.normal(size=(m, s))
        if not bounded:
            C[:, 0] = np.abs(C[:, 0]) + 0.3
        C /= np.linalg.norm(C, axis=1, keepdims=True)
        centre = rng.normal(size=s)
        g = polyhedron_geometry(C, C @ centre + rng.uniform(0.1, 1.0, m))
        if g.empty or g.dim != s or (len(g.rays) > 0) == bounded:
            continue
        geoms.append(g)
    return _cones.ConeTable.from_geometries(geoms)


def _far_pairs(rng, table, s: int, scales):
    """One Gaussian per polyhedron, means at the given scales; the pairs at least
    TAIL_DISTANCE whitened units out: (j, mean (K, s), chol (K, s, s), x* (K, s))."""
    n = table.n_poly
    F = 0.5 * rng.normal(size=(1, n, s, s))
    chol = np.linalg.cholesky(F @ np.swapaxes(F, -1, -2) + 0.2 * np.eye(s))
    mean = rng.normal(size=(1, n, s)) * rng.choice(scales, size=(1, n, 1))
    xstar, inside = table._nearest_point(mean, chol)
    far = ~inside[0] & (np.linalg.norm(xstar[0], axis=-1) >= _cone_tail.TAIL_DISTANCE)
    j = np.flatnonzero(far)
    return j, mean[0, j], chol[0, j], xstar[0, j]


def _cov_err(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest |eigenvalue| of C^{-1/2} (got - C) C^{-1/2}: the error relative to C itself."""
    w, V = np.linalg.eigh(ref)
    Wm = V / np.sqrt(w)
    return float(np.max(np.abs(np.linalg.eigvalsh(Wm.T @ (got - ref) @ Wm))))


def test_log_mills_ratio_against_erfcx():
    """log R(a) = log(sqrt(pi/2) erfcx(a / sqrt 2)): the series from 16 on, log Phi(-a)
    below it (absolute error ~eps a^2 / 2 there: a threshold only, 1e-13 allowed)."""
    a = np.concatenate([np.linspace(8.0, 16.0, 33), np.geomspace(16.0, 1e6, 60)])
    ref = 0.5 * math.log(0.5 * math.pi) + np.log(erfcx(a / math.sqrt(2.0)))
    got = np.array([_jit_tail_slices._log_mills(float(x)) for x in a])
    series = a >= 16.0
    assert np.all(np.abs(got - ref)[series] <= 4 * EPS * np.abs(ref[series]))
    assert np.all(np.abs(got - ref)[~series] <= 1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 8.0, 12.0, 15.9, 16.0, 40.0, 1e3, 1e5])
def test_tilted_moments_match_the_numpy_ones(alpha):
    """log J, E[s], Var[s] of exp(-alpha s - s^2/2) on [0, W], every branch (series,
    12 and 40 nodes), against the numpy function: 1e-14 relative (measured <= 4.4e-16)."""
    W = np.array([1e-3, 0.05, 0.4, 2.0, 30.0, np.inf])
    lj, es, vs = _cone_tail._tilted(np.full(W.size, alpha), W)
    fb = np.empty(40)
    for i, w in enumerate(W):
        a, b, c = _jit_tail_slices._tilted(alpha, float(w), fb)
        assert abs(a - lj[i]) <= 1e-14 * max(1.0, abs(lj[i]))
        assert abs(b - es[i]) <= 1e-14 * es[i]
        assert abs(c - vs[i]) <= 1e-14 * vs[i]
    assert _jit_tail_slices._tilted(alpha, 0.0, fb) == (-math.inf, 0.0, 0.0)


@pytest.mark.parametrize("s", [2, 3])
@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_tail_slices_match_the_numpy_ones(s, bounded, seed):
    rng = np.random.default_rng(100 * s + 10 * bounded + seed)
    table = _table(rng, s, 8 if s == 2 else 3, bounded)
    j, mean, chol, xstar = _far_pairs(rng, table, s, [15.0, 30.0, 60.0])
    assert j.size >= 2
    lm, dm, tc, err, ok = _jit_tail.tail_pairs(j, mean, chol, xstar, *table._table_arrays()[6:12])
    assert ok.all()
    for q, jj in enumerate(j.tolist()):
        fv = table.f_valid[jj]
        ref = _cone_tail.tail_moments(table.f_C[jj][fv], table.f_d[jj][fv], table.e_start[jj],
                                      table.e_dir[jj], table.e_len[jj], mean[q], chol[q],
                                      xstar[q])
        d = float(np.linalg.norm(xstar[q]))
        tol = 2e-13 + 2 * EPS * d * d
        assert abs(lm[q] - ref[0]) <= 1e-14 * abs(ref[0])
        assert np.linalg.norm(dm[q] - ref[1]) <= (tol * math.sqrt(np.trace(ref[2]))
                                                  + 8 * EPS * np.linalg.norm(ref[1]))
        assert _cov_err(ref[2], tc[q]) <= tol
        assert err[q] <= 1e-11  # the rule's own estimate, as the numpy one's (_TOL_OUTER)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(5)
    table = _table(rng, 2, 24, False)
    j, mean, chol, xstar = _far_pairs(rng, table, 2, [10.0, 30.0])
    out = []
    for n in (1, 2):
        with threads(n):
            out.append(_jit_tail.tail_pairs(j, mean, chol, xstar, *table._table_arrays()[6:12]))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_declined_pairs_take_the_numpy_slices(monkeypatch):
    """A pair the kernel cannot set up is reported not ok (here x* = 0: no frame); the
    table's batch method answers such pairs by the numpy slices and the others by the
    kernel, each as alone."""
    rng = np.random.default_rng(6)
    table = _table(rng, 2, 4, False)
    j, mean, chol, xstar = _far_pairs(rng, table, 2, [20.0])
    bad = xstar.copy()
    bad[0] = 0.0
    *_, ok = _jit_tail.tail_pairs(j, mean, chol, bad, *table._table_arrays()[6:12])
    assert not ok[0] and ok[1:].all()
    real_kernel = _jit_tail.tail_pairs

    def declining(*args):
        out = real_kernel(*args)
        out[4][0] = False
        return out

    calls: list[int] = []
    real = _cones.ConeTable._tail_pair

    def spy(self, jj, *args):
        calls.append(jj)
        return real(self, jj, *args)

    monkeypatch.setattr(_jit_tail, "tail_pairs", declining)
    monkeypatch.setattr(_cones.ConeTable, "_tail_pair", spy)
    dm, tc = table._tail_pairs(j, mean, chol, xstar)
    monkeypatch.undo()
    assert calls == [int(j[0])]
    dm0, tc0 = table._tail_pair(int(j[0]), mean[0], chol[0], xstar[0])
    assert np.array_equal(dm[0], dm0) and np.array_equal(tc[0], tc0)
    dm1, tc1 = table._tail_pairs(j[1:], mean[1:], chol[1:], xstar[1:])
    assert np.array_equal(dm[1:], dm1) and np.array_equal(tc[1:], tc1)


def test_public_path_uses_the_kernel_and_matches_numpy(monkeypatch):
    """ConeTable.evaluate on far pairs of unbounded regions: compiled against the numpy
    path (COMPILED off), same tolerances as above."""
    rng = np.random.default_rng(8)
    table = _table(rng, 2, 10, False)
    n = table.n_poly
    F = 0.5 * rng.normal(size=(1, n, 2, 2))
    chol = np.linalg.cholesky(F @ np.swapaxes(F, -1, -2) + 0.2 * np.eye(2))
    mean = rng.normal(size=(3, n, 2)) * np.array([12.0, 25.0, 50.0])[:, None, None]
    res = []
    for flag in (True, False):
        with switched(_cones.COMPILED, flag):
            res.append(table.evaluate(mean, chol, True))
    (la, ma, ca, _), (lb, mb, cb, _) = res
    xstar, inside = table._nearest_point(mean, chol)
    d = np.linalg.norm(xstar, axis=-1)
    far = ~inside & (d >= _cone_tail.TAIL_DISTANCE)
    assert far.sum() >= 10
    for a, jj in zip(*np.nonzero(far)):
        tol = 2e-13 + 2 * EPS * d[a, jj] ** 2
        assert np.linalg.norm(ma[a, jj] - mb[a, jj]) <= (
            tol * math.sqrt(np.trace(cb[a, jj])) + 8 * EPS * np.linalg.norm(mb[a, jj]))
        assert _cov_err(cb[a, jj], ca[a, jj]) <= tol
