"""The k = 3 kernel's Plackett integral near its singular end (fastpath/_tvn_end.py, kind
PLACK_END of fastpath/_jit_adaptive.py): c < 0 with r_jk close to r_a, where the general rule
in u met a kink at the end of a short domain and refined it (400-1,800 integrand
evaluations).

Checked: the compiled rule against its numpy twin (same rule; tolerance 1e-13 (1 + |log P|)
as tests/test_jit_tvn.py) and both against verified_dgn's exact orthant probability at 20
digits, with the tolerance of tests/test_jit_tvn.py's far-tail test (1e-13 in P plus the
rounding of the inputs, about 4 eps cond(R) |log P|: these correlation matrices are nearly
singular, and log P moves by |log P| times the relative error of r_jk - r_a, which the
rounding of R sets); and the node counts (the rule must resolve these elements without the
refinement: the point of it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

from fastpath._jit_tvn import log_tvn_vec  # noqa: E402
from fastpath._tvn import _log_tvn_numpy, correlation_matrices  # noqa: E402

#: (h, (r01, r02, r12)) of the k = 3 elements of the S = 3 E-step (benchmarks/estep.py
#: s3d3: DGN.random((3, 6, 6, 3), relu, seed 0, noise 0.05, its first 100 points) on which
#: the general rule took more than 400 integrand evaluations, picked over log P bands
#: (a script recorded the inputs of fastpath._tvn._log_tvn_fast during that E-step)
_KINKED = [
    ([-0.025650268816126028, -0.2586005810191328, -0.020383090343653893],
     [-0.16112324120781885, -0.407837103126554, -0.014660730604689587]),
    ([1.1297159468348472, -1.1553565266632873, -0.9239259507053393],
     [-0.8914642077487975, -0.8638224382787695, 0.5849330062097516]),
    ([-0.3781589679629894, 0.4669177345161977, -0.3942669708001369],
     [-0.10313915284926795, -0.18195289333028655, -0.9335513622353293]),
    ([-0.7070468432854966, 2.202966545561026, -0.1259194390992982],
     [0.5580456383866075, -0.9640879676159716, -0.7551532896276111]),
    ([-0.03883026792097681, -0.052922414667681265, 0.05017521125810906],
     [-0.9587058674876833, -0.2476013670483388, -0.03807674265970584]),
    ([-0.1502559116308208, 0.0858983628974376, 0.004645241803123971],
     [-0.980661531683296, 0.2685474335237216, -0.4518181292158129]),
    ([0.8161437729965626, 1.2953396509098638, -1.585844231910313],
     [0.35572540009321135, -0.6269459908642238, -0.9509959225192127]),
    ([0.059898571820145484, 0.7808727007787403, -1.2281625420699238],
     [0.4679339161865512, -0.5872084031785731, -0.989866312439085]),
]


def _full(r: np.ndarray) -> np.ndarray:
    return correlation_matrices(r[:, 0], r[:, 1], r[:, 2])


def _near_end(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Elements with c = rho_{12.0} in -1 + 10^[-6, -0.5] (r_12 near r_a) and bounds that
    sweep the bulk and the tails (h_0 down to -25, h_1, h_2 in +-3 or +-12)."""
    rng = np.random.default_rng(seed)
    r01 = rng.uniform(-0.6, 0.6, n)
    r02 = rng.uniform(-0.6, 0.6, n)
    c = -1.0 + 10.0 ** rng.uniform(-6, -0.5, n)
    s1 = np.sqrt((1 - r01) * (1 + r01))
    s2 = np.sqrt((1 - r02) * (1 + r02))
    r = np.stack([r01, r02, r01 * r02 + c * s1 * s2], axis=1)
    scale = np.where(rng.random(n) < 0.5, 3.0, 12.0)
    h = rng.uniform(-1, 1, (n, 3)) * scale[:, None]
    tail = rng.random(n) < 0.3
    h[tail, 0] = -rng.uniform(3.0, 25.0, tail.sum())
    return h, r


def _exact(h: np.ndarray, r: np.ndarray) -> np.ndarray:
    from verified_dgn.orthant import log_orthant_probability

    R = _full(r)
    return np.array([float(log_orthant_probability(h[i], R[i], dps=20))
                     for i in range(h.shape[0])])


def _assert_vs_exact(out: np.ndarray, exact: np.ndarray, r: np.ndarray) -> None:
    cond = np.linalg.cond(_full(r))
    tol = 1e-13 + np.maximum(1e-14, 4 * np.finfo(float).eps * cond) * np.abs(exact)
    d = np.abs(out - exact)
    assert np.all(d <= tol), (d / tol).max()


def test_estep_kinked_elements_vs_exact_and_numpy() -> None:
    h = np.array([k[0] for k in _KINKED])
    r = np.array([k[1] for k in _KINKED])
    out, ev = log_tvn_vec(h, r, stats=True)
    twin = _log_tvn_numpy(h, _full(r))
    np.testing.assert_allclose(out, twin, rtol=0, atol=1e-13 * (1 + np.abs(twin).max()))
    _assert_vs_exact(out, _exact(h, r), r)
    # each took 440-1,760 evaluations with the general rule, now one to four windows; the
    # fourth has num(r_a) > 0 (Phi(u_i) -> 1 at r_a) and keeps the general rule (680)
    assert np.delete(ev, 3).max() <= 160, ev


def test_near_end_match_numpy_twin() -> None:
    h, r = _near_end(4000, 11)
    out, ev = log_tvn_vec(h, r, stats=True)
    twin = _log_tvn_numpy(h, _full(r))
    assert np.isfinite(out).all()
    d = np.abs(out - twin)
    assert np.all(d <= 1e-13 * (1 + np.abs(twin))), d.max()
    # fewer evaluations than the general rule alone: measured mean 236 against 340 for the
    # general rule on these inputs (the kernel before PLACK_END, same seed); the elements
    # whose conditioning variable has c >= 0 keep the general rule
    assert ev.mean() <= 280, ev.mean()


def test_near_end_vs_exact() -> None:
    """Bulk and tail elements near the singular end (five spread over the sweep; the exact
    path takes minutes on some of the others, whose R is within 1e-6 of singular)."""
    h, r = _near_end(400, 12)
    pick = np.linspace(0, 399, 5).astype(int)
    h, r = h[pick], r[pick]
    exact = _exact(h, r)
    out = log_tvn_vec(h, r)
    _assert_vs_exact(out, exact, r)
    assert not math.isnan(float(out.sum()))
