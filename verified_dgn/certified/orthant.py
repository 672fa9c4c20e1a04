"""Certified Gaussian orthant probabilities and their truncated moments (k = 1, 2, 3).

``P(Y <= b)`` for ``Y ~ N(0, K)``, ``b`` and ``K`` exact rationals, as an arb ball that
contains the true value. On standardised bounds ``h_i = b_i / sqrt(K_ii)`` and correlations
``R_ij``:

* ``k = 1``: ``Phi(h) = erfc(-h / sqrt 2) / 2`` (arb's ``erfc``: rigorous, relative in the
  far tail).
* ``k = 2``: ``Phi_2(h1, h2; rho) = Phi(h1) Phi(h2) + (1/2pi) int_0^{asin rho}
  exp(-(h1^2 + h2^2 - 2 h1 h2 sin t) / (2 cos^2 t)) dt`` (the arcsine form of
  ``int_0^rho phi_2(h1, h2; r) dr``).
* ``k = 3``: Plackett's identity along ``R(t) = I + t (R - I)``: ``Phi_3 = prod Phi(h_i) +
  sum_{i<j} (1/2pi) int_0^{asin r_ij} exp(-(h_i^2 + h_j^2 - 2 h_i h_j sin u)/(2 cos^2 u))
  Phi(u_k(u)) du``, ``u_k`` the standardised bound of ``Y_k`` given ``Y_i = h_i``,
  ``Y_j = h_j`` under ``R(t)`` (positive definite on the whole path, so the integrand is
  analytic near the real segment; the square root is checked with arb's ``analytic`` flag).

The integrals are ``acb.integral`` (Petras' algorithm in arb: Gauss-Legendre on ellipses
with a rigorous error bound from the integrand's bound on them), so each term is a ball.
Terms of opposite signs (negative correlations) cancel; the ball then widens and the
precision is raised (:func:`orthant_ball`) until the relative accuracy asked for is
reached. Correctness never depends on a heuristic: the absolute tolerance given to the
integrator (from the integrand's peak) only steers the work.

Truncated moments (Tallis): with ``F_j = phi(b_j; K_jj) Phi_{k-1}(b | y_j = b_j)`` and
``F_ij = phi_2(b_i, b_j) Phi_{k-2}(b | y_i = b_i, y_j = b_j)``,
``E[y 1{y <= b}] = -K F`` and ``E[y y^T 1{y <= b}] = K P + K H K`` with ``H_ij = F_ij``
(``i != j``) and ``H_ii = -(b_i / K_ii) F_i - sum_{j != i} (K_ij / K_ii) F_ij``; the
conditional bounds and covariances are exact rationals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from flint import acb, arb, ctx, fmpq
from numpy.typing import ArrayLike

from ._arb import (
    DEFAULT_DIGITS,
    DEFAULT_MAX_PREC,
    GUARD_BITS,
    ball,
    check_digits,
    digits_to_bits,
    log2_abs,
    rel_bits,
    to_fmpq,
)

__all__ = ["orthant_probability", "orthant_moments"]

#: largest orthant dimension handled
KMAX = 3

QVec = tuple[fmpq, ...]
QMat = tuple[tuple[fmpq, ...], ...]


# --------------------------------------------------------------------------- kernels (arb)
def _ncdf(x: arb) -> arb:
    return (-x / arb(2).sqrt()).erfc() / 2


def _ncdf_c(x: acb) -> acb:
    return (-x / arb(2).sqrt()).erfc() / 2


def _integral(f: Callable[[acb, bool], acb], a: arb, b: arb, peak: arb) -> arb:
    """Real ``int_a^b f``, ``a <= b``; ``peak``: an estimate of the integrand's maximum, which
    sets the absolute tolerance (the enclosure is rigorous whatever it is). A second pass
    with the tolerance taken from the first result when the first one is too coarse."""
    prec = ctx.prec
    scale = peak.abs_upper() * (b - a).abs_upper()
    if scale.is_zero() or not scale.is_finite():
        scale = arb(1)
    tol = scale * arb(2) ** (-prec)
    res = acb.integral(f, a, b, abs_tol=tol, eval_limit=200000 + 50 * prec).real
    for _ in range(3):
        if rel_bits(res) >= prec - 40 or not res.is_finite():
            break
        # the mass is far below the peak: tolerance from the result itself
        cur = res.abs_upper() if res.contains(0) else res.abs_lower()
        new_tol = cur * arb(2) ** (-prec)
        if new_tol.is_zero() or not (new_tol < tol / 4):
            break
        tol = new_tol
        res = acb.integral(f, a, b, abs_tol=tol, eval_limit=200000 + 50 * prec).real
    return res


def _asin_exponent(h: arb, k: arb, s: arb) -> arb:
    return -(h * h + k * k - 2 * h * k * s) / (2 * (1 - s * s))


def _asin_peak(h: arb, k: arb, s0: arb, s1: arb) -> arb:
    """Maximum over ``sin t`` in ``[s0, s1]`` of ``exp(_asin_exponent)``, approximately
    (the exponent is unimodal in ``s``, maximal at ``min(h/k, k/h)`` when ``hk > 0``)."""
    cands = [s0, s1]
    if (h * k) > 0:
        r = h / k if abs(h.mid()) < abs(k.mid()) else k / h
        if s0 < r < s1:
            cands.append(r)
    return max((_asin_exponent(h, k, s).mid() for s in cands), key=float).exp()


def _bvn_integral(h: arb, k: arb, t0: arb, t1: arb,
                  extra: Callable[[acb, bool], acb] | None = None) -> arb:
    """``(1/2pi) int_{t0}^{t1} exp(-(h^2 + k^2 - 2hk sin t)/(2 cos^2 t)) extra(sin t) dt``."""
    hh = h * h + k * k
    hk2 = 2 * h * k

    def g(t: acb, analytic: bool) -> acb:
        s = t.sin()
        v = (-(hh - hk2 * s) / (2 * (1 - s * s))).exp()
        if extra is not None:
            v = v * extra(s, analytic)
        return v

    peak = _asin_peak(h, k, t0.sin(), t1.sin())
    return _integral(g, t0, t1, peak) / (2 * arb.pi())


def _u_integral(a: arb, c: arb, U: arb) -> arb:
    """``int_0^U exp(-a^2/(2u^2) - c/(1+r)) / (2 pi r) du``, ``r = sqrt(1 - u^2)``, ``U < 1``.

    Near ``u = 0`` the integrand has an essential singularity (when ``a != 0``), so
    ``[0, u0]`` is replaced by the ball ``[0, u0 max]``: the integrand increases in its
    first factor and ``exp(-c/(1+r)) <= exp(max(0, -c))``, ``1/r <= 1/sqrt(1-u0^2)``;
    ``u0`` is chosen where that bound is ``2**-prec`` below the peak.
    """
    prec = ctx.prec
    cneg = max(0.0, -float(c.mid()))
    a2 = a * a

    singular = not a.is_zero()

    def g(u: acb, analytic: bool) -> acb:
        r = (1 - u * u).sqrt(analytic=analytic)
        e = -c / (1 + r) - a2 / (2 * u * u) if singular else -c / (1 + r)
        return e.exp() / (2 * arb.pi() * r)

    peak = (-a2 / (2 * U * U) + cneg).exp()
    if not singular:
        return _integral(g, arb(0), U, peak)
    T = float((a2 / (2 * U * U)).mid()) + prec * math.log(2) + abs(float(c.mid())) + 40
    u0 = arb(abs(float(a.mid())) / math.sqrt(2 * T))
    if not u0 < U:
        u0 = U / 2
    bound = u0 * (-a2 / (2 * u0 * u0) + cneg).exp() / (2 * arb.pi() * (1 - u0 * u0).sqrt())
    return _integral(g, u0, U, peak) + arb(0).union(bound.upper())


def _phi2(h: arb, k: arb, rho: arb) -> arb:
    if rho.is_zero():
        return _ncdf(h) * _ncdf(k)
    if rho < -0.1 and not (h < 0 and k < 0 and -rho * h * k > 1) and rho > -0.9:
        # the arcsine form subtracts little here (far fewer integrand calls than the u-form);
        # kept when the ball shows at most 30 bits lost
        v = _ncdf(h) * _ncdf(k) - _bvn_integral(h, k, rho.asin(), arb(0))
        if rel_bits(v) >= ctx.prec - 30:
            return v
    if rho < -0.1:
        # from rho = -1: Phi_2 = max(0, Phi(h) - Phi(-k)) + int_{-1}^{rho} phi_2, r = -sqrt(1-u^2);
        # both parts positive: no cancellation, also in the far tails
        base = _ncdf(h) - _ncdf(-k)
        base = base if base > 0 else (arb(0) if base < 0 else base.nonnegative_part())
        return base + _u_integral(h + k, -h * k, (1 - rho * rho).sqrt())
    if rho > 0.9:
        # from rho = 1: Phi_2 = Phi(min(h, k)) - int_rho^1 phi_2 (near-singular correlation:
        # the arcsine form's integrand is steep near t = asin(rho) ~ pi/2)
        low = _ncdf(h) if h < k else (_ncdf(k) if k < h else _ncdf(h).min(_ncdf(k)))
        return low - _u_integral(h - k, h * k, (1 - rho * rho).sqrt())
    base = _ncdf(h) * _ncdf(k)
    t1 = rho.asin()
    if rho > 0:
        return base + _bvn_integral(h, k, arb(0), t1)
    return base - _bvn_integral(h, k, t1, arb(0))


def _phi3(h: Sequence[arb], R: Sequence[Sequence[arb]]) -> arb:
    value = _ncdf(h[0]) * _ncdf(h[1]) * _ncdf(h[2])
    for i, j in ((0, 1), (0, 2), (1, 2)):
        k = 3 - i - j
        rij, rik, rjk = R[i][j], R[i][k], R[j][k]
        if rij.is_zero():
            continue  # r_ij(t) = 0 along the whole path
        hi_, hj, hk = h[i], h[j], h[k]

        def cond(s: acb, analytic: bool, rij: arb = rij, rik: arb = rik, rjk: arb = rjk,
                 hi_: arb = hi_, hj: arb = hj, hk: arb = hk) -> acb:
            t = s / rij
            a, b = t * rik, t * rjk  # corr(Y_k, Y_i), corr(Y_k, Y_j) on the path
            c2 = 1 - s * s
            m = ((a - s * b) * hi_ + (b - s * a) * hj) / c2
            var = (c2 - a * a - b * b + 2 * s * a * b) / c2
            return _ncdf_c((hk - m) / var.sqrt(analytic=analytic))

        u1 = rij.asin()
        if rij > 0:
            value += _bvn_integral(hi_, hj, arb(0), u1, cond)
        else:
            value -= _bvn_integral(hi_, hj, u1, arb(0), cond)
    return value


def _standardised(b: Sequence[arb], K: Sequence[Sequence[arb]]) -> tuple[list[arb], list[list[arb]]]:
    n = len(b)
    sd = [K[i][i].sqrt() for i in range(n)]
    h = [b[i] / sd[i] for i in range(n)]
    R = [[arb(1) if i == j else K[i][j] / (sd[i] * sd[j]) for j in range(n)] for i in range(n)]
    return h, R


def _orthant_at_prec(b: QVec, K: QMat) -> arb:
    """P(Y <= b), Y ~ N(0, K), at the current precision (a ball, possibly wide)."""
    n = len(b)
    if n == 0:
        return arb(1)
    bb = [ball(x) for x in b]
    KK = [[ball(x) for x in row] for row in K]
    h, R = _standardised(bb, KK)
    if n == 1:
        return _ncdf(h[0])
    if n == 2:
        return _phi2(h[0], h[1], R[0][1])
    if n == 3:
        return _phi3(h, R)
    raise ValueError(f"orthants of dimension up to {KMAX} are certified, got {n}")


def _start_prec(b: QVec, K: QMat, bits: int) -> int:
    """First working precision: the target, guard bits and the bits of the largest exponent
    (``b_i^2 / K_ii`` over the smallest eigenvalue scale, roughly), which the exponentials
    need in absolute accuracy."""
    big = 1.0
    for i, x in enumerate(b):
        v = float(x * x / K[i][i]) if K[i][i] != 0 else 1.0
        big = max(big, v)
    return bits + GUARD_BITS + int(math.log2(1.0 + big)) + 8 * len(b)


@functools.lru_cache(maxsize=65536)
def orthant_ball(b: QVec, K: QMat, bits: int, max_prec: int, abs_log2: int | None = None) -> arb:
    """P(Y <= b) to ``bits`` relative bits, or to an absolute radius of ``2**abs_log2`` when
    that is reached first (a term far below the sum it enters needs no relative digits),
    raising the working precision past cancellation up to ``max_prec`` (then the best ball
    is returned). Exact inputs, cached."""
    prec = min(_start_prec(b, K, bits), max_prec)
    best: arb | None = None
    while True:
        with ctx.workprec(prec):
            v = _orthant_at_prec(b, K)
        got = rel_bits(v)
        if best is None or got > rel_bits(best) or (got == -math.inf and best.rad() > v.rad()):
            best = v
        if got >= bits or prec >= max_prec:
            return best
        if abs_log2 is not None and log2_abs(v.rad()) <= abs_log2:
            return v
        if math.isfinite(got):
            prec = min(max_prec, max(prec + 32, int(prec + bits - got + 16)))
        else:
            prec = min(max_prec, max(prec + 64, int(prec * 1.5)))


# --------------------------------------------------------------------------- exact conditioning
def conditional(b: QVec, K: QMat, fix: Sequence[int]) -> tuple[QVec, QMat, fmpq, list[int]]:
    """Bounds and covariance of the other coordinates given ``y_fix = b_fix`` (exact), the
    quadratic form ``b_fix^T K_ff^-1 b_fix`` and the other indices."""
    n = len(b)
    rest = [i for i in range(n) if i not in fix]
    f = list(fix)
    Kff = [[K[i][j] for j in f] for i in f]
    inv = _inv_small(Kff)
    bf = [b[i] for i in f]
    w = [sum((inv[p][q] * bf[q] for q in range(len(f))), fmpq(0)) for p in range(len(f))]
    quad = sum((bf[p] * w[p] for p in range(len(f))), fmpq(0))
    nb = tuple(b[r] - sum((K[r][f[p]] * w[p] for p in range(len(f))), fmpq(0)) for r in rest)
    nK = tuple(tuple(K[r][c] - sum((K[r][f[p]] * inv[p][q] * K[f[q]][c]
                                    for p in range(len(f)) for q in range(len(f))), fmpq(0))
                     for c in rest) for r in rest)
    return nb, nK, quad, rest


def _inv_small(M: list[list[fmpq]]) -> list[list[fmpq]]:
    n = len(M)
    if n == 1:
        return [[1 / M[0][0]]]
    if n == 2:
        det = M[0][0] * M[1][1] - M[0][1] * M[1][0]
        return [[M[1][1] / det, -M[0][1] / det], [-M[1][0] / det, M[0][0] / det]]
    raise ValueError("conditioning on more than two coordinates")


def _det_small(M: list[list[fmpq]]) -> fmpq:
    if len(M) == 1:
        return M[0][0]
    return M[0][0] * M[1][1] - M[0][1] * M[1][0]


def _density(quad: fmpq, det: fmpq, dim: int) -> arb:
    """``exp(-quad/2) / sqrt((2 pi)^dim det)`` as a ball."""
    return (-ball(quad) / 2).exp() / ((2 * arb.pi()) ** dim * ball(det)).sqrt()


def moments_ball(b: QVec, K: QMat, bits: int, max_prec: int, abs_log2: int | None = None
                 ) -> tuple[arb, list[arb], list[list[arb]]]:
    """(P, E[y 1], E[y y^T 1]) of the orthant ``y <= b``, ``y ~ N(0, K)`` (Tallis), every
    orthant probability to ``bits`` relative bits; the working precision of the rational
    parts is set from ``bits``."""
    n = len(b)
    P = orthant_ball(b, K, bits, max_prec, abs_log2)
    with ctx.workprec(min(max_prec, bits + 2 * GUARD_BITS)):
        F: list[arb] = []
        for j in range(n):
            nb, nK, quad, _ = conditional(b, K, [j])
            F.append(_density(quad, K[j][j], 1) * orthant_ball(nb, nK, bits, max_prec, abs_log2))
        Fp: dict[tuple[int, int], arb] = {}
        for i in range(n):
            for j in range(i + 1, n):
                nb, nK, quad, _ = conditional(b, K, [i, j])
                det = _det_small([[K[i][i], K[i][j]], [K[j][i], K[j][j]]])
                Fp[i, j] = Fp[j, i] = _density(quad, det, 2) * orthant_ball(nb, nK, bits, max_prec, abs_log2)
        KK = [[ball(x) for x in row] for row in K]
        m1 = [-sum((KK[i][j] * F[j] for j in range(n)), arb(0)) for i in range(n)]
        H = [[arb(0)] * n for _ in range(n)]
        for i in range(n):
            for j in range(n):
                if i != j:
                    H[i][j] = Fp[i, j]
            H[i][i] = -(ball(b[i]) / KK[i][i]) * F[i] - sum(
                ((KK[i][j] / KK[i][i]) * Fp[i, j] for j in range(n) if j != i), arb(0))
        KH = [[sum((KK[i][p] * H[p][j] for p in range(n)), arb(0)) for j in range(n)]
              for i in range(n)]
        M2 = [[KK[i][j] * P + sum((KH[i][p] * KK[p][j] for p in range(n)), arb(0))
               for j in range(n)] for i in range(n)]
        for i in range(n):
            for j in range(i):
                M2[i][j] = M2[j][i]
    return P, m1, M2


# --------------------------------------------------------------------------- public functions
def _check_args(b: ArrayLike, cov: ArrayLike) -> tuple[QVec, QMat, list[int], bool]:
    """Exact (finite part of) b and cov; indices kept; whether some bound is -inf."""
    from ..covariance import check_covariance_rule

    bb = b if isinstance(b, np.ndarray) else np.asarray(b, dtype=object)
    if bb.ndim != 1:
        raise ValueError(f"b must be 1-dimensional, got shape {bb.shape}")
    k = bb.shape[0]
    if k > KMAX:
        raise ValueError(f"orthants of dimension up to {KMAX} are certified, got len(b) = {k}")
    KK = cov if isinstance(cov, np.ndarray) else np.asarray(cov, dtype=object)
    if KK.shape != (k, k):
        raise ValueError(f"cov must have shape ({k}, {k}) to match len(b) = {k}, got {KK.shape}")
    Kq = [[to_fmpq(KK[i, j], "cov") for j in range(k)] for i in range(k)]
    check_covariance_rule(KK, "cov")
    for i in range(k):
        for j in range(i):
            Kq[i][j] = Kq[j][i] = (Kq[i][j] + Kq[j][i]) / 2
    keep: list[int] = []
    bq: list[fmpq] = []
    neg_inf = False
    for i in range(k):
        v = bb[i]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and math.isinf(v):
            if v < 0:
                neg_inf = True
            continue
        keep.append(i)
        bq.append(to_fmpq(v, "b"))
    Kk = tuple(tuple(Kq[i][j] for j in keep) for i in keep)
    return tuple(bq), Kk, keep, neg_inf


def orthant_probability(b: ArrayLike, cov: ArrayLike, *, digits: int = DEFAULT_DIGITS,
                        max_prec: int = DEFAULT_MAX_PREC) -> arb:
    """Certified ``P(Y <= b)`` for ``Y ~ N(0, cov)``, ``len(b) <= 3``.

    Parameters
    ----------
    b : array_like, shape (k,)
        Bounds: ints, floats (exact binary values), Fractions or mpf; ``+-inf`` allowed.
    cov : array_like, shape (k, k)
        Symmetric positive definite (the shared covariance rule,
        :mod:`verified_dgn.covariance`), converted exactly and symmetrised.
    digits : int, default 30
        Relative decimal digits asked for; the precision is raised until the ball is that
        narrow or ``max_prec`` bits are reached (then the ball certifies fewer digits:
        :func:`~verified_dgn.certified.certified_decimal` says how many).
    max_prec : int, default 8192
        Ceiling of the working precision in bits.

    Returns
    -------
    flint.arb
        A ball guaranteed to contain the probability.

    Raises
    ------
    TypeError, ValueError
        Entries that are not numbers, NaN, wrong shapes, ``k > 3``, a covariance that is not
        symmetric positive definite, bad ``digits`` / ``max_prec``.
    """
    digits, max_prec = check_digits(digits, max_prec)
    bq, Kq, _, neg_inf = _check_args(b, cov)
    if neg_inf:
        return arb(0)
    return orthant_ball(bq, Kq, digits_to_bits(digits) + 4, max_prec)


def orthant_moments(b: ArrayLike, cov: ArrayLike, *, digits: int = DEFAULT_DIGITS,
                    max_prec: int = DEFAULT_MAX_PREC) -> tuple[arb, list[arb], list[list[arb]]]:
    """Certified ``(P, E[Y 1{Y <= b}], E[Y Y^T 1{Y <= b}])`` for ``Y ~ N(0, cov)``.

    Finite ``b`` only (``len(b) <= 3``). Every orthant probability inside (Tallis formulas,
    module docstring) is certified to ``digits`` relative digits; the moments' balls carry
    the cancellation of the formulas (their widths are rigorous, their relative size is not
    controlled for components that vanish). Same inputs and errors as
    :func:`orthant_probability`.

    Returns
    -------
    P : flint.arb
    m1 : list of flint.arb, length k
    M2 : list of list of flint.arb, shape (k, k)
    """
    digits, max_prec = check_digits(digits, max_prec)
    bq, Kq, keep, neg_inf = _check_args(b, cov)
    if neg_inf or len(keep) != np.asarray(b, dtype=object).shape[0]:
        raise ValueError("orthant_moments needs finite bounds b")
    return moments_ball(bq, Kq, digits_to_bits(digits) + 4, max_prec)

