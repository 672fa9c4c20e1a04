"""The exact marginal log p(x) of a DGN (Theorem 1, docs/DESIGN.md §2.3), in mpmath.

``log p(x) = logsumexp_w(log kappa_w(x) + log Phi_w(mu_w(x), Sigma_w))`` over the regions of
the exact partition; the method and the digits claimed are in
:mod:`verified_dgn.distributions`, the pruning rule in :mod:`verified_dgn.pruning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import mpmath
from numpy.typing import ArrayLike

from dgn_core.model import DGN
from dgn_core.regions import Partition

from .integrals import PrecisionError, log_gaussian_mass
from .pruning import _log_bounds, _prune_digits
from .region_forms import (
    _INT_GUARD,
    _VERIFY_EXTRA,
    Obj,
    _check_dps,
    _check_net,
    _check_partition,
    _check_points,
    _ExactModel,
    _forms,
    _log_kappas,
    _logsumexp,
    _mat_obj,
    _point_state,
    _RegionForm,
    _vec_obj,
    _working_dps,
)

__all__ = ["log_marginal"]


def _log_marginal_point(model: _ExactModel, forms: list[_RegionForm], x: Sequence[Fraction],
                        dps: int, prune: int | float | None) -> tuple[mpmath.mpf, list[bool]]:
    """log p(x) at ``dps`` digits and which regions were skipped; ``prune``: the margin in
    decimal digits (:func:`~verified_dgn.pruning._prune_digits`), ``None`` for none."""
    mus, qs = _point_state(model, forms, x)
    R = len(forms)
    wp = _working_dps(dps, qs, model)
    with mpmath.workdps(wp):
        lk = _log_kappas(model, forms, qs)
        lb = [_log_bounds(f, mu, k, False)[0] for f, mu, k in zip(forms, mus, lk)]
        order = sorted(range(R), key=lambda w: lb[w], reverse=True)
        # suffix log-sums of the bounds in this order
        suffix = [mpmath.ninf] * (R + 1)
        for k in range(R - 1, -1, -1):
            suffix[k] = _logsumexp([suffix[k + 1], lb[order[k]]])
        tol = -prune * mpmath.log(10) if prune is not None else mpmath.ninf
        terms: list[mpmath.mpf] = []
        done = [False] * R
        acc = mpmath.ninf
        for k, w in enumerate(order):
            if prune is not None and acc != mpmath.ninf and suffix[k] - acc <= tol:
                break
            f = forms[w]
            lm = log_gaussian_mass(f.C, f.d, _vec_obj(mus[w]), _mat_obj(f.Sigma),
                                   dps=dps + _INT_GUARD)
            terms.append(lk[w] + lm)
            acc = _logsumexp(terms)
            done[w] = True
        return acc, [not t for t in done]


def log_marginal(net: DGN, X: ArrayLike, *, dps: int = 30, partition: Partition | None = None,
                 prune: float | bool | None = True, verify: bool = False) -> Obj:
    """Exact log p(x) of every row of X (Theorem 1), in mpmath.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 4.
    X : array_like, shape (N, D) or (D,)
        Data points: floats (converted exactly), ints, Fractions or mpf.
    dps : int, default 30
        Decimal digits claimed: ``log p(x)`` to ``10**-dps`` absolute, i.e. ``p(x)`` to
        ``10**-dps`` relative.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given; pass it to reuse it).
    prune : float, bool or None, default True
        Skip the regions whose certified upper bounds on ``kappa_w Phi_w`` add up to less
        than ``exp(-margin)`` of p(x) (:mod:`verified_dgn.pruning`). ``True``: the safe
        margin ``(dps + 10) ln 10`` nats, ten digits below the claim; a number: the margin in
        nats, at least ``(dps + 1) ln 10``; ``False`` or ``None``: integrate every region.
    verify : bool, default False
        Recompute at ``dps + 15`` digits; raise :class:`PrecisionError` if the two differ by
        more than ``10**-dps``; the ``dps + 15`` values are returned. The recomputation
        prunes with the safe margin of ``dps + 15`` when ``prune`` is ``True``, else with
        the same margin.

    Returns
    -------
    log_px : ndarray of mpmath.mpf, shape (N,)
        Object array.

    Raises
    ------
    TypeError, ValueError
        Not a DGN, S > 4, X of the wrong shape or with NaN / infinite entries, a bad
        ``dps``, a float64 or foreign partition; ``prune`` not a number, bool or None
        (TypeError), or a margin too small for ``dps`` (ValueError).
    PrecisionError
        With ``verify=True``, when the recomputation disagrees.

    Notes
    -----
    The cost is one Gaussian integral over a polyhedron (:func:`verified_dgn.gaussian_moments`)
    per integrated (point, region) pair. Pruning removes the regions many posterior standard
    deviations away: most of them at small noise, few when the posterior is as broad as the
    prior.
    """
    net = _check_net(net)
    dps = _check_dps(dps)
    margin = _prune_digits(prune, dps)
    pts = _check_points(X, net.data_dim, "X")
    partition = _check_partition(net, partition)
    model, forms = _forms(net, partition)
    out = _vec_obj([_log_marginal_point(model, forms, x, dps, margin)[0] for x in pts])
    if not verify:
        return out
    hi_margin = _prune_digits(prune, dps + _VERIFY_EXTRA, check=False)
    hi = _vec_obj([_log_marginal_point(model, forms, x, dps + _VERIFY_EXTRA, hi_margin)[0]
                   for x in pts])
    with mpmath.workdps(dps + _VERIFY_EXTRA + 10):
        worst = max(abs(a - b) for a, b in zip(out, hi))
    if not worst <= mpmath.mpf(10) ** (-dps):
        raise PrecisionError(f"log_marginal at dps={dps} differs from dps={dps + _VERIFY_EXTRA} "
                             f"by {mpmath.nstr(worst, 3)} (claim: 1e-{dps} absolute)")
    return hi

