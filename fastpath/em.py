"""Exact, monotone EM training of a DGN (DESIGN.md 2.5).

The model: z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) with g continuous
piecewise affine. Every quantity used here is exact up to float64 rounding: the E-step
moments come from :func:`fastpath.distributions.estep_statistics` (per-region sufficient
statistics of the exact posterior) and the log-likelihood log p(X) = sum_n log p(x_n) from
:func:`fastpath.log_marginal` (Theorem 1).

One iteration of :func:`fit_em` (a "sweep")
------------------------------------------
1. **ECM step of the last layer and the noise** (and of Sigma_z with ``update_prior_cov``),
   from the E-step at the current parameters theta. The partition of the latent space does
   not depend on these parameters, so the Q function is exactly quadratic in (W^L, v^L) and
   exactly maximised in Sigma_x / Sigma_z: these are exact EM (ECM) steps and the exact
   log-likelihood (plus log prior) cannot decrease. It is recomputed anyway; a step that
   decreases it by more than ``ECM_RTOL * (|objective| + N)`` (rounding) is rejected and
   reported in :attr:`EMResult.ecm_rejected`.
2. **Inner layers**, one at a time from layer L-1 down to layer 1 (coordinate ascent with a
   fresh E-step before each layer). Moving W^l moves the partition, so the closed-form
   maximiser of the frozen-activation surrogate (the Kronecker system of docs/DESIGN.md §2.5) is not
   an EM step. It is used as a search direction: theta(t) = theta + t (theta_cf - theta),
   t = t0, t0/2, t0/4, ... (``max_halvings`` halvings) until the exact objective
   (log p(X) + log prior, recomputed with a new partition of theta(t)) does not decrease;
   if no t is accepted the layer keeps its weights. t0 is twice the layer's previous
   accepted step, capped at 1. The surrogate's gradient at theta equals the gradient of the
   exact log-likelihood (Fisher's identity: the activation pattern is constant near almost
   every z), so the direction is an ascent direction and small enough steps succeed.

Hence the history of the exact objective is non-decreasing by construction: inner-layer
steps are accepted only when the computed objective does not decrease, and ECM steps only
when it does not decrease beyond rounding. With no weight prior the objective is log p(X).

M-step formulas (docs/DESIGN.md §2.5). On region w, with the input of layer l affine in z,
a^{l-1}(z) = P_w z + p_w (P = I, p = 0 for l = 1), h~ = [a^{l-1}; 1], and the output
g(z) = F_w (W^l a^{l-1} + v^l) + c_w (F = I, c = 0 for l = L)::

    eta_nw = E[h~ 1_w | x_n] = [P e1 + p e0; e0]
    H_nw   = E[h~ h~^T 1_w | x_n]
    last layer:   Wt^L = [sum_n x_n E[h~|x_n]^T] [sum_n E[h~ h~^T|x_n]]^-1
    inner layer:  [sum_w F_w^T Sigma_x^-1 F_w (x) sum_n H_nw] vec(Wt) =
                  vec(sum_{n,w} F_w^T Sigma_x^-1 (x_n - c_w) eta_nw^T)

with Wt = [W, v] and ``vec`` the row-major flattening (which swaps the Kronecker factors of
DESIGN's column-major form). Sums over n are the per-region statistics s0, s1, S2, x0, x1 of
the E-step. The inner system is rank-deficient when the layer's input lies on a
low-dimensional set (S = 1): a proximal ridge lambda (vec(Wt) - vec(Wt_old)) with lambda =
``ridge`` times the mean diagonal of the system keeps it solvable and leaves directions the
data does not determine unchanged. A Gaussian weight prior adds 1/var to the diagonal
(ridge towards 0, a MAP update); Laplace (L1) and box priors turn the same quadratic into a
convex QP, solved with cvxpy (CLARABEL).

Weight priors apply to the weight matrices W^1..W^L (not to the biases, the noise or
Sigma_z). With a prior, EM maximises log p(X) + log p(W) (MAP); that objective is the
monotone quantity and is reported in :attr:`EMResult.objective` beside the log-likelihood.

The unbounded likelihood (Mattei & Frellsen 2018): as a generator passes through data points
the likelihood grows without bound as sigma^2 -> 0. The noise update is clipped at
``noise_floor`` (the maximiser of Q over [floor, inf), still an exact ECM step since Q is
unimodal in sigma^2); iterations where the floor binds are listed in
:attr:`EMResult.noise_floor_hit` and flagged in the progress line.

The noise update needs sum_n E[(x_n - g(z))^2 | x_n] under the *new* last layer; it is the
E-step's residual (computed in residual form, no cancellation at small noise) corrected to
first order in the last layer's change, r_new = r_old - 2 diag(dW G) + diag(dW Hh dW^T).

Cost of one iteration: one E-step with moments after the ECM step, and per inner layer a
partition of every backtracking trial net with the E-step of the first trial (which is
usually accepted and then provides the next layer's moments) and log p(X) alone (no
moments) for later trials, plus one E-step when a later trial is accepted. Measured on a loaded 2-core machine
(benchmarks/em.py): 0.1-0.2 s per iteration for widths (1, 8, 8, 2) on N = 1000 points,
0.7 s for (1, 32, 32, 2), 30 s for (2, 16, 16, 3) on N = 500 (S = 2: the E-step over ~400
polygons dominates).

Convergence: EM stops when the objective gains less than ``tol`` per point in one
iteration (or nothing at all); with the exact history this is a statement about the exact
log-likelihood, not a bound. Reproducibility: no random numbers are drawn; given (net, X,
options) and a fixed BLAS thread count (``blas_threads``, default 1) a run is reproducible
bit for bit, and so is a run resumed from a checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg as sla

from dgn_core.data import check_data
from dgn_core.exceptions import ConvergenceWarning, RegionLimitError
from dgn_core.io import atomic_write_npz
from dgn_core.model import DGN
from dgn_core.priors import (
    BoxPrior,
    GaussianPrior,
    LaplacePrior,
    Prior,
    check_prior,
    log_prior,
    parse_prior,
)
from dgn_core.regions import Partition

__all__ = [
    "ECM_RTOL",
    "BoxPrior",
    "ConvergenceWarning",
    "EMIteration",
    "EMResult",
    "GaussianPrior",
    "LaplacePrior",
    "em_step",
    "fit_em",
    "log_likelihood_gradient",
    "parse_prior",
]

Arr = NDArray[np.float64]

#: relative rounding tolerance of an exact ECM step: a step whose exact objective falls by
#: more than ECM_RTOL * (|objective| + N) is rejected (log p(x) is accurate to ~1e-13
#: relative per point; summing N terms adds ~N eps relative)
ECM_RTOL = 1e-10
#: default proximal ridge of the inner-layer systems, relative to their mean diagonal
DEFAULT_RIDGE = 1e-6
#: relative eigenvalue cut-off below which the last layer's normal matrix is singular
_RANK_RTOL = 1e-13
_CHECKPOINT_FORMAT = "fastpath.EMCheckpoint"
_CHECKPOINT_VERSION = 1
_UPDATES = ("layers", "last", "noise")


# =========================================================================== region maps
def _hidden_slopes(net: DGN, signs: NDArray[np.int8]) -> list[Arr]:
    """The diagonals of D^l_w for every hidden layer: list of (R, D_l) arrays."""
    out, start = [], 0
    for w in net.hidden_widths:
        out.append(np.where(signs[:, start:start + w] > 0, 1.0, net.slope))
        start += w
    return out


def _input_maps(net: DGN, slopes: Sequence[Arr], R: int) -> list[tuple[Arr, Arr]]:
    """Input of every layer as an affine map of z on every region.

    Returns
    -------
    list of (P, p), one per layer l = 1..L (index l - 1)
        a^{l-1}(z) = P z + p on region w, P of shape (R, D_{l-1}, S), p of shape
        (R, D_{l-1}); (I, 0) for the first layer.
    """
    S = net.latent_dim
    P = np.broadcast_to(np.eye(S), (R, S, S))
    p = np.zeros((R, S))
    out = [(P, p)]
    for l in range(net.n_layers - 1):
        W, v = net.weights[l], net.biases[l]
        d = slopes[l]
        P = d[:, :, None] * np.matmul(W, P)
        p = d * (p @ W.T + v)
        out.append((P, p))
    return out


def _output_map(net: DGN, slopes: Sequence[Arr], l: int, R: int) -> tuple[Arr, Arr]:
    """The output as an affine map of layer l's pre-activation (l = 0..L-1, 0-based).

    g(z) = F_w (W^l a^{l-1} + v^l) + c_w on region w (docs/DESIGN.md §2.5: F^L = I, c^L = 0,
    F^l = F^{l+1} W^{l+1} D^l_w, c^l = c^{l+1} + F^{l+1} v^{l+1}).

    Returns
    -------
    F : ndarray, shape (R, D, D_l)
    c : ndarray, shape (R, D)
    """
    L, D = net.n_layers, net.data_dim
    F = np.broadcast_to(np.eye(D), (R, D, D))
    c = np.zeros((R, D))
    for k in range(L - 1, l, -1):   # k: 0-based index of the layer above
        W, v = net.weights[k], net.biases[k]
        c = c + F @ v
        F = np.matmul(F, W) * slopes[k - 1][:, None, :]
    return np.ascontiguousarray(F), c


def _layer_moments(P: Arr, p: Arr, st: Any) -> tuple[Arr, Arr, Arr]:
    """Per-region sums over the data of the moments of h~ = [P z + p; 1].

    Parameters
    ----------
    P : ndarray, shape (R, K-1, S)
    p : ndarray, shape (R, K-1)
    st : EStepStatistics
        s0 (R,), s1 (R, S), S2 (R, S, S), x0 (R, D), x1 (R, D, S).

    Returns
    -------
    H : ndarray, shape (R, K, K)
        sum_n E[h~ h~^T 1_w | x_n].
    Xeta : ndarray, shape (R, D, K)
        sum_n x_n E[h~ 1_w | x_n]^T.
    eta : ndarray, shape (R, K)
        sum_n E[h~ 1_w | x_n].
    """
    R, Km1, _ = P.shape
    s0, s1, S2 = st.s0, st.s1, st.S2
    Ps1 = np.einsum("rks,rs->rk", P, s1)
    hz1 = Ps1 + p * s0[:, None]                                              # (R, K-1)
    PS2P = np.einsum("rks,rst,rjt->rkj", P, S2, P)
    cross = Ps1[:, :, None] * p[:, None, :]
    Hzz = PS2P + cross + np.swapaxes(cross, 1, 2) + s0[:, None, None] * p[:, :, None] * p[:, None, :]
    H = np.empty((R, Km1 + 1, Km1 + 1))
    H[:, :Km1, :Km1] = 0.5 * (Hzz + np.swapaxes(Hzz, 1, 2))
    H[:, :Km1, Km1] = hz1
    H[:, Km1, :Km1] = hz1
    H[:, Km1, Km1] = s0
    D = st.x0.shape[1]
    Xeta = np.empty((R, D, Km1 + 1))
    Xeta[:, :, :Km1] = np.einsum("rds,rks->rdk", st.x1, P) + st.x0[:, :, None] * p[:, None, :]
    Xeta[:, :, Km1] = st.x0
    eta = np.concatenate([hz1, s0[:, None]], axis=1)
    return H, Xeta, eta


# =========================================================================== M-step pieces
def _last_layer_update(Hh: Arr, Xh: Arr, Wt_old: Arr, noise: Arr, prior: Prior | None) -> Arr:
    """Exact ECM update of the last layer, Wt = [W^L, v^L].

    Maximises Q(Wt) = -1/2 sum_d [Wt_d Hh Wt_d^T - 2 Xh_d . Wt_d] / sigma_d^2 + log p(W).

    Parameters
    ----------
    Hh : ndarray, shape (K, K)
        sum_n E[h~ h~^T | x_n], h~ = [a^{L-1}; 1].
    Xh : ndarray, shape (D, K)
        sum_n x_n E[h~ | x_n]^T.
    Wt_old : ndarray, shape (D, K)
        Current [W^L, v^L].
    noise : ndarray, shape (D,)
        Current noise variances (only used with a prior).
    prior : GaussianPrior, LaplacePrior, BoxPrior or None

    Returns
    -------
    Wt : ndarray, shape (D, K)

    Notes
    -----
    Without a prior the maximiser is Xh Hh^-1, independent of Sigma_x. Where Hh is singular
    (a hidden unit that is 0 under every posterior) Q is flat in some directions; the
    maximiser closest to Wt_old is returned (the old value is kept along flat directions).
    """
    D, K = Wt_old.shape
    if isinstance(prior, (LaplacePrior, BoxPrior)):
        return _last_layer_qp(Hh, Xh, Wt_old, noise, prior)
    if isinstance(prior, GaussianPrior):
        J = np.ones(K)
        J[-1] = 0.0
        out = np.empty((D, K))
        for d in range(D):   # row d: (Hh + (sigma_d^2 / var) J) Wt_d^T = Xh_d^T
            A = Hh + np.diag(noise[d] / prior.var * J)
            out[d] = _psd_solve(A, Xh[d] - Wt_old[d] @ A) + Wt_old[d]
        return out
    G = Xh - Wt_old @ Hh                                                   # (D, K) residual
    return Wt_old + _psd_solve(Hh, G.T).T


def _psd_solve(A: Arr, B: Arr, cholesky: bool = False) -> Arr:
    """Solve A X = B for symmetric PSD A (n, n); B (n,) or (n, k).

    Default: the eigen-decomposition, with eigenvalues below ``_RANK_RTOL * n * max``
    treated as 0 (pseudo-inverse: no move along directions the data does not determine;
    the cut-off of verified_dgn.em as well). ``cholesky=True`` (large systems that a ridge
    makes positive definite) tries a Cholesky factorisation first and falls back to that.
    """
    A = 0.5 * (A + A.T)
    if float(np.max(np.abs(np.diag(A)), initial=0.0)) == 0.0:
        return np.zeros_like(B)
    if cholesky:
        try:
            c = sla.cho_factor(A, check_finite=False)
            X = sla.cho_solve(c, B, check_finite=False)
            if np.all(np.isfinite(X)):
                return X
        except (np.linalg.LinAlgError, ValueError):
            pass
    ev, U = np.linalg.eigh(A)
    keep = ev > _RANK_RTOL * max(float(ev[-1]), 0.0) * A.shape[0]
    inv = np.where(keep, 1.0 / np.where(keep, ev, 1.0), 0.0)
    return U @ (inv[:, None] * (U.T @ B)) if B.ndim > 1 else U @ (inv * (U.T @ B))


def _weight_mask(shape: tuple[int, int]) -> NDArray[np.bool_]:
    """True for the weight entries of Wt = [W, v] (False for the bias column)."""
    m = np.ones(shape, dtype=bool)
    m[:, -1] = False
    return m


def _cvxpy_solve(problem: Any) -> None:
    import cvxpy as cp
    try:
        if "CLARABEL" in cp.installed_solvers():
            problem.solve(solver="CLARABEL")
        else:  # pragma: no cover - CLARABEL ships with cvxpy >= 1.4
            problem.solve()
    except cp.error.SolverError as exc:
        raise RuntimeError(f"the convex QP of the M-step failed: {exc}") from None
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"the convex QP of the M-step ended with status {problem.status!r}")


def _psd_root(A: Arr) -> Arr:
    """R with R^T R = A for symmetric PSD A (eigen-decomposition; negative rounding
    eigenvalues set to 0)."""
    ev, U = np.linalg.eigh(0.5 * (A + A.T))
    return (U * np.sqrt(np.maximum(ev, 0.0))).T


def _penalty(prior: LaplacePrior | BoxPrior, x: Any, mask: NDArray[np.bool_]) -> tuple[Any, list]:
    import cvxpy as cp
    idx = np.flatnonzero(mask.ravel())
    xw = x[idx]
    if isinstance(prior, LaplacePrior):
        return cp.norm1(xw) / prior.scale, []
    return 0, [cp.abs(xw) <= prior.bound]


def _last_layer_qp(Hh: Arr, Xh: Arr, Wt_old: Arr, noise: Arr, prior: LaplacePrior | BoxPrior) -> Arr:
    """The last-layer M-step with a Laplace or box prior: a convex QP (cvxpy)."""
    import cvxpy as cp
    D, K = Wt_old.shape
    Rt = _psd_root(Hh)                                                     # (K, K)
    x = cp.Variable(D * K)
    Wt = cp.reshape(x, (D, K), order="C")
    inv = 1.0 / noise
    quad = 0.5 * cp.sum_squares(cp.multiply(np.sqrt(inv)[:, None], Wt @ Rt.T))
    lin = cp.sum(cp.multiply(inv[:, None] * Xh, Wt))
    pen, cons = _penalty(prior, x, _weight_mask((D, K)))
    prob = cp.Problem(cp.Minimize(quad - lin + pen), cons)
    x.value = Wt_old.ravel()
    _cvxpy_solve(prob)
    out = np.asarray(x.value, dtype=np.float64).reshape(D, K)
    if isinstance(prior, BoxPrior):   # solver tolerance: stay inside the box
        out[:, :-1] = np.clip(out[:, :-1], -prior.bound, prior.bound)
    return out


def _last_layer_q(Hh: Arr, Xh: Arr, Wt: Arr, noise: Arr, prior: Prior | None) -> float:
    """Q(Wt) of the last layer up to a constant (see :func:`_last_layer_update`)."""
    quad = np.einsum("dk,kj,dj->d", Wt, Hh, Wt) - 2.0 * np.einsum("dk,dk->d", Xh, Wt)
    val = -0.5 * float(np.sum(quad / noise))
    return val + (0.0 if prior is None else prior.log_density([Wt[:, :-1]]))


def _residual_after(resid2: Arr, Hh: Arr, Xh: Arr, Wt_old: Arr, Wt_new: Arr) -> Arr:
    """sum_n E[(x_n - Wt_new h~)^2 | x_n] (elementwise, shape (D,)) from the residual under
    Wt_old: r_new = r_old - 2 diag(dW (Xh^T - Hh Wt_old^T)) + diag(dW Hh dW^T).

    The correction is first order in dW, so no cancellation of sum x^2 against the fit
    (the residual can be 1e-6 of it at small noise)."""
    dW = Wt_new - Wt_old
    G = Xh - Wt_old @ Hh                                                   # (D, K)
    out = resid2 - 2.0 * np.einsum("dk,dk->d", dW, G) + np.einsum("dk,kj,dj->d", dW, Hh, dW)
    return np.maximum(out, 0.0)


def _noise_update(resid2: Arr, N: int, isotropic: bool, floor: float) -> tuple[Arr, bool]:
    """Exact ECM update of Sigma_x: mean expected squared residual, clipped at ``floor``.

    Parameters
    ----------
    resid2 : ndarray, shape (D,)
        sum_n E[(x_n - g(z))^2 | x_n] elementwise, under the new last layer.
    N : int
    isotropic : bool
        sigma^2 = trace / (N D) (isotropic) or resid2 / N per dimension (diagonal).
    floor : float

    Returns
    -------
    noise : ndarray, shape (D,)
    hit : bool
        Whether the floor bound (the unclipped update was below it).
    """
    D = resid2.shape[0]
    raw = np.full(D, float(np.sum(resid2)) / (N * D)) if isotropic else resid2 / N
    hit = bool(np.any(raw < floor))
    return np.maximum(raw, floor), hit


def _inner_system(F: Arr, c: Arr, H: Arr, Xeta: Arr, eta: Arr, inv_noise: Arr) -> tuple[Arr, Arr]:
    """The frozen-activation quadratic of an inner layer: Q(Wt) = -x^T M x / 2 + r^T x + const.

    Parameters
    ----------
    F : ndarray, shape (R, D, D_l)
    c : ndarray, shape (R, D)
    H : ndarray, shape (R, K, K)
    Xeta : ndarray, shape (R, D, K)
    eta : ndarray, shape (R, K)
    inv_noise : ndarray, shape (D,)
        1 / diag(Sigma_x).

    Returns
    -------
    M : ndarray, shape (D_l K, D_l K)
        sum_w (F_w^T Sigma_x^-1 F_w) kron H_w (row-major vec of Wt (D_l, K)).
    r : ndarray, shape (D_l K,)
        vec(sum_w F_w^T Sigma_x^-1 (Xeta_w - c_w eta_w^T)).
    """
    R, _, Dl = F.shape
    K = H.shape[1]
    SF = F * inv_noise[None, :, None]
    Kw = np.einsum("rdi,rdj->rij", F, SF)                                 # (R, Dl, Dl)
    M4 = (Kw.reshape(R, Dl * Dl).T @ H.reshape(R, K * K)).reshape(Dl, Dl, K, K)
    M = M4.transpose(0, 2, 1, 3).reshape(Dl * K, Dl * K)
    M = 0.5 * (M + M.T)
    T = Xeta - c[:, :, None] * eta[:, None, :]                             # (R, D, K)
    r = np.einsum("rdi,rdk->ik", SF, T).ravel()
    return M, r


def _inner_gradient(F: Arr, c: Arr, H: Arr, Xeta: Arr, eta: Arr, inv_noise: Arr, Wt: Arr) -> Arr:
    """r - M vec(Wt) without forming M: the gradient of the exact log-likelihood with
    respect to Wt = [W^l, v^l] (Fisher's identity), shape (D_l, K)."""
    SF = F * inv_noise[None, :, None]
    T = Xeta - c[:, :, None] * eta[:, None, :]                             # (R, D, K)
    FWH = np.einsum("rdi,ik,rkj->rdj", F, Wt, H)                          # F Wt H_w
    return np.einsum("rdi,rdk->ik", SF, T - FWH)


def _inner_target(M: Arr, r: Arr, x0: Arr, shape: tuple[int, int], prior: Prior | None,
                  ridge: float) -> Arr:
    """Maximiser of the surrogate -x^T M x / 2 + r^T x - lambda |x - x0|^2 / 2 + log p(W).

    lambda = ridge * mean(diag M) (proximal: directions the data leaves undetermined keep
    their value x0). Returns the target Wt of shape (D_l, K).
    """
    n = M.shape[0]
    lam = ridge * float(np.trace(M)) / n
    if not lam > 0:
        lam = ridge
    A = M + lam * np.eye(n)
    b = r + lam * x0
    mask = _weight_mask(shape).ravel()
    if isinstance(prior, (LaplacePrior, BoxPrior)):
        import cvxpy as cp
        Rt = _psd_root(A)
        x = cp.Variable(n)
        pen, cons = _penalty(prior, x, mask.reshape(shape))
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Rt @ x) - b @ x + pen), cons)
        x.value = x0
        _cvxpy_solve(prob)
        out = np.asarray(x.value, dtype=np.float64)
        if isinstance(prior, BoxPrior):
            out[mask] = np.clip(out[mask], -prior.bound, prior.bound)
        return out.reshape(shape)
    if isinstance(prior, GaussianPrior):
        A = A + np.diag(mask / prior.var)
    return (x0 + _psd_solve(A, b - A @ x0, cholesky=lam > 0)).reshape(shape)


