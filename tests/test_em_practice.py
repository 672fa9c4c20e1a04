"""fit_em for real data: held-out history, early stopping, several starts, warm starts.

* The held-out history equals ``fastpath.log_marginal`` summed over X_val for the model of
  every iteration (collected by the callback), to 1e-12 relative: both are the same exact
  float64 computation on the same partition up to the order of the sums.
* Early stopping returns the model of the best held-out iteration and stops exactly
  ``n_iter_no_change`` iterations after it.
* ``n_init`` keeps the run with the best training objective (or held-out log-likelihood),
  every run equals the single run from the same start bit for bit, and resume continues
  every run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastpath
from dgn_core.data import noisy_circle
from dgn_core.exceptions import CheckpointError, DataError
from dgn_core.model import DGN
from fastpath._em_starts import random_start
from fastpath.em import ConvergenceWarning, fit_em


def _net(seed: int = 0, S: int = 1) -> DGN:
    return DGN.random((S, 6, 2), activation="leaky_relu", slope=0.1, seed=seed, noise_var=0.05)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("S", [1, 2])
def test_held_out_history_is_log_marginal_of_every_iterate(S):
    X, Xv = noisy_circle(150, seed=11), noisy_circle(80, seed=12)
    net = _net(3, S)
    models = [net]
    res = fit_em(net, X, X_val=Xv, max_iter=6, tol=0.0,
                 callback=lambda info: models.append(info.model))
    assert len(res.val_log_likelihood) == res.n_iter + 1 == len(models)
    ref = [float(np.sum(fastpath.log_marginal(m, Xv))) for m in models]
    np.testing.assert_allclose(res.val_log_likelihood, ref, rtol=1e-12)
    assert res.n_val_points == 80
    h = res.history
    np.testing.assert_allclose(h["val_per_point"], np.array(ref) / 80, rtol=1e-12)
    assert res.best_iteration == int(np.argmax(ref))
    # held-out data do not steer EM: the training history is that of a run without them
    plain = fit_em(net, X, max_iter=6, tol=0.0)
    assert plain.log_likelihood == res.log_likelihood and not plain.val_log_likelihood


def test_early_stopping_returns_the_best_held_out_model():
    # 30 training points, a wide net: EM overfits and the held-out curve turns down
    X, Xv = noisy_circle(30, seed=5), noisy_circle(200, seed=6)
    net = DGN.random((1, 12, 12, 2), activation="leaky_relu", slope=0.1, seed=4, noise_var=0.05)
    full = fit_em(net, X, X_val=Xv, max_iter=60, tol=0.0)
    v = np.asarray(full.val_log_likelihood)
    best = int(np.argmax(v))
    assert best < full.n_iter - 3, "the case must overfit for the test to mean something"
    es = fit_em(net, X, X_val=Xv, max_iter=60, tol=0.0, n_iter_no_change=3)
    assert es.early_stopped and not es.converged
    assert es.best_iteration == best and es.n_iter == best + 3
    assert es.log_likelihood == full.log_likelihood[:best + 4]
    np.testing.assert_allclose(np.sum(fastpath.log_marginal(es.model, Xv)), v[best], rtol=1e-12)
    assert np.sum(fastpath.log_marginal(es.model, X)) == pytest.approx(
        full.log_likelihood[best], rel=1e-12)


def test_n_init_keeps_the_best_run_and_each_run_is_reproducible():
    X = noisy_circle(120, seed=21)
    net = _net(7)
    res = fit_em(net, X, max_iter=8, n_init=3, seed=5)
    assert len(res.init_results) == 3
    finals = [r.objective[-1] for r in res.init_results]
    assert res.best_init == int(np.argmax(finals))
    assert res.objective[-1] == max(finals)
    # run k is the single run from its start: start 0 is net, start k the seeded random net
    for k, start in enumerate([net, random_start(net, 5, 1), random_start(net, 5, 2)]):
        single = fit_em(start, X, max_iter=8, seed=5)
        assert single.log_likelihood == res.init_results[k].log_likelihood
    # the starts differ, keep net's last bias and noise, and depend on the seed
    a, b = random_start(net, 5, 1), random_start(net, 6, 1)
    assert not np.array_equal(a.weights[0], net.weights[0])
    assert not np.array_equal(a.weights[0], b.weights[0])
    np.testing.assert_array_equal(a.biases[-1], net.biases[-1])
    assert a.noise_var == net.noise_var and a.widths == net.widths


def test_n_init_with_held_out_data_keeps_the_best_held_out_run():
    X, Xv = noisy_circle(40, seed=31), noisy_circle(150, seed=32)
    res = fit_em(_net(2), X, X_val=Xv, max_iter=10, n_init=3, seed=1)
    vals = [r.val_log_likelihood[-1] for r in res.init_results]
    assert res.best_init == int(np.argmax(vals))
    assert res.val_log_likelihood[-1] == max(vals)


def test_init_warm_start_random_and_errors(tmp_path):
    X = noisy_circle(100, seed=41)
    net = _net(1)
    first = fit_em(net, X, max_iter=5)
    path = first.model.save(tmp_path / "m.npz")
    warm = fit_em(net, X, max_iter=3, init=str(path))
    cont = fit_em(first.model, X, max_iter=3)
    assert warm.log_likelihood == cont.log_likelihood
    assert warm.log_likelihood[0] == pytest.approx(first.log_likelihood[-1], rel=1e-12)
    rnd = fit_em(net, X, max_iter=3, init="random", seed=2)
    assert rnd.log_likelihood == fit_em(random_start(net, 2, 0), X, max_iter=3,
                                        seed=2).log_likelihood
    with pytest.raises(ValueError, match="architecture"):
        fit_em(net, X, init=DGN.random((1, 5, 2), activation="leaky_relu", slope=0.1))
    with pytest.raises(ValueError, match="init"):
        fit_em(net, X, init="best")
    with pytest.raises(TypeError, match="init"):
        fit_em(net, X, init=3)
    with pytest.raises(ValueError, match="n_init"):
        fit_em(net, X, n_init=0)
    with pytest.raises(ValueError, match="X_val"):
        fit_em(net, X, n_iter_no_change=2)
    with pytest.raises(ValueError, match="n_iter_no_change"):
        fit_em(net, X, X_val=X, n_iter_no_change=0)
    with pytest.raises(DataError, match="X_val"):
        fit_em(net, X, X_val=np.zeros((4, 3)))
    with pytest.raises(DataError, match="X_val"):
        fit_em(net, X, X_val=np.full((4, 2), np.nan))


def test_checkpoints_of_several_runs_resume(tmp_path):
    X, Xv = noisy_circle(80, seed=51), noisy_circle(60, seed=52)
    net = _net(9)
    kw = dict(X_val=Xv, n_init=2, seed=3, checkpoint=tmp_path / "run.npz", checkpoint_every=2)
    full = fit_em(net, X, max_iter=6, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.init0.npz", "run.init1.npz"]
    for p in tmp_path.iterdir():
        p.unlink()
    fit_em(net, X, max_iter=3, **kw)
    resumed = fit_em(net, X, max_iter=6, resume=True, **kw)
    for a, b in zip(full.init_results, resumed.init_results):
        assert a.log_likelihood == b.log_likelihood
        assert a.val_log_likelihood == b.val_log_likelihood
    # other held-out data: the checkpoint does not match
    with pytest.raises(CheckpointError, match="val_sha256"):
        fit_em(net, X, max_iter=6, resume=True, **{**kw, "X_val": Xv[:50]})


# ------------------------------------------------------------------------------ dgn fit
def test_dgn_fit_held_out_starts_and_warm_start(tmp_path, capsys):
    import json

    from dgn_tools.cli import main

    out = tmp_path / "run"
    assert main(["fit", "--n", "120", "--max-iter", "4", "--val", "0.25", "--n-init", "2",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_points"] == 90 and summary["val_n_points"] == 30
    assert summary["n_init"] == 2 and len(summary["start_per_point"]) == 2
    assert {"checkpoint.init0.npz", "checkpoint.init1.npz"} <= set(summary["files"])
    # the held-out value is log p of the saved model (data units) on the held-out rows,
    # recomputed here from the same split rule as the command's
    X = noisy_circle(120, seed=0)
    order = np.random.default_rng([0, 9_001]).permutation(120)
    held = np.sort(order[:30])
    model = DGN.load(out / "model.npz")
    lp = float(np.sum(fastpath.log_marginal(model, X[held])))
    assert summary["val_log_likelihood"] == pytest.approx(lp, rel=1e-9)
    hist = np.genfromtxt(out / "history.csv", delimiter=",", names=True)
    assert hist["val_log_likelihood"][-1] == pytest.approx(lp, rel=1e-9)
    # resume continues both runs; --init starts from the saved model
    assert main(["fit", "--resume", str(out), "--max-iter", "5", "--quiet"]) == 0
    warm = tmp_path / "warm"
    assert main(["fit", "--n", "120", "--init", str(out / "model.npz"), "--max-iter", "0",
                 "--out", str(warm), "--quiet"]) == 0
    init_ll = json.loads((warm / "summary.json").read_text())["log_likelihood"]
    assert init_ll == pytest.approx(float(np.sum(fastpath.log_marginal(
        DGN.load(out / "model.npz"), X))), rel=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--val", "1.5"], "fraction in (0, 1)"),
    (["--val", "missing.npy"], "neither a fraction"),
    (["--n-iter-no-change", "3"], "needs held-out data"),
    (["--n-init", "0"], "--n-init"),
    (["--init", "missing.npz"], "--init"),
])
def test_dgn_fit_practice_option_errors(tmp_path, capsys, argv, message):
    from dgn_tools.cli import main

    assert main(["fit", "--n", "50", "--out", str(tmp_path / "r"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ selection
def test_select_models_grid_and_held_out_criterion():
    from fastpath.selection import select_models

    X, Xv = noisy_circle(80, seed=61), noisy_circle(60, seed=62)
    table = select_models(X, widths=[(3,), (4, 4)], latent_dims=[1, 2],
                          activations=["relu", "abs"], X_val=Xv, max_iter=3, seed=2)
    assert len(table.rows) == 8 and table.n_val_points == 60
    keys = [(r["latent_dim"], r["activation"], r["hidden"]) for r in table.rows]
    assert keys == [(S, a, h) for S in (1, 2) for a in ("relu", "abs") for h in ((3,), (4, 4))]
    for row, model in zip(table.rows, table.models):
        assert model.widths == row["widths"] and model.activation == row["activation"]
        lv = float(np.sum(fastpath.log_marginal(model, Xv)))
        assert row["val_log_likelihood"] == pytest.approx(lv, rel=1e-12)
        assert row["val_per_point"] == pytest.approx(lv / 60, rel=1e-12)
    best = table.best("val_log_likelihood")
    assert table.rows[best]["val_log_likelihood"] == max(r["val_log_likelihood"]
                                                          for r in table.rows)
    assert "best held-out" in table.to_text()
    with pytest.raises(ValueError, match="held-out"):
        select_models(X, widths=[(3,)], max_iter=1).best("val_log_likelihood")
    with pytest.raises(ValueError, match="latent_dims"):
        select_models(X, widths=[(3,)], latent_dims=[])
    with pytest.raises(ValueError, match="activation"):
        select_models(X, widths=[(3,)], activations=["tanh"], max_iter=1)


def test_dgn_select_grid_and_held_out(tmp_path, capsys):
    from dgn_tools.cli import main

    out = tmp_path / "sel.csv"
    assert main(["select", "--n", "80", "--candidates", "3;4,4", "--latent-dim", "1,2",
                 "--activation", "relu,leaky_relu", "--val", "0.25", "--max-iter", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "held-out/pt" in text and "best held-out" in text
    lines = out.read_text().splitlines()
    assert len(lines) == 9 and lines[0].endswith("val_log_likelihood,val_per_point")
    assert main(["select", "--latent-dim", "1,x"]) == 2
    assert main(["select", "--activation", "tanh"]) == 2
    assert main(["select", "--val", "2", "--n", "40"]) == 2


def test_dgn_fit_update_option(tmp_path, capsys):
    from dgn_tools.cli import main

    out = tmp_path / "b"
    assert main(["fit", "--n", "80", "--max-iter", "3", "--update", "biases,noise",
                 "--no-standardize", "--out", str(out), "--quiet"]) == 0
    model = DGN.load(out / "model.npz")
    init = DGN.random((1, 8, 8, 2), activation="leaky_relu", slope=0.1, seed=0)
    for W, W0 in zip(model.weights, init.weights):  # the bias-only update keeps every weight
        np.testing.assert_array_equal(W, W0)
    assert any(not np.array_equal(v, v0) for v, v0 in zip(model.biases, init.biases))
    assert main(["fit", "--n", "80", "--update", "weights", "--out", str(tmp_path / "x")]) == 2
    assert "--update" in capsys.readouterr().err


def test_dgn_score_with_missing_entries(tmp_path, capsys):
    from dgn_tools.cli import main
    from fastpath.missing import log_marginal_observed

    net = _net(5)
    X = net.sample(40, seed=3)[0]
    X[::5, 1] = np.nan
    net.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", X)
    assert main(["score", str(tmp_path / "m.npz"), str(tmp_path / "x.npy")]) == 2
    assert "--missing nan" in capsys.readouterr().err
    out = tmp_path / "s.csv"
    assert main(["score", str(tmp_path / "m.npz"), str(tmp_path / "x.npy"), "--missing", "nan",
                 "--out", str(out)]) == 0
    log_p = np.genfromtxt(out, delimiter=",", names=True)["log_p"]
    np.testing.assert_array_equal(log_p, log_marginal_observed(net, X, ~np.isnan(X)))


def test_select_models_with_early_stopping_reports_the_returned_model():
    from fastpath.selection import select_models

    X, Xv = noisy_circle(30, seed=71), noisy_circle(100, seed=72)
    table = select_models(X, widths=[(12, 12)], X_val=Xv, max_iter=40, tol=0.0,
                          n_iter_no_change=2, seed=4)
    row, model = table.rows[0], table.models[0]
    assert row["n_iter"] < 40, "the case must stop early for the test to mean something"
    assert row["log_likelihood"] == pytest.approx(
        float(np.sum(fastpath.log_marginal(model, X))), rel=1e-12)
    assert row["val_log_likelihood"] == pytest.approx(
        float(np.sum(fastpath.log_marginal(model, Xv))), rel=1e-12)
