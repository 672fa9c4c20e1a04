"""``dgn score`` and ``dgn sample``.

What is checked, and against what:

* ``dgn score``: the CSV's log p(x) is fastpath.log_marginal of the same rows (the CSV keeps
  every digit, ``repr``; 1e-12 relative allows for a different chunking of the rows), the
  ranks are a permutation ordered by -log p(x), planted outliers come first, the printed mean
  is the CSV's mean; the figure is a PNG with a scatter panel for D = 2 only.
* ``dgn sample``: the sample mean and covariance of 20,000 draws against E[x] and Cov[x]
  computed independently by adaptive quadrature over z (S = 1, breakpoints at the kinks
  of g), within 5 standard errors (each estimated from the draws themselves; for a normal
  estimate a 5-sigma miss has probability 6e-7, and the seeds are fixed); the mean of
  log p(x) over the draws against the exact -entropy int p log p dx on a grid (midpoint rule,
  h = 0.02 against a noise sd of 0.2; its error, checked by int p dx = 1 within 2e-3, is far
  below the 5 standard errors of the sample mean); ``--no-noise`` gives g(z) of the same z
  (the noisy minus noiseless draws have the noise variance, 5 standard errors).
* Bad input to both commands: exit status 2, one line on stderr naming the problem, no
  traceback, files left as they were.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

import fastpath
from dgn_core.data import load_data
from dgn_core.model import DGN
from dgn_tools.cli import main
from dgn_tools.cli.sample import draw
from dgn_tools.cli.score import anomaly_ranks, score_figure

NOISE = 0.04
OUTLIERS = np.array([[6.0, 6.0], [-7.0, 5.0], [9.0, -8.0]])


def _net() -> DGN:
    # S = 1: pure numpy paths, and E[x], Cov[x] are 1-D integrals
    return DGN.random((1, 5, 2), activation="leaky_relu", slope=0.2, seed=3, noise_var=NOISE)


@pytest.fixture()
def files(tmp_path):
    net = _net()
    net.save(tmp_path / "model.npz")
    X = np.vstack([net.sample(200, seed=1)[0], OUTLIERS])
    np.save(tmp_path / "data.npy", X)
    np.savetxt(tmp_path / "data.csv", X, delimiter=",")
    return tmp_path, net, X


def _one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


# --------------------------------------------------------------------------- dgn score
@pytest.mark.parametrize("name", ["data.npy", "data.csv"])
def test_score_writes_exact_log_p_and_ranks(files, name, capsys):
    d, net, X = files
    rc = main(["score", str(d / "model.npz"), str(d / name), "--top", "3",
               "--out", str(d / "scores.csv"), "--plot", str(d / "scores.png")])
    assert rc == 0
    out = capsys.readouterr().out
    table = np.genfromtxt(d / "scores.csv", delimiter=",", names=True)
    assert table.dtype.names == ("row", "log_p", "rank")
    np.testing.assert_array_equal(table["row"], np.arange(len(X)))
    ref = fastpath.log_marginal(net, X)
    np.testing.assert_allclose(table["log_p"], ref, rtol=1e-12)
    ranks = table["rank"].astype(int)
    np.testing.assert_array_equal(np.sort(ranks), np.arange(1, len(X) + 1))
    assert np.all(np.diff(table["log_p"][np.argsort(ranks)]) >= 0)   # rank 1: lowest log p
    # the planted outliers, far off the model's curve, are the three top anomalies
    assert set(np.flatnonzero(ranks <= 3)) == set(range(len(X) - 3, len(X)))
    assert f"mean log p(x) = {np.mean(ref):.6f} per point" in out
    assert (d / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_anomaly_ranks_break_ties_by_row():
    np.testing.assert_array_equal(anomaly_ranks(np.array([1.0, 3.0, 3.0, 0.0])), [3, 1, 2, 4])


def test_score_figure_has_a_scatter_only_for_two_dimensional_data():
    rng = np.random.default_rng(0)
    for D, n_axes in ((2, 3), (3, 1)):   # D = 2: histogram, scatter and its colour bar
        X = rng.standard_normal((50, D))
        log_p = -np.sum(X * X, axis=1)
        fig = score_figure(X, log_p, anomaly_ranks(-log_p), 5)
        assert len(fig.axes) == n_axes


def test_score_refuses_to_overwrite_without_force(files, capsys):
    d, _, _ = files
    out = d / "scores.csv"
    out.write_text("the user's file\n")
    argv = ["score", str(d / "model.npz"), str(d / "data.npy"), "--out", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys, "exists already", "--force")
    assert out.read_text() == "the user's file\n"
    assert main([*argv, "--force"]) == 0
    assert out.read_text().startswith("row,log_p,rank\n")


@pytest.mark.parametrize("argv,words", [
    (["{d}/model.npz", "{d}/wide.npy"], ("3 column(s)", "data dimension is 2")),
    (["{d}/model.npz", "{d}/nan.csv"], ("nan.csv", "finite")),
    (["{d}/model.npz", "{d}/missing.npy"], ("no data file", "missing.npy")),
    (["{d}/missing.npz", "{d}/data.npy"], ("no model file", "missing.npz")),
    (["{d}/data.npy", "{d}/data.npy"], ("data.npy",)),                     # not a model
    (["{d}/model.npz", "{d}", "--top", "2"], ("is a folder",)),
    (["{d}/model.npz", "{d}/data.npy", "--top", "0"], ("--top",)),
    (["{d}/model.npz", "{d}/data.npy", "--out", "{d}/a.csv", "--plot", "{d}/a.csv"],
     ("same file",)),
    (["{d}/model.npz", "{d}/data.npy", "--out", "{d}/data.npy", "--force"], ("input file",)),
])
def test_score_bad_input(files, argv, words, capsys):
    d, _, X = files
    np.save(d / "wide.npy", np.hstack([X, X[:, :1]]))
    (d / "nan.csv").write_text("1,2\nnan,3\n")
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    assert main(["score", *(a.format(d=d) for a in argv)]) == 2
    _one_error_line(capsys, *words)
    after = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    assert after == before


# --------------------------------------------------------------------------- dgn sample
def _kinks(net: DGN) -> list[float]:
    P = fastpath.partition(net)
    return sorted({float(v) for r in P for v in np.asarray(r.vertices, dtype=float).ravel()})


def _exact_moments(net: DGN) -> tuple[np.ndarray, np.ndarray]:
    """E[x] (D,) and Cov[x] (D, D) of an S = 1 model by quadrature over z."""
    def g(z: float) -> np.ndarray:
        return net.forward(np.array([[z]]))[0]

    phi = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
    pts = _kinks(net)
    D = net.data_dim

    def E(f) -> float:   # int f(z) phi(z) dz over R, split at the kinks (f smooth between)
        edges = [-40.0, *pts, 40.0]
        return sum(integrate.quad(lambda z: f(z) * phi(z), a, b, epsabs=1e-13, epsrel=1e-12)[0]
                   for a, b in zip(edges[:-1], edges[1:]))

    mean = np.array([E(lambda z, i=i: g(z)[i]) for i in range(D)])
    second = np.array([[E(lambda z, i=i, j=j: g(z)[i] * g(z)[j]) for j in range(D)]
                       for i in range(D)])
    return mean, second - np.outer(mean, mean) + np.diag(net.noise_var_vector)


def test_samples_have_the_models_mean_and_covariance():
    net = _net()
    n = 20_000
    X, _ = draw(net, n, seed=5)
    mean, cov = _exact_moments(net)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se_mean), (X.mean(axis=0), mean, se_mean)
    Xc = X - X.mean(axis=0)
    prods = Xc[:, :, None] * Xc[:, None, :]                                 # (n, D, D)
    se_cov = prods.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - cov) < 5 * se_cov), (prods.mean(axis=0), cov)


def test_mean_log_p_of_samples_is_minus_the_entropy():
    net = _net()
    n = 20_000
    X, _ = draw(net, n, seed=6)
    lp = fastpath.log_marginal(net, X)
    # int p log p dx on a grid covering the mass: g's range over |z| <= 7, plus 8 noise sd
    G = net.forward(np.linspace(-7, 7, 2001)[:, None])
    pad = 8 * np.sqrt(NOISE)
    h = 0.02
    axes = [np.arange(G[:, i].min() - pad, G[:, i].max() + pad, h) + h / 2 for i in range(2)]
    A, B = np.meshgrid(*axes, indexing="ij")
    grid = np.column_stack([A.ravel(), B.ravel()])
    lg = fastpath.log_marginal(net, grid)
    p = np.exp(lg)
    assert abs(np.sum(p) * h * h - 1.0) < 2e-3          # the grid holds the mass
    neg_entropy = float(np.sum(p * lg) * h * h)
    se = lp.std() / np.sqrt(n)
    assert abs(lp.mean() - neg_entropy) < 5 * se, (lp.mean(), neg_entropy, se)


def test_sample_cli_files_and_no_noise(tmp_path, capsys):
    net = _net()
    net.save(tmp_path / "m.npz")
    n = 5000
    assert main(["sample", str(tmp_path / "m.npz"), "-n", str(n), "--seed", "7",
                 "--out", str(tmp_path / "x.npy")]) == 0
    assert main(["sample", str(tmp_path / "m.npz"), "-n", str(n), "--seed", "7", "--no-noise",
                 "--out", str(tmp_path / "g.csv")]) == 0
    X = np.load(tmp_path / "x.npy")
    Gx = load_data(tmp_path / "g.csv")                  # the header x1,x2 is skipped
    Xr, Z = net.sample(n, seed=7)
    np.testing.assert_array_equal(X, Xr)                # DGN.sample's draws, unchanged
    np.testing.assert_array_equal(Gx, net.forward(Z))   # g(z) of the same z, every digit
    eps = X - Gx
    se = NOISE * np.sqrt(2.0 / n)                        # sd of a variance estimate
    assert np.all(np.abs(eps.var(axis=0) - NOISE) < 5 * se), eps.var(axis=0)
    # the written samples are valid input to dgn score
    capsys.readouterr()
    assert main(["score", str(tmp_path / "m.npz"), str(tmp_path / "g.csv"), "--top", "1"]) == 0


def test_sample_to_standard_output(tmp_path, capsys):
    net = _net()
    net.save(tmp_path / "m.npz")
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "4", "--seed", "2"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert lines[0] == "x1,x2" and len(lines) == 5
    vals = np.array([[float(t) for t in ln.split(",")] for ln in lines[1:]])
    np.testing.assert_array_equal(vals, net.sample(4, seed=2)[0])
    assert "4 draws" in cap.err                           # the report stays off the data


@pytest.mark.parametrize("argv,words", [
    (["{d}/m.npz", "-n", "0"], ("-n",)),
    (["{d}/m.npz", "-n", "5", "--seed", "-1"], ("--seed",)),
    (["{d}/m.npz", "-n", "5", "--out", "{d}/x.txt"], ("suffix", ".npy")),
    (["{d}/m.npz", "-n", "5", "--out", "{d}/exists.npy"], ("exists already",)),
    (["{d}/m.npz", "-n", "5", "--out", "{d}/m.npz"], ("suffix",)),
    (["{d}/nothing.npz", "-n", "5"], ("no model file",)),
])
def test_sample_bad_input(tmp_path, argv, words, capsys):
    _net().save(tmp_path / "m.npz")
    np.save(tmp_path / "exists.npy", np.zeros((2, 2)))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["sample", *(a.format(d=tmp_path) for a in argv)]) == 2
    _one_error_line(capsys, *words)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
