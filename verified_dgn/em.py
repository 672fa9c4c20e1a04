"""One exact EM step of a DGN in high precision: the oracle of :mod:`fastpath.em`.

The E-step is the exact posterior of :func:`verified_dgn.posterior` (rational geometry,
mpmath moments claimed to ``10**-dps``); the geometry of the M-step (the per-region maps
a^{l-1} = P_w z + p_w of every layer's input and g = F_w (W^l a^{l-1} + v^l) + c_w of the
output) is computed in exact rational arithmetic from the sign patterns; the sums over
points and regions and the linear solves are done in mpmath at ``dps + 10`` digits, with
DESIGN.md 2.5's formulas written out literally (column-major ``vec`` and ``np.kron``-style
Kronecker products, the noise from the per-point matrices S_n of docs/DESIGN.md §2.5), so that the
oracle shares no arithmetic with the fast path's vectorised kernels.

What one step computes, from the E-step at theta = ``net`` (the semantics of
:func:`fastpath.em.em_step`):

* last layer (exact ECM): Wt^L = [sum_n x_n E[h~|x_n]^T] [sum_n E[h~ h~^T|x_n]]^-1, with a
  Gaussian weight prior N(0, var) row d solves (Hh + (sigma_d^2 / var) J) Wt_d^T = Xh_d^T
  (J = the identity without the bias entry);
* noise (exact ECM given the new last layer): Sigma_x = mean_n S_n, diagonal part or
  trace / D, clipped at ``noise_floor``;
* Sigma_z (optional): mean_n sum_w E2_nw;
* every inner layer l: the closed-form target of the frozen-activation Kronecker system
  [sum_w H_w kron K_w + lambda I (+ prior)] vec(Wt) = vec(sum_w F_w^T Sigma_x^-1 (Xeta_w -
  c_w eta_w^T)) + lambda vec(Wt_old), K_w = F_w^T Sigma_x^-1 F_w, lambda = ridge * mean of the
  diagonal (the proximal ridge of :mod:`fastpath.em`), all other parameters at theta.

Laplace and box priors have no closed form (the fast path solves a convex QP); the oracle
covers the closed forms only.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike

from dgn_core.model import DGN
from dgn_core.priors import GaussianPrior, check_prior
from dgn_core.regions import Partition
from dgn_core.validation import check_nonnegative

from .region_forms import _check_dps, _check_net, _check_partition, _check_points

__all__ = ["DEFAULT_RIDGE", "em_step"]

#: the proximal ridge of the inner systems relative to their mean diagonal (as fastpath.em)
DEFAULT_RIDGE = 1e-6
#: guard digits of the M-step arithmetic
_GUARD = 10
#: relative eigenvalue cut-off of the last layer's normal matrix (as fastpath.em)
_RANK_RTOL = 1e-13

Obj = np.ndarray


def _fr(a: Any) -> Obj:
    """A float array as an object array of exact Fractions."""
    arr = np.asarray(a, dtype=np.float64)
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(arr.ravel().tolist()):
        flat[i] = Fraction(v)
    return out


def _mp(a: Obj) -> Obj:
    """Object array of Fractions / ints / mpf -> object array of mpf."""
    arr = np.asarray(a, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(arr.ravel().tolist()):
        flat[i] = mpmath.mpf(v.numerator) / v.denominator if isinstance(v, Fraction) else mpmath.mpf(v)
    return out


def _zeros(shape: tuple[int, ...]) -> Obj:
    out = np.empty(shape, dtype=object)
    out.reshape(-1)[:] = [mpmath.mpf(0)] * int(np.prod(shape, dtype=np.int64))
    return out


def _eye(n: int) -> Obj:
    out = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            out[i, j] = Fraction(int(i == j))
    return out


def _region_maps(net: DGN, signs: Sequence[int]) -> tuple[list[tuple[Obj, Obj]], list[tuple[Obj, Obj]]]:
    """Exact per-layer maps on the region of ``signs`` (Fraction object arrays).

    Returns
    -------
    inputs : list over layers l = 1..L of (P (D_{l-1}, S), p (D_{l-1},))
        The layer's input a^{l-1}(z) = P z + p.
    outputs : list over layers l = 1..L of (F (D, D_l), c (D,))
        g(z) = F (W^l a^{l-1} + v^l) + c.
    """
    L, S, D = net.n_layers, net.latent_dim, net.data_dim
    Ws = [_fr(W) for W in net.weights]
    vs = [_fr(v) for v in net.biases]
    # D^l_w as a matrix: diagonal (element-wise) or the selection of every group's argmax row
    q, start = [], 0
    for w, eta, pool in zip(net.hidden_widths, net.slopes, net.pool_sizes):
        block = signs[start:start + w]
        if pool:
            rows = [k for k in range(w) if block[k] > 0]
            Dl = np.full((len(rows), w), Fraction(0), dtype=object)
            for g, k in enumerate(rows):
                Dl[g, k] = Fraction(1)
        else:
            Dl = np.full((w, w), Fraction(0), dtype=object)
            for k in range(w):
                Dl[k, k] = Fraction(1) if block[k] > 0 else Fraction(eta)
        q.append(Dl)
        start += w
    inputs = []
    P, p = _eye(S), np.array([Fraction(0)] * S, dtype=object)
    for l in range(L):
        inputs.append((P, p))
        if l < L - 1:
            P = q[l] @ (Ws[l] @ P)
            p = q[l] @ (Ws[l] @ p + vs[l])
    outputs: list[tuple[Obj, Obj]] = [None] * L  # type: ignore[list-item]
    F, c = _eye(D), np.array([Fraction(0)] * D, dtype=object)
    outputs[L - 1] = (F, c)
    for l in range(L - 2, -1, -1):
        c = c + F @ vs[l + 1]
        F = (F @ Ws[l + 1]) @ q[l]
        outputs[l] = (F, c)
    return inputs, outputs


def _to_matrix(a: Obj) -> mpmath.matrix:
    a = np.asarray(a, dtype=object)
    if a.ndim == 1:
        return mpmath.matrix([[v] for v in a.tolist()])
    return mpmath.matrix(a.tolist())


def _from_matrix(m: mpmath.matrix, shape: tuple[int, ...]) -> Obj:
    out = np.empty(shape, dtype=object)
    flat = out.reshape(-1)
    k = 0
    if len(shape) == 1:
        for i in range(shape[0]):
            flat[i] = m[i]
        return out
    for i in range(shape[0]):
        for j in range(shape[1]):
            flat[k] = m[i, j]
            k += 1
    return out


def _psd_solve(A: Obj, B: Obj) -> Obj:
    """Solve A X = B for symmetric PSD A (n, n), B (n,) or (n, k): LU when A is nonsingular
    at the working precision, else the pseudo-inverse with fastpath's cut-off."""
    n = A.shape[0]
    eig, U = mpmath.eigsy(_to_matrix(A))
    top = max(eig[i] for i in range(n))
    keep = [eig[i] > _RANK_RTOL * max(top, 0) * n for i in range(n)]
    Bm = _to_matrix(B)
    if all(keep):
        return _from_matrix(mpmath.lu_solve(_to_matrix(A), Bm) if B.ndim == 1 else
                            _lu_multi(A, B), B.shape)
    # pseudo-inverse
    UtB = U.T * Bm
    for i in range(n):
        f = 1 / eig[i] if keep[i] else mpmath.mpf(0)
        for j in range(UtB.cols):
            UtB[i, j] *= f
    return _from_matrix(U * UtB, B.shape)


