"""Gaussian integrals on polyhedra in high precision: the paper's method (docs/DESIGN.md §2.4).

For ``P = {z in R^S : C z <= d}`` (``S = 1..4``, bounded or not) and ``N(mean, cov)``:

    m0 = int_P N(z) dz,   m1 = int_P z N(z) dz,   M2 = int_P z z^T N(z) dz.

Method, exact up to the final orthant integrals:

1. ``verified_dgn.geometry.exact_polyhedron`` gives the exact facets, vertices, rays, lines
   and incidence. An empty ``P`` or one without interior gives zeros. A ``P`` containing
   lines is cut, exactly, by the hyperplane through its interior point orthogonal to a
   line direction into two halves with one line fewer (repeated until pointed); the
   whole space is the single term below.
2. ``verified_dgn.triangulation`` triangulates each pointed part (exact pulling
   triangulation of the homogenised cone: simplices, simplicial cones and simplices with
   ideal vertices).
3. Lemma 4 writes each piece's indicator as a signed sum of indicators of at most ``S``
   half-spaces (see :mod:`verified_dgn.triangulation`): the complement form for pieces
   that contain the mean, and for the others the expansion anchored at the half-space the
   mean violates most (every term then lies inside that half-space, so no term is of size
   1 when the piece is in the tail). Equal intersections of different pieces are merged
   and their integer coefficients added exactly (the triangulation is cached per
   ``(C, d)``).
4. Each intersection ``{C_J z <= d_J}`` is an orthant of ``y = C_J (z - mean) ~ N(0, K)``,
   ``K = C_J cov C_J^T``, ``y <= b = d_J - C_J mean``, whose moments come from
   :mod:`verified_dgn.orthant` (Tallis); with ``B = cov C_J^T K^{-1}`` and
   ``cov_c = cov - B C_J cov``: ``int z N = mean P + B m1_y``,
   ``int z z^T N = (cov_c + mean mean^T) P + mean (B m1_y)^T + (B m1_y) mean^T + B M2_y B^T``.

Precision. The signed sum cancels: in the tails ``m0`` is far smaller than its terms. Every
term is accurate to ``10**-q`` in its natural scale (for ``z_i`` on term ``t``:
``sigma_ti = |mean_i| sqrt(P_t) + sqrt(cov_c,ii P_t) + sum_a |B_ia| sqrt(M2_y,aa)``), so
the result loses at most ``log10(sum_t |c_t| scale_t / scale(result))`` digits; that is
measured after each pass and the pass is repeated with ``q`` raised by the digits lost
until the result has ``dps`` digits. The first ``q`` is raised in advance by the digits
the distance from the mean to the farthest violated facet predicts.

The digits claimed: ``m0`` to ``10**-dps`` relative; ``m1[i]`` to
``10**-dps * sqrt(m0 M2[i, i])``; ``M2[i, j]`` to ``10**-dps * sqrt(M2[i, i] M2[j, j])``
(components of ``m1`` and off-diagonal ``M2`` can vanish by symmetry, so they are claimed
relative to these Cauchy-Schwarz scales). ``verify=True`` recomputes at ``dps + 15`` and
raises :class:`PrecisionError` if the two results differ by more than that.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.exceptions import PrecisionError

from .integral_inputs import _check_inputs, _fraction_array
from .integrals_scale import face_projections, standardise
from .orthant import _orthant_moments_acc
from .orthant_base import _GUARD, _MAX_DIGITS, _phi_cov, _wdps, to_mpf
from .triangulation import Row, triangulate_polyhedron

__all__ = ["gaussian_moments", "log_gaussian_mass", "signed_orthant_terms", "PrecisionError"]

# --------------------------------------------------------------------------- exact part
def _pointed_parts(Cf: NDArray[Any], df: NDArray[Any], depth: int = 0) -> list[Any]:
    """Full-dimensional pointed polyhedra (ExactPolyhedron) whose union is P (disjoint
    interiors); ``[]`` when P is empty or has no interior; ``None`` entries stand for the
    whole space."""
    from .geometry import exact_polyhedron

    P = exact_polyhedron(Cf, df)
    S = Cf.shape[1]
    if P.is_empty or P.dim < S:
        return []
    if P.n_facets == 0:
        return [None]  # the whole space
    if len(P.lines) == 0:
        return [P]
    if depth > S:
        raise RuntimeError("splitting along lines did not terminate")
    # cut through the interior point, orthogonally to a line direction
    l = list(P.lines[0])
    z0 = P.interior_point
    assert z0 is not None  # P has facets and is full-dimensional here
    c = sum(a * b for a, b in zip(l, z0))
    C1 = np.vstack([P.C, np.array([l], dtype=object)])
    C2 = np.vstack([P.C, np.array([[-a for a in l]], dtype=object)])
    d1 = np.concatenate([P.d, np.array([c], dtype=object)])
    d2 = np.concatenate([P.d, np.array([-c], dtype=object)])
    return _pointed_parts(C1, d1, depth + 1) + _pointed_parts(C2, d2, depth + 1)


@functools.lru_cache(maxsize=4096)
def _pieces_cached(key: tuple[tuple[Fraction, ...], ...], S: int) -> tuple[int, tuple[Any, ...]]:
    """(number of whole-space parts, triangulation pieces) of the polyhedron ``key``."""
    m = len(key)
    Cf = np.empty((m, S), dtype=object)
    df = np.empty(m, dtype=object)
    for i, row in enumerate(key):
        Cf[i, :] = row[:S]
        df[i] = row[S]
    whole = 0
    pieces: list[Any] = []
    for P in _pointed_parts(Cf, df):
        if P is None:
            whole += 1
            continue
        pieces.extend(triangulate_polyhedron(P.vertices, P.rays, P.incidence))
    return whole, tuple(pieces)


def _merge(expansions: Any) -> tuple[tuple[int, tuple[Row, ...]], ...]:
    acc: dict[tuple[Row, ...], int] = defaultdict(int)
    for sign, rows in expansions:
        acc[tuple(sorted(rows))] += sign
    return tuple((c, rows) for rows, c in sorted(acc.items(), key=lambda t: (len(t[0]), t[0])) if c != 0)


@functools.lru_cache(maxsize=4096)
def _terms_cached(key: tuple[tuple[Fraction, ...], ...], S: int) -> tuple[tuple[int, tuple[Row, ...]], ...]:
    """Lemma 4 (complement form) over the whole polyhedron, equal orthants merged."""
    whole, pieces = _pieces_cached(key, S)
    exp: list[tuple[int, tuple[Row, ...]]] = [(1, ())] * whole
    for piece in pieces:
        exp.extend(piece.signed_terms("complement"))
    return _merge(exp)


def _anchored_terms(key: tuple[tuple[Fraction, ...], ...], S: int, mf: NDArray[Any], Kf: NDArray[Any]
                    ) -> tuple[tuple[int, tuple[Row, ...]], ...]:
    """Lemma 4 with every piece anchored at the half-space its Gaussian mean violates most
    (complement form for pieces containing the mean): no term is much larger than the
    piece's own mass, so the tails do not cancel catastrophically."""
    whole, pieces = _pieces_cached(key, S)
    mu = np.array([float(x) for x in mf])
    K = np.array([[float(x) for x in r] for r in Kf])
    exp: list[tuple[int, tuple[Row, ...]]] = [(1, ())] * whole
    for piece in pieces:
        if len(piece.C) == S:
            exp.extend(piece.signed_terms("complement"))
            continue
        Cp = np.array([[float(x) for x in r] for r in piece.C])
        dp = np.array([float(x) for x in piece.d])
        t = (dp - Cp @ mu) / np.sqrt(np.einsum("ij,jk,ik->i", Cp, K, Cp))
        a = int(np.argmin(t))
        if t[a] >= 0:
            exp.extend(piece.signed_terms("complement"))
        else:
            exp.extend(piece.anchored_terms(a))
    return _merge(exp)


