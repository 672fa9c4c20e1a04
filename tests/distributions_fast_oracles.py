"""Nets and independent oracles shared by the tests of fastpath's distributions
(``tests/test_distributions_fast*.py``).

Nothing here uses the fast path's kernels:

* brute-force quadrature of p(x|z) p(z) over z with ``net.forward`` (not the region maps):
  scipy ``quad`` per region interval (S = 1) and nested ``quad`` over each region's slices
  (S = 2; the integrand is smooth inside a region, so quadrature converges to ~1e-13);
* a slow loop oracle per (point, region) with numpy.linalg on the D x D covariance
  Sigma_x + A Sigma_z A^T, and the Gaussian integrals of each region one at a time.
"""

# Lambdas inside loops below are called within the same iteration (quadrature integrands),
# so late binding of loop variables cannot bite:
# ruff: noqa: B023
from __future__ import annotations

import math

import numpy as np
from scipy import integrate
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from dgn_core.data import digits
from fastpath.integrals import PolyhedronCones
from verified_dgn import DGN

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    import contextlib

    def threadpool_limits(n):  # type: ignore[misc]
        return contextlib.nullcontext()

# --------------------------------------------------------------------------- nets
# None of these nets or points was used while writing the code (seeds picked up front).


def net_s1(seed: int = 11, act: str = "relu", noise=0.05, prior=None) -> DGN:
    return DGN.random((1, 8, 2), activation=act, seed=seed, noise_var=noise, prior_cov=prior)


def net_s2(seed: int = 7, act: str = "relu", noise=0.1, prior=None, widths=(2, 5, 2)) -> DGN:
    return DGN.random(widths, activation=act, seed=seed, noise_var=noise, prior_cov=prior)


def net_lines() -> DGN:
    """S = 2 with a 1-unit first layer: two half-planes, each containing a line."""
    return DGN([np.array([[0.8, -0.5]]), np.array([[1.2], [-0.7]])],
               [np.array([0.1]), np.array([0.3, -0.2])], activation="leaky_relu", slope=0.2,
               noise_var=0.08)


def digit_like(n: int) -> np.ndarray:
    """sklearn's 8x8 digits upsampled to 28x28 (3x3 blocks, 2-pixel border): (n, 784)."""
    X = digits()[:n]
    out = np.zeros((n, 28, 28))
    for i, x in enumerate(X):
        out[i, 2:26, 2:26] = np.kron(x.reshape(8, 8), np.ones((3, 3)))
    return out.reshape(n, 784)


# --------------------------------------------------------------------------- oracles
def log_joint(net: DGN, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """log p(x|z) + log p(z) for rows of Z, with net.forward (no region maps)."""
    Z = np.atleast_2d(Z)
    nv = net.noise_var_vector
    r = x - net.forward(Z)
    lx = -0.5 * np.sum(r * r / nv, axis=1) - 0.5 * np.sum(np.log(2 * np.pi * nv))
    Sz = net.prior_cov
    Si = np.linalg.inv(Sz)
    lz = -0.5 * np.einsum("ni,ij,nj->n", Z, Si, Z) - 0.5 * np.linalg.slogdet(2 * np.pi * Sz)[1]
    return lx + lz


def region_interval(region, L: float) -> tuple[float, float]:
    c, d = np.asarray(region.C, float)[:, 0], np.asarray(region.d, float)
    hi = min([L] + [dd / cc for cc, dd in zip(c, d) if cc > 0])
    lo = max([-L] + [dd / cc for cc, dd in zip(c, d) if cc < 0])
    return lo, hi


def quad_moments_s1(net: DGN, P, x: np.ndarray, L: float = 25.0):
    """Per region (R,) integrals of p(x|z)p(z) times 1, z, z^2 by scipy quad (log-shifted)."""
    grid = np.linspace(-L, L, 4001)[:, None]
    shift = float(np.max(log_joint(net, x, grid)))
    out = np.zeros((len(P), 3))
    for w, r in enumerate(P):
        lo, hi = region_interval(r, L)
        if hi <= lo:
            continue
        for k in range(3):
            f = lambda z, k=k: z ** k * math.exp(float(log_joint(net, x, np.array([[z]]))[0]) - shift)
            out[w, k] = integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=400)[0]
    return shift, out


def clip_polygon(C: np.ndarray, d: np.ndarray, L: float) -> np.ndarray:
    """Vertices of {C z <= d} within the box [-L, L]^2 (Sutherland-Hodgman)."""
    poly = [np.array(p, float) for p in ((-L, -L), (L, -L), (L, L), (-L, L))]
    for c, dd in zip(C, d):
        new = []
        for i in range(len(poly)):
            p, q = poly[i], poly[(i + 1) % len(poly)]
            fp, fq = c @ p - dd, c @ q - dd
            if fp <= 0:
                new.append(p)
            if fp * fq < 0:
                new.append(p + (q - p) * fp / (fp - fq))
        poly = new
        if not poly:
            break
    return np.array(poly).reshape(-1, 2)


def _gk15():
    """Gauss-Kronrod (7, 15) nodes on [-1, 1] (QUADPACK's qk15 table)."""
    xk = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                   0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                   0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                   0.207784955007898467600689403773245, 0.0])
    wk = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                   0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                   0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                   0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
    wg = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                   0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
    X = np.concatenate([-xk[:-1], xk[::-1]])
    WK = np.concatenate([wk[:-1], wk[::-1]])
    WG = np.zeros(15)
    gi = [1, 3, 5]                                      # Gauss nodes among the Kronrod ones
    for j, k in enumerate(gi):
        WG[k] = WG[14 - k] = wg[j]
    WG[7] = wg[3]
    return X, WK, WG