def _surrogate(M: Arr, r: Arr, x: Arr) -> float:
    return float(-0.5 * x @ (M @ x) + r @ x)


# =========================================================================== E-step glue
def _estep(net: DGN, X: Arr, P: Partition) -> Any:
    from .distributions import estep_statistics
    return estep_statistics(net, X, partition=P)


def _log_likelihood(net: DGN, X: Arr, P: Partition) -> float:
    from .distributions import log_marginal
    return float(np.sum(log_marginal(net, X, partition=P)))


def _partition(net: DGN, max_regions: int) -> Partition:
    from .partition_walk import partition
    return partition(net, max_regions=max_regions)


def _with_layer(net: DGN, l: int, Wt: Arr) -> DGN:
    Ws, vs = list(net.weights), list(net.biases)
    Ws[l], vs[l] = Wt[:, :-1], Wt[:, -1]
    return net.replace(weights=Ws, biases=vs)


def _Wt(net: DGN, l: int) -> Arr:
    return np.column_stack([net.weights[l], net.biases[l]])


@dataclass
class _Sweep:
    """Quantities of one E-step that the M-step pieces share."""

    slopes: list[Arr]
    inputs: list[tuple[Arr, Arr]]
    R: int


def _sweep_maps(net: DGN, P: Partition) -> _Sweep:
    R = len(P)
    slopes = _hidden_slopes(net, P.sign_matrix)
    return _Sweep(slopes, _input_maps(net, slopes, R), R)


