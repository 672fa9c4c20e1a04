"""EM with missing entries: ``fit_em(..., mask=...)`` (fastpath._em_missing).

* mask all True: the run without a mask, bit for bit (the same statistics);
* the statistics under p(z, x_m | x_o) against Fisher's identity: the gradient of the
  frozen-activation Q function built from them (the code of
  :func:`fastpath.em.log_likelihood_gradient`) equals the finite-difference gradient of the
  exact observed-data log-likelihood, for every weight and the noise variances;
* the per-row statistics of the last layer (the observed-data Q of the per-row ECM step):
  their gradient is the finite-difference gradient of the same log-likelihood too;
* 20% of the entries missing, S = 1 and S = 2: the history is non-decreasing, no ECM step is
  rejected, and its last value is sum_n log p(x_o,n) of the returned model (per-row ECM,
  the default, and at S = 1 also the complete-data M-step).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import switched

import fastpath
from fastpath import DGN, _em_missing
from fastpath._em_missing import MissingEStep, ObservedStatistics, missing_data
from fastpath._mstep import _inner_gradient, _layer_moments, _output_map, _sweep_maps, _Wt


def _data(widths, n, frac, seed):
    truth = DGN.random(widths, activation="leaky_relu", seed=seed, noise_var=0.02, init="he")
    X, _ = truth.sample(n, seed=seed + 1)
    m = np.random.default_rng(seed + 2).random(X.shape) >= frac
    return X, m


@pytest.mark.parametrize("widths", [(1, 6, 3), (2, 4, 3)])
def test_all_observed_mask_is_the_unmasked_run_bit_for_bit(widths):
    X, _ = _data(widths, 60, 0.0, 1)
    init = DGN.random(widths, activation="leaky_relu", seed=9, noise_var=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # ConvergenceWarning at max_iter
        a = fastpath.fit_em(init, X, max_iter=3)
        b = fastpath.fit_em(init, X, max_iter=3, mask=np.ones(X.shape, dtype=bool))
    assert a.log_likelihood == b.log_likelihood
    assert a.model == b.model


def test_statistics_satisfy_fishers_identity():
    # central differences with h = 1e-5: truncation ~h^2 |f'''| and rounding ~eps |f| / h,
    # ~1e-8 relative here (measured 5e-8 and 2e-8 on the two layers); 1e-6 is the bound
    net = DGN.random((1, 5, 3), activation="leaky_relu", seed=3, noise_var=[0.05, 0.1, 0.2],
                     init="he")
    X, _ = net.sample(40, seed=1)
    m = np.random.default_rng(2).random(X.shape) > 0.3
    m[0] = False                                          # a point with nothing observed
    m[1] = True                                           # and a complete one
    Xm, mm, _ = missing_data(net, X, m)
    P = fastpath.partition(net)
    st = MissingEStep(Xm, mm).statistics(net, P)

    def f(n: DGN) -> float:
        return float(fastpath.log_marginal_observed(n, X, m).sum())

    assert st.log_likelihood == f(net)
    sw = _sweep_maps(net, P)
    nv = np.asarray(net.noise_var_vector)
    h = 1e-5
    for l in range(net.n_layers):
        Pl, pl = sw.inputs[l]
        H, Xeta, eta = _layer_moments(Pl, pl, st)
        F, c = _output_map(net, sw.slopes, l, sw.R)
        grad = _inner_gradient(F, c, H, Xeta, eta, 1.0 / nv, _Wt(net, l))   # [W_l, v_l]
        for i in range(grad.shape[0]):
            for j in range(grad.shape[1]):
                moved = []
                for sign in (1.0, -1.0):
                    Ws, vs = [w.copy() for w in net.weights], [v.copy() for v in net.biases]
                    if j < Ws[l].shape[1]:
                        Ws[l][i, j] += sign * h
                    else:
                        vs[l][i] += sign * h
                    moved.append(f(net.replace(weights=Ws, biases=vs)))
                fd = (moved[0] - moved[1]) / (2 * h)
                assert abs(fd - grad[i, j]) < 1e-6 * (1 + abs(fd)), (l, i, j, fd, grad[i, j])
    # the per-row sums of the last layer: Q_o's gradient in row d is (Xh_d - Wt_d Hh_d) / s_d^2
    assert isinstance(st, ObservedStatistics)
    L = net.n_layers
    Pl, pl = sw.inputs[L - 1]
    for d in range(3):
        row = SimpleNamespace(s0=st.s0_o[d], s1=st.s1_o[d], S2=st.S2_o[d],
                              x0=st.x0_o[:, d:d + 1], x1=st.x1_o[:, d:d + 1])
        H, Xeta, _ = _layer_moments(Pl, pl, row)
        Hh, Xh = H.sum(axis=0), Xeta.sum(axis=0)[0]
        Wt = _Wt(net, L - 1)[d]
        grad_row = (Xh - Wt @ Hh) / nv[d]
        for j in range(Wt.size):
            moved = []
            for sign in (1.0, -1.0):
                Ws, vs = [w.copy() for w in net.weights], [v.copy() for v in net.biases]
                if j < Ws[-1].shape[1]:
                    Ws[-1][d, j] += sign * h
                else:
                    vs[-1][d] += sign * h
                moved.append(f(net.replace(weights=Ws, biases=vs)))
            fd = (moved[0] - moved[1]) / (2 * h)
            assert abs(fd - grad_row[j]) < 1e-6 * (1 + abs(fd)), (d, j, fd, grad_row[j])
    g_noise = -0.5 * st.n / nv + 0.5 * st.resid2 / (nv * nv)
    for d in range(3):
        up, dn = nv.copy(), nv.copy()
        up[d] += h
        dn[d] -= h
        fd = (f(net.replace(noise_var=up)) - f(net.replace(noise_var=dn))) / (2 * h)
        assert abs(fd - g_noise[d]) < 1e-6 * (1 + abs(fd)), (d, fd, g_noise[d])


@pytest.mark.parametrize("widths,noise,iters,per_row", [((1, 6, 3), 0.1, 25, True),
                                                        ((1, 6, 3), 0.1, 25, False),
                                                        ((2, 4, 3), [0.1, 0.2, 0.1], 6, True)])
def test_monotone_with_a_fifth_missing(widths, noise, iters, per_row):
    X, m = _data(widths, 80, 0.2, 4)
    init = DGN.random(widths, activation="leaky_relu", seed=5, noise_var=noise)
    with switched(_em_missing.PER_ROW_ECM, per_row), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fastpath.fit_em(init, np.where(m, X, np.nan), mask=m, max_iter=iters, tol=0.0)
    ll = np.asarray(fit.log_likelihood)
    assert fit.n_iter >= 3 and not fit.ecm_rejected
    # the ECM steps are exact EM steps and inner steps are accepted only without a decrease
    assert np.all(np.diff(ll) >= -1e-10 * (np.abs(ll[1:]) + X.shape[0])), np.diff(ll)
    assert ll[-1] > ll[0] + 1.0
    final = fastpath.log_marginal_observed(fit.model, X, m).sum()
    np.testing.assert_allclose(ll[-1], final, rtol=1e-12, atol=0)
    assert fit.model.isotropic_noise == np.isscalar(noise)


def test_mask_errors():
    net = DGN.random((1, 3, 2), seed=0, noise_var=0.1)
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="nothing to fit"):
        fastpath.fit_em(net, X, mask=np.zeros((5, 2), dtype=bool))
    class FakeClient:                                     # passes the client option check
        def submit(self): ...
        def scatter(self): ...

    with pytest.raises(ValueError, match="client"):
        fastpath.fit_em(net, X, mask=np.ones((5, 2), dtype=bool), client=FakeClient())
    with pytest.raises(TypeError, match="boolean"):
        fastpath.fit_em(net, X, mask=np.ones((5, 2)))


def test_resume_with_a_mask_equals_the_uninterrupted_run(tmp_path):
    X, m = _data((1, 5, 3), 60, 0.2, 7)
    init = DGN.random((1, 5, 3), activation="leaky_relu", seed=8, noise_var=0.1)
    Xn = np.where(m, X, np.nan)
    ck = tmp_path / "ck.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = fastpath.fit_em(init, Xn, mask=m, max_iter=6, tol=0.0)
        fastpath.fit_em(init, Xn, mask=m, max_iter=3, tol=0.0, checkpoint=ck)
        resumed = fastpath.fit_em(init, Xn, mask=m, max_iter=6, tol=0.0, checkpoint=ck,
                                  resume=True)
        other = m.copy()
        other[0, 0] = not other[0, 0]
        with pytest.raises(Exception, match="data"):       # another mask: other data
            fastpath.fit_em(init, np.where(other, X, np.nan), mask=other, max_iter=6,
                            checkpoint=ck, resume=True)
    assert resumed.log_likelihood == full.log_likelihood
    assert resumed.model == full.model