def signed_orthant_terms(C: ArrayLike, d: ArrayLike) -> list[tuple[int, tuple[Row, ...]]]:
    """Lemma 4 for a whole polyhedron: ``1_P = sum_t c_t 1[O_t]`` almost everywhere.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        Ints, floats (exact) or Fractions.

    Returns
    -------
    list of (c_t, rows_t)
        Integer coefficients and orthants ``O_t = {z : c z <= e for (c..., e) in rows_t}``
        with at most ``S`` linearly independent rows each (``()`` is the whole space), over
        the triangulation of ``P`` with equal orthants merged. Empty for an empty ``P`` or
        one without interior.
    """
    Cf = _fraction_array(C, "C", 2)
    df = _fraction_array(d, "d", 1)
    if df.shape != (Cf.shape[0],):
        raise ValueError(f"d must have shape ({Cf.shape[0]},), got {df.shape}")
    S = Cf.shape[1]
    return list(_terms_cached(_key(Cf, df), S))


def _key(Cf: NDArray[Any], df: NDArray[Any]) -> tuple[tuple[Fraction, ...], ...]:
    return tuple(tuple(Cf[i]) + (df[i],) for i in range(Cf.shape[0]))


# --------------------------------------------------------------------------- numeric part
def _mat_vec(A: list[list[Any]], x: list[Any]) -> list[Any]:
    return [sum(a * b for a, b in zip(row, x)) for row in A]


