"""Adaptive 1-D integrals of log-concave integrands: the engine of the k = 3, 4 kernels.

The k = 3 and k = 4 orthant probabilities (:mod:`fastpath._tvn`) are 1-D integrals whose
integrands are unimodal (typically log-concave) but can be very narrow and sit anywhere on
the real line. :func:`_adaptive_log_integral` integrates them in log space: a window around
the mass found from the Laplace approximation at the dominant point (the most likely point
of the orthant, :func:`_dominant_point`; :func:`_laplace_interval`), refined by node-based
passes with a fixed Gauss-Legendre rule, then an a posteriori check on the Legendre
coefficients of the log-integrand at the nodes; an unresolved window (a kink, as
near-singular correlations produce) is refined adaptively until a parent and its children
agree to 5e-14.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ._orthant_rules import _gl01, _legendre_tail

#: window passes before a result is accepted as it is
_SOV_PASSES = 10
#: recursion depth of the panel splitting around kinks
_SOV_DEPTH = 14
#: open panels per problem in one level of the splitting
_SOV_MAX_PANELS = 8
#: agreement (log units) of a refined panel sum with its parent that accepts the sum
_REFINE_TOL = 5e-14


def _dominant_point(h: NDArray[np.float64], R: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64],
                               NDArray[np.float64]]:
    """argmin of y^T R^-1 y / 2 subject to y <= h, by enumerating active sets (k <= 4).

    Parameters
    ----------
    h : ndarray, shape (N, k)
    R : ndarray, shape (N, k, k)

    Returns
    -------
    mu : ndarray, shape (N, k)
        The dominant point (the most likely point of the orthant).
    found : ndarray of bool, shape (N,)
        False where no active set passed the KKT test (numerically singular R).
    nu0 : ndarray, shape (N,)
        Multiplier of the constraint y_0 <= h_0 (0 when inactive): the slope of the log
        density of y_0 at h_0 in the Laplace approximation.
    var0 : ndarray, shape (N,)
        Variance of y_0 given the other active constraints held with equality (Laplace
        scale of y_0 when y_0 is inactive).
    """
    N, k = h.shape
    best = np.where((h >= 0).all(axis=1), 0.0, np.inf)
    mu = np.zeros((N, k))
    nu0 = np.zeros(N)
    var0 = np.ones(N)
    eye = np.eye(k)
    for mask in range(1, 1 << k):
        S = [j for j in range(k) if (mask >> j) & 1]
        Rss = R[:, S][:, :, S] + 1e-13 * eye[: len(S), : len(S)]
        hs = h[:, S]
        nus = -np.linalg.solve(Rss, hs[..., None])[..., 0]
        y = -np.einsum("nij,nj->ni", R[:, :, S], nus)
        tol = 1e-9 * (1.0 + np.abs(h))
        feas = (nus >= -1e-12).all(axis=1) & (y <= h + tol).all(axis=1)
        obj = -0.5 * np.einsum("ni,ni->n", nus, hs)
        upd = feas & (obj < best)
        if not np.any(upd):
            continue
        best[upd] = obj[upd]
        mu[upd] = y[upd]
        if 0 in S:
            nu0[upd] = nus[upd, S.index(0)]
            var0[upd] = 0.0
        else:
            r0s = R[upd][:, 0, S]
            sol = np.linalg.solve(Rss[upd], r0s[..., None])[..., 0]
            nu0[upd] = 0.0
            var0[upd] = np.maximum(1.0 - np.einsum("ni,ni->n", r0s, sol), 1e-30)
    return mu, np.isfinite(best), nu0, var0


def _adaptive_log_integral(
    evaluate: Callable[[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]],
                       tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]],
    plo: NDArray[np.float64], phi: NDArray[np.float64], a: NDArray[np.float64],
    b: NDArray[np.float64], n: int, level: float,
) -> NDArray[np.float64]:
    """log int_{plo}^{phi} e^{L(x)} dx for P unimodal (typically log-concave) integrands.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(p, A, B)`` for problem indices ``p`` (m,) and intervals [A, B] returns
        ``(Lr, X, off)``: the log-integrand minus ``off`` (m, n) at the n Gauss-Legendre
        nodes ``X`` (m, n) of [A, B], and ``off`` (m,) (a per-row constant kept apart so
        that the node values stay exact, e.g. -B^2/2).
    plo, phi : ndarray, shape (P,)
        Domains (``plo`` may be -inf, ``phi`` may be +inf).
    a, b : ndarray, shape (P,)
        Initial windows inside the domains (modified in place).
    n : int
        Gauss-Legendre nodes per window / panel.
    level : float
        Window = where the integrand is within e^-level of its maximum.

    Returns
    -------
    ndarray, shape (P,)

    Notes
    -----
    Window passes: extend a free end while the integrand there (or the secant bound of a
    concave log-integrand beyond it) is above the level, jumping to the level predicted by
    a parabola through the three outer nodes when the mode lies beyond the window; shrink
    to the bracket of the level set when fewer than 60% of the nodes lie above it. Then the
    Legendre coefficients of degree n-8..n-1 of the log-integrand at the nodes must be at
    rounding level; where not (a kink: inner correlation near +-1, near-collinear
    variables), the window is split around the kink (or bisected) recursively.
    """
    _, w = _gl01(n)
    tailT = _legendre_tail(n)
    rmax = math.sqrt(2.0 * level)

    def evaluate_nan_free(p, A, B):
        L, X, off = evaluate(p, A, B)
        return np.where(np.isnan(L), -np.inf, L), X, off

    def integral(L, lmax, A, B, off):
        fin = np.isfinite(lmax)
        lm = np.where(fin, lmax, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log(np.sum(w * np.exp(L - lm[:, None]), axis=1) * (B - A))
        return np.where(fin, lm + v + off, -np.inf)

    def smooth(L, lmax):
        """Whether the log-integrand is resolved: its Legendre coefficients of degree
        n-8..n-1 at the nodes are at rounding level. A kink (inner correlation near +-1,
        a near-collinear variable) leaves them large; so does a smooth peak that is merely
        under-resolved, which the parent/children comparison below then accepts."""
        lc = np.where(L > lmax[:, None] - 1e4, L, lmax[:, None] - 1e4)
        tail = np.abs(lc @ tailT.T).max(axis=1)
        scale = np.abs(lc).max(axis=1)
        return tail <= 1e-13 + 256.0 * np.finfo(float).eps * scale

    def split3(L, X, A, B):
        """Three panels: around the node where the slope of L jumps when that jump stands
        out (a kink: its panel is small, the others become smooth), else the two halves
        (an under-resolved smooth peak) and an empty third."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sl = np.diff(L, axis=1) / np.diff(X, axis=1)
            jump = np.abs(np.diff(sl, axis=1))
        jump = np.where(np.isfinite(jump), jump, np.inf)
        j = np.argmax(jump, axis=1) + 1
        ar = np.arange(L.shape[0])
        med = np.median(jump, axis=1)
        kinky = jump[ar, j - 1] > 30.0 * med
        xk = X[ar, j]
        d = np.maximum(X[ar, j + 1] - xk, xk - X[ar, j - 1])
        mid = 0.5 * (A + B)
        c1 = np.where(kinky, np.maximum(A, xk - d), mid)
        c2 = np.where(kinky, np.minimum(B, xk + d), mid)
        return np.stack([A, c1, c2, B], axis=1)

    pres = np.full(plo.size, -np.inf)
    sub_lmax = np.full(plo.size, -np.inf)
    todo = np.ones(plo.size, dtype=bool)
    kinked = []  # (sub-problem, L, X, A, B)
    for npass in range(_SOV_PASSES):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        A, B = a[idx], b[idx]
        W = B - A
        L, X, off = evaluate_nan_free(idx, A, B)
        jmax = np.argmax(L, axis=1)
        lmax = L[np.arange(idx.size), jmax]
        c = lmax - level
        dead = ~np.isfinite(lmax)
        ar = np.arange(idx.size)
        lo_d, hi_d = plo[idx], phi[idx]
        # secants at the two ends: for concave L the secant line through the two outer
        # nodes lies above L beyond them, so it bounds L at the window end
        with np.errstate(divide="ignore", invalid="ignore"):
            sec_l = (L[:, 1] - L[:, 0]) / (X[:, 1] - X[:, 0])
            sec_r = (L[:, -1] - L[:, -2]) / (X[:, -1] - X[:, -2])
            left_free = A > lo_d
            left_ok = ~left_free | (L[:, 0] <= c) | (
                (sec_l > 0) & (L[:, 0] - sec_l * (X[:, 0] - A) <= c))
            right_free = B < hi_d
            right_ok = ~right_free | (L[:, -1] <= c) | (
                (sec_r < 0) & (L[:, -1] + sec_r * (B - X[:, -1]) <= c))
        left_ok &= ~dead
        right_ok &= ~dead
        above = L >= c[:, None]
        cnt = above.sum(axis=1)
        first = np.argmax(above, axis=1)
        last = n - 1 - np.argmax(above[:, ::-1], axis=1)
        # resolution: most nodes above the level, and no long stretch below it at an end
        # (a steep tail there costs nodes and, being far from polynomial, accuracy)
        frac_l = (X[np.arange(idx.size), first] - A) / W
        frac_r = (B - X[np.arange(idx.size), last]) / W
        res_ok = (cnt >= int(0.6 * n)) & (frac_l <= 0.15) & (frac_r <= 0.15)
        ok = left_ok & right_ok & res_ok
        if npass == _SOV_PASSES - 1:
            ok[:] = True
        if np.any(ok):
            j = idx[ok]
            sm = smooth(L[ok], lmax[ok]) | dead[ok]
            pres[j[sm]] = integral(L[ok][sm], lmax[ok][sm], A[ok][sm], B[ok][sm], off[ok][sm])
            sub_lmax[j] = lmax[ok] + off[ok]
            if not np.all(sm):
                nk = ~sm
                kinked.append((j[nk], integral(L[ok][nk], lmax[ok][nk], A[ok][nk], B[ok][nk],
                                               off[ok][nk]),
                               L[ok][nk], X[ok][nk], A[ok][nk], B[ok][nk]))
            todo[j] = False
        bad = ~ok
        if not np.any(bad):
            continue
        # new windows for the failures
        An, Bn = A.copy(), B.copy()
        # parabola through the three outer nodes on each side: where the mode lies
        # beyond the window (the end node is the largest), jump to its predicted level set
        with np.errstate(divide="ignore", invalid="ignore"):
            g_l = 2.0 * ((L[:, 2] - L[:, 1]) / (X[:, 2] - X[:, 1]) - sec_l) / (X[:, 2] - X[:, 0])
            g_r = 2.0 * (sec_r - (L[:, -2] - L[:, -3]) / (X[:, -2] - X[:, -3])) / (
                X[:, -1] - X[:, -3])
        curv_l = np.maximum(-np.where(np.isfinite(g_l), g_l, -1.0), 1.0)
        curv_r = np.maximum(-np.where(np.isfinite(g_r), g_r, -1.0), 1.0)
        ext_l = bad & ~left_ok & ~dead
        with np.errstate(divide="ignore", invalid="ignore"):
            # slope at the end node from the parabola, then the distance to the level
            d_l = sec_l + 0.5 * curv_l * (X[:, 1] - X[:, 0])
            m_l = X[:, 0] + np.minimum(d_l, 0.0) / curv_l  # predicted mode (<= X0)
            lm_l = L[:, 0] + np.where(d_l < 0, 0.5 * d_l * d_l / curv_l, 0.0)
            reach_l = np.sqrt(2.0 * np.maximum(lm_l - c, 0.0) / curv_l)
            # rigorous where the end still rises: secant bound; else the parabola, doubled
            step_l = np.where(sec_l > 0, (L[:, 0] - c) / sec_l, 2.0 * (X[:, 0] - m_l + reach_l))
        step_l = np.where(np.isfinite(step_l), step_l, 2.0 * W + rmax)
        step_l = np.maximum(step_l, 0.0)
        An = np.where(ext_l, np.maximum(lo_d, X[:, 0] - 1.1 * step_l - 0.01 * (W + step_l)
                                        - 1e-12 * np.abs(X[:, 0])), An)
        ext_r = bad & ~right_ok & ~dead
        with np.errstate(divide="ignore", invalid="ignore"):
            d_r = sec_r - 0.5 * curv_r * (X[:, -1] - X[:, -2])
            m_r = X[:, -1] + np.maximum(d_r, 0.0) / curv_r
            lm_r = L[:, -1] + np.where(d_r > 0, 0.5 * d_r * d_r / curv_r, 0.0)
            reach_r = np.sqrt(2.0 * np.maximum(lm_r - c, 0.0) / curv_r)
            step_r = np.where(sec_r < 0, (L[:, -1] - c) / -sec_r, 2.0 * (m_r - X[:, -1] + reach_r))
        step_r = np.where(np.isfinite(step_r), step_r, 2.0 * W + rmax)
        step_r = np.maximum(step_r, 0.0)
        Bn = np.where(ext_r, np.minimum(hi_d, X[:, -1] + 1.1 * step_r + 0.01 * (W + step_r)
                                        + 1e-12 * np.abs(X[:, -1])), Bn)
        # both ends outside but too wide: shrink to the bracket of the level set
        shrink = bad & left_ok & right_ok & ~res_ok
        if np.any(shrink):
            xa = np.where(first > 0, X[ar, np.maximum(first - 1, 0)], A)
            xb = np.where(last < n - 1, X[ar, np.minimum(last + 1, n - 1)], B)
            An = np.where(shrink, xa, An)
            Bn = np.where(shrink, xb, Bn)
        # nothing finite seen: widen both ways
        An = np.where(dead, np.maximum(lo_d, A - 2.0 * W - 1.0), An)
        Bn = np.where(dead, np.minimum(hi_d, B + 2.0 * W + 1.0), Bn)
        a[idx], b[idx] = An, np.maximum(Bn, An + 1e-300)

    # windows whose log-integrand is not resolved: adaptive refinement. Each parent is
    # split (around its kink, or in halves); where the children's sum agrees with the
    # parent to _REFINE_TOL the children's (far smaller) error is accepted, otherwise the
    # children that are not resolved themselves become parents.
    if kinked:
        par_sub = np.concatenate([kk[0] for kk in kinked])
        par_val = np.concatenate([kk[1] for kk in kinked])
        cuts = np.concatenate([split3(*kk[2:]) for kk in kinked])
        for depth in range(_SOV_DEPTH):
            m = par_sub.size
            c_par = np.repeat(np.arange(m), 3)
            c_a = cuts[:, :3].ravel()
            c_b = cuts[:, 1:].ravel()
            keep = c_b > c_a
            c_par, c_a, c_b = c_par[keep], c_a[keep], c_b[keep]
            c_sub = par_sub[c_par]
            L, X, off = evaluate_nan_free(c_sub, c_a, c_b)
            lmax = L.max(axis=1)
            val = integral(L, lmax, c_a, c_b, off)
            tot = np.full(m, -np.inf)
            np.logaddexp.at(tot, c_par, val)
            with np.errstate(invalid="ignore"):
                agree = (np.abs(tot - par_val) <= _REFINE_TOL * np.maximum(1.0, np.abs(tot))) | (
                    ~np.isfinite(tot) & ~np.isfinite(par_val))
            last = depth == _SOV_DEPTH - 1
            if last:
                agree[:] = True
            np.logaddexp.at(pres, par_sub[agree], tot[agree])
            open_ = ~agree[c_par]
            negligible = (lmax + off) < sub_lmax[c_sub] - level - 20.0
            fine = open_ & (negligible | ~np.isfinite(lmax) | smooth(L, lmax))
            np.logaddexp.at(pres, c_sub[fine], val[fine])
            nxt = open_ & ~fine
            if not np.any(nxt):
                break
            # bound the work (an integrand that is not resolved after _SOV_MAX_PANELS open
            # panels per problem is accepted as it is)
            cnt_open = np.bincount(c_sub[nxt], minlength=plo.size)
            over = nxt & (cnt_open[c_sub] > _SOV_MAX_PANELS)
            if np.any(over):
                np.logaddexp.at(pres, c_sub[over], val[over])
                nxt &= ~over
                if not np.any(nxt):
                    break
            par_sub, par_val = c_sub[nxt], val[nxt]
            cuts = split3(L[nxt], X[nxt], c_a[nxt], c_b[nxt])
    return pres

