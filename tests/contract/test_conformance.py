"""The two backends implement one API (dgn_core.api): signatures, posterior type, errors.

The signature rules are checked by inspection; the error behaviour by calling both backends
with the same bad input and requiring the same exception type (and a message that names
the argument at fault).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import fastpath
from dgn_core.api import BACKEND_FUNCTIONS, SHARED_OPTIONS, PosteriorLike
from dgn_core.exceptions import DataError, DGNError
from dgn_core.model import DGN
from tests.conftest import needs_cdd

#: options that only one backend has, by design (dgn_core.api: precision options in the
#: exact backend, performance options in the fast one)
# n_jobs: threads of the fast path's compiled kernels (the exact path has none)
# client, shard_size: the fast path's rows in shards on a Dask cluster (fastpath._sharded)
BACKEND_ONLY = {"exact": {"dps", "verify", "posterior"},
                "fast": {"chunk_size", "n_jobs", "client", "shard_size"}}


def _signature(module: Any, name: str) -> inspect.Signature:
    return inspect.signature(getattr(module, name))


@needs_cdd
@pytest.mark.parametrize("name", sorted(BACKEND_FUNCTIONS))
def test_both_backends_have_the_same_positional_parameters(name):
    import verified_dgn

    for module in (verified_dgn, fastpath):
        params = list(_signature(module, name).parameters.values())
        positional = tuple(p.name for p in params
                           if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        assert positional == BACKEND_FUNCTIONS[name], (module.__name__, name, positional)
        assert all(p.kind != p.VAR_POSITIONAL for p in params), (module.__name__, name)


@needs_cdd
@pytest.mark.parametrize("name", sorted(BACKEND_FUNCTIONS))
def test_every_option_is_keyword_only_and_shared_options_agree(name):
    import verified_dgn

    for label, module in (("exact", verified_dgn), ("fast", fastpath)):
        params = _signature(module, name).parameters
        options = {k: p for k, p in params.items() if k not in BACKEND_FUNCTIONS[name]}
        for key, p in options.items():
            assert p.kind == p.KEYWORD_ONLY, f"{label}.{name}: option {key} is not keyword-only"
        for key, default in SHARED_OPTIONS[name].items():
            assert key in options, f"{label}.{name} lacks the shared option {key}"
            assert options[key].default == default, (
                f"{label}.{name}({key}=...) defaults to {options[key].default!r}, "
                f"the contract says {default!r}")
        extra = set(options) - set(SHARED_OPTIONS[name]) - BACKEND_ONLY[label]
        assert not extra, f"{label}.{name} has options outside the contract: {sorted(extra)}"


def _net() -> DGN:
    return DGN.random((1, 3, 2), activation="leaky_relu", slope=0.2, seed=3, noise_var=0.1)


def test_both_posteriors_satisfy_the_protocol(backend):
    net = _net()
    X = net.sample(2, seed=0)[0]
    post = backend.module.posterior(net, X, **backend.options)
    assert isinstance(post, PosteriorLike)
    assert post.n_points == 2 and post.n_regions == len(post.partition)
    np.testing.assert_array_equal(post.most_probable_region().shape, (2,))
    dens = backend.floats(post.log_density(np.array([[0.1], [-0.3]]), 1))
    assert dens.shape == (2,) and np.all(np.isfinite(dens))


# (call, expected exception type, a word the message must contain); each call takes the
# backend's module and its precision options
_NET = _net()
_X = _NET.sample(2, seed=1)[0]
_I2 = np.eye(2)
_BAD_CALLS = [
    ("partition of a list", lambda m, o: m.partition([np.eye(2)]), TypeError, "DGN"),
    ("max_regions=2.5", lambda m, o: m.partition(_NET, max_regions=2.5), TypeError,
     "max_regions"),
    ("max_regions=True", lambda m, o: m.partition(_NET, max_regions=True), TypeError,
     "max_regions"),
    ("max_regions=0", lambda m, o: m.partition(_NET, max_regions=0), ValueError, "max_regions"),
    ("max_regions=-5", lambda m, o: m.partition(_NET, max_regions=-5), ValueError, "max_regions"),
    ("start with NaN", lambda m, o: m.partition(_NET, start=[np.nan]), ValueError, "NaN"),
    ("start of the wrong shape", lambda m, o: m.partition(_NET, start=[0.0, 0.0]), ValueError,
     "start"),
    ("log_marginal of a list", lambda m, o: m.log_marginal([1], _X, **o), TypeError, "DGN"),
    ("X with NaN", lambda m, o: m.log_marginal(_NET, np.array([[0.0, np.nan]]), **o),
     DataError, "NaN"),
    ("X of the wrong width", lambda m, o: m.log_marginal(_NET, np.zeros((2, 3)), **o),
     DataError, "X"),
    ("prune=-1", lambda m, o: m.log_marginal(_NET, _X, prune=-1.0, **o), ValueError, "prune"),
    ("prune='x'", lambda m, o: m.posterior(_NET, _X, prune="x", **o), TypeError, "prune"),
    ("orthant b with NaN", lambda m, o: m.orthant_probability([0.0, np.nan], _I2, **o),
     ValueError, "NaN"),
    # indefinite (eigenvalue -1): both refuse it. A singular, positive semi-definite cov is
    # where the backends differ by design (dgn_core.api): the fast orthant kernels take
    # |rho| = 1 as the degenerate lower-dimensional case, the exact ones need a Cholesky
    ("orthant cov indefinite", lambda m, o: m.orthant_probability([0.0, 0.0],
                                                                  [[1.0, 2.0], [2.0, 1.0]], **o),
     ValueError, "positive"),
    ("orthant cov asymmetric", lambda m, o: m.orthant_probability([0.0, 0.0],
                                                                  [[1.0, 0.5], [0.4, 1.0]], **o),
     ValueError, "symmetric"),
    ("orthant shapes", lambda m, o: m.orthant_probability([0.0, 0.0, 0.0], _I2, **o),
     ValueError, "shape"),
    ("moments C/d shapes", lambda m, o: m.gaussian_moments(np.eye(2), [1.0], [0.0, 0.0], _I2,
                                                           **o), ValueError, "d"),
    ("moments cov not PD", lambda m, o: m.gaussian_moments(np.eye(2), [1.0, 1.0], [0.0, 0.0],
                                                           -_I2, **o),
     ValueError, "positive definite"),
    ("em_step noise='full'", lambda m, o: m.em_step(_NET, _X, noise="full", **o), ValueError,
     "noise"),
    ("em_step ridge=-1", lambda m, o: m.em_step(_NET, _X, ridge=-1.0, **o), ValueError, "ridge"),
]


@pytest.mark.parametrize("label, call, err, word", _BAD_CALLS, ids=[c[0] for c in _BAD_CALLS])
def test_bad_input_raises_the_same_error_in_both_backends(backend, label, call, err, word):
    with pytest.raises(err) as info:
        call(backend.module, backend.options)
    assert word.lower() in str(info.value).lower(), (backend.name, label, str(info.value))


def test_the_project_errors_share_one_base_and_keep_their_builtin_bases():
    import dgn_core.exceptions as ex

    for name in ex.__all__:
        cls = getattr(ex, name)
        if name == "ConvergenceWarning":
            assert issubclass(cls, UserWarning)
            continue
        assert issubclass(cls, DGNError), name
    assert issubclass(ex.DataError, ValueError) and issubclass(ex.ModelFileError, ValueError)
    assert issubclass(ex.RegionLimitError, RuntimeError)
    assert issubclass(ex.QuadratureError, ArithmeticError)