def _inv(A: list[list[mpmath.mpf]]) -> list[list[mpmath.mpf]]:
    n = len(A)
    M = mpmath.matrix(A)
    Mi = mpmath.inverse(M) if n > 1 else mpmath.matrix([[1 / A[0][0]]])
    return [[Mi[i, j] for j in range(n)] for i in range(n)]


def _term_moments(rows: tuple[Row, ...], mu: list[mpmath.mpf], Sig: list[list[mpmath.mpf]],
                  q: int) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]], list[mpmath.mpf]]:
    """Moments of N(mu, Sig) on one orthant and the natural scales sigma_i of z_i on it."""
    S = len(mu)
    if not rows:
        one = mpmath.mpf(1)
        M2 = [[Sig[i][j] + mu[i] * mu[j] for j in range(S)] for i in range(S)]
        sig = [abs(mu[i]) + mpmath.sqrt(Sig[i][i]) for i in range(S)]
        return one, list(mu), M2, sig
    k = len(rows)
    CJ = [[to_mpf(r[i]) for i in range(S)] for r in rows]
    dJ = [to_mpf(r[S]) for r in rows]
    b = [dJ[a] - sum(CJ[a][i] * mu[i] for i in range(S)) for a in range(k)]
    SC = [[sum(Sig[i][p] * CJ[a][p] for p in range(S)) for a in range(k)] for i in range(S)]  # Sig C^T
    K = [[sum(CJ[a][i] * SC[i][c] for i in range(S)) for c in range(k)] for a in range(k)]
    for a in range(k):
        for c in range(a):
            K[a][c] = K[c][a]
    Ki = _inv(K)
    B = [[sum(SC[i][c] * Ki[c][a] for c in range(k)) for a in range(k)] for i in range(S)]
    Sc = [[Sig[i][j] - sum(B[i][a] * SC[j][a] for a in range(k)) for j in range(S)] for i in range(S)]
    P, m1y, M2y = _orthant_moments_acc(b, K, q)
    Bm = _mat_vec(B, m1y)
    m1 = [mu[i] * P + Bm[i] for i in range(S)]
    BM = [[sum(B[i][a] * M2y[a][c] for a in range(k)) for c in range(k)] for i in range(S)]
    M2 = [[Sc[i][j] * P + sum(BM[i][c] * B[j][c] for c in range(k)) + mu[i] * Bm[j] + Bm[i] * mu[j]
           + mu[i] * mu[j] * P for j in range(S)] for i in range(S)]
    for i in range(S):
        for j in range(i):
            M2[i][j] = M2[j][i]
    sq = [mpmath.sqrt(max(M2y[a][a], 0)) for a in range(k)]
    sqP = mpmath.sqrt(P)
    sig = [abs(mu[i]) * sqP + mpmath.sqrt(max(Sc[i][i], 0) * P) + sum(abs(B[i][a]) * sq[a] for a in range(k))
           for i in range(S)]
    return P, m1, M2, sig


