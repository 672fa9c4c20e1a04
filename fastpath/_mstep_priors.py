"""Linear algebra and priors of the M-step (:mod:`fastpath._mstep`).

The symmetric PSD solve with a rank cut-off, and the maximisers of a quadratic plus the log
densities of weight and bias priors (``dgn_core.priors``) on the entries of a flattened
Wt = [W, v]: Gaussian priors add 1/var to a diagonal (closed form); Laplace (L1) and box
priors make a convex QP, solved with cvxpy (CLARABEL), box entries clipped to their box
after the solver's tolerance. The last layer's bias alone (weights fixed) has a closed form
for every prior (:func:`_last_bias_update`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg as sla

from dgn_core.priors import BoxPrior, GaussianPrior, LaplacePrior, Prior

Arr = NDArray[np.float64]

#: relative eigenvalue cut-off below which the last layer's normal matrix is singular
_RANK_RTOL = 1e-13


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


def _psd_root(A: Arr) -> Arr:
    """R with R^T R = A for symmetric PSD A (eigen-decomposition; negative rounding
    eigenvalues set to 0)."""
    ev, U = np.linalg.eigh(0.5 * (A + A.T))
    return (U * np.sqrt(np.maximum(ev, 0.0))).T


def _weight_mask(shape: tuple[int, int]) -> NDArray[np.bool_]:
    """True for the weight entries of Wt = [W, v] (False for the bias column)."""
    m = np.ones(shape, dtype=bool)
    m[:, -1] = False
    return m


def _gaussian_diag(prior: Prior | None, bias_prior: Prior | None, mask: NDArray[np.bool_]
                   ) -> Arr | None:
    """The diagonal -d^2/dx^2 log p of Gaussian priors on the entries of a flattened Wt:
    1 / var on the weights (``mask``) and on the biases (``~mask``); None without a Gaussian
    prior."""
    if not isinstance(prior, GaussianPrior) and not isinstance(bias_prior, GaussianPrior):
        return None
    J = np.zeros(mask.shape)
    if isinstance(prior, GaussianPrior):
        J = J + mask / prior.var
    if isinstance(bias_prior, GaussianPrior):
        J = J + ~mask / bias_prior.var
    return J


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


def _penalties(terms: Sequence[tuple[Prior | None, NDArray[np.bool_]]], x: Any
               ) -> tuple[Any, list[Any]]:
    """The cvxpy penalty -sum log p and constraints of priors on the entries ``mask`` of the
    variable ``x`` (one (prior, mask) term per prior; the masks are over x's flat entries)."""
    import cvxpy as cp
    pen: Any = 0
    cons: list[Any] = []
    for prior, mask in terms:
        if prior is None:
            continue
        xw = x[np.flatnonzero(mask.ravel())]
        if isinstance(prior, GaussianPrior):
            pen = pen + 0.5 * cp.sum_squares(xw) / prior.var
        elif isinstance(prior, LaplacePrior):
            pen = pen + cp.norm1(xw) / prior.scale
        else:
            cons.append(cp.abs(xw) <= prior.bound)
    return pen, cons


def _clip_to_boxes(out: Arr, terms: Sequence[tuple[Prior | None, NDArray[np.bool_]]]) -> None:
    """Clip the entries of box priors to their box (the QP solver's tolerance), in place."""
    flat = out.reshape(-1)
    for prior, mask in terms:
        if isinstance(prior, BoxPrior):
            idx = np.flatnonzero(mask.ravel())
            flat[idx] = np.clip(flat[idx], -prior.bound, prior.bound)


def _maximise_quadratic(A: Arr, b: Arr, x0: Arr,
                        terms: Sequence[tuple[Prior | None, NDArray[np.bool_]]],
                        cholesky: bool) -> Arr:
    """argmax_x -x^T A x / 2 + b^T x + sum_k log p_k(x[mask_k]) for symmetric PSD A (n, n).

    Gaussian priors only: x0 + A'^+ (b - A' x0) with A' = A + diag(1 / var on their
    entries) (:func:`_psd_solve`; Cholesky first with ``cholesky``). A Laplace or box prior:
    the convex QP with cvxpy (Gaussian terms included), box entries clipped to their box
    after the solver. Returns x of shape (n,).
    """
    if any(isinstance(p, (LaplacePrior, BoxPrior)) for p, _ in terms):
        import cvxpy as cp
        Rt = _psd_root(A)
        x = cp.Variable(A.shape[0])
        pen, cons = _penalties(terms, x)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Rt @ x) - b @ x + pen), cons)
        x.value = x0
        _cvxpy_solve(prob)
        out = np.asarray(x.value, dtype=np.float64)
        _clip_to_boxes(out, terms)
        return out
    for prior, mask in terms:
        if isinstance(prior, GaussianPrior):
            A = A + np.diag(mask / prior.var)
    return x0 + _psd_solve(A, b - A @ x0, cholesky=cholesky)


