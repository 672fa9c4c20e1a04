"""fastpath.distributions: Theorem 1 (marginal, posterior, moments), density, sampling, MAP.

Every quantity is checked against something computed independently of the fast path:

* brute-force quadrature of p(x|z) p(z) over z with ``net.forward`` (not the region maps):
  scipy ``quad`` per region interval (S = 1) and nested ``quad`` over each region's slices
  (S = 2; the integrand is smooth inside a region, so quadrature converges to ~1e-13);
* a slow loop oracle per (point, region) with numpy.linalg on the D x D covariance
  Sigma_x + A Sigma_z A^T, and the Gaussian integrals of each region one at a time;
* mpmath evaluations of the same formulas at 40-50 digits (hard cases: D = 784, noise sd
  1e-3, |x| = 1e3);
* grid search (MAP), goodness-of-fit tests with fixed seeds (sampling).

Runtime of the default selection: about 30 s on the shared 2-core machine (``--runslow`` adds
the sequential-sampler goodness of fit and larger sweeps).
"""

# Lambdas inside loops below are called within the same iteration (quadrature integrands),
# so late binding of loop variables cannot bite:
# ruff: noqa: B023
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate, optimize, stats
from scipy.linalg import solve_triangular
from scipy.special import logsumexp, ndtr

import fastpath
from dgn_core.data import DataError, digits
from fastpath import distributions as fd
from fastpath.integrals import PolyhedronCones, log_gaussian_mass
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
    # one BLAS thread: a 784 x 784 Cholesky takes 0.05 s so, and seconds with two threads
    # fighting other jobs for the shared cores
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


# --------------------------------------------------------------------------- Theorem 1 vs quadrature
S1_CASES = [
    {"seed": 11, "act": "relu", "noise": 0.05},
    {"seed": 12, "act": "leaky_relu", "noise": 0.02},
    {"seed": 13, "act": "abs", "noise": np.array([0.03, 0.08])},
    {"seed": 14, "act": "relu", "noise": 0.1, "prior": np.array([[2.5]])},
]