def _evaluate(terms: tuple[tuple[int, tuple[Row, ...]], ...], mf: NDArray[Any], Kf: NDArray[Any],
              q: int) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]], float]:
    """Signed sum of the term moments at target ``q``; returns it and the digits lost."""
    S = mf.shape[0]
    with mpmath.workdps(_wdps(q)):
        mu = [to_mpf(x) for x in mf]
        Sig = [[to_mpf(Kf[i, j]) for j in range(S)] for i in range(S)]
        m0 = mpmath.mpf(0)
        m1 = [mpmath.mpf(0)] * S
        M2 = [[mpmath.mpf(0)] * S for _ in range(S)]
        A0 = mpmath.mpf(0)
        A1 = [mpmath.mpf(0)] * S
        A2 = [[mpmath.mpf(0)] * S for _ in range(S)]
        for c, rows in terms:
            P, t1, t2, sig = _term_moments(rows, mu, Sig, q)
            m0 += c * P
            A0 += abs(c) * P
            sqP = mpmath.sqrt(P)
            for i in range(S):
                m1[i] += c * t1[i]
                A1[i] += abs(c) * sqP * sig[i]
                for j in range(S):
                    M2[i][j] += c * t2[i][j]
                    A2[i][j] += abs(c) * sig[i] * sig[j]
        if not terms:
            return m0, m1, M2, 0.0
        if m0 <= 0 or any(M2[i][i] <= 0 for i in range(S)):
            return m0, m1, M2, math.inf
        lost = 0.0

        def ld(scale: mpmath.mpf, mag: mpmath.mpf) -> float:
            return max(0.0, float(mpmath.log10(mag / scale))) if mag > 0 else 0.0

        lost = max(lost, ld(m0, A0))
        for i in range(S):
            lost = max(lost, ld(mpmath.sqrt(m0 * M2[i][i]), A1[i]))
            for j in range(S):
                lost = max(lost, ld(mpmath.sqrt(M2[i][i] * M2[j][j]), A2[i][j]))
    return m0, m1, M2, lost


def _mahalanobis_distance(A: NDArray[np.float64], e: NDArray[np.float64], mu: NDArray[np.float64],
                          K: NDArray[np.float64]) -> float:
    """Distance, in the metric of ``K^{-1}``, from ``mu`` to ``{z : A z <= e}`` (floats).

    By enumeration of the active sets of at most ``S`` rows (the closest point is the
    projection of ``mu`` onto the face of one of them): fine for the few rows here.
    """
    if np.all(A @ mu <= e):
        return 0.0
    dists = [float(np.sqrt(max(0.0, float(lam @ G @ lam)))) for _, lam, G in face_projections(A, e, mu, K)]
    return min(dists, default=math.inf)


