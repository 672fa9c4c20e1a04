"""The inner-layer M-step solved through the low-rank structure of its system (wide layers).

The inner system of layer l (:func:`fastpath._mstep._inner_system`) is
M = sum_w K_w kron H_w (row-major vec of Wt = [W^l, v^l], shape (D_l, K), n = D_l K), with

* K_w = F_w^T Sigma_x^-1 F_w = U_w U_w^T, U_w = F_w^T Sigma_x^-1/2 of shape (D_l, D):
  rank <= D (the data dimension);
* H_w = sum_n E[h~ h~^T 1_w | x_n] = V_w V_w^T: h~ = Pt_w [z; 1] with Pt_w = [[P_w, p_w], [0, 1]]
  (K, S + 1) on region w, so H_w = Pt_w Mz_w Pt_w^T with Mz_w = [[S2_w, s1_w], [s1_w^T, s0_w]]
  the E-step's moments of [z; 1], and V_w = Pt_w Mz_w^1/2 of shape (K, S + 1).

Hence M = B B^T with B = [U_w[:, a] kron V_w[:, b]]_{w, a, b} of shape (n, m), m = R D (S + 1),
built from these exact thin factors (no eigen-decomposition, no cut-off). When m is well
below n (S = 1 and wide layers: n = 16,512 for width 128, m = 4R) the solve of
:func:`fastpath._mstep._inner_target` is done in the m-dimensional column space of B at
O(n m^2) instead of forming M (O(R n^2)) and factorising it (O(n^3)). Forming M at width 128
alone is 2.2 GB and 8e10 flops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg as sla

Arr = NDArray[np.float64]

#: the structured solve is used when B has at most this fraction of n columns (its cost
#: n m^2 against the dense Cholesky's n^3 / 3 plus forming M, R n^2)
STRUCTURED_MAX_FRACTION = 0.5


@dataclass
class InnerSystem:
    """The frozen-activation quadratic Q(x) = -x^T M x / 2 + r^T x of an inner layer, kept in
    factored form (module docstring).

    Attributes
    ----------
    Kw : ndarray, shape (R, D_l, D_l)
    H : ndarray, shape (R, K, K)
        The factors of M = sum_w Kw_w kron H_w, exactly as :func:`_inner_system` uses them.
    U : ndarray, shape (R, D_l, D)
        Kw_w = U_w U_w^T.
    V : ndarray, shape (R, K, S + 1)
        H_w = V_w V_w^T (to rounding).
    r : ndarray, shape (D_l K,)
    """

    Kw: Arr
    H: Arr
    U: Arr
    V: Arr
    r: Arr

    @property
    def shape(self) -> tuple[int, int]:
        return self.Kw.shape[1], self.H.shape[1]

    @property
    def n(self) -> int:
        Dl, K = self.shape
        return Dl * K

    @property
    def m(self) -> int:
        """Number of columns of B."""
        R, _, a = self.U.shape
        return R * a * self.V.shape[2]

    def trace(self) -> float:
        """trace(M) = sum_w trace(Kw_w) trace(H_w)."""
        return float(np.trace(self.Kw, axis1=1, axis2=2) @ np.trace(self.H, axis1=1, axis2=2))

    def dense(self) -> Arr:
        """M of shape (n, n) (row-major vec of Wt): what :func:`_inner_system` returns."""
        R, Dl, _ = self.Kw.shape
        K = self.H.shape[1]
        M4 = (self.Kw.reshape(R, Dl * Dl).T @ self.H.reshape(R, K * K)).reshape(Dl, Dl, K, K)
        M = M4.transpose(0, 2, 1, 3).reshape(Dl * K, Dl * K)
        return 0.5 * (M + M.T)

    def matvec(self, x: Arr) -> Arr:
        """M x without forming M: sum_w Kw_w X H_w with X = x reshaped (D_l, K)."""
        X = x.reshape(self.shape)
        R, Dl, K = self.Kw.shape[0], X.shape[0], X.shape[1]
        KX = np.matmul(self.Kw, X)                                             # (R, Dl, K)
        return (KX.transpose(1, 0, 2).reshape(Dl, R * K) @ self.H.reshape(R * K, K)).ravel()

    def surrogate(self, x: Arr) -> float:
        """Q(x) = -x^T M x / 2 + r^T x."""
        return float(-0.5 * x @ self.matvec(x) + self.r @ x)

    def columns(self) -> Arr:
        """B of shape (n, m) with B B^T = M (to rounding)."""
        Dl, K = self.shape
        B = np.einsum("ria,rkb->ikrab", self.U, self.V)
        return B.reshape(Dl * K, -1)


def build_system(F: Arr, c: Arr, P: Arr, p: Arr, st_s0: Arr, st_s1: Arr, st_S2: Arr, H: Arr,
                 Xeta: Arr, eta: Arr, inv_noise: Arr) -> InnerSystem:
    """The factored inner system (module docstring) from the region maps and E-step moments.

    Parameters
    ----------
    F : ndarray, shape (R, D, D_l)
    c : ndarray, shape (R, D)
    P : ndarray, shape (R, K-1, S)
    p : ndarray, shape (R, K-1)
        The layer's input a^{l-1} = P z + p on every region.
    st_s0, st_s1, st_S2 : ndarray, shapes (R,), (R, S), (R, S, S)
        sum_n E[1_w | x_n], E[z 1_w | x_n], E[z z^T 1_w | x_n].
    H, Xeta, eta : ndarray
        From :func:`fastpath._mstep._layer_moments`.
    inv_noise : ndarray, shape (D,)
    """
    R, Km1, S = P.shape
    SF = F * inv_noise[None, :, None]
    Kw = np.einsum("rdi,rdj->rij", F, SF)                                    # (R, Dl, Dl)
    U = np.ascontiguousarray(np.swapaxes(F * np.sqrt(inv_noise)[None, :, None], 1, 2))
    Pt = np.zeros((R, Km1 + 1, S + 1))
    Pt[:, :Km1, :S] = P
    Pt[:, :Km1, S] = p
    Pt[:, Km1, S] = 1.0
    Mz = np.empty((R, S + 1, S + 1))
    Mz[:, :S, :S] = 0.5 * (st_S2 + np.swapaxes(st_S2, 1, 2))
    Mz[:, :S, S] = st_s1
    Mz[:, S, :S] = st_s1
    Mz[:, S, S] = st_s0
    ev, Q = np.linalg.eigh(Mz)                                                # batched, tiny
    root = Q * np.sqrt(np.maximum(ev, 0.0))[:, None, :]                       # root root^T = Mz
    V = np.matmul(Pt, root)
    T = Xeta - c[:, :, None] * eta[:, None, :]                               # (R, D, K)
    r = np.einsum("rdi,rdk->ik", SF, T).ravel()
    return InnerSystem(Kw, H, U, V, r)


def structured_step(sys: InnerSystem, g: Arr, diag: Arr | None, rank_rtol: float,
                    in_range: bool = False) -> Arr:
    """y = A^-1 g (or A^+ g) for A = M + diag(diag) through B (M = B B^T), without forming M.

    Parameters
    ----------
    sys : InnerSystem
    g : ndarray, shape (n,)
    diag : ndarray, shape (n,), or None
        Positive diagonal d: with C = d^-1/2 B = Q T (thin QR, Q of shape (n, k), k <= m),
        A = d^1/2 (C C^T + I) d^1/2 and
        (C C^T + I)^-1 = Q (T T^T + I_k)^-1 Q^T + (I - Q Q^T): a k x k Cholesky solve and
        the projection on the complement of B's columns, where A is the diagonal alone
        (skipped when B has n columns or more: it is rounding of size eps |h| there). For
        d = lambda I the k x k matrix is (T T^T + lambda I) / lambda, conditioned as A on the
        column space of B; otherwise it can be worse, and one step of iterative refinement
        (residual g - M y - d y without forming M) brings the forward error to that of the
        dense Cholesky solve, eps cond(A) |y|.
        None: y = M^+ g, the pseudo-inverse with the eigenvalues of M below
        ``rank_rtol * n * max`` treated as 0 (the cut-off of :func:`_psd_solve`), through the
        thin SVD of B (M's eigenvalues are the squared singular values of B).
    rank_rtol : float
    in_range : bool
        g lies in the column space of B in exact arithmetic (g = r - M x0 and d = lambda I:
        r is a sum of U_w a b^T V_w^T terms, module docstring), so is y: the complement part,
        rounding of g amplified by 1 / lambda (which the dense Cholesky solve carries, at
        eps cond(A) |y|), is left out.

    Returns
    -------
    y : ndarray, shape (n,)
    """
    B = sys.columns()
    B = B[:, np.any(B != 0.0, axis=0)]   # regions without posterior mass: B B^T unchanged
    n = B.shape[0]
    if B.shape[1] == 0:   # M = 0: A = diag(d), or the pseudo-inverse of 0
        return np.zeros_like(g) if diag is None or in_range else g / diag
    if diag is not None:
        s = 1.0 / np.sqrt(diag)
        Q, T = np.linalg.qr(B * s[:, None])                                   # reduced
        G = T @ T.T
        G[np.diag_indices_from(G)] += 1.0
        cf = sla.cho_factor(G, lower=True, check_finite=False)

        def solve(rhs: Arr) -> Arr:
            h = rhs * s
            Qh = Q.T @ h
            y = Q @ sla.cho_solve(cf, Qh, check_finite=False)
            if Q.shape[1] < n and not in_range:   # the complement of B's columns
                y += h - Q @ Qh
            return y * s

        y = solve(g)
        # one step of iterative refinement with the matrix-free residual: a non-uniform d
        # (a Gaussian prior on the weights, lambda on the biases) makes the k x k matrix worse
        # conditioned than A; refinement brings the error back to eps cond(A) |y|
        return y + solve(g - sys.matvec(y) - diag * y)
    Q, sv, _ = np.linalg.svd(B, full_matrices=False)
    ev = sv * sv
    if ev.size == 0 or not ev[0] > 0:
        return np.zeros_like(g)
    keep = ev > rank_rtol * float(ev[0]) * n
    Qk = Q[:, keep]
    return Qk @ ((Qk.T @ g) / ev[keep])
