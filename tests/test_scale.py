"""The sharded E-step (fastpath._sharded): in-process, on a Dask LocalCluster, from files.

The E-step is a fixed-order sum over shards, so every engine must give the same bits; the
single-process E-step of the whole array differs from the sharded one only by the order of
the sums (rounding: 1e-12 relative is ~5000 eps, the loosest of the sums over a few
thousand points)."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from fastpath import DGN, fit_em, partition
from fastpath._sharded import (
    DaskEStep,
    SerialEStep,
    reduce_statistics,
    shard_bounds,
)
from fastpath.distributions import estep_statistics, log_marginal

pytestmark = pytest.mark.filterwarnings("ignore::dgn_core.exceptions.ConvergenceWarning")

_STATS = ("s0", "s1", "S2", "x0", "x1", "xx", "resid2", "log_px")


def _data(n: int, seed: int = 0) -> tuple[DGN, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = DGN.random((2, 6, 6, 3), seed=3)
    X = truth.forward(rng.normal(size=(n, 2))) + 0.1 * rng.normal(size=(n, 3))
    return DGN.random((2, 6, 6, 3), seed=5), X


@pytest.fixture(scope="module")
def problem():
    net, X = _data(700)
    return net, partition(net), X


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_shard_bounds_cover_the_rows_in_order():
    assert shard_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert shard_bounds(4, 4) == [(0, 4)]
    for n, size in [(1, 1), (7, 3), (2048, 2048), (2049, 2048)]:
        b = shard_bounds(n, size)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(b, b[1:]))


def test_one_shard_is_the_single_process_estep(problem):
    from dgn_core.data_source import as_source

    net, P, X = problem
    whole = estep_statistics(net, X, partition=P)
    one = SerialEStep(as_source(X), shard_size=len(X)).statistics(net, P)
    for name in _STATS:
        assert np.array_equal(getattr(one, name), getattr(whole, name)), name


def test_shards_reduce_to_the_whole_up_to_rounding(problem):
    from dgn_core.data_source import as_source

    net, P, X = problem
    whole = estep_statistics(net, X, partition=P)
    sharded = SerialEStep(as_source(X), shard_size=128).statistics(net, P)
    assert sharded.n == whole.n
    for name in _STATS:
        np.testing.assert_allclose(getattr(sharded, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-12 * float(np.max(np.abs(getattr(whole, name)))),
                                   err_msg=name)
    parts = [estep_statistics(net, X[a:b], partition=P) for a, b in shard_bounds(len(X), 128)]
    assert np.array_equal(reduce_statistics(parts).x1, sharded.x1)


def test_dask_estep_equals_the_serial_one_bit_for_bit(problem, client):
    from dgn_core.data_source import as_source

    net, P, X = problem
    src = as_source(X)
    serial = SerialEStep(src, shard_size=100)
    with DaskEStep(src, client, shard_size=100) as dask_engine:
        a, b = serial.statistics(net, P), dask_engine.statistics(net, P)
        for name in _STATS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert np.array_equal(serial.log_marginal(net, P), dask_engine.log_marginal(net, P))
    # and the per-point log p(x) of the shards is fastpath.log_marginal's to rounding
    np.testing.assert_allclose(serial.log_marginal(net, P), log_marginal(net, X, partition=P),
                               rtol=1e-13, atol=0)


def test_fit_with_a_client_gives_the_same_history(client):
    net, X = _data(900, seed=1)
    kw = dict(max_iter=2, tol=0.0, shard_size=256)
    r1 = fit_em(net, X, **kw)
    r2 = fit_em(net, X, client=client, **kw)
    assert r1.log_likelihood == r2.log_likelihood
    assert r1.objective == r2.objective
    for W1, W2 in zip(r1.model.weights, r2.model.weights):
        assert np.array_equal(W1, W2)
    assert r1.options == r2.options and r1.options["shard_size"] == 256


def test_fit_from_a_memory_mapped_npy_equals_the_array(tmp_path):
    net, X = _data(600, seed=2)
    path = tmp_path / "x.npy"
    np.save(path, X)
    kw = dict(max_iter=2, tol=0.0, shard_size=200)
    r1 = fit_em(net, X, **kw)
    r2 = fit_em(net, str(path), **kw)
    assert r1.log_likelihood == r2.log_likelihood


def test_fit_refuses_a_bad_client_or_shard_size():
    net, X = _data(20)
    with pytest.raises(TypeError, match="client"):
        fit_em(net, X, client=object(), max_iter=1)
    with pytest.raises(ValueError, match="shard_size"):
        fit_em(net, X, shard_size=0, max_iter=1)


def test_a_worker_killed_mid_fit_leaves_the_result_unchanged(client):
    # the kill lands during the E-steps of iteration 1 (each E-step of 3000 points takes
    # about a second on 2 workers): the nanny restarts the worker; shard tasks that ran
    # there are recomputed by Dask or resubmitted by the engine
    net, X = _data(3000, seed=4)
    kw = dict(max_iter=2, tol=0.0, shard_size=250)
    reference = fit_em(net, X, **kw)
    pids = sorted(client.run(os.getpid).values())
    killed = []

    def kill_one() -> None:
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    timer = threading.Timer(0.5, kill_one)
    timer.start()
    try:
        result = fit_em(net, X, client=client, **kw)
    finally:
        timer.cancel()
    assert killed, "the worker was not killed during the fit"
    client.wait_for_workers(2, timeout=60)
    assert pids[0] not in client.run(os.getpid).values()
    assert result.log_likelihood == reference.log_likelihood
    for W1, W2 in zip(result.model.weights, reference.model.weights):
        assert np.array_equal(W1, W2)


def _cli_data(tmp_path):
    from dgn_core.data import noisy_circle

    X = noisy_circle(1500, 0)
    np.save(tmp_path / "c.npy", X)
    (tmp_path / "shards").mkdir()
    for i, (a, b) in enumerate([(0, 400), (400, 1100), (1100, 1500)]):
        np.save(tmp_path / "shards" / f"part{i}.npy", X[a:b])
    return X


def _summary(run_dir):
    import json

    return json.loads((run_dir / "summary.json").read_text())


def test_dgn_fit_streams_a_folder_on_local_workers_as_in_process(tmp_path):
    pytest.importorskip("distributed")
    from dgn_tools.cli import main

    _cli_data(tmp_path)
    common = ["--max-iter", "2", "--quiet", "--shard-size", "500"]
    assert main(["fit", "--data", str(tmp_path / "c.npy"), "--stream", "--out",
                 str(tmp_path / "a"), *common]) == 0
    assert main(["fit", "--data", str(tmp_path / "shards"), "--workers", "2", "--out",
                 str(tmp_path / "b"), *common]) == 0
    a, b = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    assert a["log_likelihood"] == b["log_likelihood"] and a["n_points"] == 1500


def test_dgn_fit_refuses_bad_scale_options(tmp_path, capsys):
    from dgn_tools.cli import main

    _cli_data(tmp_path)
    assert main(["fit", "--stream", "--out", str(tmp_path / "r")]) == 2
    assert "--stream" in capsys.readouterr().err
    assert main(["fit", "--data", str(tmp_path / "c.npy"), "--workers", "0",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["fit", "--data", str(tmp_path / "c.npy"), "--shard-size", "0",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--shard-size" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_log_marginal_posterior_and_scores_on_a_cluster(problem, client):
    from fastpath import anomaly_scores, posterior

    net, P, X = problem
    lp = log_marginal(net, X, partition=P, client=client, shard_size=128)
    np.testing.assert_allclose(lp, log_marginal(net, X, partition=P), rtol=1e-13, atol=0)
    assert np.array_equal(anomaly_scores(net, X, partition=P, client=client, shard_size=128),
                          -lp)
    post = posterior(net, X[:300], partition=P, client=client, shard_size=128)
    ref = posterior(net, X[:300], partition=P)
    for name in ("log_px", "e0", "mean", "cov", "region_mean"):
        np.testing.assert_allclose(getattr(post, name), getattr(ref, name), rtol=1e-12,
                                   atol=1e-300, err_msg=name)
    with pytest.raises(TypeError, match="client"):
        log_marginal(net, X, partition=P, client="tcp://nowhere")


def test_a_checkpoint_without_a_shard_size_resumes(tmp_path):
    # checkpoints written before the sharded E-step record no shard_size
    import json

    net, X = _data(300, seed=6)
    path = tmp_path / "ck.npz"
    full = fit_em(net, X, max_iter=2, tol=0.0)
    fit_em(net, X, max_iter=1, tol=0.0, checkpoint=path)
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    options = json.loads(str(arrays["options"]))
    del options["shard_size"]
    arrays["options"] = np.array(json.dumps(options, sort_keys=True))
    np.savez(path, **arrays)
    resumed = fit_em(net, X, max_iter=2, tol=0.0, checkpoint=path, resume=True)
    assert resumed.log_likelihood == full.log_likelihood
