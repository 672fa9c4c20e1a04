"""Tests of fastpath.em: exact, monotone EM (docs/DESIGN.md §2.5).

What is checked, and against what:

* Monotonicity (the promise): the exact objective history is non-decreasing on many
  architectures (S = 1, 2; relu, leaky_relu, abs; depth 1-3; widths 4-32; isotropic and
  diagonal noise; Gaussian, Laplace and box priors). Tolerance: a decrease of at most
  ECM_RTOL * (|objective| + N) per iteration (the rounding of the exact log-likelihood,
  module notes of fastpath.em); inner-layer steps are accepted only on a computed
  non-decrease.
* ECM steps never decrease the exact objective beyond that tolerance (checked on the
  recorded per-iteration ECM gains) and the result's history is the exact log p(X) of the
  returned model (recomputed with fastpath.log_marginal, 1e-9 relative: the same kernel).
* The vectorised M-step kernels against slow loops over points and regions written from
  docs/DESIGN.md §2.5's formulas with per-point posterior moments (np.kron in DESIGN's column-major
  form), 1e-10 relative.
* The Fisher-identity gradient against central finite differences of the exact
  log-likelihood (h = 1e-6: FD error ~ h^2 f''' + eps f / h ~ 1e-9 relative; tolerance 1e-6).
* Checkpoints: an interrupted and resumed run equals an uninterrupted one bit for bit.
* Validation (one options object, fastpath._em_options.EMOptions, whose fields and defaults
  are fit_em's keyword arguments), the convergence warning, the noise floor.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastpath
from dgn_core.data import DataError, noisy_circle
from dgn_core.exceptions import CheckpointError
from fastpath import _mstep as MS
from fastpath import em as E
from verified_dgn import DGN


def _data(net: DGN, n: int, seed: int, extra_noise: float = 0.1) -> np.ndarray:
    X, _ = net.sample(n, seed=seed)
    return X + extra_noise * np.random.default_rng(seed + 1).standard_normal(X.shape)


def _ll(net: DGN, X: np.ndarray) -> float:
    return float(np.sum(fastpath.log_marginal(net, X)))


def _assert_monotone(res: E.EMResult) -> None:
    obj = np.asarray(res.objective)
    tol = E.ECM_RTOL * (np.abs(obj[:-1]) + res.n_points)
    d = np.diff(obj)
    assert np.all(d >= -tol), f"objective decreased: {d.min():.3g} (tolerance {tol.min():.3g})"
    gains = np.asarray(res.ecm_gain)
    assert np.all(gains >= -tol), f"an ECM step decreased the objective by {-gains.min():.3g}"
    assert res.ecm_rejected == []


# --------------------------------------------------------------------------- monotonicity
ARCHS = [
    # widths, activation, slope, noise, N, iterations
    ((1, 8, 8, 2), "leaky_relu", 0.1, 0.1, 200, 6),
    ((1, 4, 2), "relu", None, 0.05, 150, 6),
    ((1, 6, 5, 4, 2), "abs", None, 0.2, 150, 4),
    ((2, 6, 6, 3), "leaky_relu", 0.2, np.array([0.1, 0.2, 0.05]), 50, 2),
    ((2, 8, 3), "relu", None, 0.1, 60, 2),
    ((1, 3), "relu", None, 0.3, 100, 4),          # depth 1: one affine layer (PPCA)
    ((1, 6, 5, 2), ["abs", "leaky_relu"], 0.2, 0.1, 150, 4),   # per-layer activations
]


@pytest.mark.parametrize("widths,act,slope,nv,n,iters", ARCHS)
def test_monotone_architectures(widths, act, slope, nv, n, iters):
    net = DGN.random(widths, activation=act, slope=slope, seed=7, noise_var=nv)
    X = _data(net, n, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=iters, tol=0.0)
    _assert_monotone(res)
    assert res.objective == res.log_likelihood
    assert res.log_likelihood[-1] > res.log_likelihood[0]
    # the history is the exact log-likelihood of the returned model
    assert res.log_likelihood[-1] == pytest.approx(_ll(res.model, X), rel=1e-9)
    assert res.step_sizes.shape == (res.n_iter, len(widths) - 2)
    assert len(res.times) == res.n_iter + 1 and np.all(np.diff(res.times) >= 0)


#: max-pooling nets: widths (before pooling), activations, pool sizes, noise, N, iterations
MAX_ARCHS = [
    ((1, 6, 6, 2), ["relu", "max"], [None, 2], 0.1, 150, 4),
    ((1, 6, 2), ["max"], [[1, 2, 3]], 0.1, 100, 4),
    ((2, 8, 6, 3), ["max", "leaky_relu"], [2, None], 0.1, 60, 2),
]


@pytest.mark.parametrize("widths,act,pools,nv,n,iters", MAX_ARCHS)
def test_monotone_max_pooling_architectures(widths, act, pools, nv, n, iters):
    """Every layer of a max-pooling net trained (the M-step with selection matrices)."""
    net = DGN.random(widths, activation=act, slope=0.2, pool_sizes=pools, seed=7, noise_var=nv)
    X = _data(net, n, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=iters, tol=0.0)
    _assert_monotone(res)
    assert res.log_likelihood[-1] > res.log_likelihood[0]
    assert res.log_likelihood[-1] == pytest.approx(_ll(res.model, X), rel=1e-9)
    assert res.model.pool_sizes == net.pool_sizes
    # the inner layers moved (not only the last one)
    assert not np.array_equal(res.model.weights[0], net.weights[0])


def test_monotone_width32_circle():
    net = DGN.random((1, 32, 32, 2), activation="leaky_relu", slope=0.1, seed=1, noise_var=0.1)
    X = noisy_circle(300, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=4, tol=0.0)
    _assert_monotone(res)


@pytest.mark.parametrize("noise", ["isotropic", "diagonal"])
def test_monotone_noise_models_and_prior_cov(noise):
    net = DGN.random((1, 5, 5, 3), activation="leaky_relu", slope=0.1, seed=2, noise_var=0.1)
    X = _data(net, 150, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=5, tol=0.0, noise=noise, update_prior_cov=True)
    _assert_monotone(res)
    assert res.model.isotropic_noise == (noise == "isotropic")
    assert not res.model.has_identity_prior


@pytest.mark.parametrize("prior", [E.GaussianPrior(0.5), E.LaplacePrior(0.3), E.BoxPrior(1.0)])
def test_monotone_with_priors(prior):
    net = DGN.random((1, 5, 4, 2), activation="leaky_relu", slope=0.1, seed=4, noise_var=0.1)
    X = _data(net, 120, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=3, tol=0.0, weight_prior=prior)
    _assert_monotone(res)
    lp = prior.log_density(res.model.weights)
    assert res.objective[-1] == pytest.approx(res.log_likelihood[-1] + lp, rel=1e-12, abs=1e-9)
    if isinstance(prior, E.BoxPrior):
        assert all(np.all(np.abs(W) <= prior.bound) for W in res.model.weights)


def test_gaussian_prior_shrinks_last_layer():
    # closed form: with a small prior variance the last layer's weights shrink
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = _data(net, 100, seed=1)
    a, _ = E.em_step(net, X)
    b, _ = E.em_step(net, X, weight_prior=E.GaussianPrior(1e-3))
    assert np.linalg.norm(b.weights[-1]) < 0.5 * np.linalg.norm(a.weights[-1])


def test_last_layer_only_is_plain_em():
    net = DGN.random((1, 6, 2), activation="relu", seed=3, noise_var=0.1)
    X = _data(net, 100, seed=2)
    res = E.fit_em(net, X, max_iter=20, tol=1e-9, update=("last", "noise"))
    _assert_monotone(res)
    assert np.array_equal(res.model.weights[0], net.weights[0])   # inner layer untouched
    assert np.all(np.isnan(res.step_sizes))


# --------------------------------------------------------------------------- noise floor
def test_noise_floor_binds_and_is_reported():
    # 3 points, a generator that can pass through all of them: sigma^2 -> 0 without a floor
    net = DGN.random((1, 8, 2), activation="leaky_relu", slope=0.1, seed=0, noise_var=0.05)
    X = np.array([[0.0, 0.0], [1.0, 0.5], [-1.0, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=60, tol=0.0, noise_floor=1e-3)
    _assert_monotone(res)
    assert float(res.model.noise_var) >= 1e-3
    assert res.noise_floor_hit, "the floor should bind on 3 points"
    assert res.history["noise_floor_hit"][res.noise_floor_hit[0]] == 1.0


def test_noise_update_closed_form():
    # clipped mean squared residual: isotropic trace / (N D), diagonal per dimension
    r = np.array([0.2, 0.4, 0.0])
    nv, hit = MS._noise_update(r, 10, True, 1e-6)
    assert np.allclose(nv, 0.6 / 30) and not hit
    nv, hit = MS._noise_update(r, 10, False, 1e-3)
    assert np.allclose(nv, [0.02, 0.04, 1e-3]) and hit


# --------------------------------------------------------------------------- loop oracles
def _loop_statistics(net: DGN, X: np.ndarray, l: int):
    """Slow loop version of _layer_moments + _inner_system for layer l (0-based), from the
    per-point posterior moments and the per-region maps of dgn_core.regions.layer_maps
    (an independent implementation of the maps), in DESIGN's column-major Kronecker form."""
    from dgn_core.regions import layer_maps

    P = fastpath.partition(net)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    L, D = net.n_layers, net.data_dim
    Dl = net.widths[l + 1]
    K = net.widths[l] + 1
    inv = 1.0 / np.asarray(net.noise_var_vector)
    M = np.zeros((Dl * K, Dl * K))
    rhs = np.zeros((Dl, K))
    Hsum = np.zeros((K, K))
    Xh = np.zeros((D, K))
    for w, region in enumerate(P):
        pre, _, _ = layer_maps(net, region.signs)
        slopes = [np.where(np.asarray(s) > 0, 1.0, net.slope) for s in
                  np.split(np.asarray(region.signs), np.cumsum(net.hidden_widths)[:-1])] \
            if net.n_hidden_units else []
        if l == 0:
            Pw, pw = np.eye(net.latent_dim), np.zeros(net.latent_dim)
        else:
            Pw, pw = slopes[l - 1][:, None] * pre[l - 1][0], slopes[l - 1] * pre[l - 1][1]
        # F, c by the definition g(z) = F (W^l a + v^l) + c: F = d g / d h^l on this region
        F = np.eye(D)
        c = np.zeros(D)
        for k in range(L - 1, l, -1):
            c = c + F @ net.biases[k]
            F = F @ net.weights[k] @ np.diag(slopes[k - 1])
        Hw = np.zeros((K, K))
        T = np.zeros((D, K))
        for n in range(X.shape[0]):
            e0, e1, E2 = post.e0[n, w], post.e1[n, w], post.E2[n, w]
            eta = np.concatenate([Pw @ e1 + pw * e0, [e0]])
            Hn = np.zeros((K, K))
            Hn[:-1, :-1] = (Pw @ E2 @ Pw.T + np.outer(Pw @ e1, pw) + np.outer(pw, Pw @ e1)
                            + e0 * np.outer(pw, pw))
            Hn[:-1, -1] = Hn[-1, :-1] = Pw @ e1 + pw * e0
            Hn[-1, -1] = e0
            Hw += Hn
            T += np.outer(X[n] - c, eta)
            Xh += np.outer(X[n], eta)
        Kw = F.T @ np.diag(inv) @ F
        M += np.kron(Hw, Kw)                     # column-major vec (docs/DESIGN.md §2.5)
        rhs += F.T @ np.diag(inv) @ T
        Hsum += Hw
    # to the row-major vec used by fastpath._mstep: index i*K + a <-> column-major a*Dl + i
    perm = np.array([a * Dl + i for i in range(Dl) for a in range(K)])
    return M[np.ix_(perm, perm)], rhs.ravel(), Hsum, Xh, P, post


