"""One EM step and the exact gradient, beside :func:`fastpath.fit_em` (both public through
:mod:`fastpath.em`): :func:`em_step` is the fast counterpart of
:func:`verified_dgn.em.em_step`, :func:`log_likelihood_gradient` the Fisher-identity gradient
of the exact log-likelihood. Formulas in :mod:`fastpath._mstep`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import check_data
from dgn_core.model import DGN
from dgn_core.priors import Prior
from dgn_core.regions import Partition
from dgn_core.validation import check_net

from ._em_options import DEFAULT_RIDGE, check_option, min_noise_floor
from ._mstep import (
    _ecm,
    _inner_gradient,
    _inner_layer_target,
    _layer_moments,
    _output_map,
    _sweep_maps,
    _Wt,
)

if TYPE_CHECKING:
    from .distributions import EStepStatistics

__all__ = ["em_step", "log_likelihood_gradient"]

Arr = NDArray[np.float64]


# =========================================================================== E-step glue
def _e_step(net: DGN, X: Arr, P: Partition) -> EStepStatistics:
    from .distributions import estep_statistics
    return estep_statistics(net, X, partition=P)


def _partition(net: DGN, max_regions: int) -> Partition:
    from .partition_walk import partition
    return partition(net, max_regions=max_regions)


# =========================================================================== one step, gradient
def em_step(net: DGN, X: ArrayLike, *, noise: str | None = None, update_prior_cov: bool = False,
            weight_prior: Prior | None = None, noise_floor: float = 0.0, ridge: float = DEFAULT_RIDGE,
            partition: Partition | None = None) -> tuple[DGN, dict[str, Any]]:
    """One M-step from one E-step at ``net``: the fast counterpart of
    :func:`verified_dgn.em.em_step` (same semantics; compared in tests/test_em_exact.py).

    From the E-step at theta = ``net``:

    * the last layer by its exact ECM update, then the noise given the new last layer (exact
      ECM, clipped at ``noise_floor``), then Sigma_z with ``update_prior_cov``;
    * for every inner layer l, the closed-form target of docs/DESIGN.md §2.5's Kronecker system with
      all other parameters at theta (the full step t = 1 that :func:`fit_em` backtracks).

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    noise : {"isotropic", "diagonal"}, optional
        Default: the net's noise model.
    update_prior_cov : bool
    weight_prior : GaussianPrior, LaplacePrior, BoxPrior or None
    noise_floor : float, default 0
        Raised to ``min_noise_floor(X)`` when below it (as in :func:`fit_em`).
    ridge : float
        Proximal ridge of the inner systems (relative to their mean diagonal).
    partition : Partition, optional
        ``fastpath.partition(net)``.

    Returns
    -------
    new_net : DGN
        ``net`` with the ECM updates (last layer, noise, Sigma_z); inner layers unchanged.
    info : dict
        ``log_likelihood`` (exact log p(X) at theta); ``last_layer`` (W (D, D_{L-1}),
        v (D,)); ``noise_var``; ``prior_cov`` (S, S) or None; ``inner`` list over l = 1..L-1
        of (W_l, v_l) targets; ``inner_system`` list of (M, r) (row-major vec of [W_l, v_l]);
        ``noise_floor_hit``.
    """
    net = check_net(net)
    X = check_data(X, dim=net.data_dim)
    noise = check_option("noise", noise)
    if noise is None:
        noise = "isotropic" if net.isotropic_noise else "diagonal"
    prior = check_option("weight_prior", weight_prior)
    floor = max(check_option("noise_floor", noise_floor), min_noise_floor(X))
    ridge = check_option("ridge", ridge)
    P = partition if partition is not None else _partition(net, 100_000)
    st = _e_step(net, X, P)
    new, hit, _ = _ecm(net, st, P, last=True, noise_mode=noise,
                       update_prior_cov=bool(update_prior_cov), prior=prior, floor=floor)
    inner, systems = [], []
    for l in range(net.n_layers - 1):
        target, system = _inner_layer_target(net, st, P, l, prior, ridge)
        inner.append((target[:, :-1], target[:, -1]))
        systems.append((system.dense(), system.r))
    info = {"log_likelihood": st.log_likelihood,
            "last_layer": (np.array(new.weights[-1]), np.array(new.biases[-1])),
            "noise_var": new.noise_var,
            "prior_cov": np.array(new.prior_cov) if update_prior_cov else None,
            "inner": inner, "inner_system": systems, "noise_floor_hit": hit}
    return new, info


def log_likelihood_gradient(net: DGN, X: ArrayLike, *, partition: Partition | None = None
                            ) -> tuple[float, dict[str, Any]]:
    """The exact log p(X) and its gradient with respect to every weight, bias and the noise.

    By Fisher's identity, grad log p(x) = E_{p(z|x)}[grad log p(x, z)], exact here because
    the posterior moments are exact; on region w, log p(x | z) is a quadratic in the
    parameters of every layer with the activation pattern frozen (it is constant near almost
    every z), so the gradient is that of the frozen-activation Q function at theta:
    r - M vec([W^l, v^l]) for layer l (docs/DESIGN.md §2.5), and for the noise
    d/d sigma_d^2 = -N / (2 sigma_d^2) + sum_n E[(x_n - g(z))_d^2 | x_n] / (2 sigma_d^4).

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition : Partition, optional

    Returns
    -------
    log_likelihood : float
    grads : dict
        ``weights``: list of (D_l, D_{l-1}) arrays; ``biases``: list of (D_l,) arrays;
        ``noise_var``: float (isotropic net) or (D,) array (diagonal). The gradient with
        respect to Sigma_z is not computed.
    """
    net = check_net(net)
    X = check_data(X, dim=net.data_dim)
    P = partition if partition is not None else _partition(net, 100_000)
    st = _e_step(net, X, P)
    sw = _sweep_maps(net, P)
    nv = np.asarray(net.noise_var_vector, dtype=np.float64)
    gW, gv = [], []
    for l in range(net.n_layers):
        Pl, pl = sw.inputs[l]
        H, Xeta, eta = _layer_moments(Pl, pl, st)
        F, c = _output_map(net, sw.slopes, l, sw.R)
        g = _inner_gradient(F, c, H, Xeta, eta, 1.0 / nv, _Wt(net, l))
        gW.append(g[:, :-1])
        gv.append(g[:, -1])
    gn = -0.5 * st.n / nv + 0.5 * st.resid2 / (nv * nv)
    return st.log_likelihood, {"weights": gW, "biases": gv,
                               "noise_var": float(gn.sum()) if net.isotropic_noise else gn}
