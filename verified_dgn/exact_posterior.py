"""The exact posterior p(z | x) of a DGN (Prop. 2, docs/DESIGN.md §2.3), in mpmath.

A mixture over the regions w of truncated Gaussians ``N(z; mu_w(x), Sigma_w) 1_w(z)`` with
weights ``kappa_w(x) Phi_w / p(x)``; :func:`posterior` computes, per point and region, the
weights ``e0`` and the moments ``e1 = E[z 1_w | x]``, ``E2 = E[z z^T 1_w | x]``, and their
sums, the posterior mean and covariance. The method and the digits claimed are in
:mod:`verified_dgn.distributions`, the pruning rule in :mod:`verified_dgn.pruning`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from .integrals import PrecisionError, gaussian_moments
from .pruning import _log_bounds, _negligible, _prune_digits
from .region_forms import (
    _GUARD,
    _INT_GUARD,
    _MAX_DPS,
    _VERIFY_EXTRA,
    Obj,
    _check_dps,
    _check_net,
    _check_partition,
    _check_points,
    _ExactModel,
    _forms,
    _log_kappas,
    _log_mpf,
    _logsumexp,
    _mat_obj,
    _mpf,
    _point_state,
    _RegionForm,
    _vec_obj,
    _working_dps,
)

__all__ = ["ExactPosterior", "posterior", "posterior_discrepancy"]


@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """The exact posterior p(z | x) of every data point: a mixture of truncated Gaussians.

    All arrays are numpy object arrays of ``mpmath.mpf`` (``pruned`` is boolean). Region
    order is the order of ``partition``.

    Attributes
    ----------
    log_px : ndarray, shape (N,)
        log p(x), to ``10**-dps`` absolute.
    log_e0 : ndarray, shape (N, R)
        log P(z in w | x) (``-inf`` for pruned regions).
    e0 : ndarray, shape (N, R)
        P(z in w | x); rows sum to 1 (to ``10**-dps``).
    e1 : ndarray, shape (N, R, S)
        E[z 1_w(z) | x].
    E2 : ndarray, shape (N, R, S, S)
        E[z z^T 1_w(z) | x].
    mean : ndarray, shape (N, S)
        E[z | x].
    cov : ndarray, shape (N, S, S)
        Cov[z | x].
    gauss_mean : ndarray, shape (N, R, S)
        mu_w(x), the mean of the (untruncated) Gaussian factor of region w.
    gauss_cov : ndarray, shape (R, S, S)
        Sigma_w.
    log_kappa : ndarray, shape (N, R)
        log kappa_w(x) = log N(x; b_w, Sigma_x + A_w Sigma_z A_w^T).
    pruned : ndarray of bool, shape (N, R)
        Regions not integrated (their e0, e1, E2 are 0).
    e0_bound : ndarray, shape (N, R)
        e0 for integrated regions; a rigorous upper bound of e0 for pruned ones.
    partition : Partition
    dps : int
        Digits claimed (module notes).
    """

    log_px: Obj
    log_e0: Obj
    e0: Obj
    e1: Obj
    E2: Obj
    mean: Obj
    cov: Obj
    gauss_mean: Obj
    gauss_cov: Obj
    log_kappa: Obj
    pruned: NDArray[np.bool_]
    e0_bound: Obj
    partition: Partition
    dps: int
    _forms: list[_RegionForm] = field(repr=False, default_factory=list)
    _mu_exact: list[list[list[Fraction]]] = field(repr=False, default_factory=list)

    @property
    def n_points(self) -> int:
        return int(self.log_px.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.e0.shape[1])

    @property
    def region_weights(self) -> Obj:
        """P(z in w | x) = ``e0``, shape (N, R)."""
        return self.e0

    @property
    def region_mean(self) -> Obj:
        """E[z | x, z in w] = e1 / e0, shape (N, R, S) (0 where e0 = 0).

        One rounding, at ``dps + 10`` digits; the accuracy is that of ``e1`` (absolute,
        module notes) divided by ``e0``: regions of small weight are known less well.
        """
        N, R, S = self.e1.shape
        out = np.empty((N, R, S), dtype=object)
        with mpmath.workdps(self.dps + _GUARD):
            for n in range(N):
                for w in range(R):
                    e0 = self.e0[n, w]
                    for i in range(S):
                        out[n, w, i] = self.e1[n, w, i] / e0 if e0 > 0 else mpmath.mpf(0)
        return out

    @property
    def region_cov(self) -> Obj:
        """Cov[z | x, z in w] = E2 / e0 - (e1 / e0)(e1 / e0)^T, shape (N, R, S, S) (0 where
        e0 = 0).

        Formed as ``(e0 E2 - e1 e1^T) / e0^2`` with an exact numerator (the difference
        cancels when the region's posterior is narrow and far from the origin), rounded
        once at ``dps + 10`` digits; as for :attr:`region_mean`, the accuracy is that of
        ``E2`` and ``e1`` divided by ``e0``.
        """
        N, R, S = self.e1.shape
        out = np.empty((N, R, S, S), dtype=object)
        zero = mpmath.mpf(0)
        for n in range(N):
            for w in range(R):
                e0 = self.e0[n, w]
                e1 = self.e1[n, w]
                for i in range(S):
                    for j in range(S):
                        if not e0 > 0:
                            out[n, w, i, j] = zero
                            continue
                        num = mpmath.fsub(mpmath.fmul(e0, self.E2[n, w, i, j], exact=True),
                                          mpmath.fmul(e1[i], e1[j], exact=True), exact=True)
                        with mpmath.workdps(self.dps + _GUARD):
                            out[n, w, i, j] = num / mpmath.fmul(e0, e0, exact=True)
        return out

    def most_probable_region(self) -> NDArray[np.intp]:
        """Index of the region of largest weight (``log_e0``) for every point, shape (N,)."""
        N, R = self.log_e0.shape
        return np.array([max(range(R), key=lambda w: self.log_e0[n, w]) for n in range(N)],
                        dtype=np.intp)

    def log_density(self, Z: ArrayLike, n: int = 0, dps: int | None = None) -> Obj:
        """log p(z | x_n) by Prop. 2: ``log kappa_w + log N(z; mu_w, Sigma_w) - log p(x)``
        for the region w containing z.

        Parameters
        ----------
        Z : array_like, shape (M, S) or (S,)
            Latent points (floats, converted exactly, or Fractions).
        n : int
            Which data point.
        dps : int, optional
            Working digits (default: this posterior's ``dps``).

        Returns
        -------
        ndarray of mpf, shape (M,)
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < self.n_points:
            raise ValueError(f"n must be an index in [0, {self.n_points}), got {n!r}")
        S = self.partition.net.latent_dim
        pts = _check_points(Z, S, "Z")
        digits = _check_dps(dps) if dps is not None else self.dps
        out = []
        with mpmath.workdps(digits + _GUARD + 5):
            l2pi = mpmath.log(2 * mpmath.pi)
            for z in pts:
                w = _locate_exact(self.partition, z)
                f = self._forms[w]
                # log N(z; mu_w, Sigma_w): z - mu_w exactly (no cancellation when the
                # posterior is narrow), the quadratic form at the working precision
                dz = [_mpf(a - m) for a, m in zip(z, self._mu_exact[n][w])]
                quad = mpmath.fsum(dz[i] * _mpf(f.Lam[i][j]) * dz[j]
                                   for i in range(S) for j in range(S))
                lnorm = -(S * l2pi - _log_mpf(f.det_lam)) / 2
                out.append(self.log_kappa[n, w] + lnorm - quad / 2 - self.log_px[n])
        return _vec_obj(out)

    def __repr__(self) -> str:
        return (f"ExactPosterior({self.n_points} points, {self.n_regions} regions, latent "
                f"dimension {self.mean.shape[1]}, {int(self.pruned.sum())} pruned pairs, "
                f"dps={self.dps})")


def _locate_exact(partition: Partition, z: Sequence[Fraction]) -> int:
    """Index of a closed region containing z, decided exactly."""
    zf = np.array([float(v) for v in z])
    try:
        cand = int(partition.locate(zf[None, :])[0])
    except RuntimeError:
        cand = -1
    zo = _vec_obj(list(z))
    if cand >= 0 and partition[cand].contains(zo):
        return cand
    for i, r in enumerate(partition):
        if r.contains(zo):
            return i
    raise RuntimeError(f"point {zf} lies in no region of the partition")  # pragma: no cover


@dataclass
class _PointPosterior:
    log_px: mpmath.mpf
    log_e0: list[mpmath.mpf]
    e0: list[mpmath.mpf]
    e1: list[list[mpmath.mpf]]
    E2: list[list[list[mpmath.mpf]]]
    mean: list[mpmath.mpf]
    cov: list[list[mpmath.mpf]]
    mu: list[list[Fraction]]
    log_kappa: list[mpmath.mpf]
    pruned: list[bool]
    e0_bound: list[mpmath.mpf]


def _cancel_digits(E2: Sequence[Sequence[mpmath.mpf]], cov: Sequence[Sequence[mpmath.mpf]]) -> float:
    """Digits lost forming cov = E2 - mean mean^T: max_i log10(E2_ii / cov_ii)."""
    lost = 0.0
    for i in range(len(E2)):
        if cov[i][i] <= 0:
            return math.inf
        lost = max(lost, float(mpmath.log10(E2[i][i] / cov[i][i])))
    return lost


def _posterior_point(model: _ExactModel, forms: list[_RegionForm], x: Sequence[Fraction],
                     dps: int, prune: int | float | None, loss: float | None = None
                     ) -> _PointPosterior:
    """The posterior of one point at ``dps`` digits; ``prune``: the margin in decimal digits
    (:func:`~verified_dgn.pruning._prune_digits`), ``None`` for none; ``loss``: the digits
    ``cov = E2 - mean mean^T`` is expected to cancel (predicted when not given)."""
    S, R = model.S, len(forms)
    mus, qs = _point_state(model, forms, x)
    wp0 = _working_dps(dps, qs, model)
    with mpmath.workdps(wp0):
        lk = _log_kappas(model, forms, qs)
        lb0 = [_log_bounds(f, mu, k, False)[0] for f, mu, k in zip(forms, mus, lk)]
        order = sorted(range(R), key=lambda w: lb0[w], reverse=True)
        if loss is None:
            # digits cov = E2 - mean mean^T will cancel, predicted from the dominant region
            f, mu = forms[order[0]], mus[order[0]]
            loss = max([0.0] + [math.log10(1.0 + float(mu[i]) ** 2 / float(f.Sigma[i][i]))
                                for i in range(S)])
    q_int = dps + _INT_GUARD + math.ceil(loss)  # digits of the moment integrals
    q = dps + _GUARD + math.ceil(loss)  # digits of the rounded part
    wp = max(wp0, q + 10)
    with mpmath.workdps(wp):
        lk = _log_kappas(model, forms, qs)
        bounds = [_log_bounds(f, mu, k, True) for f, mu, k in zip(forms, mus, lk)]
        lb0 = [b[0] for b in bounds]
        lT = [b[1] for b in bounds]
        # suffix sums (log) of the bounds in integration order: e0-type, e1_i and E2_ii
        suf0 = [mpmath.ninf] * (R + 1)
        suf1 = [[mpmath.ninf] * S for _ in range(R + 1)]
        suf2 = [[mpmath.ninf] * S for _ in range(R + 1)]
        for k in range(R - 1, -1, -1):
            w = order[k]
            suf0[k] = _logsumexp([suf0[k + 1], lb0[w]])
            for i in range(S):
                suf1[k][i] = _logsumexp([suf1[k + 1][i], (lb0[w] + lT[w][i]) / 2])
                suf2[k][i] = _logsumexp([suf2[k + 1][i], lT[w][i]])
        # the margin, raised by the digits the covariance cancels (its claim's scale)
        ltol = (-(prune + math.ceil(loss)) * mpmath.log(10) if prune is not None
                else mpmath.ninf)
        lterm0: dict[int, mpmath.mpf] = {}
        raw: dict[int, tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]]]] = {}
        s0 = mpmath.mpf(0)
        s2 = [mpmath.mpf(0)] * S
        for k, w in enumerate(order):
            if prune is not None and s0 > 0 and _negligible(suf0[k], suf1[k], suf2[k], s0, s2, ltol):
                break
            f = forms[w]
            m0, m1, M2 = gaussian_moments(f.C, f.d, _vec_obj(mus[w]), _mat_obj(f.Sigma), dps=q_int)
            if m0 <= 0:
                lterm0[w] = mpmath.ninf
                raw[w] = (mpmath.mpf(0), [mpmath.mpf(0)] * S, [[mpmath.mpf(0)] * S for _ in range(S)])
                continue
            kap = mpmath.exp(lk[w])
            lterm0[w] = lk[w] + mpmath.log(m0)
            raw[w] = (m0, list(m1), [list(r) for r in M2])
            s0 += kap * m0
            for i in range(S):
                s2[i] += kap * M2[i][i]
        log_px = _logsumexp(list(lterm0.values()))
        zero = mpmath.mpf(0)
        e0: list[mpmath.mpf] = []
        le0: list[mpmath.mpf] = []
        e1: list[list[mpmath.mpf]] = []
        E2: list[list[list[mpmath.mpf]]] = []
        e0b: list[mpmath.mpf] = []
        pruned: list[bool] = []
        for w in range(R):
            if w in raw:
                _, r1, r2 = raw[w]
                fac = mpmath.exp(lk[w] - log_px)
                le = lterm0[w] - log_px
                e0.append(mpmath.exp(le) if le != mpmath.ninf else zero)
                le0.append(le)
                e1.append([fac * v for v in r1])
                E2.append([[fac * v for v in row] for row in r2])
                e0b.append(e0[-1])
                pruned.append(False)
            else:
                e0.append(zero)
                le0.append(mpmath.ninf)
                e1.append([zero] * S)
                E2.append([[zero] * S for _ in range(S)])
                e0b.append(mpmath.exp(lb0[w] - log_px))
                pruned.append(True)
        mean = [mpmath.fsum(e1[w][i] for w in range(R)) for i in range(S)]
        Et = [[mpmath.fsum(E2[w][i][j] for w in range(R)) for j in range(S)] for i in range(S)]
        cov = [[Et[i][j] - mean[i] * mean[j] for j in range(S)] for i in range(S)]
        for i in range(S):
            for j in range(i):
                cov[i][j] = cov[j][i] = (cov[i][j] + cov[j][i]) / 2
        lost = _cancel_digits(Et, cov)
    if lost > loss + _INT_GUARD - 1:
        if not math.isfinite(lost) or lost > _MAX_DPS:
            raise PrecisionError("the posterior covariance cancels to zero at "
                                 f"{q} digits; it is below the working precision")
        return _posterior_point(model, forms, x, dps, prune, loss=lost + 2)
    return _PointPosterior(log_px, le0, e0, e1, E2, mean, cov, mus, lk, pruned, e0b)