def _lu_multi(A: Obj, B: Obj) -> mpmath.matrix:
    Am = _to_matrix(A)
    cols = [mpmath.lu_solve(Am, _to_matrix(B[:, j])) for j in range(B.shape[1])]
    out = mpmath.matrix(B.shape[0], B.shape[1])
    for j, col in enumerate(cols):
        for i in range(B.shape[0]):
            out[i, j] = col[i]
    return out


def _check_posterior(post: Any, net: DGN, partition: Partition | None, N: int,
                     dps: int) -> Any:
    """``post`` if it can be the exact posterior of ``net`` at N points to ``dps`` digits
    over ``partition`` (its own partition when None): its regions index the M-step's sums."""
    from .exact_posterior import ExactPosterior

    if not isinstance(post, ExactPosterior):
        raise TypeError("posterior must be verified_dgn.posterior(net, X, dps=dps, "
                        f"partition=partition), got {type(post).__name__}")
    if partition is not None and post.partition is not partition:
        raise ValueError("posterior was computed over another partition than the partition "
                         "given (pass the same Partition object to both)")
    _check_partition(net, post.partition)
    if post.e0.shape[0] != N:
        raise ValueError(f"posterior holds {post.e0.shape[0]} point(s) but X has {N}: it must "
                         "be the posterior of this X")
    if post.dps < dps:
        raise ValueError(f"posterior was computed to {post.dps} digits, fewer than dps={dps}")
    return post