@pytest.mark.parametrize("widths,act,l", [((1, 4, 3, 2), "leaky_relu", 0), ((1, 4, 3, 2), "leaky_relu", 1),
                                          ((2, 3, 4, 3), "abs", 1), ((2, 3, 4, 3), "abs", 2),
                                          ((1, 3, 3, 3, 2), "relu", 1)])
def test_inner_system_against_loop(widths, act, l):
    net = DGN.random(widths, activation=act, slope=0.2 if act == "leaky_relu" else None, seed=5,
                     noise_var=np.linspace(0.05, 0.2, widths[-1]))
    X = _data(net, 25, seed=9)
    M_ref, r_ref, Hh_ref, Xh_ref, P, _ = _loop_statistics(net, X, l)
    st = fastpath.distributions.estep_statistics(net, X, partition=P, prune=None)
    sw = MS._sweep_maps(net, P)
    Pl, pl = sw.inputs[l]
    H, Xeta, eta = MS._layer_moments(Pl, pl, st)
    F, c = MS._output_map(net, sw.slopes, l, sw.R)
    M, r = MS._inner_system(F, c, H, Xeta, eta, 1.0 / np.asarray(net.noise_var_vector))
    scale = np.abs(M_ref).max()
    assert np.abs(M - M_ref).max() <= 1e-10 * scale
    assert np.abs(r - r_ref).max() <= 1e-10 * np.abs(r_ref).max()
    assert np.abs(H.sum(0) - Hh_ref).max() <= 1e-10 * np.abs(Hh_ref).max()
    assert np.abs(Xeta.sum(0) - Xh_ref).max() <= 1e-10 * np.abs(Xh_ref).max()
    # the gradient without forming M equals r - M vec(Wt)
    Wt = MS._Wt(net, l)
    g = MS._inner_gradient(F, c, H, Xeta, eta, 1.0 / np.asarray(net.noise_var_vector), Wt)
    assert np.allclose(g.ravel(), r - M @ Wt.ravel(), rtol=1e-9, atol=1e-9 * np.abs(r).max())


