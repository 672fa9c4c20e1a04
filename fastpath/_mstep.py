"""The M-step of :func:`fastpath.fit_em`: region maps, the layer updates and the noise update.

Formulas (docs/DESIGN.md §2.5). On region w, with the input of layer l affine in z,
a^{l-1}(z) = P_w z + p_w (P = I, p = 0 for l = 1), h~ = [a^{l-1}; 1], and the output
g(z) = F_w (W^l a^{l-1} + v^l) + c_w (F = I, c = 0 for l = L)::

    eta_nw = E[h~ 1_w | x_n] = [P e1 + p e0; e0]
    H_nw   = E[h~ h~^T 1_w | x_n]
    last layer:   Wt^L = [sum_n x_n E[h~|x_n]^T] [sum_n E[h~ h~^T|x_n]]^-1
    inner layer:  [sum_w F_w^T Sigma_x^-1 F_w (x) sum_n H_nw] vec(Wt) =
                  vec(sum_{n,w} F_w^T Sigma_x^-1 (x_n - c_w) eta_nw^T)

with Wt = [W, v] and ``vec`` the row-major flattening (which swaps the Kronecker factors of
DESIGN's column-major form). Sums over n are the per-region statistics s0, s1, S2, x0, x1 of
the E-step (:class:`fastpath.distributions.EStepStatistics`). The inner system is
rank-deficient when the layer's input lies on a low-dimensional set (S = 1): a proximal ridge
lambda (vec(Wt) - vec(Wt_old)) with lambda = ``ridge`` times the mean diagonal of the system
keeps it solvable and leaves directions the data does not determine unchanged. A Gaussian
weight prior adds 1/var to the diagonal (ridge towards 0, a MAP update); Laplace (L1) and box
priors turn the same quadratic into a convex QP, solved with cvxpy (CLARABEL; the prior
machinery and the PSD solve are in :mod:`fastpath._mstep_priors`). Weight priors
apply to the weight matrices W^1..W^L; a bias prior (any of the same kinds) to the bias
vectors v^1..v^L, the bias column of every Wt; neither to the noise or Sigma_z. The inner
system is kept factored (M = B B^T with B of R D (S + 1) columns, :mod:`fastpath._inner_solve`)
and, where B is thin (wide layers at small S), solved without forming M.

The noise update needs sum_n E[(x_n - g(z))^2 | x_n] under the *new* last layer; it is the
E-step's residual (computed in residual form, no cancellation at small noise) corrected to
first order in the last layer's change, r_new = r_old - 2 diag(dW G) + diag(dW Hh dW^T). It
is clipped at the noise floor: the maximiser of Q over [floor, inf), still an exact ECM step
since Q is unimodal in sigma^2.

Bias-only updates (``biases_only``; the update of the biases with the weights fixed, as in
the authors' code of Balestriero et al. 2020, which solves for each layer's bias in turn
from one E-step): the same quadratics restricted to the bias column. For the last layer Q is
separable over the outputs d and each v_d is a scalar: the maximiser is closed form for
every prior (ratio, shrinkage, soft threshold, clip). For an inner layer the restriction of
M to the bias entries is sum_w H_w[K, K] Kw_w (D_l x D_l), solved like the full system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.activations import winners_batch
from dgn_core.model import DGN
from dgn_core.priors import BoxPrior, GaussianPrior, LaplacePrior, Prior
from dgn_core.regions import Partition

from ._mstep_priors import (
    _RANK_RTOL,
    _gaussian_diag,
    _last_bias_update,
    _last_layer_qp,
    _maximise_quadratic,
    _psd_solve,
    _weight_mask,
)

if TYPE_CHECKING:
    from ._inner_solve import InnerSystem
    from .distributions import EStepStatistics

Arr = NDArray[np.float64]


# =========================================================================== region maps
def _hidden_slopes(net: DGN, signs: NDArray[np.int8]) -> list[NDArray[Any]]:
    """D^l_w for every hidden layer: its diagonal, an (R, D_l) array, for an element-wise
    layer; for a max-pooling layer the index of every group's argmax unit, an (R, n_groups)
    integer array (D^l_w selects those rows)."""
    out: list[NDArray[Any]] = []
    start = 0
    for w, eta, pool in zip(net.hidden_widths, net.slopes, net.pool_sizes):
        block = signs[:, start:start + w]
        if pool:
            out.append(winners_batch(block, pool))
        else:
            out.append(np.where(block > 0, 1.0, eta))
        start += w
    return out


def _input_maps(net: DGN, slopes: Sequence[NDArray[Any]], R: int) -> list[tuple[Arr, Arr]]:
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
        if net.pool_sizes[l]:  # max-pooling: the rows of every group's argmax
            P = np.take_along_axis(np.matmul(W, P), d[:, :, None], axis=1)
            p = np.take_along_axis(p @ W.T + v, d, axis=1)
        else:
            P = d[:, :, None] * np.matmul(W, P)
            p = d * (p @ W.T + v)
        out.append((P, p))
    return out


def _output_map(net: DGN, slopes: Sequence[NDArray[Any]], l: int, R: int) -> tuple[Arr, Arr]:
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
        d = slopes[k - 1]
        if net.pool_sizes[k - 1]:   # D^{k-1}_w selects the argmax rows: scatter the columns
            FW = np.matmul(F, W)                                            # (R, D, groups)
            F = np.zeros((R, D, net.hidden_widths[k - 1]))
            np.put_along_axis(F, np.broadcast_to(d[:, None, :], FW.shape), FW, axis=2)
        else:
            F = np.matmul(F, W) * d[:, None, :]
    return np.ascontiguousarray(F), c


def _layer_moments(P: Arr, p: Arr, st: EStepStatistics) -> tuple[Arr, Arr, Arr]:
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
def _last_layer_update(Hh: Arr, Xh: Arr, Wt_old: Arr, noise: Arr, prior: Prior | None,
                       bias_prior: Prior | None = None, biases_only: bool = False) -> Arr:
    """Exact ECM update of the last layer, Wt = [W^L, v^L].

    Maximises Q(Wt) = -1/2 sum_d [Wt_d Hh Wt_d^T - 2 Xh_d . Wt_d] / sigma_d^2 + log p(W)
    + log p(v).

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
    prior, bias_prior : GaussianPrior, LaplacePrior, BoxPrior or None
        Priors on the weights W^L and on the bias v^L.
    biases_only : bool
        Update v^L alone (W^L fixed): :func:`_last_bias_update`.

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
    if biases_only:
        return _last_bias_update(Hh, Xh, Wt_old, noise, bias_prior)
    if any(isinstance(p, (LaplacePrior, BoxPrior)) for p in (prior, bias_prior)):
        return _last_layer_qp(Hh, Xh, Wt_old, noise, prior, bias_prior)
    J = _gaussian_diag(prior, bias_prior, _weight_mask((1, K))[0])
    if J is not None:
        out = np.empty((D, K))
        for d in range(D):   # row d: (Hh + sigma_d^2 J) Wt_d^T = Xh_d^T
            A = Hh + np.diag(noise[d] * J)
            out[d] = _psd_solve(A, Xh[d] - Wt_old[d] @ A) + Wt_old[d]
        return out
    G = Xh - Wt_old @ Hh                                                   # (D, K) residual
    return Wt_old + _psd_solve(Hh, G.T).T