def _ecm(net: DGN, st: Any, P: Partition, *, last: bool, noise_mode: str | None,
         update_prior_cov: bool, prior: Prior | None, floor: float
         ) -> tuple[DGN, bool, float]:
    """The exact ECM part of an iteration: last layer, then noise, then Sigma_z.

    Returns (new net, whether the noise floor bound, last-layer Q gain). A last-layer
    update whose Q (computed) does not increase is dropped (QP solver inaccuracy)."""
    L = net.n_layers
    sw = _sweep_maps(net, P)
    Pl, pl = sw.inputs[L - 1]
    H, Xeta, _ = _layer_moments(Pl, pl, st)
    Hh, Xh = H.sum(axis=0), Xeta.sum(axis=0)
    noise = np.array(net.noise_var_vector, dtype=np.float64)
    Wt_old = _Wt(net, L - 1)
    Wt_new, q_gain = Wt_old, 0.0
    if last:
        cand = _last_layer_update(Hh, Xh, Wt_old, noise, prior)
        q_old = _last_layer_q(Hh, Xh, Wt_old, noise, prior)
        q_new = _last_layer_q(Hh, Xh, cand, noise, prior)
        if q_new >= q_old:
            Wt_new, q_gain = cand, q_new - q_old
    changes: dict[str, Any] = {}
    if Wt_new is not Wt_old:
        Ws, vs = list(net.weights), list(net.biases)
        Ws[-1], vs[-1] = Wt_new[:, :-1], Wt_new[:, -1]
        changes.update(weights=Ws, biases=vs)
    hit = False
    if noise_mode is not None:
        resid2 = _residual_after(st.resid2, Hh, Xh, Wt_old, Wt_new)
        nv, hit = _noise_update(resid2, st.n, noise_mode == "isotropic", floor)
        changes["noise_var"] = float(nv[0]) if noise_mode == "isotropic" else nv
    if update_prior_cov:
        cov = st.S2.sum(axis=0) / st.n
        cov = 0.5 * (cov + cov.T)
        if np.linalg.eigvalsh(cov).min() > 0:
            changes["prior_cov"] = cov
    return (net.replace(**changes) if changes else net), hit, q_gain


