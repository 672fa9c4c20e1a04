"""Thread control (n_jobs), ahead-of-time compilation and the import-time promise.

- ``import fastpath`` and the S = 1 paths do not import numba (0.35 s);
- ``fastpath._threads.resolve_n_jobs`` follows scikit-learn's convention and refuses what
  is not a thread count;
- ``threads(n)`` sets numba's thread count and one BLAS thread inside the block, and
  restores both after it;
- ``dgn warmup`` compiles (or loads) every registered kernel module and exits 0.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from dgn_tools.cli import main
from fastpath import _threads


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_import_fastpath_does_not_import_numba():
    out = _python("import sys, fastpath, fastpath.em, fastpath.distributions; "
                  "print('numba' in sys.modules)")
    assert out == "False"


def test_s1_log_marginal_does_not_import_numba():
    out = _python("import sys, numpy as np; from fastpath import DGN, log_marginal; "
                  "net = DGN.random((1, 4, 2), seed=0); "
                  "log_marginal(net, np.zeros((3, 2))); print('numba' in sys.modules)")
    assert out == "False"


@pytest.mark.parametrize("n_jobs, expect", [(None, "all"), (-1, "all"), (1, 1), (10_000, "all")])
def test_resolve_n_jobs(n_jobs, expect):
    cores = _threads.max_threads()
    assert _threads.resolve_n_jobs(n_jobs) == (cores if expect == "all" else expect)


def test_resolve_n_jobs_counts_back_from_all_cores():
    cores = _threads.max_threads()
    assert _threads.resolve_n_jobs(-cores) == 1


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-10_000, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError)])
def test_resolve_n_jobs_refuses(bad, exc):
    with pytest.raises(exc, match="n_jobs"):
        _threads.resolve_n_jobs(bad)


def test_threads_block_sets_and_restores():
    import numba
    from threadpoolctl import threadpool_info

    from fastpath import _jit  # noqa: F401  (imports numba and applies the default)

    before = numba.get_num_threads()
    with _threads.threads(1) as n:
        assert n == 1
        assert numba.get_num_threads() == 1
        assert _threads.requested_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert numba.get_num_threads() == before
    assert _threads.requested_threads() is None


def test_dgn_warmup_runs(capsys):
    from fastpath import _jit

    assert main(["warmup"]) == 0
    err = capsys.readouterr().err
    for module in _jit.KERNEL_MODULES:
        assert module in err
    assert f"{len(_jit.KERNEL_MODULES)} kernel modules ready" in err


@pytest.fixture(scope="module")
def s2_problem():
    import numpy as np

    from fastpath import DGN, partition

    net = DGN.random((2, 6, 6, 3), seed=4)
    X = np.random.default_rng(2).normal(size=(40, 3)) * 2.0
    return net, partition(net), X


def test_results_identical_for_any_thread_count(s2_problem):
    # every (point, region) pair is computed by the same code on whatever thread runs it:
    # bit-for-bit equality, not a tolerance
    import numpy as np

    from fastpath import posterior
    from fastpath.distributions import estep_statistics

    net, part, X = s2_problem
    p1 = posterior(net, X, partition=part, n_jobs=1)
    p2 = posterior(net, X, partition=part, n_jobs=-1)
    for name in ("log_px", "e0", "mean", "cov", "region_mean", "region_cov"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name), err_msg=name)
    s1 = estep_statistics(net, X, partition=part, n_jobs=1)
    s2 = estep_statistics(net, X, partition=part, n_jobs=2)
    np.testing.assert_array_equal(s1.log_px, s2.log_px)
    np.testing.assert_array_equal(s1.S2, s2.S2)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), ("all", TypeError)])
def test_public_functions_refuse_bad_n_jobs(s2_problem, bad, exc):
    from fastpath import fit_em, log_marginal

    net, part, X = s2_problem
    with pytest.raises(exc, match="n_jobs"):
        log_marginal(net, X, partition=part, n_jobs=bad)
    with pytest.raises(exc, match="n_jobs"):
        fit_em(net, X, max_iter=1, n_jobs=bad)


def test_dgn_fit_refuses_bad_jobs(tmp_path, capsys):
    assert main(["fit", "--jobs", "0", "--out", str(tmp_path / "run")]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unchanged_sources_keep_the_kernel_cache(monkeypatch):
    # the stamp matches the sources: nothing is deleted (a mismatch deletes *.nbi / *.nbc,
    # which tests/test_threads_warmup cannot do without recompiling every kernel)
    import glob
    import os

    from fastpath import _jit

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    _jit.warmup()
    cache = os.path.join(os.path.dirname(_jit.__file__), "__pycache__")
    before = sorted(glob.glob(os.path.join(cache, "*.nbi")))
    _jit._drop_stale_cache()
    assert os.path.exists(os.path.join(cache, "dgn_kernels.stamp"))
    assert sorted(glob.glob(os.path.join(cache, "*.nbi"))) == before


def test_kernel_chains_cover_every_kernel_module():
    # a parallel warm-up compiles the chains, so a kernel module missing from them would be
    # left to its first use; each module appears once
    import glob
    import os

    from fastpath import _jit

    here = os.path.dirname(_jit.__file__)
    with_warmup = set()
    for src in glob.glob(os.path.join(here, "_jit_*.py")):
        with open(src, encoding="utf-8") as fh:
            if "\ndef _warmup()" in fh.read():
                with_warmup.add("fastpath." + os.path.basename(src)[:-3])
    listed = [m for chain in _jit.KERNEL_CHAINS for m in chain]
    assert len(listed) == len(set(listed))
    missing = with_warmup - set(listed)
    # _jit_adaptive is compiled as a callee of _jit_tvn
    assert missing <= {"fastpath._jit_adaptive"}, missing


def test_warmup_refuses_bad_jobs(capsys):
    from fastpath import _jit

    with pytest.raises(ValueError, match="jobs"):
        _jit.warmup(jobs=0)
    assert main(["warmup", "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_cached_sees_the_compiled_modules():
    # after a warm-up every module has an index in the cache, so a second warm-up loads
    # in this process instead of starting compiler processes
    from fastpath import _jit

    _jit.warmup(jobs=1)
    assert all(_jit._cached(m) for m in _jit.KERNEL_MODULES)


def test_warmup_reports_every_module_when_some_were_cached(monkeypatch):
    # a parallel warm-up over the chains left to compile also reports the modules that were
    # cached already (they are loaded by the final pass); here two chains count as not
    # cached (the child processes load them from the warm cache)
    from fastpath import _jit

    todo = {_jit.KERNEL_CHAINS[1][0], _jit.KERNEL_CHAINS[2][-1]}
    monkeypatch.setattr(_jit, "_cached", lambda module: module not in todo)
    seen: list[str] = []
    _jit.warmup(progress=lambda name, seconds: seen.append(name), jobs=2)
    assert sorted(seen) == sorted(_jit.KERNEL_MODULES)
