"""Exact samples of the posterior p(z | x) (:func:`sample_posterior`; not MCMC).

The posterior is a mixture of truncated Gaussians (Theorem 1, docs/DESIGN.md §2.3): a
region w is drawn with probability e0_w(x), then a draw of N(mu_w, Sigma_w) truncated to w.
In whitened coordinates that is a draw of N(0, I) truncated to a polyhedron
(:func:`_sample_whitened`): by inverse CDF on an interval (S = 1), by rejection from the
Gaussian or from its restriction to the supporting half-space at the nearest point of the
polyhedron, and by sequential inverse CDF when both would accept too rarely.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy.special import log_ndtr, logsumexp, ndtri_exp

from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import check_int, make_rng

from ._checks import _check_net, _check_partition
from ._density import _single_point
from ._estep import _chunk, _model
from ._map import _RANK_RTOL, _nearest_point
from .integrals import PolyhedronCones

__all__ = ["sample_posterior"]

Arr = NDArray[np.float64]

#: proposals with acceptance below this switch the sampler to sequential inverse-CDF
_MIN_ACCEPT = 1e-6
#: acceptance above which the sampler proposes from the untruncated Gaussian
_PLAIN_ACCEPT = 0.05
#: root-finding tolerances of the sequential sampler (whitened units = posterior sds)
_ROOT_XTOL = 1e-12
_ROOT_RTOL = 1e-12


def _sample_interval(lo: Arr, hi: Arr, rng: np.random.Generator) -> Arr:
    """Exact inverse-CDF draws of N(0, 1) truncated to [lo, hi] (arrays of one shape).

    F(t) = V is solved in log space from the lower tail when t <= 0 and from the upper tail
    otherwise, so draws deep in either tail keep full relative accuracy.
    """
    V = rng.random(np.shape(lo))
    with np.errstate(divide="ignore"):
        lv, l1v = np.log(V), np.log1p(-V)
        t1 = ndtri_exp(np.logaddexp(l1v + log_ndtr(lo), lv + log_ndtr(hi)))
        t2 = -ndtri_exp(np.logaddexp(lv + log_ndtr(-hi), l1v + log_ndtr(-lo)))
    t = np.where(t1 <= 0, t1, t2)
    return np.clip(t, lo, hi)


def _normalise_rows(a: Arr, h: Arr) -> tuple[Arr, Arr]:
    """Unit rows; rows with a ~ 0 (constraints 0 <= h, true on the non-empty set) dropped."""
    nrm = np.linalg.norm(a, axis=1)
    keep = nrm > _RANK_RTOL * max(1.0, float(np.max(nrm, initial=0.0)))
    return a[keep] / nrm[keep, None], h[keep] / nrm[keep]


def _log_mass_whitened(a: Arr, h: Arr) -> float:
    k = a.shape[1]
    return float(PolyhedronCones.from_halfspaces(a, h).log_mass(np.zeros(k), np.eye(k)))


def _sample_whitened(a: Arr, h: Arr, n: int, rng: np.random.Generator,
                     log_mass: float | None = None, method: str = "auto") -> Arr:
    """n exact draws of N(0, I_k) truncated to {a u <= h} (unit rows a (m, k)), (n, k).

    ``method``: "auto" (below), or "reject" / "sequential" to force one (tests).

    * k = 1: inverse CDF on the interval (closed form).
    * acceptance >= _MIN_ACCEPT: rejection from N(0, I) when log_mass is large, else from
      N(0, I) restricted to the supporting half-space {n.u >= delta} at the nearest point
      n delta of the polyhedron (it contains the polyhedron), whose acceptance is
      mass / Phi(-delta) (decays only polynomially in delta).
    * otherwise sequential inverse CDF: the first coordinate (along n) from its marginal
      CDF F(t) = mass(P and {u_1 <= t}) / mass(P) (log-space Gaussian masses of the cut
      polyhedron), solved by Brent's method to |t - t*| <= 1e-12 (1 + |t*|) whitened units;
      then the slice at u_1 = t, recursively.
    """
    m, k = a.shape
    if n == 0:
        return np.zeros((0, k))
    if m == 0:
        return rng.standard_normal((n, k))
    if k == 1:
        c = a[:, 0]
        hi = np.min(h[c > 0] / c[c > 0]) if np.any(c > 0) else np.inf
        lo = np.max(h[c < 0] / c[c < 0]) if np.any(c < 0) else -np.inf
        return _sample_interval(np.full(n, lo), np.full(n, hi), rng)[:, None]
    if log_mass is None:
        log_mass = _log_mass_whitened(a, h)
    if not np.isfinite(log_mass):
        raise ValueError("cannot sample from a truncated Gaussian on a set of zero mass")
    p = _nearest_point(a, h)
    delta = float(np.linalg.norm(p))
    acc_plain = math.exp(log_mass)
    acc_half, delta_s = 0.0, 0.0
    if delta > 0:
        # a slightly larger half-space, still containing the polyhedron whatever the rounding
        delta_s = delta * (1.0 - 1e-9) - 1e-12
        acc_half = math.exp(min(0.0, log_mass - float(log_ndtr(-delta_s))))
    if method == "sequential" or (method == "auto" and max(acc_plain, acc_half) < _MIN_ACCEPT):
        return np.array([_sequential_draw(a, h, p, log_mass, rng) for _ in range(n)])
    use_half = delta > 0 and acc_plain < _PLAIN_ACCEPT and acc_half > acc_plain
    acc = acc_half if use_half else acc_plain
    out = np.empty((n, k))
    got, proposed = 0, 0
    cap = max(64, (1 << 22) // k)
    while got < n:
        batch = int(min(cap, max(64, 1.5 * (n - got) / acc)))
        G = rng.standard_normal((batch, k))
        if use_half:
            # u = t nv + (component orthogonal to nv), t ~ N(0, 1) truncated to [delta_s, inf)
            nv = p / delta
            with np.errstate(divide="ignore"):
                t = -ndtri_exp(np.log(rng.random(batch)) + float(log_ndtr(-delta_s)))
            G = G - np.outer(G @ nv, nv) + np.outer(np.maximum(t, delta_s), nv)
        inside = np.all(G @ a.T <= h, axis=1)
        take = G[inside][: n - got]
        out[got:got + len(take)] = take
        got += len(take)
        proposed += batch
        if proposed > 1e10:  # pragma: no cover - acceptance was certified >= _MIN_ACCEPT
            raise RuntimeError("rejection sampler made no progress (acceptance estimate wrong)")
    return out


def _sequential_draw(a: Arr, h: Arr, p: Arr, log_mass: float, rng: np.random.Generator) -> Arr:
    """One exact draw by sequential inverse CDF (see :func:`_sample_whitened`)."""
    k = a.shape[1]
    # orthonormal basis with the first axis toward the nearest point (the tail direction)
    first = p / np.linalg.norm(p) if np.linalg.norm(p) > 0 else np.eye(k)[0]
    Qb, _ = np.linalg.qr(np.column_stack([first, np.eye(k)]))
    Qb = Qb[:, :k]
    if Qb[:, 0] @ first < 0:
        Qb[:, 0] = -Qb[:, 0]
    aq = a @ Qb                                                             # rows in w-coords
    U = rng.random()
    log_target = math.log(U) + log_mass if U > 0 else -np.inf
    e1 = np.zeros(k)
    e1[0] = 1.0

    def log_cdf_mass(t: float) -> float:
        return _log_mass_whitened(np.vstack([aq, e1]), np.append(h, t))

    # bracket: Phi(t) >= mass(cut) and Phi(-t) >= mass(P) - mass(cut)
    lo_t = float(ndtri_exp(log_target + math.log(1e-3))) if np.isfinite(log_target) else -40.0
    hi_q = math.log1p(-U) + log_mass + math.log(1e-3) if U < 1 else -745.0
    hi_t = -float(ndtri_exp(hi_q))
    # the extent of P along w_1 (LP), which bounds the bracket where it is finite
    for sign in (1.0, -1.0):
        res = optimize.linprog(sign * e1, A_ub=aq, b_ub=h, bounds=[(None, None)] * k,
                               method="highs")
        if res.status == 0:
            if sign > 0:
                lo_t = max(lo_t, float(res.x[0]))
            else:
                hi_t = min(hi_t, float(res.x[0]))

    def g(t: float) -> float:
        return math.exp(log_cdf_mass(t) - log_mass) - U

    if hi_t <= lo_t:
        t = 0.5 * (lo_t + hi_t)
    else:
        glo, ghi = g(lo_t), g(hi_t)
        if glo >= 0:
            t = lo_t
        elif ghi <= 0:
            t = hi_t
        else:
            t = optimize.brentq(g, lo_t, hi_t, xtol=_ROOT_XTOL, rtol=_ROOT_RTOL, maxiter=200)
    # the slice w_1 = t
    a2, h2 = _normalise_rows(aq[:, 1:], h - aq[:, 0] * t)
    rest = _sample_whitened(a2, h2, 1, rng)[0] if k > 1 else np.zeros(0)
    return Qb @ np.concatenate([[t], rest])


def _sample_region(C: Arr, d: Arr, mean: Arr, cov: Arr, n: int, rng: np.random.Generator,
                   log_m0: float | None, method: str = "auto") -> Arr:
    """n exact draws of N(mean, cov) truncated to {C z <= d}, shape (n, S)."""
    L = np.linalg.cholesky(cov)
    a, h = _normalise_rows(C @ L, d - C @ mean)
    U = _sample_whitened(a, h, n, rng, log_m0, method)
    return mean + U @ L.T


def sample_posterior(net: DGN, x: ArrayLike, n: int, seed: int | np.random.Generator | None = None,
                     *, partition: Partition | None = None) -> Arr:
    """Exact samples of p(z | x), a mixture of truncated Gaussians (not MCMC).

    A region w is drawn with probability e0_w(x), then an exact draw of N(mu_w, Sigma_w)
    truncated to w: by rejection from N(mu_w, Sigma_w) when that accepts often, otherwise
    from the Gaussian restricted to the supporting half-space at the point of w nearest to
    mu_w (acceptance m0 / Phi(-delta) with delta that point's Mahalanobis distance), and
    by sequential inverse-CDF sampling when both accept less than 1e-6 (root finding to
    1e-12 (1 + |t|) posterior standard deviations; see :func:`_sample_whitened`).

    Parameters
    ----------
    net : DGN
    x : array_like, shape (D,)
    n : int
        Number of samples (>= 0).
    seed : int or numpy.random.Generator, optional
    partition : Partition, optional

    Returns
    -------
    Z : ndarray, shape (n, S)
        In random order.
    """
    net = _check_net(net)
    x = _single_point(net, x)
    n = check_int(n, "n", 0)
    rng = make_rng(seed)
    partition = _check_partition(net, partition)
    model = _model(net, partition)
    res = _chunk(model, x, False, None)
    assert res.mu_z is not None and res.log_m0 is not None
    logw = res.log_w[0]
    prob = np.exp(logw - logsumexp(logw))
    prob = prob / prob.sum()
    counts = rng.multinomial(int(n), prob)
    S = model.S
    out = np.empty((int(n), S))
    pos = 0
    for w in np.flatnonzero(counts):
        r = partition[int(w)]
        C = np.asarray(r.C, dtype=np.float64).reshape(-1, S)
        d = np.asarray(r.d, dtype=np.float64)
        k = int(counts[w])
        out[pos:pos + k] = _sample_region(C, d, res.mu_z[0, w], model.cov_z[w], k, rng,
                                          float(res.log_m0[0, w]))
        pos += k
    return out[rng.permutation(int(n))]
