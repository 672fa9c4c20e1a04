"""Compatibility module: the checks of the marginal and the posterior, by their old path.

They live in :mod:`~dgn_tools.checks.marginal_checks` (Theorem 1),
:mod:`~dgn_tools.checks.posterior_checks` (posterior normalisation),
:mod:`~dgn_tools.checks.mixture_checks` (Props. 1 and 2) and
:mod:`~dgn_tools.checks.zero_noise_checks` (Lemma 2, Prop. 3), with the shared references in
:mod:`~dgn_tools.checks.distribution_reference`. Importing this module registers them all.
"""

from __future__ import annotations

from .distribution_reference import builtin_nets, joint_quadrature_1d, joint_quadrature_2d, kinks_1d
from .marginal_checks import check_theorem1
from .mixture_checks import check_prop1, check_prop2
from .posterior_checks import check_posterior_normalisation
from .zero_noise_checks import check_lemma2, check_prop3, glo_latent_1d

__all__ = [
    "builtin_nets",
    "check_lemma2",
    "check_posterior_normalisation",
    "check_prop1",
    "check_prop2",
    "check_prop3",
    "check_theorem1",
    "glo_latent_1d",
    "joint_quadrature_1d",
    "joint_quadrature_2d",
    "kinks_1d",
]