def _laplace_window(h: NDArray[np.float64], R: NDArray[np.float64], plo: NDArray[np.float64],
                    phi: NDArray[np.float64], level: float
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Initial window of the conditioning integral over y_0 in [plo, phi]: the Laplace
    approximation at the dominant point of P(Y <= h), cut to the domain."""
    a, b = _laplace_interval(h, R, np.minimum(h[:, 0], phi), level)
    rmax = math.sqrt(2.0 * level)
    span = np.minimum(rmax, np.where(np.isfinite(phi - plo), phi - plo, rmax))
    return _into_domain(a, b, plo, phi, span)


def _laplace_interval(h: NDArray[np.float64], R: NDArray[np.float64], hi: NDArray[np.float64],
                      level: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """[a, b] around the mass of y_0 <= hi from the Laplace approximation at the dominant
    point of P(Y <= h): the level set of a Gaussian in y_0, or of the tangent where the
    dominant point lies on the face y_0 = h_0 (widened by 10-20%)."""
    mu, found, nu0, var0 = _dominant_point(h, R)
    rmax = math.sqrt(2.0 * level)
    active0 = found & (var0 == 0.0)
    with np.errstate(divide="ignore"):
        w_act = np.minimum(1.2 * rmax, 1.2 * level / nu0)
    sd = np.sqrt(var0)
    a = np.where(active0, hi - w_act, mu[:, 0] - 1.1 * rmax * sd)
    b = np.where(active0, hi, np.minimum(hi, mu[:, 0] + 1.1 * rmax * sd))
    a = np.where(found, a, np.minimum(hi, 0.0) - 1.2 * rmax)
    b = np.where(found, b, hi)
    return a, b


def _into_domain(a: NDArray[np.float64], b: NDArray[np.float64], plo: NDArray[np.float64],
                 phi: NDArray[np.float64], span: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """[a, b] cut to the domain [plo, phi]; a window entirely outside it starts at the
    nearer domain end with width ``span``."""
    a = np.maximum(a, plo)
    b = np.minimum(b, phi)
    below = b <= plo
    a = np.where(below, plo, a)
    b = np.where(below, np.minimum(phi, plo + span), b)
    above_ = a >= phi
    b = np.where(above_, phi, b)
    a = np.where(above_, np.maximum(plo, phi - span), a)
    return np.minimum(a, b - 1e-300), b

