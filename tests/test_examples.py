"""Smoke tests of the paper's experiments (examples/) with tiny settings.

Each script runs end to end (EM, VAEs, GaussianMixtures, CSVs, figures) and its outputs are
checked: every method starts from the same initial DGN on the same data (identical exact NLL
at update 0), the reported final NLLs are the exact NLLs of the returned models on train and
held-out data, the EM history is non-decreasing in log-likelihood, the VAEs' KL is >= 0.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import fastpath
from tests.conftest import needs_torch

pytestmark = needs_torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


TINY = ["--em-iter", "3", "--vae-epochs", "2", "--lrs", "0.005,0.001", "--n-evals", "3",
        "--em-restarts", "2", "--quiet"]
LABELS = ["EM", "EM best of 2", "VAE lr=0.005", "VAE lr=0.001"]


def _check_common(res, X_train, X_test, pngs):
    out = res["out"]
    for f in ["history.csv", "summary.csv", "summary.md", *pngs]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    runs = res["runs"]
    assert [r.label for r in runs] == LABELS
    # same initial DGN and data for every method: the update-0 exact NLL is the same number
    # (not "EM best of 2": its kept run may start from the restart's initial DGN)
    same = [r for r in runs if r.label != "EM best of 2"]
    first = {r.label: r.history["nll_train"][0] for r in same}
    assert len(set(first.values())) == 1, first
    first_t = {r.label: r.history["nll_test"][0] for r in same}
    assert len(set(first_t.values())) == 1, first_t
    # the restarts keep the better training NLL: never worse than plain EM
    assert runs[1].final("nll_train") <= runs[0].final("nll_train")
    for r in runs:
        lp = fastpath.log_marginal(r.model, X_train)
        lt = fastpath.log_marginal(r.model, X_test)
        np.testing.assert_allclose(r.final("nll_train"), -lp.mean(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(r.final("nll_test"), -lt.mean(), rtol=1e-12, atol=1e-12)
    for em in runs[:2]:
        ll = -em.history["nll_train"]
        assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:])), ll  # EM's promise: monotone
    for r in runs[2:]:
        assert np.all(r.history["kl_train"] >= -1e-9) and np.all(r.history["kl_test"] >= -1e-9)
    summary = _read_csv(out / "summary.csv")
    methods = [row["method"] for row in summary]
    assert methods[:4] == LABELS
    assert {"GMM full", "GMM diag", "GMM spherical"} <= set(methods)
    for row in summary:
        assert np.isfinite(float(row["nll_train"])) and np.isfinite(float(row["nll_test"]))
    hist = _read_csv(out / "history.csv")
    assert {row["method"] for row in hist} == set(LABELS)
    return summary


def test_fig4_5_circle(tmp_path):
    mod = _load("fig4_5_circle_em_vs_vae")
    res = mod.main(["--out", str(tmp_path), "--n-train", "40", "--n-test", "30",
                    "--widths", "4,4", *TINY])
    from dgn_core.data import noisy_circle
    X = noisy_circle(40, noise_std=0.05, seed=0)
    Xt = noisy_circle(30, noise_std=0.05, seed=10_000)
    _check_common(res, X, Xt, ["fig4_nll.png", "fig5_kl.png", "manifolds.png"])


def test_fig6_cosine(tmp_path):
    mod = _load("fig6_cosine")
    res = mod.main(["--out", str(tmp_path), "--n-train", "40", "--n-test", "30",
                    "--widths", "4,4", "--noise-std", "0.05", *TINY])
    from dgn_core.data import cosine
    X = cosine(40, noise_std=0.05, seed=0)
    Xt = cosine(30, noise_std=0.05, seed=10_000)
    _check_common(res, X, Xt, ["fig6_manifolds.png", "nll.png", "kl.png"])


def test_fig7_digits_and_mnist_idx(tmp_path):
    import gzip
    import struct
    mod = _load("fig7_digits")
    res = mod.main(["--out", str(tmp_path / "digits"), "--n-max", "40", "--widths", "3,4",
                    *TINY])
    from dgn_core.data import digits
    sys.path.insert(0, str(EXAMPLES))
    import _common
    X, Xt = _common.split(digits(4)[:40], 0.2, 0)
    _check_common(res, X, Xt, ["fig7_manifold.png", "nll.png", "kl.png"])
    # MNIST-format IDX files (a synthetic 10x10 set): labels select the digit
    rng = np.random.default_rng(0)
    imgs = (rng.random((60, 10, 10)) * 255).astype(np.uint8)
    labels = np.repeat(np.arange(6, dtype=np.uint8), 10)
    (tmp_path / "img-idx3-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 3]) + struct.pack(">III", 60, 10, 10) + imgs.tobytes()))
    (tmp_path / "lab-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + struct.pack(">I", 60) + labels.tobytes())
    Xm = mod.load_mnist(str(tmp_path / "img-idx3-ubyte.gz"), str(tmp_path / "lab-idx1-ubyte"),
                        4, None, 0)
    np.testing.assert_array_equal(Xm, imgs[40:50].reshape(10, 100) / 255.0)
    res = mod.main(["--out", str(tmp_path / "mnist"), "--mnist-images",
                    str(tmp_path / "img-idx3-ubyte.gz"), "--mnist-labels",
                    str(tmp_path / "lab-idx1-ubyte"), "--widths", "2,3", "--no-plots", *TINY])
    assert res["runs"][0].model.data_dim == 100
    from dgn_core.data import DataError
    with pytest.raises(DataError, match="no image of digit 9"):
        mod.load_mnist(str(tmp_path / "img-idx3-ubyte.gz"), str(tmp_path / "lab-idx1-ubyte"),
                       9, None, 0)


def test_em_sensitivity_smoke():
    mod = _load("em_sensitivity")
    out = mod.main(["--data", "cosine", "--runs", "2", "--iters", "3", "--n", "100"])
    assert len(out) == 2 and all(np.isfinite(out))
    # a 1e-12 relative perturbation of the start changes 3 iterations by rounding only
    assert abs(out[0] - out[1]) <= 1e-6 * (1 + abs(out[0]))


def test_multi_seed(tmp_path):
    """--seeds 2 in 2 worker processes: the aggregate is the mean / std / min / max of the
    per-seed rows, the seeds differ, each seed's numbers are those of the single-seed run
    of that seed (bit for bit: one thread per seed in both), the figure is written."""
    mod = _load("fig4_5_circle_em_vs_vae")
    small = ["--n-train", "40", "--n-test", "30", "--widths", "4,4", *TINY, "--lrs", "0.005"]
    res = mod.main(["--out", str(tmp_path / "multi"), "--seeds", "2", "--jobs", "2", *small])
    out = res["out"]
    for f in ["seeds.csv", "seeds_history.csv", "summary.csv", "summary.md", "per_seed.md",
              "nll_seeds.png"]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = _read_csv(out / "seeds.csv")
    agg = _read_csv(out / "summary.csv")
    methods = [a["method"] for a in agg]
    assert methods == [*LABELS[:3], "GMM full", "GMM diag", "GMM spherical"]
    for a in agg:
        for key in ("nll_train", "nll_test", "train_time"):
            v = np.array([float(r[key]) for r in rows if r["method"] == a["method"]])
            assert v.size == 2 and a["n_seeds"] == "2"
            # the CSV holds repr(float): exact round trip, so only the arithmetic's rounding
            np.testing.assert_allclose(float(a[f"{key}_mean"]), v.mean(), rtol=1e-14)
            np.testing.assert_allclose(float(a[f"{key}_std"]), v.std(ddof=1), rtol=1e-12)
            assert float(a[f"{key}_min"]) == v.min() and float(a[f"{key}_max"]) == v.max()
    by = {(int(r["seed"]), r["method"]): r for r in rows}
    for m in methods:          # every seed draws its own data and initial DGN
        assert by[(0, m)]["nll_train"] != by[(1, m)]["nll_train"], m
    hist = _read_csv(out / "seeds_history.csv")
    assert {int(h["seed"]) for h in hist} == {0, 1}
    single = mod.main(["--out", str(tmp_path / "single"), "--seed", "1", "--no-plots", *small])
    for row in single["summary"]:
        r = by[(1, row["method"])]
        for key in ("nll_train", "nll_test"):
            assert float(r[key]) == row[key], (row["method"], key, r[key], row[key])
    text = (out / "summary.md").read_text()
    assert "2 seeds (0-1)" in text and "EM vs VAE lr=0.005" in text


def test_conv_vae_audit_quick(tmp_path):
    """A torch-trained convolutional VAE (S = 2) read with from_torch: the DGN's forward pass
    is torch's, log p(x) = ELBO + KL per image, ELBO <= IWAE <= log p(x) up to Monte Carlo
    error, Bayes' rule at the q-samples, and the report's numbers are the models'."""
    import torch
    mod = _load("conv_vae_audit")
    res = mod.main(["--quick", "--out", str(tmp_path), "--quiet"])
    out, net, P = res["out"], res["net"], res["partition"]
    for f in ["summary.md", "summary.csv", "per_image.csv", "training.csv",
              "conv_vae_posterior.png"]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    # the converted decoder is the torch decoder
    Z = np.random.default_rng(5).standard_normal((300, 2)) * 3.0
    with torch.no_grad():
        G = res["decoder"](torch.from_numpy(Z)).numpy()
    np.testing.assert_allclose(net.forward(Z), G, rtol=0, atol=1e-12 * np.max(np.abs(G)))
    assert net.noise_var == res["noise_var"]
    assert len(P) == len(fastpath.partition(net))
    for r in res["results"].values():
        lp = r["log_px"]
        # exact log p(x) (log_marginal) = ELBO (E_q log p(x|z) over the regions minus the
        # VAE's closed-form KL(q || p(z))) + exact KL(q || p(z|x)), per image
        np.testing.assert_allclose(r["elbo"] + r["kl"], lp, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(r["kl_prior"], r["kl_prior_fastpath"], rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(r["q_mass"], 1.0, atol=1e-9)
        assert np.all(r["kl"] >= -1e-9)
        # Monte Carlo bounds: ELBO_MC <= IWAE always (Jensen, same samples); the exact ELBO
        # below IWAE and IWAE below log p(x), each within 5 Monte Carlo standard errors
        # (delta-method s.e. of IWAE) plus 1e-9 nats; the MC ELBO within 5 s.e. of the exact
        assert np.all(r["elbo_mc"] <= r["iwae"] + 1e-12)
        tol = 5 * r["iwae_se"] + 1e-9
        assert np.all(r["elbo"] <= r["iwae"] + tol), (r["elbo"], r["iwae"], r["iwae_se"])
        assert np.all(r["iwae"] <= lp + tol), (r["iwae"], lp, r["iwae_se"])
        assert np.all(np.abs(r["elbo_mc"] - r["elbo"]) <= 5 * r["elbo_mc_se"] + 1e-9)
        # Bayes' rule at q-samples: torch's log p(x, z) - exact log p(z|x) = log p(x)
        err = r["bayes_err"][np.isfinite(r["bayes_err"])]
        assert len(err) and np.all(err <= 1e-9 * np.abs(lp).max())
        np.testing.assert_allclose(lp, fastpath.log_marginal(net, r["X"]), rtol=1e-12, atol=0)
    rows = _read_csv(out / "summary.csv")
    assert [row["data"] for row in rows] == ["train", "held-out"]
    for row, r in zip(rows, res["results"].values(), strict=True):
        np.testing.assert_allclose(float(row["nll_exact"]), -r["log_px"].mean(), rtol=1e-12)
        np.testing.assert_allclose(float(row["kl_q_posterior"]), r["kl"].mean(), rtol=1e-12)
        np.testing.assert_allclose(float(row["neg_iwae"]), -r["iwae"].mean(), rtol=1e-12)
    lt = fastpath.log_marginal(net, res["X_test"])
    np.testing.assert_allclose(res["nll_all"]["held-out"], -lt.mean(), rtol=1e-12)