def _stack_posterior(res: list[_PointPosterior], partition: Partition, forms: list[_RegionForm],
                     dps: int) -> ExactPosterior:
    N, R = len(res), len(partition)
    S = partition.net.latent_dim

    def arr(shape: tuple[int, ...], get: Any) -> Obj:
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            out[idx] = get(*idx)
        return out

    with mpmath.workdps(dps + _GUARD + 20):
        gauss_cov = arr((R, S, S), lambda w, i, j: _mpf(forms[w].Sigma[i][j]))
        gauss_mean = arr((N, R, S), lambda n, w, i: _mpf(res[n].mu[w][i]))
    return ExactPosterior(
        log_px=_vec_obj([r.log_px for r in res]),
        log_e0=arr((N, R), lambda n, w: res[n].log_e0[w]),
        e0=arr((N, R), lambda n, w: res[n].e0[w]),
        e1=arr((N, R, S), lambda n, w, i: res[n].e1[w][i]),
        E2=arr((N, R, S, S), lambda n, w, i, j: res[n].E2[w][i][j]),
        mean=arr((N, S), lambda n, i: res[n].mean[i]),
        cov=arr((N, S, S), lambda n, i, j: res[n].cov[i][j]),
        gauss_mean=gauss_mean,
        gauss_cov=gauss_cov,
        log_kappa=arr((N, R), lambda n, w: res[n].log_kappa[w]),
        pruned=np.array([r.pruned for r in res], dtype=bool).reshape(N, R),
        e0_bound=arr((N, R), lambda n, w: res[n].e0_bound[w]),
        partition=partition,
        dps=dps,
        _forms=forms,
        _mu_exact=[r.mu for r in res],
    )