def _inner_layer_target(net: DGN, st: Any, P: Partition, l: int, prior: Prior | None,
                        ridge: float) -> tuple[Arr, Arr, Arr]:
    """(target Wt (D_l, K), M, r) of inner layer l (0-based) from the E-step ``st``."""
    sw = _sweep_maps(net, P)
    Pl, pl = sw.inputs[l]
    H, Xeta, eta = _layer_moments(Pl, pl, st)
    F, c = _output_map(net, sw.slopes, l, sw.R)
    inv_noise = 1.0 / np.asarray(net.noise_var_vector, dtype=np.float64)
    M, r = _inner_system(F, c, H, Xeta, eta, inv_noise)
    Wt = _Wt(net, l)
    return _inner_target(M, r, Wt.ravel(), Wt.shape, prior, ridge), M, r


# =========================================================================== result types
@dataclass
class EMIteration:
    """State passed to ``callback`` after every iteration.

    Attributes
    ----------
    iteration : int
        1 for the first iteration.
    model : DGN
        The parameters after this iteration.
    log_likelihood : float
        Exact log p(X) of ``model``.
    objective : float
        log p(X) + log p(W) (= log_likelihood without a weight prior).
    step_sizes : ndarray, shape (L-1,)
        Accepted step of every inner layer (0: rejected, nan: not attempted).
    noise_floor_hit : bool
    seconds : float
        Wall-clock time of this iteration.
    n_regions : int
        Regions of the partition of ``model``.
    """

    iteration: int
    model: DGN
    log_likelihood: float
    objective: float
    step_sizes: Arr
    noise_floor_hit: bool
    seconds: float
    n_regions: int