def adaptive_gk(f, a: float, b: float, rtol: float = 1e-13, max_iv: int = 4000) -> np.ndarray:
    """Vector-valued adaptive Gauss-Kronrod 15 with a vectorised integrand f(t (n,)) -> (n, k)
    (one call per batch of intervals). Stops when the sum of |K - G| is below rtol |I|."""
    X, WK, WG = _gk15()
    ivs = [(a, b)]
    done = 0.0
    while True:
        A = np.array([iv[0] for iv in ivs])
        B = np.array([iv[1] for iv in ivs])
        mid, half = (A + B) / 2, (B - A) / 2
        T = (mid[:, None] + half[:, None] * X).ravel()
        F = f(T).reshape(len(ivs), 15, -1)
        K = np.einsum("j,ijk->ik", WK, F) * half[:, None]
        G = np.einsum("j,ijk->ik", WG, F) * half[:, None]
        err = np.max(np.abs(K - G), axis=1)
        total = done + K.sum(axis=0)
        tol = rtol * max(float(np.max(np.abs(total))), 1e-300)
        if err.sum() <= tol or len(ivs) > max_iv:
            return total
        # accept the intervals that are already accurate enough, split the others
        keep = err > tol / (4 * len(ivs))
        done = done + K[~keep].sum(axis=0)
        ivs = [h for (lo, hi), k in zip(ivs, keep) if k for h in ((lo, (lo + hi) / 2), ((lo + hi) / 2, hi))]


def quad_moments_s2(net: DGN, P, x: np.ndarray, L: float = 10.0, regions=None):
    """Per region integrals of p(x|z)p(z) times (1, z1, z2, z1^2, z1 z2, z2^2): nested quad
    over the region's slices (smooth integrand on each); shift as in quad_moments_s1."""
    g = np.linspace(-L, L, 321)
    G = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    shift = float(np.max(log_joint(net, x, G)))
    out = np.zeros((len(P), 6))
    for w, r in enumerate(P):
        if regions is not None and w not in regions:
            continue
        C, d = np.asarray(r.C, float), np.asarray(r.d, float)
        poly = clip_polygon(C, d, L)
        if len(poly) < 3:
            continue
        xs = np.unique(poly[:, 0])

        def limits(z1):
            lo, hi = -L, L
            for (c1, c2), dd in zip(C, d):
                if c2 > 1e-14:
                    hi = min(hi, (dd - c1 * z1) / c2)
                elif c2 < -1e-14:
                    lo = max(lo, (dd - c1 * z1) / c2)
            return lo, hi

        def inner(z1):
            lo, hi = limits(z1)
            if hi <= lo:
                return np.zeros(6)

            def f(z2):
                Z = np.column_stack([np.full_like(z2, z1), z2])
                p = np.exp(log_joint(net, x, Z) - shift)
                return p[:, None] * np.column_stack([np.ones_like(z2), Z[:, 0], z2, Z[:, 0] ** 2,
                                                     Z[:, 0] * z2, z2 * z2])
            return adaptive_gk(f, lo, hi, rtol=1e-13)

        out[w] = integrate.quad_vec(inner, xs[0], xs[-1], points=xs[1:-1], epsabs=0,
                                    epsrel=1e-11, norm="max")[0]
    return shift, out


def loop_oracle(net: DGN, P, x: np.ndarray):
    """Slow per-region loop: log kappa with numpy.linalg on the D x D covariance, mu_w and
    Sigma_w by explicit inverses, the Gaussian integrals of each region one at a time."""
    # one BLAS thread: the D x D factorisations are too small to gain from threads, and
    # threads competing for busy cores would dominate their cost
    with threadpool_limits(1):
        return _loop_oracle(net, P, x)


def _loop_oracle(net: DGN, P, x: np.ndarray):
    Sx = np.diag(net.noise_var_vector)
    Sx_inv = np.diag(1.0 / net.noise_var_vector)                 # Sigma_x is diagonal
    Sz = np.asarray(net.prior_cov)
    D = net.data_dim
    out = []
    for r in P:
        A, b = np.asarray(r.A, float), np.asarray(r.b, float)
        cov = Sx + A @ Sz @ A.T                                   # D x D
        L = np.linalg.cholesky(cov)
        logdet = 2.0 * float(np.sum(np.log(np.diag(L))))
        res = x - b
        v = solve_triangular(L, res, lower=True)
        Q = float(v @ v)
        log_kappa = -0.5 * (D * math.log(2 * math.pi) + logdet + Q)
        Sw = np.linalg.inv(np.linalg.inv(Sz) + A.T @ Sx_inv @ A)
        Sw = 0.5 * (Sw + Sw.T)
        mu = Sw @ A.T @ Sx_inv @ res
        lm, m, M2 = PolyhedronCones.from_region(r).truncated_moments(mu, Sw)
        out.append((log_kappa, float(lm), mu, Sw, m, M2))
    return out


def loop_posterior(net, P, x):
    terms = loop_oracle(net, P, x)
    lw = np.array([t[0] + t[1] for t in terms])
    lp = logsumexp(lw)
    e0 = np.exp(lw - lp)
    e1 = np.array([e0[i] * t[4] for i, t in enumerate(terms)])
    E2 = np.array([e0[i] * t[5] for i, t in enumerate(terms)])
    return lp, e0, e1, E2, terms
