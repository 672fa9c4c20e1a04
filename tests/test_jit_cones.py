"""The compiled S = 2 cone sum (fastpath/_jit_cones.py) against the numpy one (_cones.py).

Both implement the same formulas; they differ by rounding only: the numpy path forms the
whitened rows U^T L_q with ``matmul`` (BLAS, fused multiply-adds) and the kernel writes the
2 x 2 products out, so a row can differ by one ulp. The bivariate orthant kernel is the same
code in both (fastpath._jit_bvn), but an ulp of rho near -1 moves P by up to ~eps/(1+rho)
relatively (measured 5e-13 at rho = -0.9937). The tolerances below are stated against
those effects with their measured values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import switched

import fastpath
from fastpath import _cones
from fastpath._cone_tail import TAIL_DISTANCE
from fastpath._polyhedron import polyhedron_geometry
from fastpath.integrals import ConeBatch, PolyhedronCones
from verified_dgn import DGN

_EPS = float(np.finfo(float).eps)


def _partition_table():
    net = DGN.random((2, 8, 8, 2), activation="relu", seed=0, noise_var=0.05)
    P = fastpath.partition(net)
    cb = ConeBatch.from_partition(P)
    tables = [t for _, _, t in cb._groups if t is not None]
    assert len(tables) == 1 and tables[0].dim == 2
    return tables[0]


def _random_polygon_table(rng: np.random.Generator, n: int):
    """n random polygons (4-7 half-planes about a random centre; some unbounded: all
    normals in a half-circle)."""
    geoms: list[Any] = []
    while len(geoms) < n:
        m = int(rng.integers(3, 8))
        ang = rng.uniform(0, 2 * np.pi, m)
        if len(geoms) % 3 == 0:
            ang = rng.uniform(0, 0.9 * np.pi, m)            # unbounded
        C = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        centre = rng.normal(size=2) * 2
        d = C @ centre + rng.uniform(0.05, 2.0, m)
        g = polyhedron_geometry(C, d)
        if g.empty or g.dim != 2 or not g.n_pieces:
            continue
        geoms.append(g)
    return _cones.ConeTable.from_geometries(geoms)


def _gaussians(rng: np.random.Generator, N: int, n: int, scale: float, shared: bool):
    mean = rng.normal(size=(N, n, 2)) * scale
    base = np.array([[1.0, 0.0], [0.3, 0.7]])
    if shared:
        cov = np.broadcast_to(base @ base.T, (1, n, 2, 2))
    else:
        cov = base @ base.T + np.eye(2) * rng.uniform(0.01, 1.0, (N, n, 1, 1))
    return mean, np.linalg.cholesky(cov)


def _compare(t, mean, chol):
    a = t._evaluate_compiled(mean, chol, True)
    b = t._evaluate_numpy(mean, chol, True)
    xs, _, _ = t._nearest_points(mean, chol, np.linalg.inv(chol))
    dist = np.linalg.norm(xs, axis=-1)
    # the pairs whose cone sum is the answer: little cancellation in m0 (where it is large
    # the cubature recomputes them), not in the far tail (slices about the nearest point)
    use = (b[3] < 5.0) & (dist < TAIL_DISTANCE)
    assert use.sum() > 100
    amp = np.maximum(1.0, dist[use])
    # log m0: 1e-12 of max(1, |log m0|) (measured 3e-14: one P off by 5e-13 relatively)
    lm_a, lm_b = a[0][use], b[0][use]
    assert np.all(np.abs(lm_a - lm_b) <= 1e-12 * np.maximum(1.0, np.abs(lm_b)))
    assert np.all(np.abs(a[3][use] - b[3][use]) <= 1e-10)
    # E[y|P] - mean: -U g / m0, a sum of terms ~d sd each: 1e-10 sd d (measured 5e-12 sd)
    Sig = chol @ np.swapaxes(chol, -1, -2)
    Sig = np.broadcast_to(Sig, mean.shape[:2] + (2, 2))
    sd = np.sqrt(np.trace(Sig, axis1=-2, axis2=-1))[use]
    assert np.all(np.abs(a[1][use] - b[1][use]) <= 1e-10 * (sd * amp)[:, None])
    # Cov[y|P] = U C2 U^T - dm dm^T: terms ~|Sigma| d^2 (measured 5e-11 |Sigma|)
    nS = np.linalg.norm(Sig, axis=(-1, -2))[use]
    assert np.all(np.abs(a[2][use] - b[2][use]) <= 1e-9 * (nS * amp**2)[:, None, None])
    np.testing.assert_array_equal(a[2], np.swapaxes(a[2], -1, -2))
    # moments=False: the common scale is the largest log P only (not also the Tallis
    # terms), so log m0 rounds differently; the same tolerance against the numpy path
    c = t._evaluate_compiled(mean, chol, False)
    d = t._evaluate_numpy(mean, chol, False)
    assert c[1] is None and c[2] is None
    lm_d = d[0][use]
    assert np.all(np.abs(c[0][use] - lm_d) <= 1e-12 * np.maximum(1.0, np.abs(lm_d)))


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
@pytest.mark.parametrize("shared", [True, False])
def test_compiled_matches_numpy_on_partition(scale, shared):
    """Regions of a real partition (bounded and unbounded, some tiny), means near and far."""
    t = _partition_table()
    rng = np.random.default_rng(int(scale * 10) + shared)
    mean, chol = _gaussians(rng, 20, t.n_poly, scale, shared)
    _compare(t, mean, chol)


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_matches_numpy_on_random_polygons(seed):
    rng = np.random.default_rng(seed)
    t = _random_polygon_table(rng, 60)
    mean, chol = _gaussians(rng, 30, t.n_poly, 2.5, seed == 1)
    _compare(t, mean, chol)


def test_same_bits_for_one_and_two_threads():
    """Threads over blocks of pairs, each pair computed by one thread in a fixed order."""
    import numba

    t = _partition_table()
    rng = np.random.default_rng(5)
    mean, chol = _gaussians(rng, 40, t.n_poly, 3.0, False)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = t._evaluate_compiled(mean, chol, True)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = t._evaluate_compiled(mean, chol, True)
    finally:
        numba.set_num_threads(before)
    for u, v in zip(one, two):
        np.testing.assert_array_equal(u, v)


def test_shared_factor_same_bits_as_per_gaussian():
    """A factor shared by every Gaussian runs in tiles that reuse each polygon's whitened
    geometry (cached per thread); the same factor given once per Gaussian runs pair by pair
    and whitens every pair: the outputs must be the same bits, on one and two threads (N not
    a multiple of the tile)."""
    import numba

    t = _partition_table()
    rng = np.random.default_rng(17)
    mean, chol = _gaussians(rng, 45, t.n_poly, 3.0, True)
    per = np.ascontiguousarray(np.broadcast_to(chol, (45,) + chol.shape[1:]))
    before = numba.get_num_threads()
    try:
        for n_threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n_threads)
            for moments in (True, False):
                a = t._evaluate_compiled(mean, chol, moments)
                b = t._evaluate_compiled(mean, per, moments)
                for u, v in zip(a, b):
                    if u is None:
                        assert v is None
                    else:
                        np.testing.assert_array_equal(u, v)
    finally:
        numba.set_num_threads(before)


def test_far_moments_finite():
    """Means far outside (whitened distance ~50-600): the Tallis factors are scaled by the
    largest log P, and raised to their own logs where phi(h) is far above every P; the cone
    sum's moments stay finite wherever its log m0 is (the E-step's dense pass keeps them for
    pairs without weight)."""
    t = _partition_table()
    rng = np.random.default_rng(23)
    for scale in (60.0, 300.0):
        mean, chol = _gaussians(rng, 20, t.n_poly, scale, True)
        lm, dm, tc, _ = t._evaluate_compiled(mean, chol * 0.1, True)
        ok = np.isfinite(lm)
        assert ok.sum() > 100
        assert np.all(np.isfinite(dm[ok])) and np.all(np.isfinite(tc[ok]))


def test_public_results_match_numpy_path():
    """Through the guards (cubature of cancelling pairs, far-tail slices, generic-direction
    fallback): the public truncated moments with the kernel and with the numpy cone sum,
    including far tails (whitened distance up to ~60) and exact mass-0 regions."""
    rng = np.random.default_rng(11)
    polys = []
    for _ in range(12):
        ang = rng.uniform(0, 2 * np.pi, 5)
        C = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        polys.append(PolyhedronCones.from_halfspaces(C, C @ rng.normal(size=2) + 0.7))
    batch = ConeBatch(polys)
    mean = rng.normal(size=(25, len(polys), 2)) * np.array([1.0, 5.0, 30.0, 60.0, 0.2] * 5
                                                           )[:, None, None]
    cov = np.array([[0.8, 0.2], [0.2, 0.5]])
    cov = np.broadcast_to(cov, (len(polys), 2, 2))
    res = []
    for flag in (True, False):
        with switched(_cones.COMPILED, flag):
            res.append(batch.truncated_central_moments(mean, cov))
    (la, ma, ca), (lb, mb, cb) = res
    assert np.all(np.isfinite(la)) and np.all(np.isfinite(ca))
    np.testing.assert_allclose(la, lb, rtol=1e-12, atol=1e-12)
    scale = np.maximum(1.0, np.abs(mb).max(axis=-1))
    assert np.all(np.abs(ma - mb) <= 1e-10 * scale[..., None])
    assert np.all(np.abs(ca - cb) <= 1e-9 * scale[..., None, None] ** 2)
