"""``dgn impute`` and ``load_data(..., allow_nan=True)``: data files with missing entries."""

from __future__ import annotations

import numpy as np
import pytest

import fastpath
from dgn_core.data import DataError, load_data
from dgn_tools.cli import main
from fastpath import DGN


def _model_and_data(tmp_path):
    net = DGN.random((1, 6, 3), activation="leaky_relu", seed=5, noise_var=[0.05, 0.1, 0.2])
    model = net.save(tmp_path / "model.npz")
    X, _ = net.sample(20, seed=6)
    m = np.random.default_rng(7).random(X.shape) > 0.3
    m[0] = False                                    # a row with nothing observed
    return net, model, X, m


def test_impute_npy_and_std_equal_the_library(tmp_path, capsys):
    net, model, X, m = _model_and_data(tmp_path)
    data = tmp_path / "data.npy"
    np.save(data, np.where(m, X, np.nan))
    std = tmp_path / "sd.npy"
    assert main(["impute", str(model), str(data), "--std", str(std)]) == 0
    out = tmp_path / "data.imputed.npy"                 # the default --out
    assert f"wrote {out}" in capsys.readouterr().out
    ref, cov = fastpath.impute(net, X, m, return_cov=True)
    # the same computation (the missing entries of X never enter it): equal bit for bit
    np.testing.assert_array_equal(np.load(out), ref)
    np.testing.assert_array_equal(np.load(std), np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))
    assert not np.load(std)[m].any()
    assert not list(tmp_path.glob(".*"))             # atomic writes left no temporary file


def test_impute_csv_with_empty_fields_and_force(tmp_path, capsys):
    net, model, X, m = _model_and_data(tmp_path)
    data = tmp_path / "data.csv"
    lines = ["a,b,c"] + [",".join(repr(float(v)) if o else ("" if j % 2 else "nan")
                                  for j, (v, o) in enumerate(zip(row, mrow)))
                         for row, mrow in zip(X, m)]
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "filled.csv"
    assert main(["impute", str(model), str(data), "--out", str(out)]) == 0
    # repr of every float written: the CSV holds the same numbers
    np.testing.assert_array_equal(load_data(out), fastpath.impute(net, X, m))
    capsys.readouterr()
    assert main(["impute", str(model), str(data), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["impute", str(model), str(data), "--out", str(out), "--force"]) == 0


def test_impute_command_errors(tmp_path, capsys):
    net, model, X, m = _model_and_data(tmp_path)
    data = tmp_path / "data.npy"
    np.save(data, np.where(m, X, np.nan)[:, :2])
    assert main(["impute", str(model), str(data), "--out", str(tmp_path / "o.npy")]) == 2
    assert "data dimension is 3" in capsys.readouterr().err
    np.save(data, np.where(m, X, np.inf))
    assert main(["impute", str(model), str(data), "--out", str(tmp_path / "o.npy")]) == 2
    assert "infinite" in capsys.readouterr().err
    assert main(["impute", str(model), str(data), "--out", str(tmp_path / "o.txt")]) == 2
    assert ".npy or .csv" in capsys.readouterr().err
    o = tmp_path / "o.npy"
    assert main(["impute", str(model), str(data), "--out", str(o), "--std", str(o)]) == 2
    assert "two different paths" in capsys.readouterr().err
    assert not o.exists()


def test_load_data_allow_nan(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("1,,3\n4,nan,6\n")
    with pytest.raises(DataError, match="empty"):
        load_data(p)                                  # the default still refuses
    X = load_data(p, allow_nan=True)
    np.testing.assert_array_equal(np.isnan(X), [[False, True, False], [False, True, False]])
    p.write_text("1,inf,3\n")
    with pytest.raises(DataError, match="finite"):
        load_data(p, allow_nan=True)
    q = tmp_path / "x.npy"
    np.save(q, np.array([[1.0, np.nan], [np.inf, 2.0]]))
    with pytest.raises(DataError, match="infinite"):
        load_data(q, allow_nan=True)


# --------------------------------------------------------------------------- dgn fit --missing
def _circle_with_holes(tmp_path, frac=0.15):
    from dgn_core.data import noisy_circle

    X = noisy_circle(150, seed=3)
    m = np.random.default_rng(4).random(X.shape) >= frac
    m[0] = False                                       # a row with nothing observed
    path = tmp_path / "holes.npy"
    np.save(path, np.where(m, X, np.nan))
    return X, m, path


def test_fit_missing_nan_reports_the_observed_data_log_likelihood(tmp_path):
    import json

    X, m, path = _circle_with_holes(tmp_path)
    out = tmp_path / "run"
    assert main(["fit", "--data", str(path), "--missing", "nan", "--max-iter", "8",
                 "--widths", "6", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    model = DGN.load(out / "model.npz")
    # EM ran on (x - mean) / s; mapped back (-log s per observed entry), the reported value
    # is log p(x_o) of the saved model on the data as given: equal to rounding (the
    # transformation is exact up to the rounding of the mapped parameters)
    ref = float(fastpath.log_marginal_observed(model, X, m).sum())
    np.testing.assert_allclose(summary["log_likelihood"], ref, rtol=1e-10)
    hist = np.loadtxt(out / "history.csv", delimiter=",", skiprows=1)[:, 1]
    assert np.all(np.diff(hist) >= -1e-9 * np.abs(hist[1:]))


def test_fit_missing_errors(tmp_path, capsys):
    X, m, path = _circle_with_holes(tmp_path)
    # without --missing, NaN stays an error
    assert main(["fit", "--data", str(path), "--max-iter", "1", "--out",
                 str(tmp_path / "a"), "--quiet"]) == 2
    assert "NaN" in capsys.readouterr().err
    empty = tmp_path / "empty_col.npy"
    np.save(empty, np.c_[X[:, :1], np.full(X.shape[0], np.nan)])
    assert main(["fit", "--data", str(empty), "--missing", "nan", "--max-iter", "1", "--out",
                 str(tmp_path / "b"), "--quiet"]) == 2
    assert "no observed entry in column 1" in capsys.readouterr().err