def _last_layer_q(Hh: Arr, Xh: Arr, Wt: Arr, noise: Arr, prior: Prior | None,
                  bias_prior: Prior | None = None) -> float:
    """Q(Wt) of the last layer up to a constant (see :func:`_last_layer_update`)."""
    quad = np.einsum("dk,kj,dj->d", Wt, Hh, Wt) - 2.0 * np.einsum("dk,dk->d", Xh, Wt)
    val = -0.5 * float(np.sum(quad / noise))
    val += 0.0 if prior is None else prior.log_density([Wt[:, :-1]])
    return val + (0.0 if bias_prior is None else bias_prior.log_density([Wt[:, -1]]))


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


def _inner_target(system: InnerSystem, x0: Arr, prior: Prior | None, ridge: float,
                  structured: bool | None = None, bias_prior: Prior | None = None,
                  biases_only: bool = False) -> Arr:
    """Maximiser of the surrogate -x^T M x / 2 + r^T x - lambda |x - x0|^2 / 2 + log p(W)
    + log p(v).

    lambda = ridge * mean(diag M) (proximal: directions the data leaves undetermined keep
    their value x0; ``ridge`` itself where M is 0). With A = M + lambda I (+ diag(1/var) on
    the entries of Gaussian priors) and b = r + lambda x0, the target is
    x0 + A^-1 (b - A x0): the exact solution where A is positive definite (lambda > 0), else
    x0 + A^+ (b - A x0), the solution of A x = b (least squares if inconsistent) closest to x0,
    with A's eigenvalues below ``_RANK_RTOL * n * max`` treated as 0.

    ``structured`` (None: automatic) computes the same point without forming M, through
    M = B B^T with B of m = R D (S + 1) columns (:mod:`fastpath._inner_solve`); automatic
    when m <= ``STRUCTURED_MAX_FRACTION`` n and the priors are None or Gaussian (Laplace and
    box priors, and a Gaussian prior with lambda = 0, use the dense system). Both agree to the
    rounding of the dense solve, eps cond(A) |x - x0|; without a prior the structured step
    has no component off the column space of M, where the exact step has none and the dense
    one carries rounding amplified by 1 / lambda. ``biases_only``: the bias column alone
    (weights fixed, :func:`_inner_bias_target`). Returns the target Wt of shape (D_l, K).
    """
    from ._inner_solve import STRUCTURED_MAX_FRACTION, structured_step
    if biases_only:
        return _inner_bias_target(system, x0, bias_prior, ridge)
    shape = system.shape
    n = system.n
    lam = ridge * system.trace() / n
    if not lam > 0:
        lam = ridge
    mask = _weight_mask(shape).ravel()
    terms = [(prior, mask), (bias_prior, ~mask)]
    priors = [p for p in (prior, bias_prior) if p is not None]
    can = not priors or (all(isinstance(p, GaussianPrior) for p in priors) and lam > 0)
    if structured is None:
        structured = can and system.m <= STRUCTURED_MAX_FRACTION * n
    gdiag = _gaussian_diag(prior, bias_prior, mask)
    if structured and can:
        diag = None
        if lam > 0:
            diag = np.full(n, lam)
            if gdiag is not None:
                diag = diag + gdiag
        g = system.r - system.matvec(x0)
        if gdiag is not None:
            g = g - gdiag * x0
        y = structured_step(system, g, diag, _RANK_RTOL, in_range=not priors)
        return (x0 + y).reshape(shape)
    M, r = system.dense(), system.r
    A = M + lam * np.eye(n)
    b = r + lam * x0
    return _maximise_quadratic(A, b, x0, terms, cholesky=lam > 0).reshape(shape)