def test_last_layer_and_noise_against_loop():
    # docs/DESIGN.md §2.5 literally: Wt = [sum x E[h~]^T][sum E[h~ h~^T]]^-1; S_n with A_w, b_w
    net = DGN.random((1, 5, 4, 2), activation="leaky_relu", slope=0.1, seed=8, noise_var=0.08)
    X = _data(net, 30, seed=3)
    L = net.n_layers
    _, _, Hh, Xh, P, post = _loop_statistics(net, X, L - 1)
    Wt = Xh @ np.linalg.inv(Hh)
    new, _ = E.em_step(net, X, partition=P)
    assert np.allclose(np.column_stack([new.weights[-1], new.biases[-1]]), Wt, rtol=1e-9, atol=1e-10)
    from dgn_core.regions import region_affine_map

    tot = 0.0
    for w in range(len(P)):
        A, b = region_affine_map(new, P[w].signs)       # the new last layer on region w
        for n in range(X.shape[0]):
            e0, e1, E2 = post.e0[n, w], post.e1[n, w], post.E2[n, w]
            r = X[n] - b
            S = e0 * np.outer(r, r) - np.outer(r, A @ e1) - np.outer(A @ e1, r) + A @ E2 @ A.T
            tot += np.trace(S)
    assert float(new.noise_var) == pytest.approx(tot / (X.shape[0] * net.data_dim), rel=1e-9)