@pytest.mark.parametrize("case", S1_CASES, ids=lambda c: f"{c['act']}-seed{c['seed']}")
def test_theorem1_s1_against_quadrature(case):
    net = net_s1(**case)
    P = fastpath.partition(net)
    Xs, _ = net.sample(3, seed=case["seed"] + 100)
    X = np.vstack([Xs, [[0.9, -1.3]]])                   # one point off the data
    post = fastpath.posterior(net, X, partition=P, prune=None)
    for i, x in enumerate(X):
        shift, I = quad_moments_s1(net, P, x)
        px = I[:, 0].sum()
        lp = shift + math.log(px)
        # quad's epsrel 1e-13 per region; 1e-10 leaves room for float rounding of the sums
        assert abs(post.log_px[i] - lp) <= 1e-10 * max(1.0, abs(lp)), (post.log_px[i], lp)
        e0 = I[:, 0] / px
        np.testing.assert_allclose(post.e0[i], e0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(post.e1[i, :, 0], I[:, 1] / px, rtol=0, atol=1e-9)
        np.testing.assert_allclose(post.E2[i, :, 0, 0], I[:, 2] / px, rtol=0, atol=1e-9)
        mean = I[:, 1].sum() / px
        var = I[:, 2].sum() / px - mean ** 2
        assert abs(post.mean[i, 0] - mean) <= 1e-9
        assert abs(post.cov[i, 0, 0] - var) <= 1e-9 * max(1.0, var)
        assert abs(post.e0[i].sum() - 1.0) <= 1e-13


S2_CASES = [
    ("relu", lambda: net_s2(seed=7)),
    ("leaky-diag-prior", lambda: net_s2(seed=8, act="leaky_relu", noise=np.array([0.05, 0.12]),
                                        prior=np.array([[1.5, 0.3], [0.3, 0.7]]), widths=(2, 4, 2))),
    ("abs", lambda: net_s2(seed=9, act="abs", noise=0.15, widths=(2, 4, 2))),
    ("lines", net_lines),
]


@pytest.mark.parametrize("name,make", S2_CASES, ids=["relu", "leaky-diag-prior", "abs", "lines"])
def test_theorem1_s2_against_quadrature(name, make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=321)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    x = X[0]
    shift, I = quad_moments_s2(net, P, x)
    px = I[:, 0].sum()
    lp = shift + math.log(px)
    # nested quad at epsrel 1e-11 (outer) / 1e-12 (inner): 1e-10 relative on p(x)
    assert abs(post.log_px[0] - lp) <= 1e-10 * max(1.0, abs(lp)), (post.log_px[0], lp)
    np.testing.assert_allclose(post.e0[0], I[:, 0] / px, rtol=0, atol=1e-10)
    np.testing.assert_allclose(post.e1[0], I[:, 1:3] / px, rtol=0, atol=1e-9)
    E2q = I[:, [3, 4, 4, 5]].reshape(-1, 2, 2) / px
    np.testing.assert_allclose(post.E2[0], E2q, rtol=0, atol=1e-9)
    mean = I[:, 1:3].sum(axis=0) / px
    cov = E2q.sum(axis=0) - np.outer(mean, mean)
    np.testing.assert_allclose(post.mean[0], mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(post.cov[0], cov, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- int p(x) dx = 1
def _gl_panels(lo: float, hi: float, panels: int, order: int = 20):
    t, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * t).ravel(), ((b - a) / 2 * w).ravel()


@pytest.mark.parametrize("make", [lambda: net_s1(seed=21, noise=0.15),
                                  lambda: net_s2(seed=22, noise=0.2, widths=(2, 3, 2))],
                         ids=["S1", "S2"])
def test_marginal_integrates_to_one(make):
    net = make()
    P = fastpath.partition(net)
    # the data lie within g(|z| <= 7) + 7 noise sd; composite Gauss-Legendre on a box
    Zb = np.random.default_rng(0).standard_normal((20000, net.latent_dim)) * 2.5
    G = net.forward(Zb)
    sd = math.sqrt(float(np.max(net.noise_var_vector)))
    lo = G.min(axis=0) - 8 * sd
    hi = G.max(axis=0) + 8 * sd
    n_pan = [math.ceil((h - l) / (2.5 * sd)) for l, h in zip(lo, hi)]
    x1, w1 = _gl_panels(lo[0], hi[0], n_pan[0])
    x2, w2 = _gl_panels(lo[1], hi[1], n_pan[1])
    Xg = np.array(np.meshgrid(x1, x2, indexing="ij")).reshape(2, -1).T
    W = np.outer(w1, w2).ravel()
    total = float(np.sum(W * np.exp(fastpath.log_marginal(net, Xg, partition=P))))
    # measured: |total - 1| ~ 3e-16 for both nets; 1e-12 covers the box's missing tails
    # (beyond 8 noise sd of g(|z| <= ~10)) and the rule's error
    assert abs(total - 1.0) <= 1e-12, total - 1.0


# --------------------------------------------------------------------------- loop oracle
@pytest.mark.parametrize("make", [lambda: net_s1(seed=31, act="leaky_relu"),
                                  lambda: net_s2(seed=32, prior=np.array([[0.8, -0.2], [-0.2, 1.1]]),
                                                 noise=np.array([0.07, 0.03])),
                                  lambda: DGN.random((3, 5, 4), seed=33, noise_var=0.05),
                                  pytest.param(lambda: DGN.random((4, 4, 3), seed=34, noise_var=0.05,
                                                                  activation="leaky_relu"),
                                               marks=pytest.mark.slow)],
                         ids=["S1", "S2", "S3", "S4"])
def test_vectorised_kernels_against_loop_oracle(make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=41)
    X = np.vstack([X, X[0] + 3.0])
    post = fastpath.posterior(net, X, partition=P, prune=None)
    model = fd._model(net, P)
    forms = fd._quadratic_forms(model, X)
    fd._refine(model, forms, fd._needs_refinement(model, forms))
    S = net.latent_dim
    for i, x in enumerate(X):
        lp, e0, e1, E2, terms = loop_posterior(net, P, x)
        log_kappa = np.array([t[0] for t in terms])
        np.testing.assert_allclose(model.const - 0.5 * forms.Q[i], log_kappa, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(model.mu_z(forms.mu_u[i]), np.array([t[2] for t in terms]),
                                   rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(model.cov_z, np.array([t[3] for t in terms]), rtol=1e-11,
                                   atol=1e-13)
        assert abs(post.log_px[i] - lp) <= 1e-12 * max(1, abs(lp))
        np.testing.assert_allclose(post.e0[i], e0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(post.e1[i], e1, rtol=0, atol=1e-11)
        np.testing.assert_allclose(post.E2[i], E2, rtol=0, atol=1e-11)
        mean = e1.sum(axis=0)
        np.testing.assert_allclose(post.mean[i], mean, rtol=0, atol=1e-11)
        np.testing.assert_allclose(post.cov[i], E2.sum(axis=0) - np.outer(mean, mean),
                                   rtol=0, atol=1e-10)
        # region conditional moments (E[z | x, z in w])
        live = e0 > 1e-300
        np.testing.assert_allclose(post.region_mean[i][live], np.array([t[4] for t in terms])[live],
                                   rtol=1e-10, atol=1e-10)
        assert post.region_cov.shape == (len(X), len(P), S, S)


def test_pruning_is_certified_and_chunking_is_exact():
    net = net_s2(seed=51, noise=1e-4, widths=(2, 8, 2))   # ~20% of pairs survive the bound
    P = fastpath.partition(net)
    X, _ = net.sample(12, seed=52)
    full = fastpath.posterior(net, X, partition=P, prune=None)
    pruned = fastpath.posterior(net, X, partition=P)           # default prune = 60
    skipped = ~np.isfinite(pruned.log_e0)
    assert skipped.any(), "this small-noise case should prune"
    assert np.all(full.log_e0[skipped] < -fd.DEFAULT_PRUNE)
    np.testing.assert_allclose(pruned.log_px, full.log_px, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(pruned.e0, full.e0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pruned.E2, full.E2, rtol=0, atol=1e-13)
    for cs in (1, 7):
        # other chunks: other GEMM blockings, so equal to rounding only
        ch = fastpath.posterior(net, X, partition=P, chunk_size=cs)
        np.testing.assert_allclose(ch.log_px, pruned.log_px, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(ch.E2, pruned.E2, rtol=0, atol=1e-13)
    lm = fastpath.log_marginal(net, X, partition=P, chunk_size=3)
    np.testing.assert_allclose(lm, full.log_px, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(full.e0.sum(axis=1), 1.0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("noise,dense", [(1e-4, False), (0.05, True)])
def test_pruning_probe_on_large_chunks(noise, dense, monkeypatch):
    """Chunks of >= 4 * _PRUNE_PROBE points bound a probe first: a clearly dense chunk is
    evaluated exactly like prune=None, a sparse one still prunes with the certified bound."""
    net = net_s2(seed=53, noise=noise, widths=(2, 8, 2))
    P = fastpath.partition(net)
    X, _ = net.sample(4 * fd._PRUNE_PROBE + 5, seed=54)
    full = fastpath.posterior(net, X, partition=P, prune=None)
    bounded = []
    orig = fastpath.ConeBatch.log_mass_bound
    monkeypatch.setattr(fastpath.ConeBatch, "log_mass_bound",
                        lambda self, m, c: bounded.append(m.shape[0]) or orig(self, m, c))
    pruned = fastpath.posterior(net, X, partition=P)
    # the probe is bounded first; only a sparse-looking chunk bounds every point
    assert bounded == ([fd._PRUNE_PROBE] if dense else [fd._PRUNE_PROBE, X.shape[0]])
    skipped = ~np.isfinite(pruned.log_e0)
    if dense:
        assert not skipped.any()
        np.testing.assert_array_equal(pruned.log_px, full.log_px)
        np.testing.assert_array_equal(pruned.E2, full.E2)
    else:
        assert skipped.any(), "this small-noise case should prune"
        assert np.all(full.log_e0[skipped] < -fd.DEFAULT_PRUNE)
        np.testing.assert_allclose(pruned.log_px, full.log_px, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(pruned.E2, full.E2, rtol=0, atol=1e-13)


def test_estep_chunks_and_statistics():
    net = net_s2(seed=61, prior=np.array([[1.2, 0.1], [0.1, 0.9]]), noise=np.array([0.04, 0.09]))
    P = fastpath.partition(net)
    X, _ = net.sample(25, seed=62)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    seen = 0
    for ch in fd._estep_chunks(net, P, X, 6, prune=None):
        sl = ch.rows
        assert ch.e0.shape == (sl.stop - sl.start, len(P))
        np.testing.assert_allclose(ch.E2, post.E2[sl], rtol=0, atol=1e-15)
        np.testing.assert_allclose(ch.cov, post.cov[sl], rtol=0, atol=1e-15)
        seen += sl.stop - sl.start
    assert seen == len(X)
    st = fd.estep_statistics(net, X, partition=P, chunk_size=4, prune=None)
    np.testing.assert_allclose(st.s0, post.e0.sum(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(st.s1, post.e1.sum(axis=0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.S2, post.E2.sum(axis=0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.x0, np.einsum("nr,nd->rd", post.e0, X), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.x1, np.einsum("nd,nri->rdi", X, post.e1), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.xx, np.sum(X * X, axis=0), rtol=1e-14)
    assert st.log_likelihood == pytest.approx(float(post.log_px.sum()), rel=1e-14)
    # resid2 = sum_n E[(x_n - g(z))^2 | x_n], loop over regions with explicit A_w, b_w
    ref = np.zeros(net.data_dim)
    for w, r in enumerate(P):
        A, b = np.asarray(r.A), np.asarray(r.b)
        for n in range(len(X)):
            e0 = post.e0[n, w]
            if e0 == 0:
                continue
            m, C = post.region_mean[n, w], post.region_cov[n, w]
            ref += e0 * ((X[n] - b - A @ m) ** 2 + np.diag(A @ C @ A.T))
    np.testing.assert_allclose(st.resid2, ref, rtol=1e-12)


def test_resid2_against_quadrature_s1():
    net = net_s1(seed=71, noise=np.array([0.02, 0.05]))
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=72)
    st = fd.estep_statistics(net, X, partition=P)
    ref = np.zeros(2)
    for x in X:
        grid = np.linspace(-12, 12, 4001)[:, None]
        shift = float(np.max(log_joint(net, x, grid)))
        p = lambda z: math.exp(float(log_joint(net, x, np.array([[z]]))[0]) - shift)
        pts = sorted({region_interval(r, 12)[k] for r in P for k in (0, 1)} - {-12.0, 12.0})
        px = integrate.quad(p, -12, 12, points=pts, limit=400, epsrel=1e-13, epsabs=0)[0]
        for j in range(2):
            f = lambda z: (x[j] - net.forward(np.array([[z]]))[0, j]) ** 2 * p(z)
            ref[j] += integrate.quad(f, -12, 12, points=pts, limit=400, epsrel=1e-13, epsabs=0)[0] / px
    np.testing.assert_allclose(st.resid2, ref, rtol=1e-9)


def test_partition_of_same_hidden_layers_is_reused():
    """EM changes the output layer and the noise: the old partition serves the new net."""
    net = net_s2(seed=81)
    P = fastpath.partition(net)
    rng = np.random.default_rng(82)
    net2 = net.replace(weights=[net.weights[0], rng.normal(size=net.weights[1].shape)],
                       biases=[net.biases[0], rng.normal(size=2)], noise_var=0.03)
    X, _ = net2.sample(6, seed=83)
    a = fastpath.posterior(net2, X, partition=P, prune=None)
    P2 = fastpath.partition(net2)
    b = fastpath.posterior(net2, X, partition=P2, prune=None)
    order = [P2.index_of(r.signs) for r in P]
    np.testing.assert_allclose(a.log_px, b.log_px, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a.e0, b.e0[:, order], rtol=0, atol=1e-13)
    other = DGN.random((2, 5, 2), seed=84)
    with pytest.raises(ValueError, match="different network"):
        fastpath.log_marginal(other, X, partition=P)


# --------------------------------------------------------------------------- hard cases
def _mp_posterior_s1(net: DGN, P, x: np.ndarray, dps: int = 80):
    """(log p(x), E[z|x], Var[z|x]) for S = 1 entirely in mpmath: Woodbury Q, determinant
    lemma, closed-form truncated-normal moments per interval (80 digits absorb the
    cancellation of tail variances)."""
    with mpmath.workdps(dps):
        nv = [mpmath.mpf(float(v)) for v in net.noise_var_vector]
        sz = mpmath.mpf(float(net.prior_cov[0, 0]))
        D = net.data_dim
        lw, m1, m2 = [], [], []
        for r in P:
            A = [mpmath.mpf(float(a)) for a in np.asarray(r.A)[:, 0]]
            b = [mpmath.mpf(float(v)) for v in np.asarray(r.b)]
            res = [mpmath.mpf(float(xi)) - bi for xi, bi in zip(x, b)]
            ata = mpmath.fsum(a * a / v for a, v in zip(A, nv))
            atr = mpmath.fsum(a * q / v for a, q, v in zip(A, res, nv))
            prec = 1 / sz + ata                                    # Sigma_w^-1
            Q = mpmath.fsum(q * q / v for q, v in zip(res, nv)) - atr * atr / prec
            logdet = mpmath.fsum(mpmath.log(v) for v in nv) + mpmath.log(1 + sz * ata)
            lk = -(D * mpmath.log(2 * mpmath.pi) + logdet + Q) / 2
            mu, sd = atr / prec, mpmath.sqrt(1 / prec)
            lo, hi = region_interval(r, mpmath.inf)
            a_, b_ = (mpmath.mpf(lo) - mu) / sd, (mpmath.mpf(hi) - mu) / sd
            Z = mpmath.ncdf(-a_) - mpmath.ncdf(-b_) if a_ > 0 else mpmath.ncdf(b_) - mpmath.ncdf(a_)
            pa = mpmath.npdf(a_) if mpmath.isfinite(a_) else 0
            pb = mpmath.npdf(b_) if mpmath.isfinite(b_) else 0
            apa = a_ * pa if mpmath.isfinite(a_) else 0
            bpb = b_ * pb if mpmath.isfinite(b_) else 0
            et, et2 = (pa - pb) / Z, 1 + (apa - bpb) / Z
            lw.append(lk + mpmath.log(Z))
            m1.append(mu + sd * et)
            m2.append(mu * mu + 2 * mu * sd * et + sd * sd * et2)
        top = max(lw)
        ws = [mpmath.exp(t - top) for t in lw]
        tot = mpmath.fsum(ws)
        mean = mpmath.fsum(w * m for w, m in zip(ws, m1)) / tot
        var = mpmath.fsum(w * (m - mean ** 2) for w, m in zip(ws, m2)) / tot
        return top + mpmath.log(tot), mean, var


HARD_S1 = [
    ("D2-sd1e-3-near", lambda: net_s1(seed=91, noise=1e-6), "sample"),
    ("D2-far1e3", lambda: net_s1(seed=92, noise=0.05), "far"),
    ("D2-sd1e-3-far1e3", lambda: net_s1(seed=93, noise=1e-6), "far"),
    ("D784-sd1e-3-near", lambda: DGN.random((1, 8, 784), seed=94, noise_var=1e-6), "sample"),
    ("D784-far1e3", lambda: DGN.random((1, 8, 784), seed=95, noise_var=0.01), "far"),
    ("D784-digits", lambda: DGN.random((1, 8, 784), seed=96, noise_var=0.01), "digits"),
]


@pytest.mark.parametrize("name,make,where", HARD_S1, ids=[c[0] for c in HARD_S1])
def test_hard_cases_against_mpmath(name, make, where):
    net = make()
    P = fastpath.partition(net)
    D = net.data_dim
    rng = np.random.default_rng(97)
    if where == "sample":
        X, _ = net.sample(3, seed=98)
    elif where == "far":
        U = rng.normal(size=(3, D))
        X = 1e3 * U / np.linalg.norm(U, axis=1, keepdims=True)
        X[0] = net.forward(np.array([[700.0]]))[0]             # far, on the image of g
        X[0] *= 1e3 / np.linalg.norm(X[0])
    else:
        X = digit_like(3)
    lp = fastpath.log_marginal(net, X, partition=P)
    assert np.all(np.isfinite(lp))
    post = fastpath.posterior(net, X, partition=P)
    for i, x in enumerate(X):
        ref, mean, var = _mp_posterior_s1(net, P, x)
        # the stated target: 1e-10 relative
        assert abs(float(lp[i] - ref)) <= 1e-10 * abs(float(ref)), (name, i, float(ref), lp[i])
        assert post.log_px[i] == lp[i] or abs(post.log_px[i] - lp[i]) <= 1e-13 * abs(lp[i])
        assert abs(post.e0[i].sum() - 1) <= 1e-13
        if where != "far":
            assert abs(post.mean[i, 0] - float(mean)) <= 1e-9 * (1 + abs(float(mean)))
            assert abs(post.cov[i, 0, 0] - float(var)) <= 1e-9 * float(var)
        else:
            # far from the data the posterior sits ~2e3 sd outside the regions' Gaussians:
            # the integrals' truncated first moment carries the rounding of log m0 ~ -2e6
            # (1e-9 relative) times the tail depth: about 1e-6 of the region's width
            assert abs(post.mean[i, 0] - float(mean)) <= 1e-6 * (1 + abs(float(mean)))


def test_posterior_variance_deep_tail():
    """Far from the data (|x| = 1e3) the posterior variance ~3e-7 is ~1e-13 of the squared
    distance of the regions' Gaussians: it must come from the kernels' truncated covariance
    (Cov[z|w] directly), not from second moments about the Gaussian's mean (which gave
    negative variances here). Measured agreement with mpmath: 2.3e-9 relative; tolerance
    1e-7: the weights e0 carry the rounding of log kappa ~ -1e7 (~1e-9 relative)."""
    net = net_s1(seed=92, noise=0.05)
    P = fastpath.partition(net)
    U = np.random.default_rng(97).normal(size=(3, 2))
    X = 1e3 * U / np.linalg.norm(U, axis=1, keepdims=True)
    post = fastpath.posterior(net, X[1:], partition=P)
    for i, x in enumerate(X[1:]):
        _, _, var = _mp_posterior_s1(net, P, x)
        assert abs(post.cov[i, 0, 0] - float(var)) <= 1e-7 * float(var)


def test_quadratic_form_refinement_and_bound():
    """The cheap Q's rounding bound holds, and refined Q matches the mpmath value."""
    for net in (net_s1(seed=101, noise=1e-6), DGN.random((2, 6, 784), seed=102, noise_var=1e-6)):
        P = fastpath.partition(net)
        X, _ = net.sample(3, seed=103)
        X = np.vstack([X, X[0] + 500.0])
        model = fd._model(net, P)
        cheap = fd._quadratic_forms(model, X)
        forms = fd._quadratic_forms(model, X)
        flag = fd._needs_refinement(model, forms)
        assert flag.any()
        fd._refine(model, forms, np.ones_like(flag))
        with mpmath.workdps(40):
            for w in range(0, model.R, max(1, model.R // 4)):
                Bw = [[mpmath.mpf(float(v)) for v in row] for row in model.B[w]]
                S = model.S
                G = mpmath.matrix([[(1 if i == j else 0) + mpmath.fsum(r[i] * r[j] for r in Bw)
                                    for j in range(S)] for i in range(S)])
                for n in range(len(X)):
                    rt = [mpmath.mpf(float(a)) / mpmath.sqrt(mpmath.mpf(float(v))) - mpmath.mpf(float(c))
                          for a, v, c in zip(X[n], net.noise_var_vector, model.bt[w])]
                    y = mpmath.matrix([mpmath.fsum(r[i] * t for r, t in zip(Bw, rt)) for i in range(S)])
                    Q = mpmath.fsum(t * t for t in rt) - (y.T * mpmath.lu_solve(G, y))[0]
                    scale = max(1.0, float(Q), 2 * abs(model.const[w]))
                    assert abs(float(Q) - forms.Q[n, w]) <= 1e-13 * scale
                    # the cheap form's error stays within its bound
                    assert abs(float(Q) - cheap.Q[n, w]) <= cheap.bound[n, w] + 1e-15 * scale


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["subset", "all-regions"])
def test_d784_s2_against_loop_oracle(full):
    """D = 784 digit-like data: per-region log(kappa Phi) and moments against the D x D loop
    (default: the 3 most probable and 2 other regions; --runslow: all regions and log p)."""
    net = DGN.random((2, 6, 784), seed=111, noise_var=0.01)
    P = fastpath.partition(net)
    X = digit_like(2)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    for i, x in enumerate(X):
        if full:
            sub = list(range(len(P)))
        else:
            order = np.argsort(-post.log_e0[i])
            sub = sorted(set(order[:3].tolist()) | {int(order[len(P) // 2]), int(order[-1])})
        terms = loop_oracle(net, [P[w] for w in sub], x)
        lw = np.array([t[0] + t[1] for t in terms])
        fast_lw = post.log_e0[i, sub] + post.log_px[i]
        np.testing.assert_allclose(fast_lw, lw, rtol=1e-11, atol=1e-9)
        for k, w in enumerate(sub):
            if post.e0[i, w] > 1e-12:
                np.testing.assert_allclose(post.region_mean[i, w], terms[k][4], rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(post.E2[i, w] / post.e0[i, w], terms[k][5], rtol=1e-9,
                                           atol=1e-10)
        if full:
            assert abs(post.log_px[i] - logsumexp(lw)) <= 1e-10 * abs(post.log_px[i])


# --------------------------------------------------------------------------- density
@pytest.mark.parametrize("make", [lambda: net_s1(seed=121, prior=np.array([[0.6]])),
                                  lambda: net_s2(seed=122, prior=np.array([[1.3, 0.4], [0.4, 0.8]]))],
                         ids=["S1", "S2"])
def test_posterior_density_is_bayes_rule(make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=123)
    S = net.latent_dim
    Z = np.random.default_rng(124).normal(size=(300, S)) * 2.0
    Z = np.vstack([Z, [[5.0] * S], [[-30.0] * S]])
    for x in X:
        lp = fastpath.log_marginal(net, x, partition=P)[0]
        got = fastpath.log_posterior_density(net, x, Z, partition=P)
        ref = log_joint(net, x, Z) - lp
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(fastpath.posterior_density(net, x, Z[:5], partition=P),
                                   np.exp(ref[:5]), rtol=1e-10)
    if S == 1:
        pts = sorted({region_interval(r, 15)[k] for r in P for k in (0, 1)} - {-15.0, 15.0})
        f = lambda z: float(fastpath.posterior_density(net, X[0], [[z]], partition=P)[0])
        total = integrate.quad(f, -15, 15, points=pts, limit=400, epsrel=1e-12)[0]
        assert abs(total - 1) <= 1e-10


# --------------------------------------------------------------------------- sampling
ALPHA = 1e-3   # significance level of every goodness-of-fit test (fixed seeds: deterministic)


def _mixture_cdf_s1(net, P, x, t):
    terms = loop_oracle(net, P, x)
    lw = np.array([tt[0] + tt[1] for tt in terms])
    e0 = np.exp(lw - logsumexp(lw))
    out = np.zeros_like(t)
    for w, r in enumerate(P):
        lo, hi = region_interval(r, np.inf)
        mu, sd = terms[w][2][0], math.sqrt(terms[w][3][0, 0])
        a, b = (lo - mu) / sd, (hi - mu) / sd
        m0 = ndtr(b) - ndtr(a)
        if e0[w] < 1e-14 or m0 <= 0:
            continue
        out += e0[w] * (ndtr(np.clip((t - mu) / sd, a, b)) - ndtr(a)) / m0
    return out, e0


def test_sampling_s1_ks():
    net = net_s1(seed=131, noise=0.05)
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=132)
    for x in X:
        Zs = fastpath.sample_posterior(net, x, 4000, seed=133, partition=P)
        assert Zs.shape == (4000, 1)
        cdf = lambda t: _mixture_cdf_s1(net, P, x, np.asarray(t, float))[0]
        assert stats.kstest(Zs[:, 0], cdf).pvalue > ALPHA
        _, e0 = _mixture_cdf_s1(net, P, x, np.zeros(1))
        _chi2_regions(P, Zs, e0)


def _chi2_regions(P, Zs, e0):
    counts = np.bincount(P.locate(Zs), minlength=len(P))
    n = len(Zs)
    keep = e0 * n >= 5                                       # pool cells with < 5 expected
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(e0[keep] * n, e0[~keep].sum() * n)
    if exp[-1] < 5:
        obs[-2] += obs[-1]
        exp[-2] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    if len(obs) > 1:
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > ALPHA


def _projection_cdf(net, P, x, v, edges):
    terms = loop_oracle(net, P, x)
    lw = np.array([tt[0] + tt[1] for tt in terms])
    e0 = np.exp(lw - logsumexp(lw))
    F = np.zeros(len(edges))
    for w, r in enumerate(P):
        if e0[w] < 1e-9:
            continue
        C, d = np.asarray(r.C, float), np.asarray(r.d, float)
        for j, t in enumerate(edges):
            lm = log_gaussian_mass(np.vstack([C, v]), np.append(d, t), terms[w][2], terms[w][3])
            F[j] += e0[w] * math.exp(float(lm) - terms[w][1])
    return F, e0


def test_sampling_s2_binned_gof():
    net = net_s2(seed=141, noise=0.05, prior=np.array([[1.0, 0.3], [0.3, 0.6]]))
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=142)
    x = X[0]
    n = 6000
    Zs = fastpath.sample_posterior(net, x, n, seed=143, partition=P)
    post = fastpath.posterior(net, X, partition=P)
    _chi2_regions(P, Zs, post.e0[0])
    for v in (np.array([1.0, 0.0]), np.array([0.6, -0.8])):
        proj = Zs @ v
        edges = np.quantile(proj, np.linspace(0, 1, 9)[1:-1])
        F, _ = _projection_cdf(net, P, x, v, edges)
        probs = np.diff(np.concatenate([[0.0], F, [1.0]]))
        obs = np.bincount(np.searchsorted(edges, proj), minlength=len(probs))
        assert stats.chisquare(obs, probs * n).pvalue > ALPHA


def _wedge():
    # a 2-D wedge with its apex at distance ~6 from the origin and a sharp angle
    C = np.array([[-1.0, 0.3], [-1.0, -0.25]])
    d = np.array([-6.0, -6.0])
    return C, d


@pytest.mark.parametrize("method", ["auto", "reject"])
def test_truncated_sampler_tail_wedge(method):
    """Far tail (mass ~1e-9): the half-space proposal; binned GOF against cut masses."""
    C, d = _wedge()
    a, h = fd._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    assert lm < math.log(1e-8)
    rng = np.random.default_rng(151)
    U = fd._sample_whitened(a, h, 5000, rng, lm, method=method)
    assert np.all(U @ a.T <= h + 1e-12)
    for v in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        proj = U @ v
        edges = np.quantile(proj, np.linspace(0, 1, 9)[1:-1])
        F = np.array([math.exp(float(log_gaussian_mass(np.vstack([a, v]), np.append(h, t),
                                                      np.zeros(2), np.eye(2))) - lm)
                      for t in edges])
        probs = np.diff(np.concatenate([[0.0], F, [1.0]]))
        obs = np.bincount(np.searchsorted(edges, proj), minlength=len(probs))
        assert stats.chisquare(obs, probs * len(U)).pvalue > ALPHA


def test_sequential_sampler_quick():
    """The sequential inverse-CDF path (forced) gives points of the set; its first coordinate
    hits the requested quantiles of the exact marginal CDF."""
    C, d = _wedge()
    a, h = fd._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    rng = np.random.default_rng(161)
    U = fd._sample_whitened(a, h, 3, rng, lm, method="sequential")
    assert U.shape == (3, 2) and np.all(U @ a.T <= h + 1e-9)
    # the same uniform through the exact CDF: F(u . n) must equal the uniform drawn
    rng2 = np.random.default_rng(162)
    Vs = np.random.default_rng(162).random(1)  # first draw of the sampler's stream
    u = fd._sequential_draw(a, h, fd._nearest_point(a, h), lm, rng2)
    nvec = fd._nearest_point(a, h)
    nvec = nvec / np.linalg.norm(nvec)
    F = math.exp(float(log_gaussian_mass(np.vstack([a, nvec]), np.append(h, u @ nvec),
                                         np.zeros(2), np.eye(2))) - lm)
    assert abs(F - Vs[0]) <= 1e-9


@pytest.mark.slow
def test_sequential_sampler_gof():
    C, d = _wedge()
    a, h = fd._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    U = fd._sample_whitened(a, h, 150, np.random.default_rng(171), lm, method="sequential")
    for v in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        cdf = lambda t: np.array([math.exp(float(log_gaussian_mass(
            np.vstack([a, v]), np.append(h, tt), np.zeros(2), np.eye(2))) - lm) for tt in np.atleast_1d(t)])
        assert stats.kstest(U @ v, cdf).pvalue > ALPHA


def test_interval_sampler_against_inverse_cdf():
    rng = np.random.default_rng(181)
    lo = np.array([-np.inf, -1.0, 2.0, 30.0, -40.0, -0.5, 8.0])
    hi = np.array([0.5, 1.0, np.inf, 31.0, -39.5, np.inf, 8.000001])
    t = fd._sample_interval(np.repeat(lo, 200), np.repeat(hi, 200), np.random.default_rng(182))
    V = np.random.default_rng(182).random(len(t))
    assert np.all((t >= np.repeat(lo, 200)) & (t <= np.repeat(hi, 200)))
    with mpmath.workdps(40):
        for i in range(0, len(t), 37):
            a, b = np.repeat(lo, 200)[i], np.repeat(hi, 200)[i]
            Fa = mpmath.ncdf(a) if np.isfinite(a) else 0
            Fb = mpmath.ncdf(b) if np.isfinite(b) else 1
            if a > 0:   # upper tail: P(T > t) = 1 - V
                ref = -mpmath.sqrt(2) * mpmath.erfinv(2 * ((1 - V[i]) * mpmath.ncdf(-a) + V[i] * mpmath.ncdf(-b)) - 1)
            else:
                ref = mpmath.sqrt(2) * mpmath.erfinv(2 * (Fa + V[i] * (Fb - Fa)) - 1)
            assert abs(t[i] - float(ref)) <= 1e-9 * max(1, abs(float(ref))), (i, a, b)
    assert rng is not None


def test_nearest_point_against_optimizer():
    rng = np.random.default_rng(191)
    for _ in range(6):
        a = rng.normal(size=(5, 2))
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        z0 = rng.normal(size=2) * 4
        h = a @ z0 + rng.uniform(0.2, 2.0, size=5)             # z0 inside
        p = fd._nearest_point(a, h)
        res = optimize.minimize(lambda z: z @ z, z0, jac=lambda z: 2 * z, method="SLSQP",
                                constraints=[{"type": "ineq", "fun": lambda z: h - a @ z,
                                              "jac": lambda z: -a}], options={"ftol": 1e-15})
        assert np.all(a @ p <= h + 1e-9)
        assert p @ p <= res.fun + 1e-9
        np.testing.assert_allclose(p, res.x, atol=1e-6)


# --------------------------------------------------------------------------- MAP latent
def _brute_map(net, x, flat, L=8.0):
    S = net.latent_dim
    nv = net.noise_var_vector
    Si = np.linalg.inv(net.prior_cov)

    def F(Z):
        Z = np.atleast_2d(Z)
        r = x - net.forward(Z)
        f = np.sum(r * r / nv, axis=1)
        return f if flat else f + np.einsum("ni,ij,nj->n", Z, Si, Z)

    if S == 1:
        g = np.linspace(-L, L, 200001)[:, None]
        v = F(g)
        i = int(np.argmin(v))
        res = optimize.minimize_scalar(lambda z: F(np.array([[z]]))[0], bounds=(g[max(i - 2, 0), 0], g[min(i + 2, len(g) - 1), 0]),
                                       method="bounded", options={"xatol": 1e-12})
        return np.array([res.x]), float(res.fun)
    g = np.linspace(-L, L, 801)
    G = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    v = F(G)
    best = None
    for i in np.argsort(v)[:5]:
        res = optimize.minimize(lambda z: F(z)[0], G[i], method="Nelder-Mead",
                                options={"xatol": 1e-11, "fatol": 1e-15, "maxiter": 20000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x, float(best.fun)


@pytest.mark.parametrize("prior", ["gaussian", "flat"])
@pytest.mark.parametrize("make", [lambda: net_s1(seed=201, act="leaky_relu", noise=0.05),
                                  lambda: net_s2(seed=202, noise=np.array([0.05, 0.1]),
                                                 prior=np.array([[1.2, 0.3], [0.3, 0.8]]))],
                         ids=["S1", "S2"])
def test_map_latent_against_grid_search(make, prior):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=203)
    Z, reg, obj = fastpath.map_latent(net, X, partition=P, prior=prior, return_info=True)
    for i, x in enumerate(X):
        zb, fb = _brute_map(net, x, prior == "flat")
        nv = net.noise_var_vector
        r = x - net.forward(Z[i:i + 1])[0]
        f = float(np.sum(r * r / nv))
        if prior == "gaussian":
            f += float(Z[i] @ np.linalg.solve(net.prior_cov, Z[i]))
        assert f == pytest.approx(obj[i], rel=1e-10, abs=1e-12)
        assert f <= fb + 1e-9 * (1 + fb), (f, fb)                # no better point exists
        np.testing.assert_allclose(Z[i], zb, atol=1e-5)
        assert P.locate(Z[i:i + 1])[0] == reg[i] or P[reg[i]].contains(Z[i], tol=1e-9)


def test_map_flat_tie_break_and_zero_noise_limit():
    # g(z) = |z - 0.2|: x = 0.5 has the two preimages 0.7 and -0.3; f = 0 at both
    net = DGN([np.array([[1.0]]), np.array([[1.0]])], [np.array([-0.2]), np.array([0.0])],
              activation="abs", noise_var=0.01)
    Z = fastpath.map_latent(net, [[0.5]], prior="flat")
    assert Z[0, 0] == pytest.approx(-0.3, abs=1e-12)            # the one of least z^2
    # the flat latent is the limit of the posterior mode as the noise goes to zero
    net2 = net_s2(seed=211)
    X, _ = net2.sample(4, seed=212)
    flat = fastpath.map_latent(net2, X, prior="flat")
    tiny = fastpath.map_latent(net2.replace(noise_var=1e-12), X, prior="gaussian")
    np.testing.assert_allclose(tiny, flat, atol=1e-6)


# --------------------------------------------------------------------------- validation
def test_input_validation():
    net = net_s2(seed=221)
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=222)
    with pytest.raises(DataError, match="columns"):
        fastpath.log_marginal(net, np.zeros((3, 5)), partition=P)
    with pytest.raises(DataError, match="NaN"):
        fastpath.posterior(net, np.array([[0.0, np.nan]]), partition=P)
    with pytest.raises(DataError, match="infinite"):
        fastpath.log_marginal(net, np.array([[0.0, 1.0], [np.inf, 0.0]]), partition=P)
    with pytest.raises(DataError, match="empty"):
        fastpath.log_marginal(net, np.zeros((0, 2)), partition=P)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            fastpath.log_marginal(net, X, partition=P, chunk_size=bad)
    with pytest.raises(ValueError, match="prune"):
        fastpath.posterior(net, X, partition=P, prune=5)
    with pytest.raises(TypeError, match="DGN"):
        fastpath.log_marginal("net", X)
    with pytest.raises(TypeError, match="Partition"):
        fastpath.log_marginal(net, X, partition=[1, 2])
    with pytest.raises(DataError, match="one data point"):
        fastpath.sample_posterior(net, X, 3, partition=P)
    with pytest.raises(ValueError, match="non-negative"):
        fastpath.sample_posterior(net, X[0], -1, partition=P)
    with pytest.raises(ValueError, match="shape"):
        fastpath.posterior_density(net, X[0], np.zeros((4, 3)), partition=P)
    with pytest.raises(ValueError, match="NaN"):
        fastpath.posterior_density(net, X[0], np.array([[np.nan, 0.0]]), partition=P)
    with pytest.raises(ValueError, match="prior"):
        fastpath.map_latent(net, X, partition=P, prior="uniform")
    assert fastpath.sample_posterior(net, X[0], 0, partition=P).shape == (0, 2)
    # a 1-D x is one point
    assert fastpath.log_marginal(net, X[0], partition=P).shape == (1,)


def test_linear_net_is_probabilistic_pca():
    """No hidden layer: one region (R^S), p(x) = N(x; v, Sigma_x + W Sigma_z W^T) and the
    posterior is the Gaussian of probabilistic PCA (closed forms, scipy)."""
    rng = np.random.default_rng(231)
    W, v = rng.normal(size=(3, 2)), rng.normal(size=3)
    Sz = np.array([[1.4, -0.3], [-0.3, 0.6]])
    nv = np.array([0.05, 0.2, 0.1])
    net = DGN([W], [v], noise_var=nv, prior_cov=Sz)
    X = rng.normal(size=(5, 3)) * 2
    post = fastpath.posterior(net, X)
    ref = stats.multivariate_normal(v, np.diag(nv) + W @ Sz @ W.T).logpdf(X)
    np.testing.assert_allclose(post.log_px, ref, rtol=1e-13)
    Sw = np.linalg.inv(np.linalg.inv(Sz) + W.T @ np.diag(1 / nv) @ W)
    mu = (X - v) @ np.diag(1 / nv) @ W @ Sw
    np.testing.assert_allclose(post.mean, mu, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(post.cov, np.broadcast_to(Sw, (5, 2, 2)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(post.e0, 1.0)
    np.testing.assert_allclose(fastpath.map_latent(net, X), mu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [net_lines, lambda: DGN.random((3, 5, 4), seed=241, noise_var=0.02)],
                         ids=["S2-lines", "S3"])
def test_sampling_moments_and_map_s3_lines(make):
    """Sample means within 5 standard errors of the exact posterior mean (per coordinate, a
    test at level ~6e-7 each), and no sample beats the MAP objective."""
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=242)
    n = 4000
    Zs = fastpath.sample_posterior(net, X[0], n, seed=243, partition=P)
    post = fastpath.posterior(net, X, partition=P)
    se = np.sqrt(np.diag(post.cov[0]) / n)
    assert np.all(np.abs(Zs.mean(axis=0) - post.mean[0]) <= 5 * se)
    _chi2_regions(P, Zs, post.e0[0])
    zmap, _, obj = fastpath.map_latent(net, X, partition=P, return_info=True)
    r = X[0] - net.forward(Zs)
    F = np.sum(r * r / net.noise_var_vector, axis=1) + np.einsum(
        "ni,ij,nj->n", Zs, np.linalg.inv(net.prior_cov), Zs)
    assert obj[0] <= F.min() + 1e-12
    assert P[int(P.locate(zmap)[0])].contains(zmap[0], tol=1e-9)