def _inner_bias_target(system: InnerSystem, x0: Arr, bias_prior: Prior | None,
                       ridge: float) -> Arr:
    """:func:`_inner_target` over the bias column alone (the weights keep their values).

    The surrogate restricted to the biases x_b: -x_b^T M_bb x_b / 2 + (g_b + M_bb x0_b)^T x_b
    with M_bb = sum_w H_w[K, K] Kw_w (D_l, D_l) and g = r - M x0 (the gradient, by a matrix-
    free product); the proximal ridge lambda = ridge * mean(diag M_bb). Returns Wt (D_l, K).
    """
    Dl, K = system.shape
    bidx = np.arange(Dl) * K + (K - 1)                 # the bias entries of the row-major vec
    Mbb = np.einsum("rij,r->ij", system.Kw, system.H[:, -1, -1])
    Mbb = 0.5 * (Mbb + Mbb.T)
    lam = ridge * float(np.trace(Mbb)) / Dl
    if not lam > 0:
        lam = ridge
    g = (system.r - system.matvec(x0))[bidx]
    A = Mbb + lam * np.eye(Dl)
    xb0 = x0[bidx]
    xb = _maximise_quadratic(A, g + A @ xb0, xb0, [(bias_prior, np.ones(Dl, dtype=bool))],
                             cholesky=lam > 0)
    out = np.array(x0, dtype=np.float64)
    out[bidx] = xb
    return out.reshape(Dl, K)