# --------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("widths,act,nv", [((1, 5, 4, 2), "leaky_relu", 0.05),
                                           ((2, 4, 3), "relu", np.array([0.1, 0.2, 0.3])),
                                           ((1, 3, 3, 3, 2), "abs", 0.2)])
def test_gradient_against_finite_differences(widths, act, nv):
    net = DGN.random(widths, activation=act, slope=0.1 if act == "leaky_relu" else None, seed=3,
                     noise_var=nv)
    X = _data(net, 40, seed=1)
    ll, g = E.log_likelihood_gradient(net, X)
    assert ll == pytest.approx(_ll(net, X), rel=1e-12)
    h = 1e-6
    for l in range(net.n_layers):
        W = np.array(net.weights[l])
        for idx in [(0, 0), (W.shape[0] - 1, W.shape[1] - 1)]:
            Ws = list(net.weights)
            Wp, Wm = W.copy(), W.copy()
            Wp[idx] += h
            Wm[idx] -= h
            Ws[l] = Wp
            a = _ll(net.replace(weights=Ws), X)
            Ws[l] = Wm
            b = _ll(net.replace(weights=Ws), X)
            assert g["weights"][l][idx] == pytest.approx((a - b) / (2 * h), rel=1e-6, abs=1e-6)
        v = np.array(net.biases[l])
        vs = list(net.biases)
        vp, vm = v.copy(), v.copy()
        vp[-1] += h
        vm[-1] -= h
        vs[l] = vp
        a = _ll(net.replace(biases=vs), X)
        vs[l] = vm
        b = _ll(net.replace(biases=vs), X)
        assert g["biases"][l][-1] == pytest.approx((a - b) / (2 * h), rel=1e-6, abs=1e-6)
    hv = 1e-7
    if np.ndim(net.noise_var) == 0:
        fd = (_ll(net.replace(noise_var=net.noise_var + hv), X)
              - _ll(net.replace(noise_var=net.noise_var - hv), X)) / (2 * hv)
        assert g["noise_var"] == pytest.approx(fd, rel=1e-6)
    else:
        p, m = np.array(net.noise_var), np.array(net.noise_var)
        p[0] += hv
        m[0] -= hv
        fd = (_ll(net.replace(noise_var=p), X) - _ll(net.replace(noise_var=m), X)) / (2 * hv)
        assert g["noise_var"][0] == pytest.approx(fd, rel=1e-6)


