"""Checks of the exact marginal and posterior: Theorem 1, Props. 1-3, Lemma 2.

Every check compares :mod:`verified_dgn.distributions` with a reference computed without it
(and, except where said, without the partition): the integrand ``p(x|z) p(z)`` is evaluated
by a forward pass of the network (mpmath for S = 1, float64 for S = 2), and its integrals over
z by quadrature between the kinks of g, which are found by an independent exact sweep
(:func:`kinks_1d`: layer by layer, each pre-activation is affine between the kinks found so
far, so two exact evaluations give its root). Where the partition's vertices are used (the
outer breakpoints of the 2-D quadrature) they are only hints: a wrong hint slows the
convergence of a quadrature of the true integrand, it cannot make a wrong result agree.

* "Theorem 1": log p(x) against the quadrature of p(x|z) p(z) over z (S = 1: mpmath
  tanh-sinh between exact kinks; S = 2: nested float64 Gauss-Legendre, kinks of every line
  found by the sweep), at sampled, off-manifold and far points (seeded, not tuned on); and
  int p(x) dx = 1 for D = 2 by a 2-D Gauss-Hermite rule over x (two orders, their difference
  reported as the quadrature error).
* "Posterior normalisation": sum_w e0_w = 1; the Prop. 2 density integrates to 1; posterior
  mean and covariance equal the quadrature moments of p(x|z) p(z).
* "Prop. 1": p(t = r) = Phi_r(0, Sigma_z) (closed-form interval probabilities for S = 1,
  polygon quadrature for S = 2) sums to 1 and the mixture sum_r p(t=r) p(x|t=r), with
  p(x|t=r) = int_r N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z) dz / p(t=r) by quadrature,
  equals p(x).
* "Prop. 2": the Prop. 2 density (kappa_w N(z; mu_w, Sigma_w) / p(x) on w) equals Bayes'
  p(x|z) p(z) / p(x) (forward pass in mpmath) at random latent points and on region
  boundaries.
* "Lemma 2": along noise variances sigma^2 -> 0, the posterior mean -> z*(x) and the
  covariance -> 0; measured log-log rates (expected 1 in sigma^2) and the leading
  coefficients against -(A^T A)^-1 Sigma_z^-1 z* and (A^T A)^-1 (A the Jacobian at z*).
* "Prop. 3": GLO's latent argmin ||x - g(z)||^2 (exact sweep for S = 1, brute force + exact
  polish for S = 2) equals the MAP of the exact posterior under a flat prior (a prior
  N(0, s^2 I) with s^2 -> infinity; the MAP from the mixture of truncated Gaussians by an
  exact convex QP per region), with the measured rate in 1/s^2.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from . import CheckResult, digits_from_residual, register

__all__ = [
    "builtin_nets",
    "check_lemma2",
    "check_posterior_normalisation",
    "check_prop1",
    "check_prop2",
    "check_prop3",
    "check_theorem1",
    "glo_latent_1d",
    "joint_quadrature_1d",
    "joint_quadrature_2d",
    "kinks_1d",
]

Arr = NDArray[np.float64]


# =========================================================================== suites
def builtin_nets(quick: bool, S: Sequence[int] = (1, 2)) -> list[tuple[str, DGN]]:
    """Small nets of latent dimension 1 and 2 (relu, leaky-relu, abs; diagonal noise and a
    non-identity prior in the thorough suite)."""
    out: list[tuple[str, DGN]] = []
    if 1 in S:
        out.append(("relu [1,6,6,2]", DGN.random((1, 6, 6, 2), seed=11, noise_var=0.05)))
        if not quick:
            out.append(("abs [1,5,2]", DGN.random((1, 5, 2), activation="abs", seed=12,
                                                  noise_var=0.02)))
            out.append(("leaky [1,8,8,3], diagonal noise, prior 2.25",
                        DGN.random((1, 8, 8, 3), activation="leaky_relu", slope=0.2, seed=13,
                                   noise_var=np.array([0.03, 0.05, 0.02]),
                                   prior_cov=np.array([[2.25]]))))
    if 2 in S:
        out.append(("relu [2,3,2]", DGN.random((2, 3, 2), seed=21, noise_var=0.05)))
        if not quick:
            out.append(("relu [2,4,4,2]", DGN.random((2, 4, 4, 2), seed=22, noise_var=0.03)))
            out.append(("leaky [2,4,3], correlated prior",
                        DGN.random((2, 4, 3), activation="leaky_relu", slope=0.3, seed=23,
                                   noise_var=np.array([0.04, 0.02, 0.05]),
                                   prior_cov=np.array([[1.0, 0.3], [0.3, 0.8]]))))
    return out


def _cases(net: DGN | None, quick: bool, S: Sequence[int] = (1, 2)) -> list[tuple[str, DGN]]:
    if net is None:
        return builtin_nets(quick, S)
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a DGN, got {type(net).__name__}")
    if net.latent_dim not in S:
        raise ValueError(f"this check's quadrature reference handles latent dimension "
                         f"{sorted(S)}, got S = {net.latent_dim}")
    return [("given net", net)]


def _test_points(net: DGN, n: int, seed: int, off: bool = True, far: bool = True) -> Arr:
    """``n`` sampled points, an off-manifold point (if ``off``) and a far point (if ``far``;
    low density: log p(x) from -25 to -160 for the built-in nets), seeded, not tuned on."""
    rng = np.random.default_rng(seed + 1000)
    X, _ = net.sample(n, seed=rng)
    g0 = net.forward(np.zeros((1, net.latent_dim)))[0]
    pts = [X]
    if off:
        pts.append(g0 + 0.6 * rng.standard_normal((1, net.data_dim)))
    far_pt = g0 + 2.0 + rng.uniform(0, 0.5, (1, net.data_dim))
    if far:
        pts.append(far_pt)
    return np.vstack(pts)


# =========================================================================== references
def _mpf_of(x: Any) -> mpmath.mpf:
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    return mpmath.mpf(x)


class _MPNet:
    """The network and log N densities in mpmath (float parameters converted exactly).

    Values depending on the precision (the prior's inverse and log determinant) are
    computed at the precision of each call, so the object can be built anywhere.
    """

    def __init__(self, net: DGN) -> None:
        self.net = net
        self.W = [[[mpmath.mpf(float(a)) for a in row] for row in W] for W in net.weights]
        self.v = [[mpmath.mpf(float(a)) for a in vec] for vec in net.biases]
        self.slope = mpmath.mpf(net.slope)
        self.nv = [mpmath.mpf(float(a)) for a in net.noise_var_vector]
        S = net.latent_dim
        self._sz = [[Fraction(float(net.prior_cov[i, j])) for j in range(S)] for i in range(S)]
        self._cache: dict[int, tuple[Any, mpmath.mpf]] = {}
        self._consts: dict[tuple[int, int, int], mpmath.mpf] = {}

    def _prior(self) -> tuple[Any, mpmath.mpf]:
        prec = mpmath.mp.prec
        if prec not in self._cache:
            Sz = mpmath.matrix([[_mpf_of(v) for v in row] for row in self._sz])
            self._cache[prec] = (Sz ** -1, mpmath.log(mpmath.det(Sz)))
        return self._cache[prec]

    def g(self, z: Sequence[mpmath.mpf]) -> list[mpmath.mpf]:
        h = list(z)
        L = len(self.W)
        for l in range(L):
            a = [mpmath.fdot(row, h) + b for row, b in zip(self.W[l], self.v[l])]
            h = a if l == L - 1 else [t if t > 0 else self.slope * t for t in a]
        return h

    def log_joint(self, x: Sequence[mpmath.mpf], z: Sequence[mpmath.mpf]) -> mpmath.mpf:
        """log N(x; g(z), Sigma_x) + log N(z; 0, Sigma_z)."""
        gz = self.g(z)
        D, S = len(x), len(z)
        Sz_inv, logdet_sz = self._prior()
        ll = -mpmath.fsum((xi - gi) ** 2 / s for xi, gi, s in zip(x, gz, self.nv)) / 2
        quad = mpmath.fsum(z[i] * Sz_inv[i, j] * z[j] for i in range(S) for j in range(S))
        return ll - (quad + self._const(D, S, logdet_sz)) / 2

    def _const(self, D: int, S: int, logdet_sz: mpmath.mpf) -> mpmath.mpf:
        key = (mpmath.mp.prec, D, S)
        if key not in self._consts:
            self._consts[key] = ((D + S) * mpmath.log(2 * mpmath.pi)
                                 + mpmath.fsum(mpmath.log(s) for s in self.nv) + logdet_sz)
        return self._consts[key]


def _preacts_exact(net: DGN) -> Callable[[Fraction], list[list[Fraction]]]:
    """Exact hidden pre-activations per layer at a scalar latent point (S = 1)."""
    from .partition_checks import ExactForward

    fwd = ExactForward(net)
    widths = list(net.hidden_widths)

    def pre(t: Fraction) -> list[list[Fraction]]:
        flat, out = fwd([t])
        res, k = [], 0
        for w in widths:
            res.append(flat[k:k + w])
            k += w
        res.append(out)
        return res

    return pre


def _sweep(pre: Callable[[Any], list[list[Any]]], n_hidden_layers: int, one: Any) -> list[Any]:
    """Kinks of a piecewise-affine function of one variable, layer by layer.

    ``pre(t)`` returns the pre-activations of every layer at t. Between consecutive kinks
    found so far every unit of the next layer is affine, so two evaluations inside the
    interval give its slope and intercept and hence its root. Works on Fractions (exact) or
    floats (``one`` is 1 of the number type).
    """
    kinks: list[Any] = []
    for l in range(n_hidden_layers):
        edges = [None] + kinks + [None]
        new = []
        for a, b in itertools.pairwise(edges):
            if a is None and b is None:
                t1, t2 = 0 * one, one
            elif a is None:
                t1, t2 = b - 2 * one, b - one
            elif b is None:
                t1, t2 = a + one, a + 2 * one
            else:
                t1, t2 = a + (b - a) / 3, a + 2 * (b - a) / 3
            h1, h2 = pre(t1)[l], pre(t2)[l]
            for u1, u2 in zip(h1, h2):
                m = (u2 - u1) / (t2 - t1)
                if m == 0:
                    continue
                r = t1 - u1 / m
                if (a is None or r > a) and (b is None or r < b):
                    new.append(r)
        kinks = sorted(set(kinks) | set(new))
    return kinks


def kinks_1d(net: DGN) -> list[Fraction]:
    """All kinks of g for a net with latent dimension 1, exactly (independent of the partition)."""
    if net.latent_dim != 1:
        raise ValueError("kinks_1d needs latent dimension 1")
    return _sweep(_preacts_exact(net), net.n_layers - 1, Fraction(1))


def _affine_pieces_1d(net: DGN) -> list[tuple[Fraction | None, Fraction | None, list[Fraction], list[Fraction]]]:
    """(lo, hi, a, c) with g(z) = a z + c on [lo, hi] (None: infinite), exactly."""
    pre = _preacts_exact(net)
    ks = kinks_1d(net)
    edges: list[Fraction | None] = [None, *ks, None]
    out = []
    for a, b in itertools.pairwise(edges):
        t1: Fraction
        t2: Fraction
        if a is None and b is None:
            t1, t2 = Fraction(0), Fraction(1)
        elif a is None:
            assert b is not None
            t1, t2 = b - 2, b - 1
        elif b is None:
            t1, t2 = a + 1, a + 2
        else:
            t1, t2 = a + (b - a) / 3, a + 2 * (b - a) / 3
        g1, g2 = pre(t1)[-1], pre(t2)[-1]
        slope = [(u2 - u1) / (t2 - t1) for u1, u2 in zip(g1, g2)]
        icpt = [u1 - s * t1 for u1, s in zip(g1, slope)]
        out.append((a, b, slope, icpt))
    return out


def joint_quadrature_1d(net: DGN, x: Sequence[float], dps: int = 40, moments: bool = False,
                        method: str = "gauss-legendre") -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """``int (1, z, z^2) p(x|z) p(z) dz`` for S = 1 by mpmath quadrature (Gauss-Legendre
    by default; the integrand is smooth between the breakpoints).

    Breakpoints (:func:`_piece_breakpoints`): the exact kinks of g and, on every affine
    piece, a grid of standard deviations around the centre of that piece's Gaussian
    factor, so each subinterval holds a smooth bump of bounded width (also for far x, whose
    integrand peaks far out on an unbounded piece).

    Returns
    -------
    I0, I1, I2, err : mpf
        The three integrals (``I1 = I2 = 0`` unless ``moments``) and mpmath's error estimate
        of ``I0`` relative to ``I0``.
    """
    mpn = _MPNet(net)
    with mpmath.workdps(dps):
        xm = [mpmath.mpf(float(v)) for v in x]
        pts = _piece_breakpoints(net, [float(v) for v in x])
        pts = [mpmath.ninf] + [_mpf_of(p) for p in pts] + [mpmath.inf]

        # scale by the largest value at the breakpoints: mpmath's error control is absolute,
        # and p(x) of a far x is tiny
        M = max(mpn.log_joint(xm, [p]) for p in pts[1:-1])

        memo: dict[mpmath.mpf, mpmath.mpf] = {}

        def f0(z: mpmath.mpf) -> mpmath.mpf:
            # the moment integrals visit the same nodes: evaluate the net once per node
            v = memo.get(z)
            if v is None:
                v = memo[z] = mpmath.exp(mpn.log_joint(xm, [z]) - M)
            return v

        I0, e0 = mpmath.quad(f0, pts, error=True, method=method)
        if moments:
            I1 = mpmath.quad(lambda z: z * f0(z), pts, method=method)
            I2 = mpmath.quad(lambda z: z * z * f0(z), pts, method=method)
        else:
            I1 = I2 = mpmath.mpf(0)
        eM = mpmath.exp(M)
        return I0 * eM, I1 * eM, I2 * eM, e0 / I0


def _bump_points(a: Sequence[float], c: Sequence[float], x: Sequence[float], nv: Sequence[float],
                 sz: float, lo: Fraction | None, hi: Fraction | None) -> list[Fraction]:
    """Breakpoints for the Gaussian factor ``exp(-sum_k (x_k - c_k - a_k z)^2 / (2 nv_k) -
    z^2 / (2 sz))`` on the open interval (lo, hi): every standard deviation w within 16 of
    them of its centre m (the log falls by 128 there), and when m lies beyond an endpoint,
    points at ell 2^k from that endpoint (ell = w^2 / |m - endpoint|, the decay length of the
    factor there), so that its steep exponential tail inside the interval is resolved too."""
    lam = sum(ak * ak / s for ak, s in zip(a, nv)) + 1.0 / sz
    m = sum(ak * (xk - ck) / s for ak, xk, ck, s in zip(a, x, c, nv)) / lam
    w = 1.0 / math.sqrt(lam)

    def inside(t: float) -> bool:
        return (lo is None or t > lo) and (hi is None or t < hi)

    out = [Fraction(m + j * w) for j in range(-16, 17) if inside(m + j * w)]
    for end, sgn in ((lo, 1), (hi, -1)):
        if end is None or sgn * (m - float(end)) > 0:
            continue
        # the centre lies beyond this endpoint: the factor decays from it like
        # exp(-|t - end| / ell), ell = w^2 / |m - end|; resolve it on a geometric grid
        ell = w * w / max(abs(m - float(end)), w)
        for k in range(60):
            t = float(end) + sgn * ell * 2 ** k
            if not inside(t) or ell * 2 ** k > 64 * max(w, abs(m - float(end))):
                break
            out.append(Fraction(t))
    return sorted(set(out))


def _piece_breakpoints(net: DGN, x: Sequence[float]) -> list[Fraction]:
    """Breakpoints for integrating p(x|z) p(z) over z (S = 1): the exact kinks, and on every
    affine piece the :func:`_bump_points` of that piece's Gaussian factor, so that every
    subinterval holds a smooth bump of bounded width (also for a far x, whose integrand
    peaks far out on an unbounded piece)."""
    nv = [float(v) for v in net.noise_var_vector]
    sz = float(net.prior_cov[0, 0])
    pts: set[Fraction] = set()
    for lo, hi, a, c in _affine_pieces_1d(net):
        if lo is not None:
            pts.add(lo)
        pts.update(_bump_points([float(v) for v in a], [float(v) for v in c], x, nv, sz, lo, hi))
    return sorted(pts)


def _quad_pieces(f: Callable[[mpmath.mpf], mpmath.mpf], pts: Sequence[mpmath.mpf]) -> mpmath.mpf:
    """Sum of mpmath quadratures over consecutive breakpoints: Gauss-Legendre on finite
    pieces (smooth bumps), tanh-sinh on the two infinite ends (Gaussian tails)."""
    total = mpmath.mpf(0)
    for a, b in itertools.pairwise(pts):
        if a == b:
            continue
        method = "gauss-legendre" if mpmath.isfinite(a) and mpmath.isfinite(b) else "tanh-sinh"
        total += mpmath.quad(f, [a, b], method=method)
    return total


def _gl_batch(logf: Callable[[list[mpmath.mpf]], Sequence[mpmath.mpf]], pts: Sequence[mpmath.mpf],
              degree: int) -> mpmath.mpf:
    """``int_{pts[0]}^{pts[-1]} exp(logf)`` by mpmath's Gauss-Legendre rule of ``degree``
    (3 2^(degree-1) nodes) on every piece between consecutive finite breakpoints, with one
    batched call of ``logf`` on all nodes."""
    nodes = mpmath.mp._gauss_legendre.get_nodes(-1, 1, degree, mpmath.mp.prec)
    zs, lws = [], []
    for a, b in itertools.pairwise(pts):
        if not b > a:
            continue
        half, mid = (b - a) / 2, (a + b) / 2
        for t, w in nodes:
            zs.append(mid + half * t)
            lws.append(mpmath.log(half * w))
    vals = logf(zs)
    return mpmath.exp(_mp_logsumexp([v + lw for v, lw in zip(vals, lws)]))


def _mp_logsumexp(vals: Sequence[mpmath.mpf]) -> mpmath.mpf:
    m = max(vals)
    return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in vals))


@functools.lru_cache(maxsize=32)
def _gl(n: int) -> tuple[Arr, Arr]:
    t, w = np.polynomial.legendre.leggauss(n)
    t.setflags(write=False)
    w.setflags(write=False)
    return t, w


def _panel_nodes(breaks: Sequence[float] | NDArray[Any], n: int) -> tuple[Arr, Arr]:
    t, w = _gl(n)
    br = np.asarray(breaks, dtype=np.float64)
    a, b = br[:-1], br[1:]
    keep = b > a
    a, b = a[keep], b[keep]
    half = (b - a)[:, None] / 2
    nodes = (a[:, None] + half) + half * t[None, :]
    weights = half * w[None, :]
    return nodes.ravel(), weights.ravel()


def _line_kinks(net: DGN, z2: float) -> list[float]:
    """Kinks of t -> g(t, z2) (float sweep on the restriction of the net to the line)."""
    def pre(t: float) -> list[list[float]]:
        hs = net.pre_activations(np.array([[t, z2]]))
        return [h[0].tolist() for h in hs] + [net.forward(np.array([[t, z2]]))[0].tolist()]

    return _sweep(pre, net.n_layers - 1, 1.0)


def joint_quadrature_2d(net: DGN, x: Sequence[float], z2_hints: Sequence[float] = (),
                        n: int = 10, box: float | None = None, step: float | None = None
                        ) -> tuple[float, Arr, Arr, float]:
    """``log int p(x|z) p(z) dz`` and the normalised moments for S = 2, float64.

    As :func:`_joint_quadrature_2d_box` on the box ``[-9, 9]^2`` (prior sds), enlarged once
    when its truncation bound exceeds 1e-13 (far x, whose posterior lies far out).
    """
    if box is not None:
        return _joint_quadrature_2d_box(net, x, z2_hints, n, box, step)
    res = _joint_quadrature_2d_box(net, x, z2_hints, n, 9.0, step)
    if res[3] <= 1e-13:
        return res
    lmax = -0.5 * (len(x) * math.log(2 * math.pi) + float(np.sum(np.log(net.noise_var_vector))))
    need = lmax - res[0] + 40.0  # nats the prior tail must drop below the integral
    box = max(9.0, math.sqrt(2.0 * need))
    return _joint_quadrature_2d_box(net, x, z2_hints, n, box, step)


def _joint_quadrature_2d_box(net: DGN, x: Sequence[float], z2_hints: Sequence[float],
                             n: int, box: float, step: float | None
                             ) -> tuple[float, Arr, Arr, float]:
    """``log int p(x|z) p(z) dz`` and the normalised moments for S = 2 on a box, float64.

    Nested Gauss-Legendre (``n`` nodes per panel) on ``[-box, box]^2`` scaled by the prior
    standard deviations: the outer variable z2 has panel breaks every ``step`` and at the
    ``z2_hints`` (region vertices; only hints), the inner variable z1 every ``step`` and at
    the kinks of the line found by the sweep.

    Returns
    -------
    log_I0 : float
    mean : ndarray, shape (2,)
    cov : ndarray, shape (2, 2)
    trunc : float
        Upper bound of the mass cut by the box, relative to I0.
    """
    xa = np.asarray(x, dtype=np.float64)
    nv = net.noise_var_vector
    Sz = np.asarray(net.prior_cov, dtype=np.float64)
    Szi = np.linalg.inv(Sz)
    sd = np.sqrt(np.diag(Sz))
    if step is None:
        lip = 1.0
        for W in net.weights:
            lip *= float(np.linalg.norm(W, 2)) * max(1.0, abs(net.slope))
        step = float(min(0.5, 0.5 * math.sqrt(float(nv.min())) / max(lip, 1e-12)))
    lo1, hi1 = -box * sd[0], box * sd[0]
    lo2, hi2 = -box * sd[1], box * sd[1]
    br2 = np.union1d(np.arange(lo2, hi2 + step / 2, step),
                     [h for h in z2_hints if lo2 < h < hi2])
    Z2, W2 = _panel_nodes(br2, n)
    const = -0.5 * (len(x) * math.log(2 * math.pi) + np.sum(np.log(nv))
                    + 2 * math.log(2 * math.pi) + math.log(np.linalg.det(Sz)))
    grid1 = np.arange(lo1, hi1 + step / 2, step)
    logs, zs = [], []
    for z2, w2 in zip(Z2, W2):
        ks = [k for k in _line_kinks(net, float(z2)) if lo1 < k < hi1]
        Z1, W1 = _panel_nodes(np.union1d(grid1, ks), n)
        Z = np.stack([Z1, np.full_like(Z1, z2)], axis=1)
        G = net.forward(Z)
        lf = const - 0.5 * np.sum((xa - G) ** 2 / nv, axis=1) - 0.5 * np.einsum("ni,ij,nj->n", Z, Szi, Z)
        logs.append(lf + np.log(W1 * w2))
        zs.append(Z)
    lf = np.concatenate(logs)
    Z = np.concatenate(zs)
    m = lf.max()
    wts = np.exp(lf - m)
    I0 = wts.sum()
    mean = (wts[:, None] * Z).sum(0) / I0
    Zc = Z - mean
    cov = np.einsum("n,ni,nj->ij", wts, Zc, Zc) / I0
    log_I0 = m + math.log(I0)
    # box truncation: p(x|z) <= (2 pi)^{-D/2} det(Sigma_x)^{-1/2}; prior mass outside the box
    from scipy.special import log_ndtr
    lmax = -0.5 * (len(x) * math.log(2 * math.pi) + np.sum(np.log(nv)))
    lout = math.log(4.0) + float(log_ndtr(-box))
    trunc = math.exp(min(0.0, lmax + lout - log_I0))
    return log_I0, mean, cov, trunc


def _gauss_hermite_2d(f: Callable[[Arr], Arr], c: NDArray[Any], L: NDArray[Any], n: int) -> float:
    """``int f(x) dx`` over R^2 with x = c + L u and a Gauss-Hermite rule in u
    (``f`` returns log f for an (M, 2) array)."""
    t, w = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-u^2/2)
    U = np.array(list(itertools.product(t, t)))
    Wt = np.array([a * b for a, b in itertools.product(w, w)])
    Xs = c + U @ L.T
    lf = f(Xs)
    # int f dx = |L| int f(c + L u) exp(|u|^2/2) exp(-|u|^2/2) du
    lv = lf + 0.5 * np.sum(U ** 2, axis=1) + np.log(Wt) + math.log(abs(np.linalg.det(L)))
    m = lv.max()
    return float(math.exp(m) * np.exp(lv - m).sum())


def glo_latent_1d(net: DGN, x: Sequence[Any], prior_tiebreak: bool = True,
                  delta: Fraction = Fraction(1, 20)) -> tuple[Fraction, Fraction, Fraction]:
    """argmin_z ||x - g(z)||^2 for S = 1, exactly, from the exact affine pieces.

    On every piece the objective is a convex quadratic, minimised exactly on the closed
    piece; the best piece wins (ties within a piece where g is constant, and between
    pieces, are broken by the smallest |z| when ``prior_tiebreak``).

    Returns
    -------
    z_star, value, gap : Fraction
        The minimiser, the minimum, and a uniqueness margin: the smallest excess over the
        minimum among the pieces' minimisers farther than ``delta`` from ``z_star`` (every
        z with |z - z_star| > delta whose piece minimum lies there has at least this excess;
        10**9 when there is none).
    """
    xq = [Fraction(v) for v in x]
    cands: list[tuple[Fraction, Fraction, Fraction]] = []
    for lo, hi, a, c in _affine_pieces_1d(net):
        aa = sum((s * s for s in a), Fraction(0))
        if aa == 0:
            z = Fraction(0)
        else:
            z = sum(((xi - ci) * s for xi, ci, s in zip(xq, c, a)), Fraction(0)) / aa
        if lo is not None and z < lo:
            z = lo
        if hi is not None and z > hi:
            z = hi
        val = sum(((xi - ci - s * z) ** 2 for xi, ci, s in zip(xq, c, a)), Fraction(0))
        cands.append((val, abs(z) if prior_tiebreak else Fraction(0), z))
    cands.sort(key=lambda t: (t[0], t[1]))
    best = cands[0]
    others = [t[0] - best[0] for t in cands[1:] if abs(t[2] - best[2]) > delta]
    gap = min(others) if others else Fraction(10 ** 9)
    return best[2], best[0], gap


# =========================================================================== helpers
def _max_abs(vals: Sequence[Any]) -> float:
    return max((float(abs(v)) for v in vals), default=0.0)


def _result(name: str, statement: str, failures: list[str], measured: str, residual: float,
            details: dict[str, Any], digits: bool = True) -> CheckResult:
    """``digits=False`` for limit checks, whose residual is a measured asymptotic deviation
    (it shrinks with the parameter), not a rounding error."""
    if failures:
        details = dict(details)
        details["failures"] = "; ".join(failures[:6]) + (f" (+{len(failures) - 6} more)"
                                                        if len(failures) > 6 else "")
    return CheckResult(name=name, statement=statement, passed=not failures, measured=measured,
                       residual=residual,
                       digits=digits_from_residual(residual) if digits and residual is not None else None,
                       details=details)


def _z2_hints(P: Partition) -> list[float]:
    return sorted({float(v[1]) for r in P for v in np.asarray(r.vertices, dtype=np.float64)})


# =========================================================================== Theorem 1
@register("Theorem 1", "log p(x) = log sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w) equals the "
          "quadrature of p(x|z) p(z) over z; int p(x) dx = 1 (D = 2)")
def check_theorem1(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                   dps: int = 30, n_points: int | None = None, normalisation: bool = True
                   ) -> CheckResult:
    """Theorem 1 against independent quadrature.

    For each net of the suite (S = 1 and 2) and ``n_points`` sampled points plus an
    off-manifold and a far point: ``|log p(x) - log I|`` with ``I`` the quadrature of
    ``p(x|z) p(z)``. Tolerances: S = 1, mpmath quadrature at dps + 10: ``10**-(dps - 5)``
    (mpmath's own error estimate is required below it as well); S = 2, float64 nested
    Gauss-Legendre: ``1e-9`` plus the box-truncation bound (about 1e6 positive float
    terms; the rule is also recomputed with 4 more nodes per panel and must agree).
    For D = 2 and S = 1 nets (unless ``normalisation=False``): ``int p(x) dx = 1`` by
    Gauss-Hermite rules of two orders;
    tolerance ``1e-6`` (quick: orders 12, 16) / ``1e-10`` (thorough: orders 20, 28) on
    both |I - 1| and the difference of the two orders (measured convergence on the
    built-in net: 1e-7, 1e-9, 6e-12, 4e-14 at orders 12, 16, 20, 24).
    """
    from verified_dgn.distributions import log_marginal
    from verified_dgn.exact_partition import partition

    n_points = n_points if n_points is not None else (1 if quick else 4)
    failures: list[str] = []
    worst1 = worst2 = 0.0
    worst_norm = 0.0
    n1 = n2 = 0
    details: dict[str, Any] = {}
    for name, nt in _cases(net, quick):
        P = partition(nt)
        S = nt.latent_dim
        # quick: S = 1 a sample and the far point; S = 2 a sample and the off-manifold point
        # (the far point's tail integrals cost seconds per polygon for S = 2)
        X = _test_points(nt, n_points, seed, off=not quick or S == 2, far=not quick or S == 1)
        lp = log_marginal(nt, X, dps=dps, partition=P)
        for n, x in enumerate(X):
            if S == 1:
                I0, _, _, rel_err = joint_quadrature_1d(nt, x, dps=dps + 10)
                with mpmath.workdps(dps + 10):
                    diff = float(abs(lp[n] - mpmath.log(I0)))
                tol = 10.0 ** -(dps - 5)
                worst1 = max(worst1, diff)
                n1 += 1
                if not (diff <= tol and float(rel_err) <= tol):
                    failures.append(f"{name} x[{n}]: |log p - log quad| = {diff:.3g}, quad error "
                                    f"estimate {float(rel_err):.3g} (tol {tol:.0e})")
            elif S == 2:
                hints = _z2_hints(P)
                lq, _, _, trunc = joint_quadrature_2d(nt, x, hints, n=8)
                lq2, _, _, _ = joint_quadrature_2d(nt, x, hints, n=12)
                diff = abs(float(lp[n]) - lq)
                tol = 1e-9 + trunc
                worst2 = max(worst2, diff)
                n2 += 1
                if not (diff <= tol and abs(lq - lq2) <= tol):
                    failures.append(f"{name} x[{n}]: |log p - log quad| = {diff:.3g}, two rules "
                                    f"differ by {abs(lq - lq2):.3g} (tol {tol:.3g})")
        if normalisation and S == 1 and nt.data_dim == 2:
            err, dev = _normalisation_2d(nt, P, quick, seed)
            worst_norm = max(worst_norm, abs(err))
            ntol = 1e-6 if quick else 1e-10
            details[f"int p(x) dx - 1 ({name})"] = f"{err:.3g} (orders differ by {dev:.3g})"
            if not (abs(err) <= ntol and dev <= ntol):
                failures.append(f"{name}: int p(x) dx - 1 = {err:.3g}, rules differ by {dev:.3g}")
    details["S = 1: max |log p - log quad| (mpmath)"] = f"{worst1:.3g} over {n1} points"
    details["S = 2: max |log p - log quad| (float64)"] = f"{worst2:.3g} over {n2} points"
    residual = max(worst1, worst2, worst_norm)
    return _result("Theorem 1", check_theorem1_statement, failures,
                   f"{n1 + n2} points on {len(_cases(net, quick))} nets, dps={dps}",
                   residual, details)


check_theorem1_statement = ("log p(x) from Theorem 1 equals the quadrature of p(x|z) p(z); "
                            "int p(x) dx = 1")


def _normalisation_2d(net: DGN, P: Partition, quick: bool, seed: int) -> tuple[float, float]:
    """``int p(x) dx - 1`` for D = 2 with the exact log p(x) at Gauss-Hermite nodes over x.

    The identity holds for every noise level, and a tensor rule of order <= 28 resolves p(x)
    only when the noise is not much smaller than the spread of g(z): the check uses the
    net's generator with noise variance ``max(sigma_k^2, mean_k Var[g_k(z)])`` per
    coordinate (unchanged for the built-in relu net, raised for the abs net whose density
    is a thin curve). The change of variables x = c + L u (c, L from the sample mean and
    1.1 x the sample covariance's Cholesky factor) is exact whatever c, L are; two orders
    are evaluated.
    """
    from verified_dgn.distributions import log_marginal

    _, Zs = net.sample(4000, seed=seed + 7)
    spread = float(np.mean(np.var(net.forward(Zs), axis=0)))
    nv = np.maximum(net.noise_var_vector, spread)
    if not np.array_equal(nv, net.noise_var_vector):
        net = net.replace(noise_var=nv if not net.isotropic_noise else float(nv[0]))
        P = _same_regions(P, net)
    X, _ = net.sample(4000, seed=seed + 7)
    c = X.mean(0)
    L = 1.1 * np.linalg.cholesky(np.cov(X.T))
    orders = (12, 16) if quick else (20, 28)

    def logp(Xs: Arr) -> Arr:
        return np.array([float(v) for v in log_marginal(net, Xs, dps=12, partition=P)])

    vals = [_gauss_hermite_2d(logp, c, L, k) for k in orders]
    return vals[-1] - 1.0, abs(vals[-1] - vals[0])


# =========================================================================== posterior
@register("Posterior normalisation", "sum_w e0_w = 1, the posterior density integrates to 1, "
          "posterior mean and covariance equal quadrature")
def check_posterior_normalisation(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                                  dps: int = 30, n_points: int | None = None) -> CheckResult:
    """The posterior is a probability distribution with the right moments.

    Measured per point: ``|sum_w e0_w - 1|`` (claim 10**-dps); S = 1: the Prop. 2 density
    ``exp(log_density)`` integrated by Gauss-Legendre rules of 24 and 48 nodes per piece
    between the exact kinks and the bumps' breakpoints (tolerance 10**-(dps - 5) on the
    deviation from 1 and on the rules' difference), and mean / covariance against the mpmath quadrature moments of
    p(x|z) p(z) (tolerance 10**-(dps - 5) in the scales sqrt(E z^2), sqrt(cov)); S = 2:
    float64 nested quadrature moments (tolerance 1e-8 in the same scales).
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    n_points = n_points if n_points is not None else (1 if quick else 3)
    failures: list[str] = []
    w_e0 = w_int = w_m1 = w_m2 = 0.0
    w_m_float = 0.0
    count = 0
    for name, nt in _cases(net, quick):
        P = partition(nt)
        X = _test_points(nt, n_points, seed)
        post = posterior(nt, X, dps=dps, partition=P)
        S = nt.latent_dim
        for n, x in enumerate(X):
            count += 1
            with mpmath.workdps(dps + 10):
                s = mpmath.fsum(post.e0[n]) - 1
            w_e0 = max(w_e0, float(abs(s)))
            if not abs(s) <= 10.0 ** -dps:
                failures.append(f"{name} x[{n}]: sum e0 - 1 = {float(s):.3g}")
            if S == 1:
                tol = 10.0 ** -(dps - 5)
                with mpmath.workdps(dps + 10):
                    # batched Gauss-Legendre between the breakpoints (beyond the outermost
                    # ones the density is below exp(-128) of its maximum, Gaussian tails),
                    # two orders: their difference is the quadrature error
                    pts = [_mpf_of(p) for p in _piece_breakpoints(nt, x)]

                    def ld(zs: list[mpmath.mpf], n: int = n, post: Any = post) -> Any:
                        return post.log_density(np.array([[z] for z in zs], dtype=object), n, dps)

                    dens = _gl_batch(ld, pts, 5)
                    dens_lo = _gl_batch(ld, pts, 4)
                    e_rule = float(abs(dens - dens_lo))
                    I0, I1, I2, _ = joint_quadrature_1d(nt, x, dps=dps + 10, moments=True)
                    m = I1 / I0
                    var = I2 / I0 - m * m
                    e_int = float(abs(dens - 1))
                    e_m = float(abs(post.mean[n, 0] - m) / mpmath.sqrt(I2 / I0))
                    e_v = float(abs(post.cov[n, 0, 0] - var) / var)
                w_int, w_m1, w_m2 = max(w_int, e_int), max(w_m1, e_m), max(w_m2, e_v)
                if not (e_int <= tol and e_m <= tol and e_v <= tol and e_rule <= tol):
                    failures.append(f"{name} x[{n}]: |int density - 1| = {e_int:.3g} (rules "
                                    f"differ by {e_rule:.3g}), mean {e_m:.3g}, variance {e_v:.3g} "
                                    f"(tol {tol:.0e})")
            else:
                _, qm, qc, trunc = joint_quadrature_2d(nt, x, _z2_hints(P), n=10)
                mean = np.array([float(v) for v in post.mean[n]])
                cov = np.array([[float(v) for v in row] for row in post.cov[n]])
                sc = np.sqrt(np.diag(cov))
                e2 = np.sqrt(np.diag(cov) + mean ** 2)
                e_m = float(np.max(np.abs(mean - qm) / e2))
                e_c = float(np.max(np.abs(cov - qc) / np.outer(sc, sc)))
                w_m_float = max(w_m_float, e_m, e_c)
                tol = 1e-8 + 10 * trunc
                if not (e_m <= tol and e_c <= tol):
                    failures.append(f"{name} x[{n}]: mean {e_m:.3g}, covariance {e_c:.3g} "
                                    f"(tol {tol:.3g}, float64 quadrature)")
    details = {"max |sum e0 - 1|": f"{w_e0:.3g}",
               "S = 1: max |int density - 1|": f"{w_int:.3g}",
               "S = 1: mean, variance vs mpmath quadrature": f"{w_m1:.3g}, {w_m2:.3g}",
               "S = 2: mean, covariance vs float64 quadrature": f"{w_m_float:.3g}"}
    residual = max(w_e0, w_int, w_m1, w_m2, w_m_float)
    return _result("Posterior normalisation", "the posterior integrates to 1 with the "
                   "quadrature's mean and covariance", failures,
                   f"{count} points, dps={dps}", residual, details)


# =========================================================================== Prop. 1
@register("Prop. 1", "the DGN is the continuous MPPCA / MFA mixture with p(t=r) = "
          "Phi_r(0, Sigma_z), W_r = A_w, v_r = b_w")
def check_prop1(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 30,
                n_points: int | None = None) -> CheckResult:
    """Prop. 1: p(x) = sum_r p(t=r) p(x | t=r) with the mixture evaluated independently.

    p(t=r): S = 1, ``Phi(hi) - Phi(lo)`` of the region's interval in mpmath (closed form),
    compared with ``gaussian_moments(C_r, d_r, 0, Sigma_z)`` (tolerance 10**-(dps-2)) and
    summed (must be 1 to 10**-(dps-2)); S = 2, float64 quadrature over each polygon
    (tolerance 1e-10). p(x | t=r) = int_r N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z) dz /
    p(t=r) by quadrature over the region (mpmath for S = 1, float64 for S = 2); the mixture
    must equal the exact p(x) (tolerances as in "Theorem 1").
    """
    from verified_dgn.distributions import log_marginal
    from verified_dgn.exact_partition import partition
    from verified_dgn.integrals import gaussian_moments

    n_points = n_points if n_points is not None else (1 if quick else 3)
    failures: list[str] = []
    w_pt = w_pt2 = w_sum = w_mix1 = w_mix2 = 0.0
    count = 0
    for name, nt in _cases(net, quick):
        P = partition(nt)
        S = nt.latent_dim
        X = _test_points(nt, n_points, seed)
        lp = log_marginal(nt, X, dps=dps, partition=P)
        Sz = nt.prior_cov
        if S == 1:
            with mpmath.workdps(dps + 10):
                s = mpmath.sqrt(mpmath.mpf(float(Sz[0, 0])))
                pts, ivals = [], []
                for r in P:
                    lo, hi = _interval(r)
                    a = mpmath.ninf if lo is None else _mpf_of(lo)
                    b = mpmath.inf if hi is None else _mpf_of(hi)
                    pt = mpmath.ncdf(b / s) - mpmath.ncdf(a / s)
                    lib = gaussian_moments(r.C, r.d, [0], Sz, dps=dps)[0]
                    w_pt = max(w_pt, float(abs(lib - pt) / pt))
                    if not abs(lib - pt) <= 10.0 ** -(dps - 2) * pt:
                        failures.append(f"{name}: p(t=r) closed form vs Phi_r differ by "
                                        f"{float(abs(lib - pt) / pt):.3g} (relative)")
                    pts.append(pt)
                    ivals.append((lo, hi))
                tot = mpmath.fsum(pts) - 1
                w_sum = max(w_sum, float(abs(tot)))
                if not abs(tot) <= 10.0 ** -(dps - 2):
                    failures.append(f"{name}: sum_r p(t=r) - 1 = {float(tot):.3g}")
                for n, x in enumerate(X):
                    count += 1
                    mix = _mixture_1d(nt, P, x, pts, ivals)
                    diff = float(abs(mpmath.log(mix) - lp[n]))
                    w_mix1 = max(w_mix1, diff)
                    if not diff <= 10.0 ** -(dps - 5):
                        failures.append(f"{name} x[{n}]: |log mixture - log p| = {diff:.3g}")
        else:
            masses = [math.exp(_polygon_log_quad(nt, r, None)) for r in P]
            libm = [float(gaussian_moments(r.C, r.d, [0, 0], Sz, dps=dps)[0]) for r in P]
            for m_q, m_l in zip(masses, libm):
                # float64 quadrature: relative 1e-10, absolute 1e-14 for tiny regions
                w_pt2 = max(w_pt2, abs(m_q - m_l) / (m_l + 1e-4))
                if not abs(m_q - m_l) <= 1e-10 * m_l + 1e-14:
                    failures.append(f"{name}: p(t=r) quadrature {m_q:.15g} vs Phi_r {m_l:.15g}")
            w_sum = max(w_sum, abs(math.fsum(masses) - 1))
            if not abs(math.fsum(masses) - 1) <= 1e-10:
                failures.append(f"{name}: sum_r p(t=r) - 1 = {math.fsum(masses) - 1:.3g}")
            for n, x in enumerate(X):
                count += 1
                from scipy.special import log_ndtr, logsumexp

                # log p(t=r) p(x|t=r) for every component; the mixture in log space, on the
                # box |z| <= 9 sd, enlarged when the prior mass it cuts (times the largest
                # p(x|z)) is not negligible against the mixture (far x: posterior far out)
                lmix = float(logsumexp([_polygon_log_quad(nt, r, x) for r in P]))
                lmax = -0.5 * (len(x) * math.log(2 * math.pi)
                               + float(np.sum(np.log(nt.noise_var_vector))))
                if lmax + math.log(4.0) + float(log_ndtr(-9.0)) - lmix > math.log(1e-13):
                    box = math.sqrt(2.0 * (lmax - lmix + 40.0))
                    lmix = float(logsumexp([_polygon_log_quad(nt, r, x, box=box) for r in P]))
                diff = abs(lmix - float(lp[n]))
                w_mix2 = max(w_mix2, diff)
                if not diff <= 1e-9:
                    failures.append(f"{name} x[{n}]: |log mixture - log p| = {diff:.3g} (float64)")
    details = {"S = 1: max relative |p(t=r) - Phi_r(0, Sigma_z)|": f"{w_pt:.3g}",
               "S = 2: max |p(t=r) - Phi_r(0, Sigma_z)| / (Phi_r + 1e-4) (float64)": f"{w_pt2:.3g}",
               "max |sum_r p(t=r) - 1|": f"{w_sum:.3g}",
               "S = 1: max |log mixture - log p| (mpmath)": f"{w_mix1:.3g}",
               "S = 2: max |log mixture - log p| (float64)": f"{w_mix2:.3g}"}
    return _result("Prop. 1", "the DGN density is the continuous MPPCA/MFA mixture", failures,
                   f"{count} points, dps={dps}", max(w_pt, w_pt2, w_sum, w_mix1, w_mix2), details)


def _interval(r: Any) -> tuple[Fraction | None, Fraction | None]:
    """[lo, hi] of a 1-D region from its facets (None: unbounded)."""
    lo = hi = None
    for c, d in zip(np.asarray(r.C).ravel().tolist(), np.asarray(r.d).tolist()):
        c, d = Fraction(c), Fraction(d)
        if c > 0:
            hi = d / c if hi is None else min(hi, d / c)
        elif c < 0:
            lo = d / c if lo is None else max(lo, d / c)
    return lo, hi


def _mixture_1d(net: DGN, P: Partition, x: Sequence[float], pts: list[mpmath.mpf],
                ivals: list[tuple[Fraction | None, Fraction | None]]) -> mpmath.mpf:
    """sum_r p(t=r) p(x|t=r), component r integrated over its interval with its own affine
    map (W_r, v_r) = (A_r, b_r) and mixed with weight p(t=r)."""
    nv = [mpmath.mpf(float(v)) for v in net.noise_var_vector]
    s2 = mpmath.mpf(float(net.prior_cov[0, 0]))
    xm = [mpmath.mpf(float(v)) for v in x]
    D = len(xm)
    lconst = -(D * mpmath.log(2 * mpmath.pi) + mpmath.fsum(mpmath.log(v) for v in nv)
               + mpmath.log(2 * mpmath.pi * s2)) / 2
    nvf = [float(v) for v in net.noise_var_vector]
    total = mpmath.mpf(0)
    for r, pt, (lo, hi) in zip(P, pts, ivals):
        a = mpmath.ninf if lo is None else _mpf_of(lo)
        b = mpmath.inf if hi is None else _mpf_of(hi)
        Wr = [Fraction(v) for v in np.asarray(r.A).ravel().tolist()]
        vr = [Fraction(v) for v in np.asarray(r.b).tolist()]
        Wm, vm = [_mpf_of(v) for v in Wr], [_mpf_of(v) for v in vr]

        def logf(z: mpmath.mpf, Wm: list = Wm, vm: list = vm) -> mpmath.mpf:
            q = mpmath.fsum((xi - w * z - c) ** 2 / s for xi, w, c, s in zip(xm, Wm, vm, nv))
            return lconst - q / 2 - z * z / (2 * s2)

        inner = [_mpf_of(t) for t in sorted(set(_bump_points([float(v) for v in Wr], [float(v) for v in vr],
                                                  [float(v) for v in x], nvf, float(s2), lo, hi)))]
        # the maximum of a Gaussian on [a, b] is at its centre or at an endpoint
        probe = inner + [v for v in (a, b) if mpmath.isfinite(v)] or [mpmath.mpf(0)]
        M = max(logf(t) for t in probe)  # scale: mpmath's error control is absolute
        def scaled(z: mpmath.mpf, M: mpmath.mpf = M, logf: Any = logf) -> mpmath.mpf:
            return mpmath.exp(logf(z) - M)

        comp = _quad_pieces(scaled,
                            [a, *inner, b]) * mpmath.exp(M)  # = p(t=r) p(x | t=r)
        px_given_t = comp / pt
        total += pt * px_given_t
    return total


def _graded(a: float, b: float, step: float, grade: int) -> NDArray[np.float64]:
    """Breakpoints of [a, b]: a uniform grid of ``step`` and geometric grading towards both
    ends (a + (b - a) 2^-k, k = 1..grade), so that boundary layers down to 2^-grade of the
    width are resolved."""
    w = b - a
    k = 2.0 ** -np.arange(1, grade + 1)
    pts = np.concatenate([np.arange(a, b, step), [b], a + w * k, b - w * k])
    return np.unique(pts[(pts >= a) & (pts <= b)])


def _polygon_log_quad(net: DGN, r: Any, x: Sequence[float] | None, n: int = 10,
                      box: float = 9.0, grade: int = 16) -> float:
    """log of the integral over region r (S = 2) of N(z; 0, Sigma_z) (x None) or of
    N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z), float64 nested Gauss-Legendre.

    Outer z2 between the region's vertex heights, inner z1 over the exact chord
    {z1 : C (z1, z2) <= d}; every interval carries a uniform grid and geometric grading to
    its ends (:func:`_graded`): the integrand of a far x is a thin layer along the boundary
    nearest to it. Accumulated in log space. The box |z_i| <= 9 prior sds cuts a prior mass
    below 1e-18.
    """
    from scipy.special import logsumexp

    C = np.asarray(r.C, dtype=np.float64)
    d = np.asarray(r.d, dtype=np.float64)
    A = np.asarray(r.A, dtype=np.float64)
    b = np.asarray(r.b, dtype=np.float64)
    Sz = np.asarray(net.prior_cov, dtype=np.float64)
    Szi = np.linalg.inv(Sz)
    sd = np.sqrt(np.diag(Sz))
    nv = net.noise_var_vector
    step = 0.25
    if x is not None:
        lip = max(float(np.linalg.norm(A, 2)), 1e-12)
        step = min(0.25, 0.3 * math.sqrt(float(nv.min())) / lip)
    V = np.asarray(r.vertices, dtype=np.float64).reshape(-1, 2)
    R_ = np.asarray(r.rays, dtype=np.float64).reshape(-1, 2)
    lo2 = V[:, 1].min() if len(V) else -box * sd[1]
    hi2 = V[:, 1].max() if len(V) else box * sd[1]
    if (len(R_) and (R_[:, 1] < 0).any()) or len(V) == 0:
        lo2 = -box * sd[1]
    if (len(R_) and (R_[:, 1] > 0).any()) or len(V) == 0:
        hi2 = box * sd[1]
    lo2, hi2 = max(lo2, -box * sd[1]), min(hi2, box * sd[1])
    if hi2 <= lo2:
        return -math.inf
    heights = np.unique(np.r_[lo2, V[:, 1][(V[:, 1] > lo2) & (V[:, 1] < hi2)], hi2])
    br = np.unique(np.concatenate([_graded(u, v, step, grade) for u, v in itertools.pairwise(heights)]))
    Z2, W2 = _panel_nodes(br, n)
    lconst = -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(Sz)))
    if x is not None:
        lconst -= 0.5 * (len(x) * math.log(2 * math.pi) + np.sum(np.log(nv)))
    logs = []
    for z2, w2 in zip(Z2, W2):
        # chord: c1 z1 <= d - c2 z2
        lo1, hi1 = -box * sd[0], box * sd[0]
        rhs = d - C[:, 1] * z2
        ok = True
        for c1, e in zip(C[:, 0], rhs):
            if c1 > 0:
                hi1 = min(hi1, e / c1)
            elif c1 < 0:
                lo1 = max(lo1, e / c1)
            elif e < 0:
                ok = False
        if not ok or hi1 <= lo1:
            continue
        Z1, W1 = _panel_nodes(_graded(lo1, hi1, step, grade), n)
        Z = np.stack([Z1, np.full_like(Z1, z2)], axis=1)
        lf = lconst - 0.5 * np.einsum("ni,ij,nj->n", Z, Szi, Z)
        if x is not None:
            G = Z @ A.T + b
            lf = lf - 0.5 * np.sum((np.asarray(x) - G) ** 2 / nv, axis=1)
        logs.append(lf + np.log(W1 * w2))
    if not logs:
        return -math.inf
    return float(logsumexp(np.concatenate(logs)))


