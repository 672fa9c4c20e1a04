"""Random simplices over all spreads and a cubature rule's errors on them, shared by the
simplex cubature's tests and benchmarks/simplex_rules.py (which chose the band rules)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Arr = NDArray[np.float64]


def random_simplices(rng: np.random.Generator, s: int, M: int, spread_max: float) -> Arr:
    """M simplices (M, s+1, s), half of them thin, with log-density spreads |c| D + D^2/2
    log-uniform in [0.05, spread_max] under N(0, I)."""
    X = rng.normal(size=(M, s + 1, s))
    thin = np.arange(M) < M // 2
    X[thin, -1] = (X[thin, 0] + 0.02 * rng.normal(size=(thin.sum(), s))
                   + 0.5 * (X[thin, 1] - X[thin, 0]))
    X -= X.mean(axis=1, keepdims=True)
    X /= np.max(np.linalg.norm(X[:, :, None] - X[:, None], axis=-1), axis=(1, 2))[:, None, None]
    target = 10 ** rng.uniform(np.log10(0.05), np.log10(spread_max), M)
    Dn = np.minimum(10 ** rng.uniform(-2, 0.7, M), np.sqrt(2 * target) * 0.999)
    dirs = rng.normal(size=(M, s))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return X * Dn[:, None, None] + (((target - Dn ** 2 / 2) / Dn)[:, None] * dirs)[:, None, :]


def normalised_stats(X: Arr, lam: Arr, w: Arr, chunk: int = 200) -> tuple[Arr, Arr, Arr]:
    """Per simplex (K, s+1, s) by the rule (barycentric nodes lam, weights w): the N(0, I)
    mass relative to the density at the centre c, the mean offset from c and the covariance.
    The exponent is formed as -(c.d + |d|^2 / 2), d = x - c, so that far simplices compare
    the rules' errors rather than the rounding of |log m0| ~ |c|^2 / 2. In chunks of
    ``chunk`` simplices (a 16-point-per-axis rule has 4096 nodes at s = 3)."""
    parts = []
    for i in range(0, X.shape[0], chunk):
        Y = X[i:i + chunk]
        c = Y.mean(axis=1)
        d = np.einsum("qv,kvs->kqs", lam, Y - c[:, None])
        f = w[None] * np.exp(-(np.einsum("ks,kqs->kq", c, d) + 0.5 * np.sum(d * d, axis=-1)))
        m0 = f.sum(axis=1)
        mean = np.einsum("kq,kqs->ks", f, d) / m0[:, None]
        dd = d - mean[:, None]
        cov = np.einsum("kq,kqi,kqj->kij", f, dd, dd) / m0[:, None, None]
        parts.append((m0, mean, cov))
    m0s, means, covs = zip(*parts)
    return np.concatenate(m0s), np.concatenate(means), np.concatenate(covs)


def rule_errors(X: Arr, ref: tuple[Arr, Arr, Arr], lam: Arr, w: Arr) -> Arr:
    """Largest errors (3,) of the rule (lam, w) on simplices X against ``ref`` (their
    :func:`normalised_stats` by a reference rule): log m0, the mean relative to
    sqrt(trace Cov) and the covariance relative to trace Cov."""
    m0, mean, cov = normalised_stats(X, lam, w)
    scale = np.sqrt(np.trace(ref[2], axis1=1, axis2=2))
    return np.array([np.max(np.abs(np.log(m0 / ref[0]))),
                     np.max(np.linalg.norm(mean - ref[1], axis=1) / scale),
                     np.max(np.linalg.norm(cov - ref[2], axis=(1, 2)) / scale ** 2)])