# --------------------------------------------------------------------------- checkpoints
def test_resume_is_bitwise_identical(tmp_path):
    net = DGN.random((1, 6, 6, 2), activation="leaky_relu", slope=0.1, seed=0, noise_var=0.1)
    X = noisy_circle(150, seed=2)
    kw = {"max_iter": 7, "tol": 0.0, "checkpoint_every": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        full = E.fit_em(net, X, checkpoint=tmp_path / "a.npz", **kw)

        # 1) interrupted by KeyboardInterrupt after iteration 3 (saved on interrupt)
        def stop(info):
            if info.iteration == 3:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            E.fit_em(net, X, checkpoint=tmp_path / "b.npz", callback=stop, **kw)
        res_b = E.fit_em(net, X, checkpoint=tmp_path / "b.npz", resume=True, **kw)

        # 2) a periodic checkpoint (iteration 4) copied away mid-run, as after a kill -9
        saved = {}

        def grab(info):
            if info.iteration == 5:
                saved["bytes"] = (tmp_path / "c.npz").read_bytes()
        E.fit_em(net, X, checkpoint=tmp_path / "c.npz", callback=grab, **kw)
        (tmp_path / "d.npz").write_bytes(saved["bytes"])
        res_d = E.fit_em(net, X, checkpoint=tmp_path / "d.npz", resume=True, **kw)
    for res in (res_b, res_d):
        assert res.model == full.model                       # bitwise
        assert res.log_likelihood == full.log_likelihood      # bitwise
        assert np.array_equal(res.step_sizes, full.step_sizes, equal_nan=True)
        assert res.n_iter == full.n_iter == 7


def test_checkpoint_refuses_other_data_or_options(tmp_path):
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = noisy_circle(60, seed=2)
    path = tmp_path / "ck.npz"
    E.fit_em(net, X, max_iter=1, checkpoint=path)
    with pytest.raises(ValueError, match="different data"):
        E.fit_em(net, X + 1.0, max_iter=2, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="other options"):
        E.fit_em(net, X, max_iter=2, checkpoint=path, resume=True, noise_floor=1e-4)
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros(2))
    with pytest.raises(CheckpointError, match="not an EM checkpoint"):
        E.fit_em(net, X, max_iter=2, checkpoint=bad, resume=True)
    # a checkpoint with its marker but an entry missing or malformed: one clear error, not a
    # KeyError from inside the reader
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    for damage in ("drop", "string"):
        broken = dict(arrays)
        if damage == "drop":
            del broken["log_likelihood"]
        else:
            broken["format_version"] = np.array("two")
        damaged = tmp_path / f"damaged_{damage}.npz"
        np.savez(damaged, **broken)
        with pytest.raises(CheckpointError, match="damaged EM checkpoint"):
            E.fit_em(net, X, max_iter=2, checkpoint=damaged, resume=True)