# =========================================================================== Prop. 2
@register("Prop. 2", "p(z|x) is the mixture of truncated Gaussians "
          "sum_w 1_w(z) kappa_w(x) N(z; mu_w(x), Sigma_w) / p(x)")
def check_prop2(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 30,
                n_points: int | None = None, n_latent: int | None = None) -> CheckResult:
    """Prop. 2 at latent points: the mixture-of-truncated-Gaussians density
    (``ExactPosterior.log_density``) against Bayes' rule
    ``log N(x; g(z), Sigma_x) + log N(z; 0, Sigma_z) - log p(x)`` with g evaluated by an
    mpmath forward pass. Latent points: random normal ones, region vertices (boundaries,
    where two or more regions' formulas must agree) and points on facets. Tolerance:
    ``10**-(dps - 3)`` absolute in log density.
    Also ``sum_w e0_w TN_w(z) = density``: the weights are the mixture weights.
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    rng = np.random.default_rng(seed + 31)
    n_points = n_points if n_points is not None else (1 if quick else 3)
    n_latent = n_latent if n_latent is not None else (8 if quick else 40)
    failures: list[str] = []
    worst = 0.0
    count = 0
    for name, nt in _cases(net, quick, S=(1, 2, 3, 4)):
        P = partition(nt)
        S = nt.latent_dim
        mpn = _MPNet(nt)
        # quick, S >= 2: no far point (its tail integrals cost seconds per polygon)
        X = _test_points(nt, n_points, seed, far=not quick or S == 1)
        post = posterior(nt, X, dps=dps, partition=P)
        Zs: list[list[Fraction]] = [[Fraction(float(v)) for v in z]
                                    for z in rng.standard_normal((n_latent, S))]
        for r in list(P)[: (6 if quick else len(P))]:
            V = np.asarray(r.vertices).tolist()
            Zs.extend([[Fraction(v) for v in vert] for vert in V[:2]])
        for n in range(X.shape[0]):
            dens = post.log_density(np.array(Zs, dtype=object), n)
            with mpmath.workdps(dps + 15):
                xm = [mpmath.mpf(float(v)) for v in X[n]]
                for z, ld in zip(Zs, dens):
                    bayes = mpn.log_joint(xm, [_mpf_of(v) for v in z]) - post.log_px[n]
                    diff = float(abs(bayes - ld))
                    worst = max(worst, diff)
                    count += 1
                    if not diff <= 10.0 ** -(dps - 3):
                        failures.append(f"{name} x[{n}] z={[float(v) for v in z]}: |Prop. 2 - "
                                        f"Bayes| = {diff:.3g}")
    return _result("Prop. 2", "the posterior density is the mixture of truncated Gaussians",
                   failures, f"{count} (point, latent) pairs incl. region vertices, dps={dps}",
                   worst, {"max |log density (Prop. 2) - log Bayes|": f"{worst:.3g}"})


# =========================================================================== Lemma 2
def _jacobian_exact(net: DGN, z: Sequence[Fraction]) -> list[list[Fraction]]:
    """Jacobian of g at z (inside a region) by exact differences along the axes, with a step
    small enough that no pre-activation changes sign (checked)."""
    from .partition_checks import ExactForward

    fwd = ExactForward(net)
    pre0, g0 = fwd(list(z))
    if any(p == 0 for p in pre0):
        raise ValueError("z lies on a region boundary")
    S = len(z)
    h = Fraction(1, 2 ** 20)
    while True:
        cols, ok = [], True
        for i in range(S):
            zi = list(z)
            zi[i] += h
            pre1, g1 = fwd(zi)
            if any((a > 0) != (b > 0) for a, b in zip(pre0, pre1)):
                ok = False
                break
            cols.append([(b - a) / h for a, b in zip(g0, g1)])
        if ok:
            return [[cols[i][k] for i in range(S)] for k in range(len(g0))]
        h /= 1024


def _lemma2_points(net: DGN, rng: np.random.Generator, n: int
                   ) -> list[tuple[Arr, list[Fraction], Fraction]]:
    """Points x = g(z0) (+ a small offset for every other point) with a unique z*(x) inside
    a region where g has full column rank; z* computed exactly (S = 1)."""
    out: list[tuple[Arr, list[Fraction], Fraction]] = []
    tries = 0
    while len(out) < n and tries < 200:
        tries += 1
        z0 = rng.uniform(-1.5, 1.5, net.latent_dim)
        x = net.forward(z0[None, :])[0]
        if len(out) % 2 == 1:
            x = x + 0.02 * rng.standard_normal(net.data_dim)
        zs, _, gap = glo_latent_1d(net, x.tolist())
        try:
            J = _jacobian_exact(net, [zs])
        except ValueError:
            continue
        if sum(J[k][0] ** 2 for k in range(len(J))) < Fraction(1, 10 ** 4) or gap < Fraction(1, 10 ** 4):
            continue
        out.append((x, [zs], gap))
    return out


@register("Lemma 2", "as the noise -> 0 the posterior concentrates at "
          "z*(x) = argmin ||x - g(z)||^2 (ties by the prior)")
def check_lemma2(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 20,
                 noise_levels: Sequence[float] | None = None, n_points: int | None = None
                 ) -> CheckResult:
    """Lemma 2 along a sequence of isotropic noise variances sigma^2 -> 0 (S = 1).

    The variances are ``noise_levels`` (factors) times ``min(A^T A Sigma_z, gap, A^T A
    dist^2)``: the limit is reached once the posterior sd is small against the prior's and
    against the distance ``dist`` from z* to the nearest kink, and the other local minima of
    ||x - g(z)||^2 (excess ``gap``) carry negligible weight.

    z*(x) = argmin_z ||x - g(z)||^2 exactly (:func:`glo_latent_1d`), at points where it is
    unique and inside a region with g' != 0. Measured: ``|E[z|x] - z*|`` and ``Var[z|x]``
    for each sigma^2, their log-log slopes against sigma^2 on the three smallest levels
    (theory: 1 and 1), and the leading
    coefficients ``(E[z|x] - z*)/sigma^2 -> -(A^T A)^-1 Sigma_z^-1 z*`` and
    ``Var[z|x]/sigma^2 -> (A^T A)^-1`` (A = g'(z*), computed by exact differences).
    Pass: both errors decrease monotonically, slopes within 0.1 of 1, and both coefficients
    within ``20 sigma_min^2 (1 + |z*|^2) / (A^T A Sigma_z)`` relative at the smallest noise
    (their O(sigma^2) correction is ``sigma^2 / (A^T A Sigma_z)``).
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    factors = list(noise_levels) if noise_levels is not None else (
        [1e-2, 1e-3, 1e-4, 1e-5] if quick else [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7])
    n_points = n_points if n_points is not None else (2 if quick else 4)
    rng = np.random.default_rng(seed + 77)
    failures: list[str] = []
    rows: dict[str, str] = {}
    worst_coef = 0.0
    nets = _cases(net, quick, S=(1,))
    for name, nt in nets:
        P = partition(nt)
        kinks = kinks_1d(nt)
        Sz = float(nt.prior_cov[0, 0])
        for k, (x, zs, gap) in enumerate(_lemma2_points(nt, rng, n_points)):
            J = _jacobian_exact(nt, zs)
            AtA = float(sum(J[j][0] ** 2 for j in range(len(J))))
            # the limit regime: sigma^2 small against A^T A Sigma_z (posterior sd << prior
            # sd), against the excess of the other local minima (their weight exp(-gap/2s^2))
            # and against A^T A dist^2 (posterior sd << distance from z* to the nearest kink)
            dist = min((abs(float(kk - zs[0])) for kk in kinks), default=math.inf)
            base = min(AtA * Sz, float(gap), AtA * dist ** 2)
            levels = [base * f for f in factors]
            zst = float(zs[0])
            c_mean = -zst / (AtA * Sz)
            c_var = 1.0 / AtA
            errs, vars_, cm, cv = [], [], [], []
            for s2 in levels:
                ns = nt.replace(noise_var=s2)
                post = posterior(ns, x, dps=dps, partition=_same_regions(P, ns))
                with mpmath.workdps(dps + 10):
                    e = post.mean[0, 0] - _mpf_of(zs[0])
                    v = post.cov[0, 0, 0]
                errs.append(abs(float(e)))
                vars_.append(float(v))
                cm.append(float(e) / s2)
                cv.append(float(v) / s2)
            # asymptotic rates: fitted on the three smallest noise levels
            sl_m = _slope(levels[-3:], errs[-3:])
            sl_v = _slope(levels[-3:], vars_[-3:])
            rel_m = abs(cm[-1] - c_mean) / max(abs(c_mean), 1e-300)
            rel_v = abs(cv[-1] - c_var) / c_var
            worst_coef = max(worst_coef, rel_m, rel_v)
            tol_c = 20 * min(levels) * (1 + zst ** 2) / (AtA * Sz)
            rows[f"{name} x[{k}] (z* = {zst:.4f}, A^T A = {AtA:.3g})"] = (
                f"sigma^2 = {', '.join(f'{v:.2e}' for v in levels)}: "
                f"|mean - z*| = {', '.join(f'{v:.2e}' for v in errs)}; var = "
                f"{', '.join(f'{v:.2e}' for v in vars_)}; slopes {sl_m:.3f}, {sl_v:.3f}; "
                f"coefficients rel. err. {rel_m:.2e}, {rel_v:.2e}")
            if not (all(a > b for a, b in itertools.pairwise(errs)) and all(a > b for a, b in itertools.pairwise(vars_))):
                failures.append(f"{name} x[{k}]: errors do not decrease monotonically")
            if not (abs(sl_m - 1) <= 0.1 and abs(sl_v - 1) <= 0.1):
                failures.append(f"{name} x[{k}]: rates {sl_m:.3f}, {sl_v:.3f} (expected 1)")
            if not (rel_m <= tol_c and rel_v <= tol_c):
                failures.append(f"{name} x[{k}]: leading coefficients off by {rel_m:.3g}, "
                                f"{rel_v:.3g} (tol {tol_c:.3g})")
    if not rows:
        failures.append("no test point with a unique z*(x) inside a region was found")
    details = {"noise variances (x min(A^T A Sigma_z, gap, A^T A dist^2))": ", ".join(f"{s:.0e}" for s in factors),
               **rows}
    return _result("Lemma 2", "the zero-noise posterior concentrates at z*(x)", failures,
                   f"{len(rows)} points, {len(factors)} noise levels, dps={dps}; residual: largest "
                   f"relative error of the leading coefficients at the smallest noise", worst_coef,
                   details, digits=False)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    lx, ly = np.log(np.asarray(xs)), np.log(np.maximum(np.asarray(ys), 1e-300))
    return float(np.polyfit(lx, ly, 1)[0])


def _same_regions(P: Partition, net: DGN) -> Partition:
    """The partition of ``net`` built from P's regions (noise and prior do not change the
    regions or their affine maps)."""
    if not (all(np.array_equal(a, b) for a, b in zip(P.net.weights, net.weights))
            and all(np.array_equal(a, b) for a, b in zip(P.net.biases, net.biases))
            and P.net.activation == net.activation and P.net.slope == net.slope):
        raise ValueError("the nets differ in their generator")
    return Partition(net, list(P), exact=True)


# =========================================================================== Prop. 3
def _map_exact(post: Any, n: int) -> tuple[list[Fraction], int]:
    """argmax_z p(z | x_n) from the mixture of truncated Gaussians: per region the convex QP
    min (z - mu)^T Lambda (z - mu) s.t. C z <= d solved exactly by enumerating active sets,
    then the region maximising log kappa_w + log N(z_w; mu_w, Sigma_w)."""
    best = None
    S = post.partition.net.latent_dim
    for w, r in enumerate(post.partition):
        f = post._forms[w]
        mu = post._mu_exact[n][w]
        z = _qp_region(f, mu, S)
        dz = [a - b for a, b in zip(z, mu)]
        quad = sum((dz[i] * f.Lam[i][j] * dz[j] for i in range(S) for j in range(S)), Fraction(0))
        with mpmath.workdps(post.dps + 20):
            val = (post.log_kappa[n, w] + (mpmath.log(f.det_lam.numerator) - mpmath.log(f.det_lam.denominator)) / 2
                   - _mpf_of(quad) / 2)
        if best is None or val > best[0]:
            best = (val, z, w)
    assert best is not None
    return best[1], best[2]


def _qp_region(f: Any, mu: list[Fraction], S: int) -> list[Fraction]:
    rows = list(zip(f.Crows, f.dvals))

    def feasible(z: list[Fraction]) -> bool:
        return all(sum((c * v for c, v in zip(row, z)), Fraction(0)) <= dd for row, dd in rows)

    if feasible(mu):
        return list(mu)
    best = None
    for k in range(1, S + 1):
        for J in itertools.combinations(range(len(rows)), k):
            CJ = [list(rows[j][0]) for j in J]
            dJ = [rows[j][1] for j in J]
            # z = mu - Sigma C_J^T (C_J Sigma C_J^T)^-1 (C_J mu - d_J)
            SC = [[sum((f.Sigma[i][p] * CJ[a][p] for p in range(S)), Fraction(0)) for a in range(k)]
                  for i in range(S)]
            K = [[sum((CJ[a][i] * SC[i][b] for i in range(S)), Fraction(0)) for b in range(k)]
                 for a in range(k)]
            try:
                from verified_dgn.distributions import _inverse_det

                Ki, _ = _inverse_det(K)
            except ZeroDivisionError:
                continue
            res = [sum((CJ[a][i] * mu[i] for i in range(S)), Fraction(0)) - dJ[a] for a in range(k)]
            lam = [sum((Ki[a][b] * res[b] for b in range(k)), Fraction(0)) for a in range(k)]
            z = [mu[i] - sum((SC[i][a] * lam[a] for a in range(k)), Fraction(0)) for i in range(S)]
            if not feasible(z):
                continue
            dz = [a - b for a, b in zip(z, mu)]
            val = sum((dz[i] * f.Lam[i][j] * dz[j] for i in range(S) for j in range(S)), Fraction(0))
            if best is None or val < best[0]:
                best = (val, z)
    assert best is not None, "no feasible point of a non-empty region"
    return best[1]


@register("Prop. 3", "GLO's latent argmin_z ||x - g(z)||^2 is the MAP of the zero-noise "
          "posterior under a flat prior")
def check_prop3(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 15,
                prior_scales: Sequence[float] | None = None, noise_levels: Sequence[float] | None = None,
                n_points: int | None = None) -> CheckResult:
    """Prop. 3 (S = 1): GLO's latent, computed exactly from the exact affine pieces of g
    (:func:`glo_latent_1d`, no partition, no posterior), against the MAP of the exact
    posterior with prior N(0, s^2) for s^2 -> infinity (a flat prior), at two noise levels.
    The MAP comes from the Prop. 2 mixture (``gauss_mean``, ``gauss_cov``, ``log_kappa``) by
    an exact QP per region. Theory: |MAP - GLO| = sigma^2 |z*| / (s^2 |g'|^2) + O(s^-4),
    so the measured slope against 1/s^2 must be 1 (within 0.1) and the difference at the
    largest s^2 below ``2 sigma^2 |z*| / (s^2 |g'|^2) + 1e-12``.
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    scales = list(prior_scales) if prior_scales is not None else [1e4, 1e6, 1e8]
    levels = list(noise_levels) if noise_levels is not None else [1e-2, 1e-4]
    n_points = n_points if n_points is not None else (2 if quick else 5)
    rng = np.random.default_rng(seed + 91)
    failures: list[str] = []
    rows: dict[str, str] = {}
    worst = 0.0
    for name, nt in _cases(net, quick, S=(1,)):
        P = partition(nt)
        X, _ = nt.sample(4 * n_points, seed=rng)
        used = 0
        for k, x in enumerate(X):
            if used >= n_points:
                break
            zg, _, gap = glo_latent_1d(nt, x.tolist(), prior_tiebreak=False)
            if gap < Fraction(1, 10 ** 4):
                continue  # GLO's minimiser is not (numerically) unique: no single MAP to compare
            try:
                J = _jacobian_exact(nt, [zg])
            except ValueError:
                continue
            AtA = float(sum(J[j][0] ** 2 for j in range(len(J))))
            if AtA < 1e-4:
                continue
            used += 1
            for s2n in levels:
                diffs = []
                for s2 in scales:
                    ns = nt.replace(noise_var=s2n, prior_cov=np.array([[s2]]))
                    post = posterior(ns, x, dps=dps, partition=_same_regions(P, ns))
                    zmap, _ = _map_exact(post, 0)
                    diffs.append(abs(float(zmap[0] - zg)))
                pred = s2n * abs(float(zg)) / (scales[-1] * AtA)
                sl = _slope([1 / s for s in scales], diffs)
                worst = max(worst, abs(diffs[-1] / pred - 1) if pred > 0 else diffs[-1])
                rows[f"{name} x[{k}], sigma^2={s2n:.0e} (GLO z = {float(zg):.6f})"] = (
                    f"|MAP - GLO| = {', '.join(f'{d:.2e}' for d in diffs)} for s^2 = "
                    f"{', '.join(f'{s:.0e}' for s in scales)}; slope in 1/s^2 {sl:.3f}; "
                    f"predicted {pred:.2e}")
                if not diffs[-1] <= 2 * pred + 1e-12:
                    failures.append(f"{name} x[{k}]: |MAP - GLO| = {diffs[-1]:.3g} > 2 x predicted "
                                    f"{pred:.3g}")
                if min(diffs) > 1e-13 and not abs(sl - 1) <= 0.1:
                    failures.append(f"{name} x[{k}]: rate {sl:.3f} in 1/s^2 (expected 1)")
        if used == 0:
            failures.append(f"{name}: no point with a unique GLO latent found")
    return _result("Prop. 3", "GLO's latent is the flat-prior MAP", failures,
                   f"{len(rows)} (point, noise) cases, prior variances {scales}; residual: "
                   f"largest |(MAP - GLO) / predicted - 1| at the largest prior variance", worst,
                   rows, digits=False)