def posterior_discrepancy(a: ExactPosterior, b: ExactPosterior) -> float:
    """Largest difference of two posteriors of the same points, in the scales of the claim.

    ``max(|d log_px|, |d e0|, |d mean_i| / sqrt(E2_ii), |d e1_wi| / sqrt(E2_ii),
    |d cov_ij| / sqrt(cov_ii cov_jj), |d E2_wij| / sqrt(cov_ii cov_jj))`` with scales from
    ``b`` (``E2_ii = E[z_i^2 | x]``).
    """
    N, R, S = b.e1.shape
    with mpmath.workdps(max(a.dps, b.dps) + 30):
        r = mpmath.mpf(0)
        for n in range(N):
            r = max(r, abs(a.log_px[n] - b.log_px[n]))
            e2 = [b.cov[n, i, i] + b.mean[n, i] ** 2 for i in range(S)]
            for w in range(R):
                r = max(r, abs(a.e0[n, w] - b.e0[n, w]))
                for i in range(S):
                    r = max(r, abs(a.e1[n, w, i] - b.e1[n, w, i]) / mpmath.sqrt(e2[i]))
                    for j in range(S):
                        sc = mpmath.sqrt(b.cov[n, i, i] * b.cov[n, j, j])
                        r = max(r, abs(a.E2[n, w, i, j] - b.E2[n, w, i, j]) / sc)
            for i in range(S):
                r = max(r, abs(a.mean[n, i] - b.mean[n, i]) / mpmath.sqrt(e2[i]))
                for j in range(S):
                    sc = mpmath.sqrt(b.cov[n, i, i] * b.cov[n, j, j])
                    r = max(r, abs(a.cov[n, i, j] - b.cov[n, i, j]) / sc)
        return float(r)


