"""The closed-form M-step of docs/DESIGN.md §2.5, verified symbolically with sympy.

For the last layer and the noise the Q function is exactly quadratic (the partition does not
depend on them), so the closed forms must be stationary points of Q. Here Q is written with
symbolic sufficient statistics (E[h~ | x_n], E[h~ h~^T | x_n] as free symbols, a symmetric
positive matrix per point) and sympy checks that the gradient vanishes at the update, as an
identity in all symbols: nothing is sampled or approximated.
"""

from __future__ import annotations

import sympy as sp


def _stats(n: int, k: int):
    """Symbolic E[h~|x_n] (k,) and E[h~ h~^T|x_n] (k, k, symmetric) for n points."""
    eta = [sp.Matrix(k, 1, lambda i, _j, n=n_: sp.Symbol(f"eta{n}_{i}")) for n_ in range(n)]
    H = [sp.Matrix(k, k, lambda i, j, n=n_: sp.Symbol(f"H{n}_{min(i, j)}{max(i, j)}"))
         for n_ in range(n)]
    return eta, H


def test_last_layer_update_is_a_stationary_point_of_q():
    """Wt = [sum_n x_n eta_n^T] [sum_n H_n]^-1 makes dQ/dWt = 0 for any Sigma_x.

    Q(Wt) = -1/2 sum_n E[(x_n - Wt h~)^T Sigma_x^-1 (x_n - Wt h~)]
          = -1/2 sum_n [x^T P x - 2 x^T P Wt eta_n + tr(Wt^T P Wt H_n)],  P = Sigma_x^-1.
    """
    N, D, k = 2, 2, 2
    eta, H = _stats(N, k)
    X = [sp.Matrix(D, 1, lambda i, _j, n=n_: sp.Symbol(f"x{n}_{i}")) for n_ in range(N)]
    p = sp.symbols("p0:2", positive=True)
    P = sp.diag(*p)  # a diagonal noise precision, as in the library
    W = sp.Matrix(D, k, lambda i, j: sp.Symbol(f"w{i}{j}"))
    Q = sum((-(X[n].T * P * X[n])[0] + 2 * (X[n].T * P * W * eta[n])[0]
             - (W.T * P * W * H[n]).trace()) / 2 for n in range(N))
    W_star = sum((X[n] * eta[n].T for n in range(N)), sp.zeros(D, k)) * \
        sum(H, sp.zeros(k, k)).inv()
    grad = sp.Matrix(D, k, lambda i, j: sp.diff(Q, W[i, j]))
    at = grad.subs({W[i, j]: W_star[i, j] for i in range(D) for j in range(k)})
    assert sp.simplify(at) == sp.zeros(D, k)


def test_noise_update_is_the_stationary_point_of_q():
    """sigma_d^2 = mean_n S_n[d, d] maximises Q(sigma^2) = -1/2 sum_n [log sigma_d^2 + S_n / sigma_d^2].

    S_n[d, d] is the expected squared residual of coordinate d (docs/DESIGN.md §2.5); Q is
    concave in 1/sigma^2, so the stationary point is the maximum.
    """
    N = 3
    s = sp.symbols(f"s0:{N}", positive=True)   # S_n[d, d] for one coordinate d
    v = sp.Symbol("v", positive=True)          # sigma_d^2
    Q = -sum(sp.log(v) + s[n] / v for n in range(N)) / 2
    v_star = sum(s) / N
    assert sp.simplify(sp.diff(Q, v).subs(v, v_star)) == 0
    assert sp.simplify(sp.diff(Q, v, 2).subs(v, v_star)).is_negative
