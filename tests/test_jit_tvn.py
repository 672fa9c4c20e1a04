"""The compiled k = 3 kernel (fastpath/_jit_tvn.py) against the numpy kernel
(``fastpath._tvn._log_tvn_plackett``, the same rule array by array) route by route, and
against verified_dgn's exact orthant probability in the far tail.

Tolerance against the numpy kernel: |d log P| <= 1e-13 (1 + |log P|). Both compute the same
rule; they differ by rounding (summation order, the initial window's 3 x 3 solves by
cofactors against LAPACK, hence a different sequence of window passes), i.e. by the rule's
own error, 1e-13 relative in P (measured max 7e-15 (1 + |log P|) on 2e4 random elements,
5e-14 (1 + |log P|) on the S = 3 E-step's, benchmarks/tvn_jit.py); the |log P| part is
the rounding of the bounds, which log P carries multiplied by about |h|^2 ~ |log P|.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

from orthant_inputs import random_tvn  # noqa: E402

from fastpath._jit_tvn import log_tvn, log_tvn_vec  # noqa: E402
from fastpath._tvn import (  # noqa: E402
    _log_tvn,
    _log_tvn_numpy,
    _log_tvn_plackett,
    correlation_matrices,
)


def _full(r: np.ndarray) -> np.ndarray:
    return correlation_matrices(r[:, 0], r[:, 1], r[:, 2])


def _partial(r: np.ndarray) -> np.ndarray:
    """The partial correlation c of the kernel's conditioning variable (its choice rule)."""
    rr = np.stack([r[:, [0, 1, 2]], r[:, [0, 2, 1]], r[:, [1, 2, 0]]], 1)
    s1 = np.sqrt((1 - rr[..., 0]) * (1 + rr[..., 0]))
    s2 = np.sqrt((1 - rr[..., 1]) * (1 + rr[..., 1]))
    pc = (rr[..., 2] - rr[..., 0] * rr[..., 1]) / (s1 * s2)
    score = np.maximum(np.abs(rr[..., 0]), np.abs(rr[..., 1])) + np.where(pc >= 0, 0.0, 10.0)
    return pc[np.arange(r.shape[0]), np.argmin(score, axis=1)]


def _assert_close(out: np.ndarray, ref: np.ndarray, rtol: float = 1e-13) -> None:
    assert np.array_equal(np.isfinite(out), np.isfinite(ref))
    fin = np.isfinite(ref)
    d = np.abs(out[fin] - ref[fin])
    tol = rtol * (1.0 + np.abs(ref[fin]))
    if d.size:
        worst = np.argmax(d / tol)
        assert np.all(d <= tol), (d[worst], ref[fin][worst])


