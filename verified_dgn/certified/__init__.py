"""Certified values: rigorous enclosures from ball arithmetic (python-flint's arb).

Every function returns :class:`flint.arb` balls guaranteed to contain the true value, raising
its working precision until the digits asked for are certified or ``max_prec`` bits are
reached (the ball then certifies fewer: :func:`certified_decimal` says how many). The exact
geometry (partition, region forms, triangulation, Lemma 4) is :mod:`verified_dgn`'s, in
rational arithmetic; only the orthant integrals and the final logarithms are balls.

Public functions (``digits``: decimal digits asked for; ``max_prec``: bits):

* :func:`orthant_probability` ``(b, cov, *, digits, max_prec) -> arb``, ``len(b) <= 3``;
* :func:`orthant_moments` ``(b, cov, ...) -> (P, m1, M2)`` (Tallis);
* :func:`gaussian_mass` ``(C, d, mean, cov, ...) -> arb`` and :func:`gaussian_moments`
  ``-> (m0, m1, M2)`` over ``{C z <= d}``, ``S <= 3``;
* :func:`log_marginal` ``(net, X, ...) -> list[arb]`` (log p(x), absolute digits);
* :func:`posterior` ``(net, X, ...) -> list[CertifiedPosterior]`` (region weights, mean,
  covariance);
* :func:`certified_decimal` ``(ball, *, absolute=False) -> (str, n)`` and
  :func:`certified_digits`.

Arithmetic on the returned balls rounds at flint's global precision (``flint.ctx.prec``,
53 bits unless raised): do it inside ``with flint.ctx.workprec(bits):``. The working
precision is set through that global context, so the functions are not thread-safe.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._arb import DEFAULT_DIGITS, DEFAULT_MAX_PREC, certified_decimal, certified_digits

_LAZY = {
    "orthant_probability": "orthant",
    "orthant_moments": "orthant",
    "gaussian_mass": "integrals",
    "gaussian_moments": "integrals",
    "log_marginal": "marginal",
    "posterior": "posterior",
    "CertifiedPosterior": "posterior",
}

__all__ = ["certified_decimal", "certified_digits", "DEFAULT_DIGITS", "DEFAULT_MAX_PREC", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