# --------------------------------------------------------------------------- conventions
def test_convergence_warning_and_converged_flag():
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = noisy_circle(80, seed=2)
    with pytest.warns(E.ConvergenceWarning, match="did not converge"):
        res = E.fit_em(net, X, max_iter=2, tol=0.0)
    assert not res.converged and res.n_iter == 2
    res = E.fit_em(net, X, max_iter=500, tol=1e-3)
    assert res.converged and res.n_iter < 500
    obj = res.objective
    assert (obj[-1] - obj[-2]) / X.shape[0] < 1e-3


def test_reproducible_and_callback_stop():
    net = DGN.random((1, 5, 2), activation="abs", seed=1, noise_var=0.1)
    X = noisy_circle(80, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        a = E.fit_em(net, X, max_iter=3, tol=0.0)
        b = E.fit_em(net, X, max_iter=3, tol=0.0)
    assert a.model == b.model and a.log_likelihood == b.log_likelihood
    seen = []
    res = E.fit_em(net, X, max_iter=10, tol=0.0, callback=lambda i: seen.append(i) or i.iteration == 2)
    assert res.stopped and res.n_iter == 2 and [s.iteration for s in seen] == [1, 2]
    assert seen[-1].model == res.model
    assert seen[-1].log_likelihood == res.log_likelihood[-1]


def test_progress_line(capsys):
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = noisy_circle(50, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        E.fit_em(net, X, max_iter=2, tol=0.0, progress=True)
    err = capsys.readouterr().err
    assert "log p(X) =" in err and "EM    2/2" in err


def test_fit_em_public_name():
    assert fastpath.fit_em is E.fit_em


@pytest.mark.parametrize("kw,exc,match", [
    ({"max_iter": -1}, ValueError, "max_iter"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"update": ("layers", "bias")}, ValueError, "update"),
    ({"noise": "full"}, ValueError, "noise"),
    ({"weight_prior": "ridge"}, TypeError, "weight_prior"),
    ({"noise_floor": 0.5}, ValueError, "below"),
    ({"weight_prior": E.BoxPrior(1e-3)}, ValueError, "outside the box"),
    ({"resume": True}, ValueError, "checkpoint"),
    ({"callback": 3}, TypeError, "callable"),
])
def test_validation(kw, exc, match):
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = noisy_circle(20, seed=2)
    with pytest.raises(exc, match=match):
        E.fit_em(net, X, **kw)


@pytest.mark.parametrize("kw,exc,match", [
    # the convention of dgn_core.validation: TypeError for the wrong kind of value,
    # ValueError for a wrong value of the right kind
    ({"max_iter": 1.5}, TypeError, "max_iter"),
    ({"max_halvings": True}, TypeError, "max_halvings"),
    ({"tol": "small"}, TypeError, "tol"),
    ({"ridge": float("nan")}, ValueError, "ridge"),
    ({"max_regions": 0}, ValueError, "max_regions"),
    ({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
    ({"seed": 1.0}, TypeError, "seed"),
    ({"update": 5}, TypeError, "update"),
    ({"checkpoint": 3}, TypeError, "checkpoint"),
    ({"blas_threads": 0}, ValueError, "blas_threads"),
    ({"blas_threads": 2.0}, TypeError, "blas_threads"),
])
def test_validation_kinds(kw, exc, match):
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    X = noisy_circle(20, seed=2)
    with pytest.raises(exc, match=match):
        E.fit_em(net, X, **kw)


def test_options_are_fit_em_keywords():
    # one table, one options object, one signature: names, order and defaults agree
    import dataclasses
    import inspect

    from fastpath._em_options import PARAMETER_CONSTRAINTS, EMOptions

    params = [p for p in inspect.signature(E.fit_em).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY]
    fields = dataclasses.fields(EMOptions)
    assert [p.name for p in params] == [f.name for f in fields] == list(PARAMETER_CONSTRAINTS)
    assert [p.default for p in params] == [f.default for f in fields]
    for c in PARAMETER_CONSTRAINTS.values():
        assert c.accepts and c.meaning


def test_options_normalised_and_frozen(tmp_path):
    import dataclasses

    from fastpath._em_options import EMOptions

    o = EMOptions.from_kwargs(update=["last"], checkpoint=str(tmp_path / "run"), progress=1,
                              resume=True)
    assert o.update == ("last",) and o.train_last and not o.train_layers and not o.train_noise
    assert o.checkpoint == tmp_path / "run.npz" and o.progress is True
    assert EMOptions(update="layers").train_last
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.max_iter = 3  # type: ignore[misc]  # assigning a frozen field is the point
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=np.array([0.1, 0.2]))
    assert EMOptions().noise_model(net) == "diagonal"
    X = noisy_circle(20, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=1, tol=1.0, noise="isotropic", update=("last", "noise"))
    assert res.options == EMOptions(noise="isotropic", tol=1.0, update=("last", "noise"),
                                    max_iter=1).record(net)
    assert res.options["update"] == ["last", "noise"] and res.options["noise"] == "isotropic"


def test_validation_data_and_priors():
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.1)
    with pytest.raises(DataError):
        E.fit_em(net, np.zeros((5, 3)))
    with pytest.raises(DataError):
        E.fit_em(net, np.full((5, 2), np.nan))
    with pytest.raises(TypeError):
        E.fit_em("net", np.zeros((5, 2)))
    with pytest.raises(ValueError):
        E.GaussianPrior(-1.0)
    with pytest.raises(ValueError):
        E.LaplacePrior(float("inf"))
    assert E.parse_prior("none") is None
    assert E.parse_prior("gaussian:2") == E.GaussianPrior(2.0)
    assert E.parse_prior("box:0.5") == E.BoxPrior(0.5)
    with pytest.raises(ValueError):
        E.parse_prior("cauchy:1")


# --------------------------------------------------------------------------- selection
def test_select_widths_table_and_criteria():
    from fastpath.selection import select_widths

    X = noisy_circle(120, seed=4)
    table = select_widths(X, [(), (4,), (3, 3)], max_iter=3, seed=1)
    assert [r["hidden"] for r in table.rows] == [(), (4,), (3, 3)]
    N = X.shape[0]
    for r, m in zip(table.rows, table.models):
        # AIC / BIC from the exact log-likelihood of the trained model (recomputed)
        ll = _ll(m, X)
        assert r["log_likelihood"] == pytest.approx(ll, rel=1e-9)
        k = m.n_params
        assert r["n_params"] == k == sum(W.size + v.size for W, v in zip(m.weights, m.biases)) + 1
        assert r["aic"] == pytest.approx(2 * k - 2 * ll, rel=1e-9)
        assert r["bic"] == pytest.approx(k * np.log(N) - 2 * ll, rel=1e-9)
    i = table.best("bic")
    assert table.rows[i]["bic"] == min(r["bic"] for r in table.rows)
    assert "best BIC" in table.to_text()
    with pytest.raises(ValueError):
        select_widths(X, [])
    with pytest.raises(ValueError):
        select_widths(X, [(0,)])
    with pytest.raises(ValueError):
        table.best("likelihood")


def test_anomaly_scores_are_negative_log_density():
    net = DGN.random((1, 4, 2), activation="relu", seed=0, noise_var=0.05)
    X = np.vstack([net.sample(20, seed=1)[0], [[50.0, -50.0]]])
    s = fastpath.anomaly_scores(net, X)
    assert s.shape == (21,)
    assert np.array_equal(s, -fastpath.log_marginal(net, X))
    assert np.argmax(s) == 20          # the far point is the most anomalous