@dataclass
class EMResult:
    """The outcome of :func:`fit_em` (fitted attributes in scikit-learn style).

    Attributes
    ----------
    model : DGN
        The trained model.
    log_likelihood : list of float
        Exact log p(X) of the initial model and after every iteration (length n_iter + 1).
    objective : list of float
        log p(X) + log p(W): the monotone quantity (equal to ``log_likelihood`` without a
        weight prior).
    n_iter : int
        Iterations run (including those before a resume).
    converged : bool
        The per-point change of the objective fell below ``tol``.
    noise_floor_hit : list of int
        Iterations whose noise update was clipped at the floor.
    step_sizes : ndarray, shape (n_iter, L-1)
        Accepted backtracking step t of every inner layer (0: no step accepted; nan: not
        attempted); column j is layer j + 1.
    noise_var : list
        Noise variance (float or (D,) array) of the initial model and after every iteration.
    times : ndarray, shape (n_iter + 1,)
        Cumulative wall-clock seconds (0 first).
    ecm_gain : list of float
        Change of the exact objective made by the ECM step (last layer + noise) of every
        iteration (>= 0 up to rounding; see :data:`ECM_RTOL`).
    ecm_rejected : list of int
        Iterations whose ECM step was rejected because rounding made it decrease the
        objective beyond the tolerance.
    n_regions : list of int
        Regions of the partition after every iteration (initial model first).
    n_points : int
        N.
    stopped : bool
        ``callback`` returned True.
    history : dict
        Per-iteration columns (iteration, log_likelihood, per_point, objective, noise_var
        (mean), step_l..., seconds, n_regions, noise_floor_hit) for writing a CSV.
    """

    model: DGN
    log_likelihood: list[float]
    objective: list[float]
    n_iter: int
    converged: bool
    noise_floor_hit: list[int]
    step_sizes: Arr
    noise_var: list[Any]
    times: Arr
    ecm_gain: list[float]
    ecm_rejected: list[int]
    n_regions: list[int]
    n_points: int
    stopped: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> dict[str, Arr]:
        n = self.n_iter + 1
        out: dict[str, Arr] = {
            "iteration": np.arange(n, dtype=np.float64),
            "log_likelihood": np.asarray(self.log_likelihood, dtype=np.float64),
            "per_point": np.asarray(self.log_likelihood, dtype=np.float64) / self.n_points,
            "objective": np.asarray(self.objective, dtype=np.float64),
            "noise_var": np.array([float(np.mean(v)) for v in self.noise_var]),
        }
        steps = np.vstack([np.full((1, self.step_sizes.shape[1]), np.nan), self.step_sizes])
        for j in range(steps.shape[1]):
            out[f"step_layer{j + 1}"] = steps[:, j]
        out["seconds"] = np.asarray(self.times, dtype=np.float64)
        out["n_regions"] = np.asarray(self.n_regions, dtype=np.float64)
        hit = np.zeros(n)
        hit[[i for i in self.noise_floor_hit if i < n]] = 1.0
        out["noise_floor_hit"] = hit
        return out

    def __repr__(self) -> str:
        return (f"EMResult({self.n_iter} iterations, converged={self.converged}, "
                f"log p(X) {self.log_likelihood[0]:.6g} -> {self.log_likelihood[-1]:.6g}, "
                f"{self.model!r})")


# =========================================================================== validation
def _check_update(update: Any) -> tuple[bool, bool, bool]:
    if isinstance(update, str):
        update = (update,)
    try:
        items = tuple(update)
    except TypeError:
        raise TypeError(f"update must be a collection of {_UPDATES}, got {update!r}") from None
    bad = [u for u in items if u not in _UPDATES]
    if bad:
        raise ValueError(f"update entries must be among {_UPDATES}, got {bad}")
    layers = "layers" in items
    return layers, layers or "last" in items, "noise" in items


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# =========================================================================== checkpoints
def _data_fingerprint(X: Arr) -> str:
    h = hashlib.sha256()
    h.update(str(X.shape).encode())
    h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()


def _net_arrays(net: DGN, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        f"{prefix}n_layers": np.array(net.n_layers),
        f"{prefix}activation": np.array(net.activation),
        f"{prefix}slope": np.array(net.slope),
        f"{prefix}noise_var": np.asarray(net.noise_var, dtype=np.float64),
    }
    if not net.has_identity_prior:
        out[f"{prefix}prior_cov"] = np.asarray(net.prior_cov)
    for i, (W, v) in enumerate(zip(net.weights, net.biases)):
        out[f"{prefix}W{i}"] = W
        out[f"{prefix}v{i}"] = v
    return out


