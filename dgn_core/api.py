"""The backend contract: the functions and the posterior type both backends provide.

``verified_dgn`` (exact: rational geometry, mpmath values) and ``fastpath`` (float64) are
two implementations of one API, in the way pycddlib offers one API over two number types.
This module writes that API down once:

- :data:`BACKEND_FUNCTIONS`: the shared functions, each with its positional parameters and
  the keyword-only options both backends accept with the same meaning and default;
- :class:`Backend`: the same as a Protocol, for type checkers;
- :class:`PosteriorLike`: what both posterior types provide.

The rules (checked by ``tests/contract/test_conformance.py``):

1. A shared function has the same positional parameters, with the same names and order,
   in both backends.
2. Every other parameter is keyword-only. Precision options (``dps``, ``verify``) exist in
   the exact backend only; performance options (``chunk_size``) in the fast one only.
3. A shared option (:data:`SHARED_OPTIONS`) has the same default and meaning in both.
4. Bad input raises the same exception type in both (``tests/contract/``).

Where the two differ in value type, that is the point of the two backends: the exact
backend returns ``mpmath.mpf`` values (object arrays) and ``Fraction`` geometry, the fast
backend float64 arrays. One difference in scope remains: the fast orthant functions accept
a singular (positive semi-definite) covariance, treating |rho| = 1 as the degenerate
lower-dimensional case, while the exact ones require a positive-definite one (ValueError).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from numpy.typing import ArrayLike

from .model import DGN
from .regions import Partition

__all__ = ["BACKEND_FUNCTIONS", "SHARED_OPTIONS", "Backend", "PosteriorLike"]

# The ``prune`` option means the same in both backends: (point, region) pairs whose
# certified upper bound on their share of p(x) is below exp(-margin) are not integrated
# (their bound is still added to the error budget). ``True`` (the default) takes each
# backend's safe margin: 60 nats in float64 (24 nats below its resolution), and
# (dps + 10) * ln(10) nats in the exact backend (so pruning never touches the claimed
# digits); a number is the margin in nats (the exact backend refuses one too small for its
# dps); ``False`` or ``None`` integrates every pair.

#: shared function -> its positional parameters, in order
BACKEND_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "partition": ("net",),
    "gaussian_moments": ("C", "d", "mean", "cov"),
    "log_gaussian_mass": ("C", "d", "mean", "cov"),
    "orthant_probability": ("b", "cov"),
    "log_orthant_probability": ("b", "cov"),
    "log_marginal": ("net", "X"),
    "posterior": ("net", "X"),
    "em_step": ("net", "X"),
}

#: shared function -> {keyword-only option: default}, the same in both backends
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "partition": {"max_regions": 100_000, "start": None, "progress": False},
    "gaussian_moments": {},
    "log_gaussian_mass": {},
    "orthant_probability": {},
    "log_orthant_probability": {},
    "log_marginal": {"partition": None, "prune": True},
    "posterior": {"partition": None, "prune": True},
    "em_step": {"noise": None, "update_prior_cov": False, "weight_prior": None,
                "noise_floor": 0.0, "ridge": 1e-6, "partition": None},
}


@runtime_checkable
class PosteriorLike(Protocol):
    """The posterior p(z | x) of N points over the R regions of a partition.

    Both ``fastpath.posterior`` (float64 arrays) and ``verified_dgn.posterior`` (object
    arrays of ``mpmath.mpf``) return objects with these attributes; ``S`` is the latent
    dimension.
    """

    #: log p(x), shape (N,)
    log_px: Any
    #: log P(z in w | x), shape (N, R); -inf for pruned pairs
    log_e0: Any
    #: P(z in w | x), shape (N, R); rows sum to 1
    e0: Any
    #: E[z 1_w(z) | x], shape (N, R, S)
    e1: Any
    #: E[z z^T 1_w(z) | x], shape (N, R, S, S)
    E2: Any
    #: E[z | x], shape (N, S)
    mean: Any
    #: Cov[z | x], shape (N, S, S)
    cov: Any
    #: the regions, in the order of the R axis
    partition: Partition

    @property
    def n_points(self) -> int: ...

    @property
    def n_regions(self) -> int: ...

    @property
    def region_weights(self) -> Any: ...

    @property
    def region_mean(self) -> Any: ...

    @property
    def region_cov(self) -> Any: ...

    def most_probable_region(self) -> Any: ...

    def log_density(self, Z: ArrayLike, n: int = 0) -> Any:
        """log p(z | x_n) at the latent points ``Z`` (M, S), shape (M,)."""
        ...


class Backend(Protocol):
    """The functions both ``verified_dgn`` and ``fastpath`` provide (module-level)."""

    def partition(self, net: DGN, *, max_regions: int = ..., start: ArrayLike | None = ...,
                  progress: bool = ...) -> Partition: ...

    def gaussian_moments(self, C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
                         ) -> tuple[Any, Any, Any]: ...

    def log_gaussian_mass(self, C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
                          ) -> Any: ...

    def orthant_probability(self, b: ArrayLike, cov: ArrayLike) -> Any: ...

    def log_orthant_probability(self, b: ArrayLike, cov: ArrayLike) -> Any: ...

    def log_marginal(self, net: DGN, X: ArrayLike, *, partition: Partition | None = ...,
                     prune: float | bool | None = ...) -> Any: ...

    def posterior(self, net: DGN, X: ArrayLike, *, partition: Partition | None = ...,
                  prune: float | bool | None = ...) -> PosteriorLike: ...

    def em_step(self, net: DGN, X: ArrayLike, *, noise: str | None = ...,
                update_prior_cov: bool = ..., weight_prior: Any = ...,
                noise_floor: float = ..., ridge: float = ...,
                partition: Partition | None = ...) -> tuple[DGN, dict[str, Any]]: ...

