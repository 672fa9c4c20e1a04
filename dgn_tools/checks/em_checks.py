"""Numerical checks of the EM algorithm (docs/DESIGN.md §2.5; the paper's Sec. 4 / App. G).

* "M-step": the closed-form M-step maximises the Q function. The E-step is the exact
  posterior (verified_dgn, mpmath); the closed forms come from :func:`verified_dgn.em.em_step`
  (mpmath); the Q function is evaluated independently, point by point and region by region
  from the posterior moments, and maximised by brute force (scipy.optimize BFGS from the
  current parameters). Checked: (a) the last layer and the noise jointly (the exact ECM
  steps maximise Q over (W^L, v^L, Sigma_x) together because the last layer's maximiser
  does not depend on Sigma_x); (b) every inner layer's closed form maximises the
  frozen-activation Q function (with a Gaussian weight prior so that the maximiser is
  unique); (c) Sigma_z. Passes when Q at the closed form is at least Q at the brute-force
  optimum (relative 1e-10: rounding of the float64 Q) and the closed form is a stationary
  point of Q: per parameter, the displacement to the maximum that the gradient and the
  curvature of Q there imply, g_i / |H_ii| (central differences; exact up to rounding for
  the quadratic cases, whose step is then chosen large), is at most 1e-7 relative. The
  parameters of the BFGS optimum are reported beside it, not judged: on a flat direction
  of Q (an ill-conditioned inner layer) BFGS stops up to ~1e-5 away while its Q is no
  higher, and that is the optimiser's accuracy, not the closed form's.
* "EM monotonicity": :func:`fastpath.fit_em` on a suite of architectures; the exact
  objective history must be non-decreasing within ``fastpath.em.ECM_RTOL`` (the rounding of
  log p(X)). This check runs the fast path (imported when it runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize

from dgn_core.model import DGN
from dgn_core.priors import GaussianPrior

from . import CheckNotApplicable, CheckResult, digits_from_residual, register

__all__ = ["check_em_monotone", "check_mstep", "q_function"]

#: relative tolerance of "closed form is at least as good" (float64 Q of size ~N D)
_Q_RTOL = 1e-10
#: relative agreement of the parameters with the brute-force optimum (reported only)
_PARAM_RTOL = 1e-6
#: relative displacement to the maximum implied at the closed form (g_i / |H_ii|)
_STAT_RTOL = 1e-7
_EPS = float(np.finfo(np.float64).eps)


def _default_nets(quick: bool, seed: int) -> list[DGN]:
    nets = [DGN.random((1, 4, 3, 2), activation="leaky_relu", slope=0.2, seed=seed + 1,
                       noise_var=0.1)]
    if not quick:
        nets += [
            DGN.random((1, 3, 3, 2), activation="abs", seed=seed + 2,
                       noise_var=np.array([0.05, 0.2])),
            DGN.random((1, 3, 3, 3, 2), activation="leaky_relu", slope=0.1, seed=seed + 3,
                       noise_var=0.2),
        ]
    return nets


def _float(a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=object)
    return np.array([float(v) for v in arr.ravel()]).reshape(arr.shape)


def q_function(net: DGN, signs: np.ndarray, X: np.ndarray, e0: np.ndarray, e1: np.ndarray,
               E2: np.ndarray, prior_var: float | None = None) -> float:
    """Q(theta') = sum_n E_{p(z|x_n, theta)}[log p(x_n, z | theta')] + log p(W'), with the
    activation pattern of every region frozen (the regions of theta), from the moments.

    Parameters
    ----------
    net : DGN
        theta' (any parameters with the architecture of theta).
    signs : ndarray, shape (R, n_hidden_units)
        Sign patterns of theta's regions.
    X : ndarray, shape (N, D)
    e0, e1, E2 : ndarray, shapes (N, R), (N, R, S), (N, R, S, S)
        Posterior moments at theta.
    prior_var : float, optional
        Gaussian weight prior N(0, prior_var) on every weight matrix.

    Notes
    -----
    Written point by point and region by region from the definition: on region w,
    E[1_w (x - A z - b)^T Sigma^-1 (x - A z - b)] = sum_d [e0 r_d^2 - 2 r_d (A e1)_d +
    (A E2 A^T)_dd] / sigma_d^2 with r = x - b, and E[1_w log N(z; 0, Sigma_z)] =
    -(e0 (S log 2 pi + log det Sigma_z) + tr(Sigma_z^-1 E2)) / 2.
    """
    from dgn_core.regions import region_affine_map

    N, R = e0.shape
    D, S = net.data_dim, net.latent_dim
    nv = np.asarray(net.noise_var_vector, dtype=np.float64)
    Sz = np.asarray(net.prior_cov, dtype=np.float64)
    Sz_inv = np.linalg.inv(Sz)
    logdet_z = float(np.linalg.slogdet(Sz)[1])
    total = 0.0
    for w in range(R):
        A, b = region_affine_map(net, signs[w])
        for n in range(N):
            if e0[n, w] == 0:
                continue
            r = X[n] - b
            Ae1 = A @ e1[n, w]
            quad = e0[n, w] * r * r - 2.0 * r * Ae1 + np.diag(A @ E2[n, w] @ A.T)
            total += -0.5 * float(np.sum(quad / nv)) \
                - 0.5 * e0[n, w] * (D * math.log(2 * math.pi) + float(np.sum(np.log(nv))))
            total += -0.5 * (e0[n, w] * (S * math.log(2 * math.pi) + logdet_z)
                             + float(np.trace(Sz_inv @ E2[n, w])))
    if prior_var is not None:
        total += sum(-0.5 * float(np.sum(W * W)) / prior_var
                     - 0.5 * W.size * math.log(2 * math.pi * prior_var) for W in net.weights)
    return total


def _maximise(f: Any, x0: np.ndarray) -> np.ndarray:
    # central-difference gradients (jac="3-point"): exact for the quadratic parts up to
    # rounding, unlike forward differences (whose sqrt(eps) error limited BFGS to ~1e-5)
    res = optimize.minimize(lambda x: -f(x), x0, method="BFGS", jac="3-point",
                            options={"gtol": 1e-9, "maxiter": 20000})
    # polish: BFGS stops on its gradient test; a second run from there tightens it
    res = optimize.minimize(lambda x: -f(x), res.x, method="BFGS", jac="3-point",
                            options={"gtol": 1e-10, "maxiter": 20000})
    return np.asarray(res.x)


def _stationarity(q: Any, x: np.ndarray, quadratic: bool) -> float:
    """max_i |g_i / H_ii| / max(1, |x|_inf) at x: the displacement to the maximum that the
    gradient and curvature of q imply per parameter (central differences). A quadratic q
    has no truncation error, so its step is chosen large (second difference ~1e-4 |q|)
    to keep rounding at ~1e-12 of the step; otherwise h = 1e-4 max(1, |x_i|)."""
    q0 = q(x)
    scale = max(1.0, float(np.max(np.abs(x))))
    worst = 0.0
    for i in range(x.size):
        h = 1e-4 * max(1.0, abs(float(x[i])))
        for _ in range(2 if quadratic else 1):
            e = np.zeros_like(x)
            e[i] = h
            qp, qm = q(x + e), q(x - e)
            curv = (qp - 2.0 * q0 + qm) / (h * h)
            if quadratic and curv < 0.0:
                h = max(h, math.sqrt(1e-4 * abs(q0) / -curv))
        g = (qp - qm) / (2.0 * h)
        if not curv < 0.0:
            # Q flat along this parameter to rounding (e.g. the weight of a unit that is
            # never active): no direction of ascent; else not a maximum
            if max(abs(qp - q0), abs(qm - q0)) <= 8.0 * _EPS * abs(q0):
                continue
            return math.inf
        worst = max(worst, abs(g / curv) / scale)
    return worst


def _compare(q: Any, x_cf: np.ndarray, x0: np.ndarray, quadratic: bool = False
             ) -> tuple[float, float, float]:
    """(relative Q shortfall of the closed form, relative parameter difference, stationarity
    of the closed form) against the brute-force maximiser of q started at x0."""
    x_bf = _maximise(q, x0)
    q_cf, q_bf = q(x_cf), q(x_bf)
    dq = max(0.0, (q_bf - q_cf) / abs(q_cf))
    dp = float(np.max(np.abs(x_bf - x_cf)) / max(1.0, float(np.max(np.abs(x_cf)))))
    return dq, dp, _stationarity(q, x_cf, quadratic)


def _mstep_cases(nt: DGN, X: np.ndarray, dps: int, prior_var: float
                 ) -> list[tuple[str, float, float, float]]:
    """The M-step comparisons of one net: (label, Q shortfall, parameter difference,
    stationarity)."""
    import verified_dgn
    from verified_dgn.em import em_step

    P = verified_dgn.partition(nt)
    post = verified_dgn.posterior(nt, X, dps=dps, partition=P)
    e0, e1, E2 = _float(post.e0), _float(post.e1), _float(post.E2)
    signs = np.array([r.signs for r in P]).reshape(len(P), nt.n_hidden_units)
    S, L = nt.latent_dim, nt.n_layers
    out = []

    # (a) last layer + noise jointly (noise as log-variance)
    new, _ = em_step(nt, X, dps=dps, partition=P, posterior=post, update_prior_cov=True)
    WL, vL = nt.weights[-1], nt.biases[-1]

    def qa(x: np.ndarray) -> float:
        Ws, vs = list(nt.weights), list(nt.biases)
        Ws[-1] = x[:WL.size].reshape(WL.shape)
        vs[-1] = x[WL.size:WL.size + vL.size]
        lv = x[WL.size + vL.size:]
        nv = float(np.exp(lv[0])) if nt.isotropic_noise else np.exp(lv)
        return q_function(nt.replace(weights=Ws, biases=vs, noise_var=nv), signs, X, e0, e1, E2)

    def log_nv(m: DGN) -> np.ndarray:
        return np.log(np.atleast_1d(np.asarray(m.noise_var, dtype=np.float64)))

    x_cf = np.concatenate([np.asarray(new.weights[-1]).ravel(), new.biases[-1], log_nv(new)])
    out.append(("last layer + noise", *_compare(qa, x_cf,
                                               np.concatenate([WL.ravel(), vL, log_nv(nt)]))))

    # (c) Sigma_z over its Cholesky factor
    tril = np.tril_indices(S)

    def qz(x: np.ndarray) -> float:
        Lz = np.zeros((S, S))
        Lz[tril] = x
        return q_function(nt.replace(prior_cov=Lz @ Lz.T), signs, X, e0, e1, E2)

    Sz_cf = np.asarray(new.prior_cov)
    out.append(("Sigma_z", *_compare(qz, np.linalg.cholesky(Sz_cf)[tril], np.eye(S)[tril])))

    # (b) inner layers with a Gaussian prior (ridge 0: the pure MAP surrogate)
    _, info_p = em_step(nt, X, dps=dps, partition=P, posterior=post,
                        weight_prior=GaussianPrior(prior_var), ridge=0.0)
    for l in range(L - 1):
        Wl, vl = nt.weights[l], nt.biases[l]

        def qb(x: np.ndarray, l: int = l, shape: tuple[int, int] = Wl.shape) -> float:
            Ws, vs = list(nt.weights), list(nt.biases)
            n = shape[0] * shape[1]
            Ws[l], vs[l] = x[:n].reshape(shape), x[n:]
            return q_function(nt.replace(weights=Ws, biases=vs), signs, X, e0, e1, E2, prior_var)

        Wt, vt = info_p["inner"][l]
        x_cf = np.concatenate([_float(Wt).ravel(), _float(vt)])
        # with frozen activations A_w and b_w are affine in layer l: Q is quadratic in it
        out.append((f"inner layer {l + 1}", *_compare(qb, x_cf, np.concatenate([Wl.ravel(), vl]),
                                                      quadratic=True)))
    return out


@register("M-step", "the closed-form M-step (last layer + noise, inner layers with frozen "
          "activations, Sigma_z) maximises the Q function (brute-force check)")
def check_mstep(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 20,
                n_points: int | None = None, prior_var: float = 4.0) -> CheckResult:
    """Check that the closed-form M-step maximises Q (module notes).

    Parameters
    ----------
    net : DGN, optional
        Latent dimension 1 or 2 (default: a built-in suite of S = 1 nets).
    quick : bool
        One net and 8 points (a few seconds) or three nets and 15 points.
    seed : int
        Seeds the data (samples of the net plus noise) and the built-in nets.
    dps : int
        Digits of the exact posterior.
    n_points : int, optional
    prior_var : float
        Gaussian weight prior of the inner-layer check (makes the maximiser unique).
    """
    nets = [net] if net is not None else _default_nets(quick, seed)
    if any(nt.latent_dim > 2 for nt in nets):
        raise CheckNotApplicable(
            "the M-step check needs the exact posterior (mpmath), which takes tens of minutes "
            "per point at S >= 3; it handles S = 1 and 2 (EM monotonicity covers S = 3)")
    N = n_points or (8 if quick else 15)
    cases: list[tuple[str, float, float, float]] = []
    for k, nt in enumerate(nets):
        rng = np.random.default_rng(seed + 100 + k)
        X = nt.sample(N, seed=seed + k)[0] + 0.1 * rng.standard_normal((N, nt.data_dim))
        cases += [(f"net {k} {nt.widths} {label}", dq, dp, st)
                  for label, dq, dp, st in _mstep_cases(nt, X, dps, prior_var)]
    worst_q = max(c[1] for c in cases)
    worst_p = max(c[2] for c in cases)
    worst_s = max(c[3] for c in cases)
    passed = worst_q <= _Q_RTOL and worst_s <= _STAT_RTOL
    lines = [f"{label}: Q shortfall {dq:.2g}, stationarity {st:.2g}, BFGS parameters {dp:.2g}"
             for label, dq, dp, st in cases]
    return CheckResult(
        name="M-step",
        statement="the closed-form M-step maximises the Q function",
        passed=bool(passed),
        measured=(f"{len(nets)} net(s), {N} points each: exact posterior moments (dps={dps}), "
                  "closed forms in mpmath vs BFGS on the Q function written point by point; "
                  "Q shortfall of the closed form and its stationarity (displacement to the "
                  "maximum implied by the gradient and curvature of Q)"),
        residual=worst_s,
        digits=digits_from_residual(worst_s),
        details={"Q shortfall (relative)": f"{worst_q:.3g} (tolerance {_Q_RTOL:g})",
                 "stationarity (relative)": f"{worst_s:.3g} (tolerance {_STAT_RTOL:g})",
                 "BFGS optimum vs closed form (relative, reported)":
                     f"{worst_p:.3g} (BFGS's accuracy: ~{_PARAM_RTOL:g} on well-conditioned Q)",
                 **{f"case {i}": t for i, t in enumerate(lines)}},
    )


def _monotone_suite(quick: bool, seed: int) -> list[tuple[DGN, np.ndarray, dict[str, Any]]]:
    from dgn_core.data import noisy_circle

    cases: list[tuple[DGN, np.ndarray, dict[str, Any]]] = []
    circle = noisy_circle(200 if quick else 1000, seed=seed)
    specs: Sequence[tuple[tuple[int, ...], str, float | None, Any]] = [
        ((1, 8, 8, 2), "leaky_relu", 0.1, 0.1),
        ((1, 6, 6, 6, 2), "abs", None, 0.05),
        ((1, 16, 2), "relu", None, 0.01),
    ]
    if not quick:
        specs = list(specs) + [((1, 32, 32, 2), "leaky_relu", 0.1, 0.1),
                               ((1, 8, 8, 2), "relu", None, np.array([0.05, 0.2]))]
    for widths, act, slope, nv in specs:
        net = DGN.random(widths, activation=act, slope=slope, seed=seed, noise_var=nv)
        cases.append((net, circle, {}))
    if not quick:
        from dgn_core.priors import GaussianPrior, LaplacePrior
        net = DGN.random((2, 6, 6, 3), activation="leaky_relu", slope=0.2, seed=seed,
                         noise_var=0.1)
        X3 = net.sample(150, seed=seed)[0] + 0.1 * np.random.default_rng(seed).standard_normal((150, 3))
        cases.append((net, X3, {}))
        cases.append((cases[0][0], circle, {"weight_prior": GaussianPrior(1.0)}))
        cases.append((cases[0][0], circle, {"weight_prior": LaplacePrior(0.5)}))
    return cases


@register("EM monotonicity", "fastpath.fit_em never decreases the exact log-likelihood "
          "(plus log prior) on a suite of architectures")
def check_em_monotone(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                      max_iter: int | None = None, X: np.ndarray | None = None) -> CheckResult:
    """Run fastpath.fit_em and measure the largest decrease of the exact objective.

    Parameters
    ----------
    net : DGN, optional
        With data dimension 2 it is trained on the noisy circle (or on ``X``); default: a
        suite of S = 1 nets on the circle (quick) plus width 32, diagonal noise, S = 2 and
        priors (thorough).
    max_iter : int, optional
        Iterations per run (default 15 quick, 40 thorough).
    X : ndarray, optional
        Data for ``net``.
    """
    import warnings

    from dgn_core.data import noisy_circle
    from fastpath.em import ECM_RTOL, ConvergenceWarning, fit_em

    iters = max_iter or (15 if quick else 40)
    if net is not None:
        data = X if X is not None else (noisy_circle(300, seed=seed) if net.data_dim == 2 else
                                        net.sample(300, seed=seed)[0])
        cases: list[tuple[DGN, np.ndarray, dict[str, Any]]] = [
            (net, np.asarray(data, dtype=np.float64), {})]
    else:
        cases = _monotone_suite(quick, seed)
    worst, worst_rel = 0.0, 0.0
    passed = True
    lines = {}
    for k, (nt, data, kw) in enumerate(cases):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(nt, data, max_iter=iters, tol=0.0, **kw)
        obj = np.asarray(res.objective)
        d = np.diff(obj)
        tol = ECM_RTOL * (np.abs(obj[:-1]) + data.shape[0])
        dec = float(max(0.0, -d.min())) if d.size else 0.0
        worst = max(worst, dec)
        worst_rel = max(worst_rel, dec / float(np.abs(obj).max()))
        ok = bool(np.all(d >= -tol)) and not res.ecm_rejected
        passed &= ok
        lines[f"case {k}"] = (f"{nt.widths} {nt.activation} {kw or ''}: {res.n_iter} iterations, "
                              f"log p(X) {res.log_likelihood[0]:.6g} -> {res.log_likelihood[-1]:.6g}, "
                              f"largest decrease {dec:.3g}{'' if ok else ' FAIL'}")
    return CheckResult(
        name="EM monotonicity",
        statement="the exact objective history of fastpath.fit_em is non-decreasing",
        passed=bool(passed),
        measured=(f"{len(cases)} runs of {iters} iterations; the largest decrease of the exact "
                  f"objective between iterations (tolerance {ECM_RTOL:g} (|objective| + N))"),
        residual=worst,
        digits=None,
        details={"largest relative decrease": f"{worst_rel:.3g}", **lines},
    )
