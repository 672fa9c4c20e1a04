"""The vectorisable log and log Phi of fastpath/_jit_lnd.py against numpy's log, scipy's
log_ndtr and mpmath.

Tolerances: log_vec within 1 ulp of the correctly rounded log (fdlibm's bound; numpy's log
is itself within 1 ulp, hence 2 ulp between the two). log_ndtr_vec: absolute error of
log Phi within 1e-15 (1 + |log Phi|) against mpmath at 30 digits (measured max 5e-16;
scipy's log_ndtr reaches 4e-16 on the same points): what the node values of a
log-integrand need, where an error e in L is a relative error e of e^L.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from scipy import special as sc

pytest.importorskip("numba")

from fastpath._jit_lnd import log_ndtr_vec_array, log_vec_array  # noqa: E402


def test_log_vec_within_two_ulp_of_numpy() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 200_000)),
                        rng.uniform(0.5, 2.0, 100_000), 1.0 + rng.uniform(-1e-6, 1e-6, 10_000)])
    got = log_vec_array(x)
    want = np.log(x)
    assert np.all(np.abs(got - want) <= 2 * np.spacing(np.abs(want)) + 1e-300)
    assert log_vec_array(np.array([1.0]))[0] == 0.0


@pytest.mark.parametrize("lo,hi", [(-1e4, -40.0), (-40.0, -8.0), (-8.0, -1.4), (-1.5, 1.5),
                                   (1.4, 8.0), (8.0, 60.0)])
def test_log_ndtr_vec_vs_scipy_and_mpmath(lo: float, hi: float) -> None:
    rng = np.random.default_rng(int(abs(lo) * 7 + hi))
    a = rng.uniform(lo, hi, 200_000)
    got = log_ndtr_vec_array(a)
    ref = sc.log_ndtr(a)
    # scipy's own error (~4e-16 relative to 1 + |log Phi|) plus ours
    assert np.all(np.abs(got - ref) <= 1e-15 * (1.0 + np.abs(ref)))
    worst = np.argsort(-np.abs(got - ref) / (1.0 + np.abs(ref)))[:20]
    with mpmath.workdps(30):
        exact = np.array([float(mpmath.log(mpmath.ncdf(mpmath.mpf(float(a[i]))))) for i in worst])
    assert np.all(np.abs(got[worst] - exact) <= 1e-15 * (1.0 + np.abs(exact)))


def test_log_ndtr_vec_range_edges_and_infinities() -> None:
    # the ends of the ranges of the rational approximations and of the series
    edges = np.array([np.sqrt(2.0), 8.0 * np.sqrt(2.0), 40.0])
    a = np.array([s * e + d for e in edges for s in (-1.0, 1.0)
                  for d in (-1e-12, 0.0, 1e-12)])
    got = log_ndtr_vec_array(a)
    ref = sc.log_ndtr(a)
    assert np.all(np.abs(got - ref) <= 1e-15 * (1.0 + np.abs(ref)))
    out = log_ndtr_vec_array(np.array([-np.inf, np.inf, 0.0]))
    assert out[0] == -np.inf and out[1] == 0.0 and abs(out[2] - np.log(0.5)) <= 1e-16