def _net_from_arrays(data: dict[str, Any], prefix: str) -> DGN:
    L = int(data[f"{prefix}n_layers"])
    nv = data[f"{prefix}noise_var"]
    return DGN([data[f"{prefix}W{i}"] for i in range(L)], [data[f"{prefix}v{i}"] for i in range(L)],
               activation=str(data[f"{prefix}activation"]), slope=float(data[f"{prefix}slope"]),
               noise_var=float(nv) if nv.ndim == 0 else nv,
               prior_cov=data.get(f"{prefix}prior_cov"))


def _consistent(state: _State) -> bool:
    n = len(state.log_likelihood)
    return (n == len(state.objective) == len(state.noise_var) == len(state.times)
            == len(state.n_regions) == len(state.step_sizes) + 1 == len(state.ecm_gain) + 1)


@dataclass
class _State:
    """Everything an iteration depends on (what a checkpoint stores)."""

    model: DGN
    pnet: DGN                      # the net whose partition the current E-step used
    log_likelihood: list[float]
    objective: list[float]
    noise_var: list[Any]
    step_sizes: list[Arr]
    times: list[float]
    floor_hit: list[int]
    ecm_gain: list[float]
    ecm_rejected: list[int]
    n_regions: list[int]
    t_next: Arr                    # starting step of every inner layer
    converged: bool = False


def _write_checkpoint(path: Path, state: _State, fingerprint: str, options: dict[str, Any]) -> None:
    D = state.model.data_dim
    arrays: dict[str, Any] = {
        "format": np.array(_CHECKPOINT_FORMAT),
        "format_version": np.array(_CHECKPOINT_VERSION),
        "data_sha256": np.array(fingerprint),
        "options": np.array(json.dumps(options, sort_keys=True)),
        "log_likelihood": np.asarray(state.log_likelihood, dtype=np.float64),
        "objective": np.asarray(state.objective, dtype=np.float64),
        "noise_var": np.array([np.broadcast_to(np.asarray(v, dtype=np.float64), (D,))
                               for v in state.noise_var]),
        "noise_isotropic": np.array([np.ndim(v) == 0 for v in state.noise_var]),
        "step_sizes": np.array(state.step_sizes, dtype=np.float64).reshape(
            len(state.step_sizes), state.model.n_layers - 1),
        "times": np.asarray(state.times, dtype=np.float64),
        "floor_hit": np.asarray(state.floor_hit, dtype=np.int64),
        "ecm_gain": np.asarray(state.ecm_gain, dtype=np.float64),
        "ecm_rejected": np.asarray(state.ecm_rejected, dtype=np.int64),
        "n_regions": np.asarray(state.n_regions, dtype=np.int64),
        "t_next": np.asarray(state.t_next, dtype=np.float64),
        "converged": np.array(state.converged),
    }
    arrays.update(_net_arrays(state.model, "model_"))
    arrays.update(_net_arrays(state.pnet, "pnet_"))
    atomic_write_npz(path, arrays)


def _read_checkpoint(path: Path, fingerprint: str, options: dict[str, Any]) -> _State:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"{path} is not a readable EM checkpoint: {exc}") from None
    if str(data.get("format", "")) != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an EM checkpoint (no {_CHECKPOINT_FORMAT!r} marker)")
    if int(data["format_version"]) > _CHECKPOINT_VERSION:
        raise ValueError(f"{path} was written by a newer version of fit_em")
    if str(data["data_sha256"]) != fingerprint:
        raise ValueError(f"{path} was written for different data (the data's SHA-256 differs); "
                         "resume with the same X or start a new checkpoint")
    saved = json.loads(str(data["options"]))
    diff = {k: (saved.get(k), v) for k, v in options.items() if saved.get(k) != v}
    if diff:
        raise ValueError(f"{path} was written with other options; differing (saved, now): {diff}")
    iso = data["noise_isotropic"]
    nvs = [float(row[0]) if i else row.copy() for row, i in zip(data["noise_var"], iso)]
    return _State(
        model=_net_from_arrays(data, "model_"), pnet=_net_from_arrays(data, "pnet_"),
        log_likelihood=data["log_likelihood"].tolist(), objective=data["objective"].tolist(),
        noise_var=nvs, step_sizes=[r.copy() for r in data["step_sizes"]],
        times=data["times"].tolist(), floor_hit=data["floor_hit"].tolist(),
        ecm_gain=data["ecm_gain"].tolist(), ecm_rejected=data["ecm_rejected"].tolist(),
        n_regions=data["n_regions"].tolist(), t_next=data["t_next"].copy(),
        converged=bool(data["converged"]))