def _prior_loss(terms: tuple[tuple[int, tuple[Row, ...]], ...], Cf: NDArray[Any], df: NDArray[Any],
                mf: NDArray[Any], Kf: NDArray[Any]) -> float:
    """Digits the cancellation is expected to cost, predicted in floats.

    A convex set at Mahalanobis distance ``delta`` from the mean has mass at most
    ``Phi(-delta)``; the prediction is ``log10(sum_t |c_t| Phi(-delta_t) / Phi(-delta_P))``.
    A heuristic (``m0`` can be smaller than its bound): the digits actually lost are
    measured after each pass and the pass repeated if needed.
    """
    from scipy.special import log_ndtr, logsumexp

    if not terms:
        return 0.0
    mu = np.array([float(x) for x in mf])
    K = np.array([[float(x) for x in r] for r in Kf])

    def log_bound(rows: Any) -> float:
        if not rows:
            return 0.0
        A = np.array([[float(x) for x in r[:-1]] for r in rows])
        e = np.array([float(r[-1]) for r in rows])
        dist = _mahalanobis_distance(A, e, mu, K)
        return float(log_ndtr(-dist)) if math.isfinite(dist) else -math.inf

    log_terms = [math.log(abs(c)) + log_bound(rows) for c, rows in terms]
    log_m0 = log_bound([tuple(row) + (e,) for row, e in zip(Cf, df)])
    if not math.isfinite(log_m0):
        return 0.0
    return max(0.0, float(logsumexp(log_terms) - log_m0) / math.log(10.0))


def _base_loss(terms: tuple[tuple[int, tuple[Row, ...]], ...]) -> int:
    """Digits a signed sum of these terms loses even when nothing is in a tail:
    log10 of the sum of |c_t| (terms of size up to 1 adding up to a result of size ~1)."""
    return int(math.ceil(math.log10(max(1, sum(abs(c) for c, _ in terms))))) + 1


def _prior_digits(terms: tuple[tuple[int, tuple[Row, ...]], ...], Cf: NDArray[Any],
                  df: NDArray[Any], mf: NDArray[Any], Kf: NDArray[Any]) -> int:
    """The predicted tail loss with a margin (the bound ignores corners, which cost more)."""
    p = _prior_loss(terms, Cf, df, mf, Kf)
    return int(math.ceil(p * 1.1)) + (3 if p > 1 else 0)


def _cond_digits(terms: tuple[tuple[int, tuple[Row, ...]], ...], Kf: NDArray[Any]) -> float:
    """log10 of the worst condition number among the orthant covariances C_J cov C_J^T."""
    K = np.array([[float(x) for x in r] for r in Kf])
    worst = 1.0
    for _, rows in terms:
        if len(rows) < 2:
            continue
        CJ = np.array([[float(x) for x in r[:-1]] for r in rows])
        try:
            worst = max(worst, float(np.linalg.cond(CJ @ K @ CJ.T)))
        except np.linalg.LinAlgError:
            worst = math.inf
    return math.log10(worst) if math.isfinite(worst) else 30.0


def _moments(Cf: NDArray[Any], df: NDArray[Any], mf: NDArray[Any], Kf: NDArray[Any], dps: int,
             lcond: float) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]]]:
    S = Cf.shape[1]
    terms = _anchored_terms(_key(Cf, df), S, mf, Kf)
    extra = int(math.ceil(lcond + _cond_digits(terms, Kf)))
    q = dps + 3 + extra + _base_loss(terms) + _prior_digits(terms, Cf, df, mf, Kf)
    while True:
        m0, m1, M2, lost = _evaluate(terms, mf, Kf, q)
        if lost <= q - dps - 1:
            return m0, m1, M2
        if not math.isfinite(lost) or lost >= q - 2:
            lost = max(lost if math.isfinite(lost) else 0.0, 2.0 * q)
        q = dps + 3 + extra + int(math.ceil(lost))
        if q > _MAX_DIGITS:
            raise PrecisionError(f"cancellation needs more than {_MAX_DIGITS} digits")


def _to_arrays(m0: mpmath.mpf, m1: list[mpmath.mpf], M2: list[list[mpmath.mpf]]
               ) -> tuple[mpmath.mpf, NDArray[Any], NDArray[Any]]:
    S = len(m1)
    a1 = np.empty(S, dtype=object)
    a2 = np.empty((S, S), dtype=object)
    for i in range(S):
        a1[i] = m1[i]
        for j in range(S):
            a2[i, j] = M2[i][j]
    return m0, a1, a2


