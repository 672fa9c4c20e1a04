"""The exact marginal p(x) and posterior p(z | x) of a DGN in high precision (Theorem 1, Prop. 2).

For the model z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) (Sigma_x diagonal),
with g(z) = A_w z + b_w on every region w of the exact partition (docs/DESIGN.md §2.3)::

    Sigma_w    = (Sigma_z^-1 + A_w^T Sigma_x^-1 A_w)^-1 = Lambda_w^-1
    mu_w(x)    = Sigma_w A_w^T Sigma_x^-1 (x - b_w)
    kappa_w(x) = N(x; b_w, Sigma_x + A_w Sigma_z A_w^T)
    p(x)       = sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w)
    p(z|x)     = p(x)^-1 sum_w 1[z in w] kappa_w(x) N(z; mu_w(x), Sigma_w)

What is exact and what is rounded:

* ``A_w, b_w`` (from :func:`verified_dgn.partition`), the parameters and ``x`` are rationals
  (every float64 is one). ``Lambda_w``, ``Sigma_w``, ``det Lambda_w``, ``mu_w(x)`` and the
  quadratic form ``Q_w(x) = (x - b_w)^T (Sigma_x + A_w Sigma_z A_w^T)^-1 (x - b_w)`` are
  computed exactly in ``Fraction`` arithmetic, without a D x D matrix: by Woodbury
  ``Q_w = r^T Sigma_x^-1 r - mu_w^T Lambda_w mu_w`` (``r = x - b_w``) and by the determinant
  lemma ``det(Sigma_x + A_w Sigma_z A_w^T) = det Sigma_x det Sigma_z det Lambda_w``, so
  ``log kappa_w = -(D log 2 pi + log det Sigma_x + log det Sigma_z + log det Lambda_w + Q_w)/2``
  is rounded once, in mpmath, at the working precision.
* ``Phi_w`` and the moments ``int_w (1, z, z z^T) N(z; mu_w, Sigma_w) dz`` come from
  :func:`verified_dgn.integrals.log_gaussian_mass` / :func:`verified_dgn.gaussian_moments`
  with the exact ``C_w, d_w, mu_w, Sigma_w``, at ``dps + 3`` digits (more for the
  posterior covariance, see below).
* Everything is combined in log space: ``log p = logsumexp_w(log kappa_w + log Phi_w)``,
  ``e0_w = exp(log kappa_w + log Phi_w - log p)`` and ``(e1_w, E2_w) = exp(log kappa_w -
  log p) (m1_w, M2_w)``; mpmath has no underflow, but values like ``exp(-1e8)`` still occur.

Pruning (``prune=True``, the default; :mod:`verified_dgn.pruning`). Certified upper bounds
of each region's contribution to p(x), ``e1`` and ``E2`` (from the region's point nearest to
mu_w in the metric Sigma_w^-1) order the regions; the loop stops once the bounds of all
remaining regions add up to less than ``exp(-margin)`` of what has been accumulated (for
the posterior: in the scales of the digit claims below). ``prune=True`` takes the safe
margin ``(dps + 10) ln 10`` nats, a number is the margin in nats (at least
``(dps + 1) ln 10``), ``False`` or ``None`` integrates every region. Pruned regions get
``e0 = e1 = E2 = 0``; :attr:`ExactPosterior.e0_bound` holds their bound. The claims below
include the pruned mass.

Digits claimed (``verify=True`` recomputes at ``dps + 15`` and raises
:class:`~verified_dgn.integrals.PrecisionError` on a disagreement beyond them):

* ``log p(x)``: absolute ``10**-dps`` (so ``p(x)`` to ``10**-dps`` relative);
* ``e0[n, w]``: absolute ``10**-dps`` (relative for regions not pruned);
* ``mean[n, i]`` and ``e1[n, w, i]``: absolute ``10**-dps * sqrt(E[z_i^2 | x])``;
* ``cov[n, i, j]``: absolute ``10**-dps * sqrt(cov_ii cov_jj)``; the working precision of the
  moments is raised by the digits that ``E[z z^T | x] - mean mean^T`` cancels (predicted from
  the dominant region, measured afterwards, and the point recomputed if the prediction was
  short), so small-noise posteriors far from the origin keep their digits.
* ``E2[n, w, i, j]``: absolute ``10**-dps * sqrt(cov_ii cov_jj)`` as well.

The code, by mathematical object: :mod:`verified_dgn.region_forms` (the exact per-region
forms and the argument checks), :mod:`verified_dgn.pruning` (nearest points, bounds, the
``prune`` option), :mod:`verified_dgn.marginal` (:func:`log_marginal`) and
:mod:`verified_dgn.exact_posterior` (:func:`posterior`, :class:`ExactPosterior`). This module
re-exports them.
"""

from __future__ import annotations

from .exact_posterior import ExactPosterior, posterior, posterior_discrepancy
from .integrals import PrecisionError
from .marginal import log_marginal

__all__ = ["ExactPosterior", "PrecisionError", "log_marginal", "posterior", "posterior_discrepancy"]

# Private names re-exported ("as" themselves): dgn_tools.checks and the tests use them by
# this module's path. To replace one in a test, patch the module that defines it.
from .exact_posterior import _posterior_point as _posterior_point
from .marginal import _log_marginal_point as _log_marginal_point
from .pruning import _log_bounds as _log_bounds
from .pruning import _nearest_point as _nearest_point
from .pruning import _negligible as _negligible
from .pruning import _prune_digits as _prune_digits
from .region_forms import _check_dps as _check_dps
from .region_forms import _check_net as _check_net
from .region_forms import _check_partition as _check_partition
from .region_forms import _check_points as _check_points
from .region_forms import _ExactModel as _ExactModel
from .region_forms import _forms as _forms
from .region_forms import _inverse_det as _inverse_det
from .region_forms import _log_const as _log_const
from .region_forms import _logsumexp as _logsumexp
from .region_forms import _mat_obj as _mat_obj
from .region_forms import _mpf as _mpf
from .region_forms import _mu_and_q as _mu_and_q
from .region_forms import _RegionForm as _RegionForm
from .region_forms import _to_fraction as _to_fraction
from .region_forms import _vec_obj as _vec_obj