def _surrogate(M: Arr, r: Arr, x: Arr) -> float:
    return float(-0.5 * x @ (M @ x) + r @ x)


def _with_layer(net: DGN, l: int, Wt: Arr) -> DGN:
    Ws, vs = list(net.weights), list(net.biases)
    Ws[l], vs[l] = Wt[:, :-1], Wt[:, -1]
    return net.replace(weights=Ws, biases=vs)


def _Wt(net: DGN, l: int) -> Arr:
    return np.column_stack([net.weights[l], net.biases[l]])


@dataclass
class _Sweep:
    """The region maps of one partition that the M-step pieces share."""

    slopes: list[Arr]
    inputs: list[tuple[Arr, Arr]]
    R: int


def _sweep_maps(net: DGN, P: Partition) -> _Sweep:
    R = len(P)
    slopes = _hidden_slopes(net, P.sign_matrix)
    return _Sweep(slopes, _input_maps(net, slopes, R), R)


def _ecm(net: DGN, st: EStepStatistics, P: Partition, *, last: bool, noise_mode: str | None,
         update_prior_cov: bool, prior: Prior | None, floor: float,
         bias_prior: Prior | None = None, last_biases_only: bool = False
         ) -> tuple[DGN, bool, float]:
    """The exact ECM part of an iteration: last layer (its bias alone with
    ``last_biases_only``), then noise, then Sigma_z.

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
        cand = _last_layer_update(Hh, Xh, Wt_old, noise, prior, bias_prior, last_biases_only)
        q_old = _last_layer_q(Hh, Xh, Wt_old, noise, prior, bias_prior)
        q_new = _last_layer_q(Hh, Xh, cand, noise, prior, bias_prior)
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
        changes.update(_prior_cov_update(st))
    return (net.replace(**changes) if changes else net), hit, q_gain


def _prior_cov_update(st: EStepStatistics) -> dict[str, Arr]:
    """The exact ECM update of Sigma_z, the mean of E[z z^T | x_n] (symmetrised), as
    ``{"prior_cov": cov}``; empty when rounding leaves it not positive definite."""
    cov = st.S2.sum(axis=0) / st.n
    cov = 0.5 * (cov + cov.T)
    return {"prior_cov": cov} if np.linalg.eigvalsh(cov).min() > 0 else {}


def _inner_layer_target(net: DGN, st: EStepStatistics, P: Partition, l: int, prior: Prior | None,
                        ridge: float, structured: bool | None = None,
                        bias_prior: Prior | None = None, biases_only: bool = False
                        ) -> tuple[Arr, InnerSystem]:
    """(target Wt (D_l, K), its factored system) of inner layer l (0-based) from the E-step
    ``st``; ``structured``, ``bias_prior`` and ``biases_only`` as in :func:`_inner_target`."""
    from ._inner_solve import build_system
    sw = _sweep_maps(net, P)
    Pl, pl = sw.inputs[l]
    H, Xeta, eta = _layer_moments(Pl, pl, st)
    F, c = _output_map(net, sw.slopes, l, sw.R)
    inv_noise = 1.0 / np.asarray(net.noise_var_vector, dtype=np.float64)
    system = build_system(F, c, Pl, pl, st.s0, st.s1, st.S2, H, Xeta, eta, inv_noise)
    Wt = _Wt(net, l)
    return _inner_target(system, Wt.ravel(), prior, ridge, structured, bias_prior,
                         biases_only), system
