"""Far pairs of bounded polytopes take the simplex cubature before the tail slices.

A pair whose mean is at least TAIL_DISTANCE whitened units from P has its moments replaced
(fastpath._cones.ConeTable._guarded). For a bounded P the cubature (positive terms, nothing
cancels) does it where its budget allows, at S = 2 in ~30 us and at S = 3 in a few ms,
where the (compiled) tail slices take ~0.1 ms and ~0.08 s. These tests check that both give the same
moments (two independent methods; measured within 2.3e-12 of the covariance's own size) and
that each pair goes where it should. The exact references far out are in
tests/test_far_tail_fast.py and tests/test_exact_far_tail.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastpath import _cones
from fastpath._cone_tail import TAIL_DISTANCE
from fastpath._polyhedron import polyhedron_geometry


def _bounded_table(rng: np.random.Generator, s: int, n: int):
    """n random bounded polytopes (s + 3 to s + 7 half-spaces about a random centre)."""
    geoms: list[Any] = []
    while len(geoms) < n:
        m = int(rng.integers(s + 3, s + 8))
        C = rng.normal(size=(m, s))
        C /= np.linalg.norm(C, axis=1, keepdims=True)
        centre = rng.normal(size=s)
        g = polyhedron_geometry(C, C @ centre + rng.uniform(0.1, 1.0, m))
        if g.empty or g.dim != s or len(g.rays):
            continue
        geoms.append(g)
    return _cones.ConeTable.from_geometries(geoms)


def _far_gaussians(rng, table, s: int, dist: tuple[float, float]):
    """One Gaussian per polytope whose mean is a whitened distance in ``dist`` from it."""
    n = table.n_poly
    F = 0.5 * rng.normal(size=(1, n, s, s))
    chol = np.linalg.cholesky(F @ np.swapaxes(F, -1, -2) + 0.2 * np.eye(s))
    centre = np.array([g.vertices.mean(axis=0) for g in table.bounded])
    # the whitened radius of each polytope about its centre: the mean that far plus ``dist``
    # out is at least ``dist`` from it
    Ui = np.linalg.inv(chol[0])
    radius = np.array([np.linalg.norm((g.vertices - c) @ Ui[j].T, axis=1).max()
                       for j, (g, c) in enumerate(zip(table.bounded, centre))])
    u = rng.normal(size=(n, s))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = radius[:, None] + rng.uniform(*dist, (n, 1))
    mean = (centre + r * (chol[0] @ u[..., None])[..., 0])[None]
    return np.ascontiguousarray(mean), chol


def _count_tail_slices(monkeypatch) -> list[int]:
    """The polytopes whose pairs take the tail slices from now on (appended per call)."""
    tails: list[int] = []
    real = _cones.ConeTable._tail_pairs

    def counted(self, j_idx, *args):
        tails.extend(int(j) for j in j_idx)
        return real(self, j_idx, *args)

    monkeypatch.setattr(_cones.ConeTable, "_tail_pairs", counted)
    return tails


def _cov_err(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per pair, the largest |eigenvalue| of C^{-1/2} (got - C) C^{-1/2}."""
    w, V = np.linalg.eigh(ref)
    Wm = V / np.sqrt(w)[..., None, :]
    D = np.swapaxes(Wm, -1, -2) @ (got - ref) @ Wm
    return np.abs(np.linalg.eigvalsh(D)).max(axis=-1)


@pytest.mark.parametrize("s, n", [(2, 40), (3, 12)])
def test_far_bounded_pairs_take_the_cubature(s, n, monkeypatch):
    """Means 8-40 whitened units out: the cubature answers most pairs, and agrees with the
    tail slices within 1e-10 (of sqrt(trace) for the mean, of the covariance itself for
    the covariance; measured on three seeds each at most 2.6e-13 and 2.3e-12)."""
    rng = np.random.default_rng(40 + s)
    table = _bounded_table(rng, s, n)
    mean, chol = _far_gaussians(rng, table, s, (TAIL_DISTANCE + 0.5, 40.0))
    xstar, inside = table._nearest_point(mean, chol)
    assert not inside.any() and np.all(np.linalg.norm(xstar, axis=-1) >= TAIL_DISTANCE)
    tails = _count_tail_slices(monkeypatch)
    _, dm, tc, _ = table.evaluate(mean, chol, True)
    # measured on three seeds each: 0-4 of 40 at S = 2, 3 of 12 at S = 3
    assert len(tails) <= n // 3
    monkeypatch.undo()
    by_cubature = np.setdiff1d(np.arange(n), tails)
    for j in by_cubature.tolist():
        dm_t, tc_t = table._tail_pair(j, mean[0, j], chol[0, j], xstar[0, j])
        sd = np.sqrt(np.trace(tc_t))
        assert np.abs(dm[0, j] - dm_t).max() <= 1e-10 * sd
        assert _cov_err(tc_t, tc[0, j]) <= 1e-10


def test_very_far_pairs_keep_the_tail_slices(monkeypatch):
    """At 1e4 whitened units the cubature's budget refuses every pair (its bisection would
    need ~(spread / 2)^s simplices): the tail slices answer, as before."""
    rng = np.random.default_rng(7)
    table = _bounded_table(rng, 2, 6)
    mean, chol = _far_gaussians(rng, table, 2, (1e4, 2e4))
    tails = _count_tail_slices(monkeypatch)
    _, dm, tc, _ = table.evaluate(mean, chol, True)
    assert sorted(tails) == list(range(6))
    assert np.all(np.linalg.eigvalsh(tc[0]) > 0)
