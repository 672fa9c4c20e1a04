"""The ``dgn`` command line (each command's tests in their own functions)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dgn_tools.cli import example_posterior_net, main, posterior_figure
from tests.conftest import needs_cdd

PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- dgn posterior
@needs_cdd
def test_posterior_command_exact(tmp_path, capsys):
    out = tmp_path / "fig3.png"
    rc = main(["posterior", "--random", "1,4,2", "--noise", "0.05", "--exact", "--grid", "4",
               "--point", "0.1,-0.2", "--out", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == PNG
    assert f"wrote {out}" in capsys.readouterr().out
    assert not list(tmp_path.glob(".fig3.*"))  # the atomic write left no temporary file


def test_posterior_command_fast_s1_and_s2(tmp_path):
    for latent in (1, 2):
        out = tmp_path / f"s{latent}.png"
        assert main(["posterior", "--latent", str(latent), "--grid", "6", "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == PNG


def test_posterior_command_input_errors(tmp_path, capsys):
    out = tmp_path / "x.png"
    # data dimension 3: no heat map of p(x) to draw
    assert main(["posterior", "--random", "1,4,3", "--out", str(out)]) == 2
    assert "data dimension 2" in capsys.readouterr().err
    assert main(["posterior", "--noise", "-1", "--out", str(out)]) == 2
    assert "--noise" in capsys.readouterr().err
    assert main(["posterior", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    assert main(["posterior", "--point", "a,b"]) == 2  # a usage error
    assert main(["posterior", "--point", "1,2,3"]) == 2  # a usage error
    assert not out.exists()


def test_posterior_figure_panels():
    """Three panels; the posterior panel draws the density and the mean of the given point."""
    net = example_posterior_net(1, noise_var=0.01)
    fig = posterior_figure(net, np.array([0.6, 0.0]), grid=5)
    axes = fig.axes
    assert len([a for a in axes if a.get_title()]) == 3
    post_ax = axes[2]
    assert "posterior of x = (0.600, 0.000)" in post_ax.get_title()
    labels = [l.get_label() for l in post_ax.get_lines()]
    assert "p(z | x)" in labels and any(l.startswith("E[z|x]") for l in labels)


# --------------------------------------------------------------------------- dgn fit / select
def _fit_args(out, *extra):
    # a short run of the main job (the default is 100 iterations on N = 1000)
    return ["fit", "--out", str(out), "--n", "200", "--max-iter", "4", "--quiet", *extra]


def test_fit_command_writes_the_run_folder(tmp_path):
    import json

    import fastpath
    from verified_dgn import DGN

    run = tmp_path / "run"
    assert main(_fit_args(run, "--checkpoint-every", "2")) == 0
    for f in ("model.npz", "history.csv", "history.png", "manifold.png", "summary.json",
              "config.json", "checkpoint.npz"):
        assert (run / f).exists(), f
    assert (run / "history.png").read_bytes()[:8] == PNG
    assert (run / "manifold.png").read_bytes()[:8] == PNG
    summary = json.loads((run / "summary.json").read_text())
    model = DGN.load(run / "model.npz")
    assert model.widths == (1, 8, 8, 2) and model.activation == "leaky_relu"
    assert model.slope == 0.1
    # the reported log-likelihood is the exact one of the saved model on the data
    from dgn_tools.cli import load_fit_data
    X, _ = load_fit_data("circle", 200, 0)
    ll = float(np.sum(fastpath.log_marginal(model, X)))
    assert summary["log_likelihood"] == pytest.approx(ll, rel=1e-9)
    assert summary["n_iter"] == 4 and summary["n_params"] == model.n_params
    hist = np.genfromtxt(run / "history.csv", delimiter=",", names=True)
    assert list(hist.dtype.names[:5]) == ["iteration", "log_likelihood", "per_point",
                                          "objective", "noise_var"]
    assert len(hist) == 5 and np.all(np.diff(hist["log_likelihood"]) >= 0)
    assert hist["log_likelihood"][-1] == summary["log_likelihood"]


def test_fit_command_resume_equals_uninterrupted(tmp_path, monkeypatch, capsys):
    from fastpath import em as E
    from verified_dgn import DGN

    full = tmp_path / "full"
    assert main(_fit_args(full, "--checkpoint-every", "1")) == 0
    # interrupt a second run after iteration 2 (Ctrl-C inside EM), then resume it
    real = E.fit_em

    def interrupted(*args, **kw):
        def cb(info):
            if info.iteration == 2:
                raise KeyboardInterrupt
        return real(*args, callback=cb, **kw)

    part = tmp_path / "part"
    monkeypatch.setattr(E, "fit_em", interrupted)
    assert main(_fit_args(part, "--checkpoint-every", "1")) == 130
    assert "iteration 2 is saved in" in capsys.readouterr().err
    monkeypatch.setattr(E, "fit_em", real)
    assert not (part / "model.npz").exists() and (part / "checkpoint.npz").exists()
    assert main(["fit", "--resume", str(part), "--quiet"]) == 0
    assert DGN.load(part / "model.npz") == DGN.load(full / "model.npz")   # bitwise
    a = np.genfromtxt(full / "history.csv", delimiter=",", names=True)
    b = np.genfromtxt(part / "history.csv", delimiter=",", names=True)
    assert np.array_equal(a["log_likelihood"], b["log_likelihood"])


@pytest.mark.parametrize("standardize", [True, False])
def test_fit_initial_noise_is_a_twentieth_of_the_data_variance(tmp_path, standardize):
    """The default initial noise variance is 0.05 times the data's mean variance per
    coordinate, in the data's units, whether or not EM runs on standardised data (with
    --max-iter 0 the saved model is the initial one; D = 3 and unequal variances so that a
    per-entry / per-point mix-up shows)."""
    from verified_dgn import DGN

    X = np.random.default_rng(3).standard_normal((80, 3)) * [3.0, 0.5, 0.2] + [10.0, -4.0, 0.0]
    np.save(tmp_path / "x.npy", X)
    run = tmp_path / "r"
    extra = [] if standardize else ["--no-standardize"]
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--max-iter", "0", "--quiet",
                 "--out", str(run), *extra]) == 0
    expected = 0.05 * float(np.mean(np.var(X, axis=0)))
    # the scaling is by a power of two (exact), the centring only moves the bias
    assert DGN.load(run / "model.npz").noise_var == pytest.approx(expected, rel=1e-12)


def test_fit_command_options_and_data_files(tmp_path, capsys):
    from verified_dgn import DGN

    X = np.random.default_rng(0).standard_normal((60, 3)) * [1.0, 0.5, 0.2]
    np.save(tmp_path / "x.npy", X)
    run = tmp_path / "r"
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--latent-dim", "2", "--widths", "3",
                 "--activation", "relu", "--noise", "diagonal", "--prior", "gaussian:1",
                 "--max-iter", "1", "--out", str(run)]) == 0
    out = capsys.readouterr()
    assert "log p(X) =" in out.err and "wrote" in out.out      # progress line, summary
    m = DGN.load(run / "model.npz")
    assert m.widths == (2, 3, 3) and not m.isotropic_noise and m.activation == "relu"
    run2 = tmp_path / "c"
    assert main(["fit", "--data", "cosine", "--n", "100", "--widths", "none", "--max-iter", "1",
                 "--quiet", "--out", str(run2)]) == 0
    assert DGN.load(run2 / "model.npz").widths == (1, 2)


def test_fit_command_input_errors(tmp_path, capsys):
    assert main(["fit", "--data", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "a")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["fit", "--prior", "cauchy:1", "--out", str(tmp_path / "b")]) == 2
    assert "prior" in capsys.readouterr().err
    assert main(["fit", "--resume", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["fit", "--widths", "8,a"]) == 2  # a usage error
    run = tmp_path / "c"
    assert main(_fit_args(run, "--max-iter", "0")) == 0
    assert main(_fit_args(run)) == 2            # refuses to overwrite a run
    assert "already holds a run" in capsys.readouterr().err


def test_select_command(tmp_path, capsys):
    out = tmp_path / "sel.csv"
    assert main(["select", "--n", "100", "--candidates", "2;4", "--max-iter", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "BIC" in text and "best BIC" in text
    rows = np.genfromtxt(out, delimiter=",", names=True)
    assert len(rows) == 2 and np.all(np.isfinite(rows["bic"]))


@pytest.mark.slow
def test_fit_command_main_job_default(tmp_path, monkeypatch):
    # `dgn fit` with no arguments (writes runs/<timestamp>/ under the working directory)
    import json
    import time

    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["fit", "--quiet"]) == 0
    assert time.perf_counter() - t0 < 60.0
    (run,) = list((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["widths"] == [1, 8, 8, 2] and summary["n_points"] == 1000
    # a curve through the circle: the noise variance approaches the data's 0.05^2
    assert summary["per_point"] > -0.5 and 0.0015 < summary["noise_var"] < 0.005


# --------------------------------------------------------------------------- files and errors
def test_point_with_a_negative_first_coordinate(tmp_path, capsys):
    # argparse would take "-1,2" for an option: main rewrites it as --point=-1,2
    out = tmp_path / "p.png"
    assert main(["posterior", "--point", "-1,2", "--grid", "4", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG
    assert main(["posterior", "--point=-0.5,-2", "--grid", "4", "--out", str(out), "--force"]) == 0


def test_check_name_is_a_check_not_a_model(capsys):
    # `dgn check NAME` (the documented form) runs that check on its own suite of nets
    assert main(["check", "Lemma 3", "--random", "2,3,2"]) == 0
    out = capsys.readouterr().out
    assert "Lemma 3" in out and "1 check: 1 passed" in out and "Tiling" not in out


def test_force_replaces_outputs(tmp_path, capsys):
    out = tmp_path / "part.png"
    out.write_text("the user's file\n")
    assert main(["partition", "--random", "1,3,2", "--out", str(out)]) == 2
    assert out.read_text() == "the user's file\n"
    assert main(["partition", "--random", "1,3,2", "--out", str(out), "--force"]) == 0
    assert out.read_bytes()[:8] == PNG
    run = tmp_path / "run"
    assert main(_fit_args(run, "--max-iter", "1", "--checkpoint-every", "1")) == 0
    (run / "history.png").unlink()                     # a run with one file missing
    assert main(_fit_args(run, "--max-iter", "0", "--force")) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["model.npz", "history.csv", "history.png", "manifold.png", "summary.json",
         "config.json", "checkpoint.npz"])
    import json
    assert json.loads((run / "summary.json").read_text())["n_iter"] == 0


def test_fit_interrupted_before_the_first_iteration(tmp_path, monkeypatch, capsys):
    from fastpath import em as E

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(E, "fit_em", interrupted)
    assert main(_fit_args(run)) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was saved" in err and "saved in" not in err
    assert [p.name for p in run.iterdir()] == ["config.json"]
    monkeypatch.undo()
    # the folder starts again with --resume
    assert main(["fit", "--resume", str(run), "--quiet"]) == 0
    assert (run / "model.npz").exists()


def test_files_follow_the_umask(tmp_path):
    # files written for the user get 0666 less the umask, like any ordinary file
    old = os.umask(0o027)
    try:
        assert main(["partition", "--random", "1,3,2", "--out", str(tmp_path / "p.png")]) == 0
        assert main(_fit_args(tmp_path / "run", "--max-iter", "1")) == 0
        assert main(["select", "--n", "40", "--candidates", "2", "--max-iter", "1",
                     "--out", str(tmp_path / "sel.csv")]) == 0
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 9
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}


@pytest.mark.parametrize("offset, scale", [(1e6, 1.0), (1e8, 1.0), (1e6, 1024.0)])
def test_fit_offset_data_matches_centred_data(tmp_path, offset, scale):
    """Data far from the origin train as the same data centred: EM runs on (x - mean) / s
    and the saved model is mapped back exactly (log p shifts by -D log s)."""
    import json

    import fastpath
    from dgn_core.data import noisy_circle
    from dgn_core.model import DGN

    X = noisy_circle(120, seed=0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", X * scale + offset)

    def fit(name):
        out = tmp_path / name
        assert main(["fit", "--data", str(tmp_path / f"{name}.npy"), "--widths", "4",
                     "--max-iter", "3", "--quiet", "--out", str(out)]) == 0
        return json.loads((out / "summary.json").read_text()), DGN.load(out / "model.npz")

    (sx, _), (sy, my) = fit("x"), fit("y")
    D = X.shape[1]
    # the data differ from X * scale + offset by the rounding of x + offset (ulp(1e8) =
    # 1.5e-8 against a spread of 0.7), which 3 EM iterations carry into the result
    # (measured: 6e-11 relative at 1e6, 2e-9 at 1e8)
    rel = 1e-9 if offset < 1e7 else 1e-7
    assert sy["per_point"] == pytest.approx(sx["per_point"] - D * np.log(scale), rel=rel)
    # the saved model of the offset data is a model of those data: its log-likelihood,
    # evaluated independently on them, is the reported one (the residuals x - g(z) at
    # |x| = 1e8 carry ~1.5e-8 rounding; measured 1.3e-9 relative)
    ll = float(np.sum(fastpath.log_marginal(my, X * scale + offset)))
    assert ll / len(X) == pytest.approx(sy["per_point"], rel=1e-7)


# the S = 1 cone kernel warns (invalid value in a variance) at noise variances below ~1e-30;
# the result checked here does not depend on it
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_em_noise_floor_is_at_least_the_rounding_level():
    """A floor of 0 let the noise update reach exactly 0 on repeated points on the curve
    (then no model exists): the floor is raised to min_noise_floor(X) = (8 eps max|x|)^2."""
    from fastpath._em_options import min_noise_floor
    from fastpath.em import em_step
    from verified_dgn import DGN

    net = DGN.random((1, 4, 2), seed=0, noise_var=1e-300)
    X = np.repeat(net.forward(np.linspace(-1.5, 1.5, 5)[:, None]), 20, axis=0)
    _, info = em_step(net, X, noise_floor=0.0)
    floor = (8 * np.finfo(float).eps * np.max(np.abs(X))) ** 2
    assert min_noise_floor(X) == floor
    assert info["noise_var"] == floor and info["noise_floor_hit"]


def test_select_offset_data_matches_centred_data(tmp_path):
    # as dgn fit: the table of data offset by 1e6 and scaled by 2^-10 is the table of the
    # data, log p(X) shifted by -N D log 2^-10 (AIC and BIC by twice that)
    from dgn_core.data import noisy_circle

    X = noisy_circle(100, seed=0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", X / 1024 + 1e6)
    tables = []
    for name in ("x", "y"):
        out = tmp_path / f"{name}.csv"
        assert main(["select", "--data", str(tmp_path / f"{name}.npy"), "--candidates", "2;3",
                     "--max-iter", "2", "--out", str(out)]) == 0
        tables.append(np.genfromtxt(out, delimiter=",", names=True))
    shift = -X.size * np.log(1 / 1024)
    # offset rounding: ulp(1e6) = 1.2e-10 against a spread of 7e-4, ~2e-7 relative in the
    # data, carried through 2 EM iterations (measured: 1.4e-9 relative)
    np.testing.assert_allclose(tables[1]["log_likelihood"], tables[0]["log_likelihood"] + shift,
                               rtol=1e-7)
    np.testing.assert_allclose(tables[1]["bic"], tables[0]["bic"] - 2 * shift, rtol=1e-7)


def test_fit_em_warns_on_data_far_from_the_net():
    # the library does not transform the data (dgn fit does): it says so when they lie far
    # from the initial net's outputs (1e6 here: 3 iterations there reach -1e11 nats per point)
    import warnings

    import fastpath
    from dgn_core.data import noisy_circle
    from verified_dgn import DGN

    X = noisy_circle(50, seed=0)
    net = DGN.random((1, 3, 2), seed=0, noise_var=0.01)
    with pytest.warns(RuntimeWarning, match="data spreads from the initial net"):
        fastpath.fit_em(net, X + 1e6, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fastpath.fit_em(net, X, max_iter=0)


def test_check_skips_what_it_cannot_handle_and_writes_json(tmp_path, capsys):
    # an S = 3 model: Prop. 3 (S = 1 only) is SKIPPED with its reason, Lemma 3 still runs;
    # --json writes the statuses; an existing JSON file is not overwritten without --force
    import json

    out = tmp_path / "checks.json"
    assert main(["check", "Prop. 3", "Lemma 3", "--random", "3,3,2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[SKIPPED] Prop. 3" in text and "[PASS] Lemma 3" in text
    assert "2 checks: 1 passed, 1 skipped" in text
    doc = json.loads(out.read_text())
    assert doc["counts"] == {"PASS": 1, "FAIL": 0, "INCONCLUSIVE": 0, "SKIPPED": 1}
    assert [c["status"] for c in doc["checks"]] == ["SKIPPED", "PASS"]
    assert "latent dimension" in doc["checks"][0]["measured"]
    assert main(["check", "Lemma 3", "--random", "3,3,2", "--json", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_check_json_to_stdout_and_dps(capsys):
    import json

    assert main(["check", "Orthant closed forms", "--dps", "40", "--json", "-"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)                       # stdout holds only the JSON document
    assert doc["dps"] == 40 and doc["checks"][0]["status"] == "PASS"
    assert "dps=40" in doc["checks"][0]["measured"]
    assert main(["check", "Lemma 3", "--dps", "3"]) == 2