def posterior(net: DGN, X: ArrayLike, *, dps: int = 30, partition: Partition | None = None,
              prune: float | bool | None = True, verify: bool = False) -> ExactPosterior:
    """The exact posterior of every row of X: log p(x), region weights and moments, in mpmath.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 4.
    X : array_like, shape (N, D) or (D,)
        Data points: floats (converted exactly), ints, Fractions or mpf.
    dps : int, default 30
        Digits claimed (module notes): log p(x) and e0 to ``10**-dps`` absolute, the mean in
        the scale ``sqrt(E[z_i^2 | x])``, the covariance in the scale ``sqrt(cov_ii cov_jj)``.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given).
    prune : float, bool or None, default True
        Skip the regions whose certified bounds on their contributions to p(x), ``e1`` and
        ``E2`` add up to less than ``exp(-margin)`` in the scales of the claims
        (:mod:`verified_dgn.pruning`); their ``e0``, ``e1``, ``E2`` are 0 and ``e0_bound``
        holds their bound. ``True``: the safe margin ``(dps + 10) ln 10`` nats; a number:
        the margin in nats, at least ``(dps + 1) ln 10``; ``False`` or ``None``: integrate
        every region.
    verify : bool, default False
        Recompute at ``dps + 15`` digits and raise :class:`PrecisionError` when the two
        differ beyond the claim; the ``dps + 15`` result is returned. The recomputation
        prunes with the safe margin of ``dps + 15`` when ``prune`` is ``True``, else with
        the same margin.

    Returns
    -------
    ExactPosterior
        log_px (N,), log_e0, e0 (N, R), e1 (N, R, S), E2 (N, R, S, S), mean (N, S),
        cov (N, S, S), gauss_mean (N, R, S), gauss_cov (R, S, S), log_kappa (N, R),
        pruned, e0_bound (N, R), partition, dps.

    Raises
    ------
    TypeError, ValueError
        As :func:`~verified_dgn.marginal.log_marginal`.
    PrecisionError
        With ``verify=True``, when the recomputation disagrees.
    """
    net = _check_net(net)
    dps = _check_dps(dps)
    margin = _prune_digits(prune, dps)
    pts = _check_points(X, net.data_dim, "X")
    partition = _check_partition(net, partition)
    model, forms = _forms(net, partition)
    res = [_posterior_point(model, forms, x, dps, margin) for x in pts]
    out = _stack_posterior(res, partition, forms, dps)
    if not verify:
        return out
    hi_margin = _prune_digits(prune, dps + _VERIFY_EXTRA, check=False)
    hi_res = [_posterior_point(model, forms, x, dps + _VERIFY_EXTRA, hi_margin) for x in pts]
    hi = _stack_posterior(hi_res, partition, forms, dps + _VERIFY_EXTRA)
    disc = posterior_discrepancy(out, hi)
    if not disc <= 10.0 ** (-dps):
        raise PrecisionError(f"posterior at dps={dps} differs from dps={dps + _VERIFY_EXTRA} by "
                             f"{disc:.3g} (claim: 1e-{dps} in the scales of the module notes)")
    return hi