# =========================================================================== fit_em
def fit_em(
    net: DGN,
    X: ArrayLike,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    update: Iterable[str] = ("layers", "noise"),
    noise: str | None = None,
    update_prior_cov: bool = False,
    weight_prior: Prior | None = None,
    noise_floor: float = 1e-6,
    ridge: float = DEFAULT_RIDGE,
    max_halvings: int = 12,
    max_regions: int = 100_000,
    seed: int = 0,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    callback: Callable[[EMIteration], Any] | None = None,
    blas_threads: int | None = 1,
) -> EMResult:
    """Train a DGN by exact, monotone EM (module notes).

    Parameters
    ----------
    net : DGN
        The initial model (any depth, S = 1..4, relu / leaky_relu / abs).
    X : array_like, shape (N, D)
        Training data.
    max_iter : int, default 200
        Maximum number of iterations (sweeps); a :class:`ConvergenceWarning` is issued when
        it is reached before convergence.
    tol : float, default 1e-6
        Convergence threshold on the per-point change of the exact objective:
        EM stops when (objective_k - objective_{k-1}) / N < tol (nats per point, as
        scikit-learn's mixtures). 0 runs all ``max_iter`` iterations unless an iteration
        makes no progress at all.
    update : collection of {"layers", "last", "noise"}, default ("layers", "noise")
        What to train: "layers" all layers (last by ECM, inner by backtracked closed form),
        "last" the last layer only, "noise" the noise variance.
    noise : {"isotropic", "diagonal"}, optional
        Noise model (default: the net's: isotropic if ``net.noise_var`` is a float).
    update_prior_cov : bool, default False
        Also update Sigma_z (exact ECM: the mean of E[z z^T | x]).
    weight_prior : GaussianPrior, LaplacePrior, BoxPrior or None
        Prior on the weight matrices; EM then maximises log p(X) + log p(W). The initial
        weights must lie inside a box prior.
    noise_floor : float, default 1e-6
        Lower bound of every noise variance (module notes). The initial noise must not be
        below it.
    ridge : float, default 1e-6
        Proximal ridge of the inner-layer systems relative to their mean diagonal.
    max_halvings : int, default 12
        Step halvings tried per inner layer before keeping its weights.
    max_regions : int, default 100000
        Partition size limit; a trial step with more regions is rejected (the initial model
        raises :class:`~dgn_core.regions.RegionLimitError`).
    seed : int, default 0
        Recorded in the result and the checkpoint. EM itself draws no random numbers (the
        E-step moments are exact integrals), so a run is reproducible bit for bit from
        (net, X, options); seed the initial model (``DGN.random(..., seed=...)``) for
        different starts.
    progress : bool, default False
        Print a line per iteration to stderr (log-likelihood, per point, noise, steps; the
        noise floor when it binds).
    checkpoint : path, optional
        ``.npz`` file (no pickle) written atomically every ``checkpoint_every`` iterations,
        at the end, and when interrupted (KeyboardInterrupt): the model, the history and
        every piece of state the next iteration depends on.
    checkpoint_every : int, default 10
    resume : bool, default False
        Continue from ``checkpoint`` if it exists (else start from ``net``). The checkpoint
        must come from the same data (SHA-256) and options; ``max_iter`` counts all
        iterations. A resumed run gives bit for bit the result of an uninterrupted one.
    callback : callable, optional
        ``callback(EMIteration)`` after every iteration; returning True stops EM.
    blas_threads : int or None, default 1
        BLAS threads while fitting (through threadpoolctl when installed; None leaves the
        setting alone). The linear algebra here is small and many-call; on a busy machine a
        multi-threaded BLAS was measured 30x slower (Cholesky of a 1056 x 1056 system:
        4.8 s with 2 threads on a loaded 2-core machine, 0.14 s with 1), and a fixed thread
        count keeps runs reproducible bit for bit.

    Returns
    -------
    EMResult
        ``model``, ``log_likelihood`` (exact log p(X), initial model first), ``objective``,
        ``n_iter``, ``converged``, ``noise_floor_hit``, ``step_sizes``, ``times``, ...

    Raises
    ------
    TypeError, ValueError
        Bad arguments, data of the wrong width or with NaN / infinite values, initial noise
        below the floor, initial weights outside a box prior, an incompatible checkpoint.
    dgn_core.regions.RegionLimitError
        The initial model has more than ``max_regions`` regions.
    """
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    if blas_threads is not None:
        blas_threads = _check_int(blas_threads, "blas_threads", 1)
    with _blas_limit(blas_threads):
        return _fit_em(net, X, max_iter=max_iter, tol=tol, update=update, noise=noise,
                       update_prior_cov=update_prior_cov, weight_prior=weight_prior,
                       noise_floor=noise_floor, ridge=ridge, max_halvings=max_halvings,
                       max_regions=max_regions, seed=seed, progress=progress,
                       checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                       callback=callback)


