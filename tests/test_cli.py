"""The ``dgn`` command line (each command's tests in their own functions)."""

from __future__ import annotations

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


def test_fit_command_resume_equals_uninterrupted(tmp_path, monkeypatch):
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
    monkeypatch.setattr(E, "fit_em", real)
    assert not (part / "model.npz").exists() and (part / "checkpoint.npz").exists()
    assert main(["fit", "--resume", str(part), "--quiet"]) == 0
    assert DGN.load(part / "model.npz") == DGN.load(full / "model.npz")   # bitwise
    a = np.genfromtxt(full / "history.csv", delimiter=",", names=True)
    b = np.genfromtxt(part / "history.csv", delimiter=",", names=True)
    assert np.array_equal(a["log_likelihood"], b["log_likelihood"])


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