def _last_layer_qp(Hh: Arr, Xh: Arr, Wt_old: Arr, noise: Arr, prior: Prior | None,
                   bias_prior: Prior | None = None) -> Arr:
    """The last-layer M-step with a Laplace or box prior on the weights or the bias: a convex
    QP (cvxpy)."""
    import cvxpy as cp
    D, K = Wt_old.shape
    Rt = _psd_root(Hh)                                                     # (K, K)
    x = cp.Variable(D * K)
    Wt = cp.reshape(x, (D, K), order="C")
    inv = 1.0 / noise
    quad = 0.5 * cp.sum_squares(cp.multiply(np.sqrt(inv)[:, None], Wt @ Rt.T))
    lin = cp.sum(cp.multiply(inv[:, None] * Xh, Wt))
    mask = _weight_mask((D, K))
    terms = [(prior, mask), (bias_prior, ~mask)]
    pen, cons = _penalties(terms, x)
    prob = cp.Problem(cp.Minimize(quad - lin + pen), cons)
    x.value = Wt_old.ravel()
    _cvxpy_solve(prob)
    out = np.asarray(x.value, dtype=np.float64).reshape(D, K)
    _clip_to_boxes(out, terms)   # solver tolerance: stay inside the boxes
    return out


def _last_bias_update(Hh: Arr, Xh: Arr, Wt_old: Arr, noise: Arr, prior: Prior | None) -> Arr:
    """Exact maximiser of the last-layer Q over the bias v^L alone (W^L fixed).

    Q is separable over the outputs: Q_d(v) = -a_d v^2 / 2 + b_d v + log p(v) with
    a_d = Hh[K, K] / sigma_d^2 (Hh[K, K] = N, the posterior mass) and
    b_d = (Xh[d, K] - W_d . Hh[:K-1, K]) / sigma_d^2, so v_d = b_d / a_d without a prior,
    b_d / (a_d + 1 / var) (Gaussian), sign(b_d) max(|b_d| - 1 / scale, 0) / a_d (Laplace: soft
    threshold), clip(b_d / a_d, -bound, bound) (box). Returns Wt of shape (D, K).
    """
    out = np.array(Wt_old, dtype=np.float64)
    a = float(Hh[-1, -1]) / noise                                           # (D,)
    b = (Xh[:, -1] - Wt_old[:, :-1] @ Hh[:-1, -1]) / noise                  # (D,)
    if not float(Hh[-1, -1]) > 0:   # no posterior mass at all: Q is flat, keep the bias
        return out
    if isinstance(prior, GaussianPrior):
        v = b / (a + 1.0 / prior.var)
    elif isinstance(prior, LaplacePrior):
        v = np.sign(b) * np.maximum(np.abs(b) - 1.0 / prior.scale, 0.0) / a
    elif isinstance(prior, BoxPrior):
        v = np.clip(b / a, -prior.bound, prior.bound)
    else:
        v = b / a
    out[:, -1] = v
    return out