def _blas_limit(threads: int | None) -> Any:
    """A context limiting BLAS to ``threads`` threads (no-op without threadpoolctl)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _fit_em(net: DGN, X: ArrayLike, *, max_iter: int, tol: float, update: Iterable[str],
            noise: str | None, update_prior_cov: bool, weight_prior: Prior | None,
            noise_floor: float, ridge: float, max_halvings: int, max_regions: int, seed: int,
            progress: bool, checkpoint: str | os.PathLike[str] | None, checkpoint_every: int,
            resume: bool, callback: Callable[[EMIteration], Any] | None) -> EMResult:
    X = check_data(X, dim=net.data_dim)
    N = X.shape[0]
    max_iter = _check_int(max_iter, "max_iter", 0)
    tol = _check_nonneg(tol, "tol")
    do_layers, do_last, do_noise = _check_update(update)
    if noise is None:
        noise = "isotropic" if net.isotropic_noise else "diagonal"
    if noise not in ("isotropic", "diagonal"):
        raise ValueError(f"noise must be 'isotropic' or 'diagonal', got {noise!r}")
    prior = check_prior(weight_prior)
    floor = _check_nonneg(noise_floor, "noise_floor")
    ridge = _check_nonneg(ridge, "ridge")
    max_halvings = _check_int(max_halvings, "max_halvings", 0)
    max_regions = _check_int(max_regions, "max_regions", 1)
    checkpoint_every = _check_int(checkpoint_every, "checkpoint_every", 1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.suffix != ".npz":
        ckpt = ckpt.with_name(ckpt.name + ".npz")

    # the noise model the run uses (a float or a (D,) array)
    nv = net.noise_var_vector
    if np.any(nv < floor):
        raise ValueError(f"the initial noise variance ({float(nv.min()):.3g}) is below "
                         f"noise_floor={floor:g}; raise the noise or lower the floor")
    if noise == "isotropic" and not net.isotropic_noise:
        net = net.replace(noise_var=float(np.mean(nv)))
    elif noise == "diagonal" and net.isotropic_noise:
        net = net.replace(noise_var=np.array(nv))
    if isinstance(prior, BoxPrior) and not math.isfinite(prior.log_density(net.weights)):
        raise ValueError(f"the initial weights lie outside the box prior [-{prior.bound:g}, "
                         f"{prior.bound:g}]; clip them first (np.clip)")

    options = {"update": sorted({"layers"} if do_layers else set()
                                | ({"last"} if do_last else set())
                                | ({"noise"} if do_noise else set())),
               "noise": noise, "update_prior_cov": bool(update_prior_cov),
               "weight_prior": None if prior is None else prior.describe(),
               "noise_floor": floor, "ridge": ridge, "max_halvings": max_halvings,
               "max_regions": max_regions, "tol": tol, "seed": int(seed),
               "activation": net.activation, "widths": list(net.widths)}
    fingerprint = _data_fingerprint(X)
    n_inner = net.n_layers - 1

    t_origin = time.perf_counter()
    if resume and ckpt is not None and ckpt.exists():
        state = _read_checkpoint(ckpt, fingerprint, options)
        P = _partition(state.pnet, max_regions)
        t_origin -= state.times[-1]
    else:
        P = _partition(net, max_regions)
        state = _State(model=net, pnet=net, log_likelihood=[], objective=[],
                       noise_var=[net.noise_var], step_sizes=[], times=[0.0], floor_hit=[],
                       ecm_gain=[], ecm_rejected=[], n_regions=[len(P)],
                       t_next=np.ones(n_inner))
    model = state.model
    st = _estep(model, X, P)
    if not state.log_likelihood:
        state.log_likelihood.append(st.log_likelihood)
        state.objective.append(st.log_likelihood + log_prior(prior, model.weights))
    obj = state.objective[-1]
    stopped = False

    def emit(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    emit(f"EM: {net!r}, N = {N}, log p(X) = {state.log_likelihood[-1]:.6f}")
    try:
        while len(state.log_likelihood) - 1 < max_iter and not state.converged:
            it = len(state.log_likelihood)
            t_it = time.perf_counter()
            pnet, t_next = state.pnet, state.t_next.copy()
            # ---- 1. exact ECM step: last layer, noise, Sigma_z
            hit = False
            ecm_gain = 0.0
            if do_last or do_noise or update_prior_cov:
                cand, hit, _ = _ecm(model, st, P, last=do_last,
                                    noise_mode=noise if do_noise else None,
                                    update_prior_cov=bool(update_prior_cov), prior=prior,
                                    floor=floor)
                if cand != model:
                    st_c = _estep(cand, X, P)
                    obj_c = st_c.log_likelihood + log_prior(prior, cand.weights)
                    ecm_gain = obj_c - obj
                    if obj_c >= obj - ECM_RTOL * (abs(obj) + N):
                        model, st, obj = cand, st_c, obj_c
                    else:
                        state.ecm_rejected.append(it)
                        hit = False
                        warnings.warn(
                            f"fit_em: iteration {it}: the exact ECM step decreased the "
                            f"objective by {-ecm_gain:.3g} (beyond rounding); rejected",
                            RuntimeWarning, stacklevel=3)
            # ---- 2. inner layers, top to bottom, backtracked on the exact objective
            steps = np.full(n_inner, np.nan)
            if do_layers:
                for l in range(n_inner - 1, -1, -1):
                    steps[l] = 0.0
                    target, M, r = _inner_layer_target(model, st, P, l, prior, ridge)
                    Wt0 = _Wt(model, l)
                    d = target - Wt0
                    # the surrogate's predicted gain of the full step: nothing to try when it
                    # is below the rounding level of the objective
                    gain1 = _surrogate(M, r, target.ravel()) - _surrogate(M, r, Wt0.ravel())
                    if not np.all(np.isfinite(d)) or not gain1 > 1e-14 * (abs(obj) + N):
                        continue
                    t = float(t_next[l])
                    for k in range(max_halvings + 1):
                        trial = _with_layer(model, l, Wt0 + t * d)
                        obj_t, st_t = -math.inf, None
                        lp = log_prior(prior, trial.weights)
                        if math.isfinite(lp):
                            try:
                                P_t = _partition(trial, max_regions)
                                # the first trial is usually accepted: evaluate it with the
                                # moments the next layer needs (one pass instead of two);
                                # later trials need log p(X) only
                                if k == 0:
                                    st_t = _estep(trial, X, P_t)
                                    obj_t = st_t.log_likelihood + lp
                                else:
                                    obj_t = _log_likelihood(trial, X, P_t) + lp
                            except RegionLimitError:
                                obj_t = -math.inf
                        if obj_t >= obj:
                            model, P, pnet, obj = trial, P_t, trial, obj_t
                            st = st_t if st_t is not None else _estep(model, X, P)
                            steps[l] = t
                            t_next[l] = min(1.0, 2.0 * t)
                            break
                        t *= 0.5
            # ---- bookkeeping (the state after a completed iteration)
            ll = float(obj - log_prior(prior, model.weights))
            prev = state.objective[-1]
            seconds = time.perf_counter() - t_it
            state.model, state.pnet, state.t_next = model, pnet, t_next
            state.log_likelihood.append(ll)
            state.objective.append(float(obj))
            state.noise_var.append(model.noise_var)
            state.step_sizes.append(steps)
            state.ecm_gain.append(float(ecm_gain))
            state.n_regions.append(len(P))
            if hit:
                state.floor_hit.append(it)
            state.times.append(time.perf_counter() - t_origin)
            change = (obj - prev) / N
            state.converged = bool(change < tol or change <= 0.0)
            nvm = float(np.mean(model.noise_var))
            emit(f"EM {it:4d}/{max_iter}  log p(X) = {ll:.6f}  ({ll / N:.6f}/pt, "
                 f"{change:+.3g})  noise {nvm:.4g}{' [FLOOR]' if hit else ''}  steps "
                 + ",".join("-" if not np.isfinite(s) else f"{s:g}" for s in steps)
                 + f"  {len(P)} regions  {seconds:.2f} s")
            if callback is not None:
                info = EMIteration(it, model, ll, float(obj), steps.copy(), hit, seconds, len(P))
                if callback(info) is True:
                    stopped = True
            if ckpt is not None and (it % checkpoint_every == 0):
                _write_checkpoint(ckpt, state, fingerprint, options)
            if stopped:
                break
    except KeyboardInterrupt:
        # save the last completed iteration (state is only updated between iterations)
        if ckpt is not None and _consistent(state):
            _write_checkpoint(ckpt, state, fingerprint, options)
        raise
    if ckpt is not None:
        _write_checkpoint(ckpt, state, fingerprint, options)
    n_iter = len(state.log_likelihood) - 1
    if not state.converged and not stopped and n_iter >= max_iter and max_iter > 0:
        warnings.warn(f"fit_em did not converge in {max_iter} iterations (last per-point change "
                      f"{(state.objective[-1] - state.objective[-2]) / N:.3g} >= tol={tol:g}); "
                      "raise max_iter or tol", ConvergenceWarning, stacklevel=3)
    return EMResult(
        model=state.model, log_likelihood=list(state.log_likelihood),
        objective=list(state.objective), n_iter=n_iter, converged=state.converged,
        noise_floor_hit=list(state.floor_hit),
        step_sizes=np.array(state.step_sizes, dtype=np.float64).reshape(n_iter, n_inner),
        noise_var=list(state.noise_var), times=np.asarray(state.times, dtype=np.float64),
        ecm_gain=list(state.ecm_gain), ecm_rejected=list(state.ecm_rejected),
        n_regions=list(state.n_regions), n_points=N, stopped=stopped, options=options)


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
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    X = check_data(X, dim=net.data_dim)
    if noise is None:
        noise = "isotropic" if net.isotropic_noise else "diagonal"
    if noise not in ("isotropic", "diagonal"):
        raise ValueError(f"noise must be 'isotropic' or 'diagonal', got {noise!r}")
    prior = check_prior(weight_prior)
    floor = _check_nonneg(noise_floor, "noise_floor")
    ridge = _check_nonneg(ridge, "ridge")
    P = partition if partition is not None else _partition(net, 100_000)
    st = _estep(net, X, P)
    new, hit, _ = _ecm(net, st, P, last=True, noise_mode=noise,
                       update_prior_cov=bool(update_prior_cov), prior=prior, floor=floor)
    inner, systems = [], []
    for l in range(net.n_layers - 1):
        target, M, r = _inner_layer_target(net, st, P, l, prior, ridge)
        inner.append((target[:, :-1], target[:, -1]))
        systems.append((M, r))
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
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    X = check_data(X, dim=net.data_dim)
    P = partition if partition is not None else _partition(net, 100_000)
    st = _estep(net, X, P)
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