def em_step(net: DGN, X: ArrayLike, *, dps: int = 30, noise: str | None = None,
            update_prior_cov: bool = False, weight_prior: Any = None, noise_floor: float = 0.0,
            ridge: float = DEFAULT_RIDGE, partition: Partition | None = None,
            posterior: Any = None) -> tuple[DGN, dict[str, Any]]:
    """One exact EM step (module notes): the oracle of :func:`fastpath.em.em_step`.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 4 (the exact posterior's range).
    X : array_like, shape (N, D)
    dps : int, default 30
        Digits of the exact posterior; the M-step runs at ``dps + 10``.
    noise : {"isotropic", "diagonal"}, optional
        Default: the net's noise model.
    update_prior_cov : bool
    weight_prior : dgn_core.priors.GaussianPrior or None
        A Gaussian weight prior; Laplace and box priors raise
        NotImplementedError (no closed form).
    noise_floor : float
    ridge : float
        Proximal ridge of the inner systems relative to their mean diagonal.
    partition : Partition, optional
        ``verified_dgn.partition(net)``.
    posterior : ExactPosterior, optional
        ``verified_dgn.posterior(net, X, dps, partition=partition)`` (computed if not given);
        it must be the posterior of this X (checked: its type, partition, number of points
        and digits; not the values of X).

    Returns
    -------
    new_net : DGN
        ``net`` with the ECM updates (last layer, noise, Sigma_z) rounded to float64; inner
        layers unchanged.
    info : dict
        ``log_likelihood`` (mpf); ``last_layer`` (W (D, D_{L-1}), v (D,)) and ``noise_var``
        ((D,)) and ``prior_cov`` ((S, S) or None) as mpf object arrays; ``inner``: list over
        inner layers of (W, v) targets (mpf); ``inner_system``: list of (M, r) in the
        row-major vec of fastpath.em (converted from the column-major form built here);
        ``noise_floor_hit``.
    """
    from .distributions import posterior as exact_posterior

    net = _check_net(net)
    dps = _check_dps(dps)
    pts = _check_points(X, net.data_dim, "X")
    if noise is None:
        noise = "isotropic" if net.isotropic_noise else "diagonal"
    if noise not in ("isotropic", "diagonal"):
        raise ValueError(f"noise must be 'isotropic' or 'diagonal', got {noise!r}")
    var = None
    if weight_prior is not None:
        weight_prior = check_prior(weight_prior)
        if not isinstance(weight_prior, GaussianPrior):
            raise NotImplementedError(
                f"{type(weight_prior).__name__} has no closed-form M-step (the fast path solves "
                "a convex QP); the exact oracle covers no prior or a Gaussian prior")
        var = Fraction(float(weight_prior.var))
    # the fast em_step's rule: TypeError for a non-number, ValueError for one out of range
    ridge = check_nonnegative(ridge, "ridge")
    noise_floor = check_nonnegative(noise_floor, "noise_floor")
    if posterior is None:
        partition = _check_partition(net, partition)
        post = exact_posterior(net, X, dps=dps, partition=partition)
    else:
        post = _check_posterior(posterior, net, partition, len(pts), dps)
        partition = post.partition
    N, R = post.e0.shape
    S, D, L = net.latent_dim, net.data_dim, net.n_layers
    Xf = [[mpmath.mpf(v.numerator) / v.denominator for v in row] for row in pts]

    with mpmath.workdps(dps + _GUARD):
        var_mp = None if var is None else mpmath.mpf(var.numerator) / var.denominator
        Xm = np.empty((N, D), dtype=object)
        for n in range(N):
            Xm[n] = Xf[n]
        nv = _mp(_fr(net.noise_var_vector))
        inv_nv = np.array([1 / v for v in nv], dtype=object)
        maps = [_region_maps(net, region.signs) for region in partition]

        # per-region sums over the points of eta = E[h~ 1_w | x], H = E[h~ h~^T 1_w | x] and
        # x eta^T, for the input of every layer, written out per point (docs/DESIGN.md §2.5)
        def layer_sums(l: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
            Hs, Xetas, etas = [], [], []
            for w in range(R):
                P, p = (_mp(a) for a in maps[w][0][l])
                K = P.shape[0] + 1
                Hw, Xw, ew = _zeros((K, K)), _zeros((D, K)), _zeros((K,))
                for n in range(N):
                    e0 = post.e0[n, w]
                    if e0 == 0:
                        continue
                    e1 = post.e1[n, w]
                    E2 = post.E2[n, w]
                    Pe1 = P @ e1
                    eta = np.concatenate([Pe1 + p * e0, np.array([e0], dtype=object)])
                    Hn = _zeros((K, K))
                    Hn[:-1, :-1] = (P @ E2 @ P.T + np.outer(Pe1, p) + np.outer(p, Pe1)
                                    + e0 * np.outer(p, p))
                    Hn[:-1, -1] = Pe1 + p * e0
                    Hn[-1, :-1] = Pe1 + p * e0
                    Hn[-1, -1] = e0
                    Hw = Hw + Hn
                    Xw = Xw + np.outer(Xm[n], eta)
                    ew = ew + eta
                Hs.append(Hw)
                Xetas.append(Xw)
                etas.append(ew)
            return Hs, Xetas, etas

        log_lik = mpmath.fsum(post.log_px.tolist())

        # ---- last layer (exact ECM)
        Hs, Xetas, _ = layer_sums(L - 1)
        K = Hs[0].shape[0]
        Hh = sum(Hs[1:], Hs[0])
        Xh = sum(Xetas[1:], Xetas[0])
        Wt_old = _mp(_fr(np.column_stack([net.weights[-1], net.biases[-1]])))
        Wt = _zeros((D, K))
        for d in range(D):
            A = Hh.copy()
            if var is not None:
                for k in range(K - 1):
                    A[k, k] = A[k, k] + nv[d] / var_mp
            # the maximiser closest to the old row (unique when A is nonsingular)
            Wt[d] = Wt_old[d] + _psd_solve(A, Xh[d] - A @ Wt_old[d])

        # ---- noise given the new last layer: S_n of docs/DESIGN.md §2.5 with A'_w, b'_w
        Wn, vn = Wt[:, :-1], Wt[:, -1]
        diag = _zeros((D,))
        for w in range(R):
            P, p = (_mp(a) for a in maps[w][0][L - 1])
            A = Wn @ P
            b = Wn @ p + vn
            for n in range(N):
                e0 = post.e0[n, w]
                if e0 == 0:
                    continue
                r = Xm[n] - b
                Ae1 = A @ post.e1[n, w]
                S_n = (e0 * np.outer(r, r) - np.outer(r, Ae1) - np.outer(Ae1, r)
                       + A @ post.E2[n, w] @ A.T)
                diag = diag + np.array([S_n[i, i] for i in range(D)], dtype=object)
        if noise == "isotropic":
            raw = mpmath.fsum(diag.tolist()) / (N * D)
            new_nv = np.array([raw] * D, dtype=object)
        else:
            new_nv = np.array([v / N for v in diag], dtype=object)
        hit = any(v < noise_floor for v in new_nv)
        new_nv = np.array([max(v, mpmath.mpf(noise_floor)) for v in new_nv], dtype=object)

        # ---- Sigma_z
        prior_cov = None
        if update_prior_cov:
            tot = _zeros((S, S))
            for n in range(N):
                for w in range(R):
                    if post.e0[n, w] != 0:
                        tot = tot + post.E2[n, w]
            prior_cov = tot / N

        # ---- inner layers: the Kronecker systems, column-major as in docs/DESIGN.md §2.5
        inner, systems = [], []
        for l in range(L - 1):
            Hs, Xetas, etas = layer_sums(l)
            Dl = net.widths[l + 1]
            K = Hs[0].shape[0]
            n_var = Dl * K
            M = _zeros((n_var, n_var))
            rhs = _zeros((Dl, K))
            for w in range(R):
                F, c = (_mp(a) for a in maps[w][1][l])
                SF = F * inv_nv[:, None]
                Kw = F.T @ SF
                Hw = Hs[w]
                for a in range(K):              # kron(H_w, K_w): block (a, b) = H_w[a, b] K_w
                    for b in range(K):
                        M[a * Dl:(a + 1) * Dl, b * Dl:(b + 1) * Dl] += Hw[a, b] * Kw
                rhs = rhs + SF.T @ (Xetas[w] - np.outer(c, etas[w]))
            r_col = np.array([rhs[i, a] for a in range(K) for i in range(Dl)], dtype=object)
            Wt_l = _mp(_fr(np.column_stack([net.weights[l], net.biases[l]])))
            x0 = np.array([Wt_l[i, a] for a in range(K) for i in range(Dl)], dtype=object)
            lam = mpmath.mpf(ridge) * mpmath.fsum(M[i, i] for i in range(n_var)) / n_var
            A = M.copy()
            for i in range(n_var):
                A[i, i] = A[i, i] + lam
                if var_mp is not None and i < (K - 1) * Dl:  # weights, not the bias column
                    A[i, i] = A[i, i] + 1 / var_mp
            b = r_col + lam * x0
            x = x0 + _psd_solve(A, b - A @ x0)
            target = np.empty((Dl, K), dtype=object)
            for a in range(K):
                for i in range(Dl):
                    target[i, a] = x[a * Dl + i]
            inner.append((target[:, :-1], target[:, -1]))
            # to fastpath's row-major vec: index i*K + a <-> column-major a*Dl + i
            perm = [a * Dl + i for i in range(Dl) for a in range(K)]
            systems.append((M[np.ix_(perm, perm)], r_col[perm]))

    def f64(a: Obj) -> np.ndarray:
        return np.array([float(v) for v in np.asarray(a, dtype=object).ravel()]).reshape(np.shape(a))

    changes: dict[str, Any] = {}
    Ws, vs = list(net.weights), list(net.biases)
    Ws[-1], vs[-1] = f64(Wt[:, :-1]), f64(Wt[:, -1])
    changes.update(weights=Ws, biases=vs)
    changes["noise_var"] = float(new_nv[0]) if noise == "isotropic" else f64(new_nv)
    if prior_cov is not None:
        pc = f64(prior_cov)
        changes["prior_cov"] = 0.5 * (pc + pc.T)
    new = net.replace(**changes)
    info = {"log_likelihood": log_lik, "last_layer": (Wt[:, :-1], Wt[:, -1]), "noise_var": new_nv,
            "prior_cov": prior_cov, "inner": inner, "inner_system": systems,
            "noise_floor_hit": hit}
    return new, info
