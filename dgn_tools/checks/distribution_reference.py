"""Independent references for the checks of the marginal and the posterior.

The checks in :mod:`~dgn_tools.checks.marginal_checks`,
:mod:`~dgn_tools.checks.posterior_checks`, :mod:`~dgn_tools.checks.mixture_checks` and
:mod:`~dgn_tools.checks.zero_noise_checks` compare :mod:`verified_dgn.distributions` with what
is computed here, without it (and, except where said, without the partition): the integrand
``p(x|z) p(z)`` is evaluated by a forward pass of the network (mpmath for S = 1, float64 for
S = 2), and its integrals over z by quadrature between the kinks of g, which are found by an
independent exact sweep (:func:`kinks_1d`: layer by layer, each pre-activation is affine
between the kinks found so far, so two exact evaluations give its root). Where the
partition's vertices are used (the outer breakpoints of the 2-D quadrature) they are only
hints: a wrong hint slows the convergence of a quadrature of the true integrand, it cannot
make a wrong result agree.

Also here: the suites of nets and test points the checks share, and the helper that turns
a list of failures into a :class:`~dgn_tools.checks.CheckResult`.
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

from . import CheckNotApplicable, CheckResult, ReferenceTooCostly, digits_from_residual

#: most z-lines the nested S = 2 quadrature may sweep for one point (each line is a Python
#: sweep of the net; beyond this the reference takes minutes per point)
MAX_QUADRATURE_LINES = 10000

__all__ = ["builtin_nets", "kinks_1d", "joint_quadrature_1d", "joint_quadrature_2d"]

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
            out.append(("abs / leaky_relu(0.3) per layer [1,4,4,2]",
                        DGN.random((1, 4, 4, 2), activation=["abs", "leaky_relu"], slope=0.3,
                                   seed=14, noise_var=0.04)))
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
        raise CheckNotApplicable(f"this check's quadrature reference handles latent dimension "
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
        self.slopes = [mpmath.mpf(0) if p else mpmath.mpf(s)
                       for s, p in zip(net.slopes, net.pool_sizes)]
        self.pools = list(net.pool_sizes)
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
            if l == L - 1:
                h = a
            elif self.pools[l]:
                h = [max(a[s:s + k]) for s, k in _groups(self.pools[l])]
            else:
                h = [t if t > 0 else self.slopes[l] * t for t in a]
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


def _groups(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(start, size) of every group of a max-pooling layer."""
    starts = itertools.accumulate([0, *sizes[:-1]])
    return list(zip(starts, sizes))


def _kink_functions(net: DGN, per_layer: list[list[Any]]) -> list[list[Any]]:
    """The functions whose sign changes are the kinks of g, per hidden layer: the
    pre-activations of an element-wise layer, and every difference ``h_i - h_j`` (i < j in a
    group) of a max-pooling layer (a superset of its kinks: ties of two losers are not kinks,
    which only adds break points). An identity layer has no kinks (an empty list). The
    output layer's entry is passed through."""
    out = []
    for l, h in enumerate(per_layer):
        if l < len(net.activations) and net.activations[l] == "identity":
            h = []
        elif l < len(net.pool_sizes) and net.pool_sizes[l]:
            h = [h[s + i] - h[s + j] for s, k in _groups(net.pool_sizes[l])
                 for i in range(k) for j in range(i + 1, k)]
        out.append(h)
    return out


def _preacts_exact(net: DGN) -> Callable[[Fraction], list[list[Fraction]]]:
    """Exact kink functions per hidden layer (the pre-activations, or the within-group
    differences of a max-pooling layer) at a scalar latent point (S = 1)."""
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
        return _kink_functions(net, res)

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


#: an affine piece of g for S = 1: (lo, hi, slope, intercept), None for an infinite end
Piece = tuple[Fraction | None, Fraction | None, list[Fraction], list[Fraction]]


def _affine_pieces_1d(net: DGN) -> list[Piece]:
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
                        method: str = "gauss-legendre"
                        ) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf, mpmath.mpf]:
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
        return _kink_functions(net, [h[0].tolist() for h in hs]
                               + [net.forward(np.array([[t, z2]]))[0].tolist()])

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


def _lipschitz(net: DGN) -> float:
    """The Lipschitz constant of g: max_w ||A_w||_2 over the regions (exact for a continuous
    piecewise-affine map; the product of the layers' norms can be far larger)."""
    import fastpath

    return max(float(np.linalg.norm(np.asarray(r.A, dtype=np.float64), 2))
               for r in fastpath.partition(net))


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
        step = float(min(0.5, 0.5 * math.sqrt(float(nv.min())) / max(_lipschitz(net), 1e-12)))
    lo1, hi1 = -box * sd[0], box * sd[0]
    lo2, hi2 = -box * sd[1], box * sd[1]
    br2 = np.union1d(np.arange(lo2, hi2 + step / 2, step),
                     [h for h in z2_hints if lo2 < h < hi2])
    if (len(br2) - 1) * n > MAX_QUADRATURE_LINES:
        raise ReferenceTooCostly(
            f"the S = 2 z-quadrature reference would sweep {(len(br2) - 1) * n} lines per "
            f"point (panels of {step:.2g} prior sds, to resolve noise sd "
            f"{math.sqrt(float(nv.min())):.2g}); its budget is {MAX_QUADRATURE_LINES}")
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


# =========================================================================== helpers
def _listed(items: list[str]) -> str:
    return "; ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")


def _result(name: str, statement: str, failures: list[str], measured: str, residual: float,
            details: dict[str, Any], digits: bool = True,
            inconclusive: list[str] | None = None) -> CheckResult:
    """FAIL when there are ``failures``; else INCONCLUSIVE when some comparison could not be
    decided because its reference did not converge (``inconclusive``: what and its error
    estimate); else PASS. ``digits=False`` for limit checks, whose residual is a measured
    asymptotic deviation (it shrinks with the parameter), not a rounding error."""
    details = dict(details)
    if failures:
        details["failures"] = _listed(failures)
    if inconclusive:
        details["inconclusive"] = _listed(inconclusive)
    status = "FAIL" if failures else ("INCONCLUSIVE" if inconclusive else "PASS")
    return CheckResult(name=name, statement=statement, passed=status == "PASS",
                       measured=measured, residual=residual,
                       digits=digits_from_residual(residual) if digits and residual is not None else None,
                       details=details, status=status)


def _z2_hints(P: Partition) -> list[float]:
    return sorted({float(v[1]) for r in P for v in np.asarray(r.vertices, dtype=np.float64)})


def _same_regions(P: Partition, net: DGN) -> Partition:
    """The partition of ``net`` built from P's regions (noise and prior do not change the
    regions or their affine maps)."""
    if not (all(np.array_equal(a, b) for a, b in zip(P.net.weights, net.weights))
            and all(np.array_equal(a, b) for a, b in zip(P.net.biases, net.biases))
            and P.net.activations == net.activations and P.net.slopes == net.slopes
            and P.net.pool_sizes == net.pool_sizes):
        raise ValueError("the nets differ in their generator")
    return Partition(net, list(P), exact=True)