def _regular(h: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = (np.abs(r) <= 1 - 1e-9).all(axis=1)
    return h[keep], r[keep]


@pytest.mark.parametrize("route", ["base", "anti"])
def test_random_match_numpy_kernel(route: str) -> None:
    """Base at c = 0 (c >= 0) and at c = -1 (c < 0), with their Plackett integrals, over
    bounds in +-3 and +-30; a tenth of the elements have a correlation within 1e-8..1e-1 of
    +-1 (kinks: the windows' refinement) and a tenth a tiny one."""
    h, r = _regular(*random_tvn(30_000, 0))
    sel = (_partial(r) >= 0) if route == "base" else (_partial(r) < 0)
    h, r = h[sel], r[sel]
    assert h.shape[0] > 5000
    out, ev = log_tvn_vec(h, r, stats=True)
    assert not np.isnan(out).any()
    _assert_close(out, _log_tvn_plackett(h, _full(r)))
    # windows refined past the first pass and kinks refined: both parts of the rule ran
    assert ev.max() > 400 and np.median(ev) >= 80


def test_flat_pieces_and_signs() -> None:
    """Bounds where the inner probabilities are 1 on an interval (the closed-form piece and
    the integrals on either side of it), bounds of mixed sign and |h_j| = |h_k| (the knee
    of Plackett's variable u), and h_j = h_k = 0 (the psi = atan t variable)."""
    rng = np.random.default_rng(5)
    n = 3000
    r = rng.uniform(-0.9, 0.9, (3 * n, 3))
    det = 1 + 2 * r[:, 0] * r[:, 1] * r[:, 2] - (r ** 2).sum(1)
    r = r[det > 0.01][:n]
    m = r.shape[0]
    h = rng.uniform(-2, 12, (m, 3))
    third = m // 3
    h[:third, 2] = np.where(rng.random(third) < 0.5, 1, -1) * h[:third, 1]
    h[third:2 * third, 1:] = 0.0
    out = log_tvn_vec(h, r)
    _assert_close(out, _log_tvn_plackett(h, _full(r)))


def test_tiny_and_zero_correlations() -> None:
    rng = np.random.default_rng(6)
    n = 600
    r = rng.uniform(-0.7, 0.7, (n, 3))
    r[: n // 3, 0] = 0.0
    r[n // 3: 2 * n // 3, 1] = rng.choice([-1, 1], n // 3) * 10.0 ** rng.uniform(-300, -41, n // 3)
    r[2 * n // 3:, 2] = rng.choice([-1, 1], n - 2 * n // 3) * 10.0 ** rng.uniform(-39, -12,
                                                                                  n - 2 * n // 3)
    h = rng.uniform(-20, 5, (n, 3))
    out = log_tvn_vec(h, r)
    R = _full(r)
    _assert_close(out, _log_tvn_numpy(h, R))
    assert np.isfinite(out).all()


def test_wired_into_log_tvn() -> None:
    """``_log_tvn`` (what every caller uses) gives the compiled values, the numpy kernel
    for correlations within 1e-9 of +-1 and non-finite bounds."""
    h, r = random_tvn(3000, 1)
    R = _full(r)
    got = _log_tvn(h, R)
    _assert_close(got, _log_tvn_numpy(h, R))
    reg = (np.abs(r) <= 1 - 1e-9).all(axis=1)
    assert np.array_equal(got[reg], log_tvn_vec(h[reg], r[reg]))
    # non-finite bounds are declined (nan); _log_tvn then uses the numpy kernel
    h2 = h[:3].copy()
    h2[0, 1] = np.inf
    h2[1, 0] = -np.inf
    h2[2, 2] = np.nan
    assert np.isnan(log_tvn_vec(h2, r[:3])).all()
    assert np.array_equal(_log_tvn(h2, R[:3]), _log_tvn_numpy(h2, R[:3]), equal_nan=True)


def test_scalar_same_bits_as_vector() -> None:
    h, r = _regular(*random_tvn(300, 2))
    out = log_tvn_vec(h, r)
    sc = np.array([log_tvn(*h[i], *r[i]) for i in range(h.shape[0])])
    assert np.array_equal(sc, out)


def test_thread_count_does_not_change_results() -> None:
    import numba

    h, r = random_tvn(2000, 3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = log_tvn_vec(h, r)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        two = log_tvn_vec(h, r)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two, equal_nan=True)


@pytest.mark.parametrize("case", [
    "quick",
    pytest.param("full", marks=pytest.mark.slow),
])
def test_far_tail_vs_exact(case: str) -> None:
    """Far-tail elements (log P from -30 to below -1000) against verified_dgn's exact
    orthant probability at 20 digits. Tolerance: 1e-13 in P plus the rounding of the
    inputs, which log P carries multiplied by about cond(R) |log P| (4 eps cond(R) |log P|,
    as tests/test_orthant_fast_tvn.py)."""
    from verified_dgn.orthant import log_orthant_probability

    rng = np.random.default_rng(4)
    n = 4 if case == "quick" else 30
    hs: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    while len(hs) < n:
        r = rng.uniform(-0.95, 0.95, 3)
        if 1 + 2 * r[0] * r[1] * r[2] - (r ** 2).sum() < 0.02:
            continue
        h = -rng.uniform(3.0, 30.0, 3) * (rng.random(3) < 0.8) + rng.uniform(-1, 1, 3)
        hs.append(h)
        rs.append(r)
    h, r = np.array(hs), np.array(rs)
    R = _full(r)
    exact = np.array([float(log_orthant_probability(h[i], R[i], dps=20)) for i in range(n)])
    assert exact.min() < -100.0
    out = log_tvn_vec(h, R)
    cond = np.linalg.cond(R)
    tol = 1e-13 + np.maximum(1e-14, 4 * np.finfo(float).eps * cond) * np.abs(exact)
    d = np.abs(out - exact)
    assert np.all(d <= tol), (d / tol).max()
    assert not math.isnan(float(out.sum()))


def test_bad_input_refused() -> None:
    h = np.zeros((2, 3))
    r = np.full((2, 3), 0.2)
    with pytest.raises(ValueError, match="h"):
        log_tvn_vec(np.zeros((2, 2)), r)
    with pytest.raises(ValueError, match="R"):
        log_tvn_vec(h, np.zeros((2, 2)))