def _scaled_moments(Cf: NDArray[Any], df: NDArray[Any], mf: NDArray[Any], Kf: NDArray[Any],
                    dps: int, lcond: float) -> tuple[mpmath.mpf, NDArray[Any], NDArray[Any]]:
    """:func:`_moments` of the rescaled problem (:func:`verified_dgn.integrals_scale.standardise`),
    scaled back exactly (powers of two)."""
    st = standardise(Cf, df, mf, Kf, dps)
    m0, m1, M2 = _to_arrays(*_moments(st.C, st.d, st.mean, st.cov, dps, lcond))
    k = st.log2_sigma
    for i in range(len(m1)):
        m1[i] = mpmath.ldexp(m1[i], k)
        for j in range(len(m1)):
            M2[i, j] = mpmath.ldexp(M2[i, j], 2 * k)
    return m0, m1, M2


def moment_discrepancy(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> float:
    """Largest difference of two moment triples in the scales of the digit claim.

    ``max(|dm0| / m0, |dm1_i| / sqrt(m0 M2_ii), |dM2_ij| / sqrt(M2_ii M2_jj))`` with the
    scales taken from ``b``; 0 when both are zero.
    """
    m0a, m1a, M2a = a
    m0b, m1b, M2b = b
    S = len(m1b)
    with mpmath.workdps(60):
        if m0b == 0:
            return 0.0 if m0a == 0 else math.inf
        r = abs(m0a - m0b) / m0b
        for i in range(S):
            r = max(r, abs(m1a[i] - m1b[i]) / mpmath.sqrt(m0b * M2b[i, i]))
            for j in range(S):
                r = max(r, abs(M2a[i, j] - M2b[i, j]) / mpmath.sqrt(M2b[i, i] * M2b[j, j]))
        return float(r)


def gaussian_moments(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, *,
                     dps: int = 30, verify: bool = False) -> tuple[mpmath.mpf, NDArray[Any], NDArray[Any]]:
    """Moments of order 0, 1, 2 of ``N(mean, cov)`` on ``P = {z : C z <= d}``, in mpmath.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        The polyhedron, ``S`` in 1..4, ``m >= 0``; ints, floats (converted exactly) or
        Fractions. Redundant, duplicate and zero rows are allowed; ``P`` may be unbounded,
        contain lines, be empty or have no interior (then the result is zero).
    mean : array_like, shape (S,)
    cov : array_like, shape (S, S)
        The Gaussian; floats, ints, Fractions or mpf. ``cov`` must satisfy the shared
        covariance rule (:mod:`verified_dgn.covariance`: float input exactly as
        :func:`dgn_core.validation.check_covariance`, exact input in rational arithmetic);
        it is then symmetrised exactly.
    dps : int
        Decimal digits claimed (see below).
    verify : bool
        Recompute at ``dps + 15`` digits and raise :class:`PrecisionError` unless the two
        agree within the claim; the ``dps + 15`` result is returned.

    Returns
    -------
    m0 : mpmath.mpf
        ``int_P N``, to ``10**-dps`` relative.
    m1 : ndarray of mpf, shape (S,)
        ``int_P z N``; entry ``i`` to ``10**-dps * sqrt(m0 * M2[i, i])``.
    M2 : ndarray of mpf, shape (S, S)
        ``int_P z z^T N``; entry ``(i, j)`` to ``10**-dps * sqrt(M2[i, i] * M2[j, j])``.

    Raises
    ------
    TypeError
        Entries that are not numbers.
    ValueError
        Wrong shapes, NaN / infinite entries, ``S > 4``, a bad ``dps``; a ``cov`` that is
        not symmetric or not positive definite (the messages of
        :func:`dgn_core.validation.check_covariance`).
    PrecisionError
        With ``verify=True``, when the recomputation disagrees.

    Notes
    -----
    Rows are normalised and lengths divided by a power of two near the largest standard
    deviation (exact), and rows too far beyond ``P`` to change a claimed digit are dropped
    (:mod:`verified_dgn.integrals_scale`): results are invariant to rescaling the problem
    and huge finite bounds give their limit. A polyhedron more than 1e150 standard
    deviations from the mean raises ValueError.
    The paper's method: exact triangulation and Lemma 4 into orthants, Tallis moments in
    mpmath; the working precision is raised automatically by the digits lost to
    cancellation (see the module docstring), so a polygon far in the tail of the Gaussian
    costs more than one near its mean, and the cost grows steeply with ``S`` (one orthant
    of dimension up to ``S`` per term); ``benchmarks/exact_integrals.py`` measures it.
    """
    Cf, df, mf, Kf, lcond = _check_inputs(C, d, mean, cov, dps)
    res = _scaled_moments(Cf, df, mf, Kf, dps, lcond)
    if not verify:
        return res
    hi = _scaled_moments(Cf, df, mf, Kf, dps + 15, lcond)
    disc = moment_discrepancy(res, hi)
    if not disc <= 10.0 ** (-dps):
        raise PrecisionError(f"gaussian_moments at dps={dps} differs from dps={dps + 15} by "
                             f"{disc:.3g} (claim: 1e-{dps} in the natural scales)")
    return hi


def log_gaussian_mass(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, *,
                      dps: int = 30) -> mpmath.mpf:
    """``log int_P N(z; mean, cov) dz`` in high precision (``-inf`` for a null set).

    Same inputs and accuracy as :func:`gaussian_moments` (only ``m0`` is computed, through
    the orthant probabilities' moments of order 0).
    """
    Cf, df, mf, Kf, lcond = _check_inputs(C, d, mean, cov, dps)
    st = standardise(Cf, df, mf, Kf, dps)
    m0 = _mass(st.C, st.d, st.mean, st.cov, dps, lcond)
    if not m0 > 0:
        return mpmath.mpf("-inf")
    # absolute 10**-dps: the digits of |log m0| are added (log m0 reaches -1e13 in tails)
    with mpmath.workdps(dps + _GUARD + len(str(abs(int(mpmath.mag(m0)))))):
        return mpmath.log(m0)


def _mass(Cf: NDArray[Any], df: NDArray[Any], mf: NDArray[Any], Kf: NDArray[Any], dps: int,
          lcond: float) -> mpmath.mpf:
    S = Cf.shape[1]
    terms = _anchored_terms(_key(Cf, df), S, mf, Kf)
    if not terms:
        return mpmath.mpf(0)
    extra = int(math.ceil(lcond + _cond_digits(terms, Kf)))
    q = dps + 3 + extra + _base_loss(terms) + _prior_digits(terms, Cf, df, mf, Kf)
    while True:
        with mpmath.workdps(_wdps(q)):
            mu = [to_mpf(x) for x in mf]
            Sig = [[to_mpf(Kf[i, j]) for j in range(S)] for i in range(S)]
            m0 = mpmath.mpf(0)
            A0 = mpmath.mpf(0)
            for c, rows in terms:
                if not rows:
                    P = mpmath.mpf(1)
                else:
                    CJ = [[to_mpf(r[i]) for i in range(S)] for r in rows]
                    b = [to_mpf(r[S]) - sum(CJ[a][i] * mu[i] for i in range(S))
                         for a, r in enumerate(rows)]
                    K = [[sum(CJ[a][i] * Sig[i][p] * CJ[c2][p] for i in range(S) for p in range(S))
                          for c2 in range(len(rows))] for a in range(len(rows))]
                    P = _phi_cov(b, K, q)
                m0 += c * P
                A0 += abs(c) * P
            lost = math.inf if m0 <= 0 else max(0.0, float(mpmath.log10(A0 / m0)))
        if lost <= q - dps - 1:
            return m0
        if not math.isfinite(lost) or lost >= q - 2:
            lost = max(lost if math.isfinite(lost) else 0.0, 2.0 * q)
        q = dps + 3 + extra + int(math.ceil(lost))
        if q > _MAX_DIGITS:
            raise PrecisionError(f"cancellation needs more than {_MAX_DIGITS} digits")
