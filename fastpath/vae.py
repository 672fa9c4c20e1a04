"""A Gaussian VAE whose decoder is a DGN, with exact diagnostics after every evaluation.

The baseline of the paper's Sec. 4.3: a standard VAE (Kingma & Welling 2014)

    encoder   q(z|x) = N(mu(x), diag exp(logvar(x)))     an MLP x -> (mu, logvar)
    decoder   p(x|z) = N(g(z), Sigma_x),  p(z) = N(0, Sigma_z)   g = to_torch(net)

trained with Adam on the single-sample reparameterised ELBO, where the decoder has exactly
the DGN's architecture and initial weights (:func:`fastpath.to_torch`) and the likelihood
uses the DGN's noise variance. Because the decoder IS a DGN, the toolkit can score it
exactly: at every evaluation the decoder is read back with :func:`fastpath.from_torch` and

* the exact negative log-likelihood -log p(x) (:func:`fastpath.log_marginal`), on the
  training and the held-out data,
* the exact KL(q(z|x) || p(z|x)) between the encoder's q and the decoder's true posterior
  (:func:`fastpath.kl_to_posterior`), its mean on both data sets,
* the exact ELBO (log p(x) - KL) beside the Monte Carlo ELBO the optimiser sees,

are recorded with the cumulative training wall-clock (evaluation time excluded and
recorded separately).

Noise variance: ``learn_noise=True`` (default) trains Sigma_x (its log, isotropic or
diagonal as in the DGN) together with the networks, so the VAE has the same free
parameters as EM (which updates Sigma_x); ``learn_noise=False`` keeps the DGN's value
fixed. We could not check which of the two the paper's VAE used; the examples run the
default and say so. The learned variance is floored at ``noise_floor`` (default 1e-6 times
the mean data variance, the likelihood is unbounded as Sigma_x -> 0 otherwise); the history
records whether the floor binds.

Everything runs in float64 on the CPU by default (the decoder's weights then convert to the
DGN bit for bit). torch is imported lazily (the optional ``torch`` extra).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import check_data
from dgn_core.model import DGN
from dgn_core.regions import RegionLimitError
from dgn_core.validation import check_int, check_net, check_positive

from .torch_interop import _activation_module, _torch, from_torch, to_torch

__all__ = ["HISTORY_FIELDS", "PAPER_LEARNING_RATES", "VAEResult", "train_vae"]

Arr = NDArray[np.float64]

#: the learning rates of the paper's VAE baselines (Figs. 4-7)
PAPER_LEARNING_RATES = (0.005, 0.001, 0.0001)

#: the recorded quantities, one value per evaluation (see :class:`VAEResult`)
HISTORY_FIELDS = (
    "update", "epoch", "train_time", "eval_time", "elbo_mc", "nll_train", "nll_test",
    "kl_train", "kl_test", "elbo_train", "elbo_test", "noise_var", "n_regions",
)

_LOG_2PI = math.log(2.0 * math.pi)


# =========================================================================== result
@dataclass
class VAEResult:
    """The outcome of :func:`train_vae`.

    Attributes
    ----------
    model : DGN
        The trained decoder with its (learned or fixed) noise variance.
    history : dict of str -> ndarray, each of shape (n_evals,)
        One entry per evaluation (the first is before any update):

        - ``update``: Adam updates so far; ``epoch``: epochs so far (fractional).
        - ``train_time``: cumulative training wall-clock in seconds (evaluations excluded);
          ``eval_time``: seconds this evaluation took.
        - ``elbo_mc``: mean single-sample Monte Carlo ELBO per point over the minibatches
          since the previous evaluation (what the optimiser saw; NaN at update 0).
        - ``nll_train``, ``nll_test``: exact mean -log p(x) per point of the decoder
          (nats); ``nll_test`` is NaN without ``X_test``.
        - ``kl_train``, ``kl_test``: mean exact KL(q(z|x) || p(z|x)) per point.
        - ``elbo_train``, ``elbo_test``: exact mean ELBO per point (= -nll - kl).
        - ``noise_var``: mean of the decoder's noise variance.
        - ``n_regions``: regions of the decoder's partition.

        Values that could not be computed (partition over ``max_regions``, a numerically
        singular q) are NaN, with a warning.
    encoder, decoder : torch.nn.Module
        The trained networks (decoder: ``to_torch`` layout).
    log_noise_var : torch.Tensor
        The decoder's log noise variance (scalar or (D,)).
    config : dict
        The arguments of the run (lr, epochs, batch_size, seed, ...).
    noise_floor_hit : bool
        Whether the learned noise variance reached its floor.
    diverged : bool
        Whether training stopped on a non-finite loss.
    """

    model: DGN
    history: dict[str, Arr]
    encoder: Any
    decoder: Any
    log_noise_var: Any
    config: dict[str, Any] = field(default_factory=dict)
    noise_floor_hit: bool = False
    diverged: bool = False

    def encode(self, X: ArrayLike) -> tuple[Arr, Arr]:
        """The encoder's q(z|x): means (N, S) and variances (N, S)."""
        X = check_data(X, dim=self.model.data_dim)
        return _encode(self.encoder, X, self.model.latent_dim)

    def elbo_mc(self, X: ArrayLike, n_samples: int = 1000, seed: int = 0) -> Arr:
        """Monte Carlo estimate of the ELBO of every row of X (N,), the training objective.

        With many samples it converges to the exact ELBO, ``kl_to_posterior(...,
        return_terms=True).elbo`` of the decoder (a test of the objective).
        """
        torch = _torch()
        X = check_data(X, dim=self.model.data_dim)
        n_samples = _positive_int(n_samples, "n_samples")
        dt = next(self.encoder.parameters()).dtype
        prior = _Prior.make(None if self.model.has_identity_prior else
                            np.asarray(self.model.prior_cov), dt, self.model.latent_dim)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            out = _elbo(self.encoder, self.decoder, self.log_noise_var,
                        float(self.config["log_noise_floor"]), torch.from_numpy(X).to(dt),
                        prior, n_samples, gen)
        return out.double().numpy()

    def final(self, name: str) -> float:
        """The last recorded value of a history field."""
        return float(self.history[name][-1])

    def rows(self) -> list[dict[str, float]]:
        """The history as a list of records (for CSV writers)."""
        n = len(self.history["update"])
        return [{k: float(v[i]) for k, v in self.history.items()} for i in range(n)]


# =========================================================================== validation
# dgn_core.validation's rule: TypeError for a value of the wrong kind (a float or a bool
# where an integer is needed, a string where a number is), ValueError for one out of range
def _positive_int(value: Any, name: str) -> int:
    return check_int(value, name, 1)


def _positive_float(value: Any, name: str) -> float:
    return check_positive(value, name)


# =========================================================================== networks
def _encoder(D: int, S: int, widths: Sequence[int], activation: str, slope: float,
             rng: np.random.Generator, dtype: Any) -> Any:
    """MLP D -> widths -> 2S (mean, log-variance), PyTorch's default init from ``rng``."""
    torch = _torch()
    layers: list[Any] = []
    sizes = [D, *widths, 2 * S]
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        lin = torch.nn.Linear(fan_in, fan_out, dtype=dtype)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, (fan_out, fan_in))))
            lin.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, fan_out)))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(_activation_module(activation, slope))
    return torch.nn.Sequential(*layers)


def _encode(encoder: Any, X: Arr, S: int) -> tuple[Arr, Arr]:
    torch = _torch()
    dtype = next(encoder.parameters()).dtype
    with torch.no_grad():
        out = encoder(torch.from_numpy(X).to(dtype)).double().numpy()
    return out[:, :S].copy(), np.exp(out[:, S:])


# =========================================================================== evaluation
def _evaluate(decoder: Any, encoder: Any, noise_var: Any, prior_cov: Arr | None, X: Arr,
              X_test: Arr | None, S: int, max_regions: int, kl_points: int | None
              ) -> dict[str, float]:
    from .kl import kl_to_posterior
    from .partition_walk import partition as _partition

    out = dict.fromkeys(("nll_train", "nll_test", "kl_train", "kl_test", "elbo_train",
                         "elbo_test", "n_regions"), float("nan"))
    net = from_torch(decoder, noise_var, prior_cov=prior_cov)
    try:
        P = _partition(net, max_regions=max_regions)
    except RegionLimitError:
        warnings.warn(f"decoder has more than {max_regions} regions: exact diagnostics "
                      "skipped at this evaluation", RuntimeWarning, stacklevel=3)
        return out
    out["n_regions"] = float(len(P))
    for name, data in (("train", X), ("test", X_test)):
        if data is None:
            continue
        Xk = data if kl_points is None else data[:kl_points]
        m, v = _encode(encoder, Xk, S)
        try:
            terms = kl_to_posterior(net, Xk, m, v, partition=P, return_terms=True)
        except ValueError as exc:   # e.g. a numerically singular q
            warnings.warn(f"exact KL skipped ({exc})", RuntimeWarning, stacklevel=3)
            from .distributions import log_marginal
            out[f"nll_{name}"] = -float(np.mean(log_marginal(net, data, partition=P)))
            continue
        if kl_points is None or kl_points >= data.shape[0]:
            lpx = terms.log_px
        else:
            from .distributions import log_marginal
            lpx = log_marginal(net, data, partition=P)
        out[f"nll_{name}"] = -float(np.mean(lpx))
        out[f"kl_{name}"] = float(np.mean(terms.kl))
        out[f"elbo_{name}"] = float(np.mean(terms.elbo))
    return out


# =========================================================================== objective
@dataclass(frozen=True)
class _Prior:
    """Whitening of the prior N(0, Sigma_z) for the closed-form KL(q || p(z))."""

    S: int
    Lp_inv: Any     # torch (S, S) inverse Cholesky factor, None for the identity
    logdet: float   # log det Sigma_z

    @classmethod
    def make(cls, prior_cov: Arr | None, dtype: Any, S: int | None = None) -> _Prior:
        torch = _torch()
        if prior_cov is None:
            return cls(int(S or 0), None, 0.0)
        Lp = np.linalg.cholesky(prior_cov)
        return cls(Lp.shape[0], torch.from_numpy(np.linalg.inv(Lp)).to(dtype),
                   2.0 * float(np.sum(np.log(np.diag(Lp)))))


def _elbo(encoder: Any, decoder: Any, log_nv: Any, log_floor: float, xb: Any, prior: _Prior,
          n_samples: int, gen: Any) -> Any:
    """Reparameterised Monte Carlo ELBO of every row of xb, shape (n,) (a torch tensor).

    E_q[log p(x|z)] by ``n_samples`` draws z = mu + exp(logvar / 2) eps; KL(q || p(z)) in
    closed form (with tr(Sigma_z^-1 V) = ||L_p^-1 diag(sd)||_F^2 for a general prior).
    """
    torch = _torch()
    D = xb.shape[1]
    h = encoder(xb)
    S = h.shape[1] // 2
    mu, logvar = h[:, :S], h[:, S:]
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((n_samples,) + tuple(mu.shape), generator=gen, dtype=mu.dtype)
    z = mu + std * eps                                                      # (k, n, S)
    xr = decoder(z.reshape(-1, S)).reshape(n_samples, -1, D)
    lv = torch.clamp(log_nv, min=log_floor)
    lvD = lv.expand(D) if lv.dim() == 0 else lv
    rec = -0.5 * (((xb - xr) ** 2) * torch.exp(-lvD)).sum(-1) - 0.5 * (lvD.sum() + D * _LOG_2PI)
    rec = rec.mean(0)                                                       # (n,)
    if prior.Lp_inv is None:
        kl = 0.5 * (torch.exp(logvar).sum(1) + (mu * mu).sum(1) - S - logvar.sum(1))
    else:
        Y = prior.Lp_inv @ torch.diag_embed(std)
        y = mu @ prior.Lp_inv.T
        kl = 0.5 * ((Y * Y).sum((1, 2)) + (y * y).sum(1) - S + prior.logdet - logvar.sum(1))
    return rec - kl


# =========================================================================== training
def train_vae(net: DGN, X: ArrayLike, lr: float, epochs: int, batch_size: int = 64,
              seed: int = 0, X_test: ArrayLike | None = None, eval_every: int | None = None,
              *, eval_at: Sequence[int] | None = None,
              encoder_widths: Sequence[int] | None = None, learn_noise: bool = True,
              noise_floor: float | None = None, n_samples: int = 1, dtype: str = "float64",
              max_regions: int = 20_000, kl_points: int | None = None,
              evaluate: bool = True, time_limit: float | None = None,
              callback: Any = None) -> VAEResult:
    """Train a Gaussian VAE whose decoder starts as ``net``, with exact diagnostics.

    Parameters
    ----------
    net : DGN
        The decoder's architecture, initial weights, noise variance (initial value, or the
        fixed value with ``learn_noise=False``) and prior covariance.
    X : array_like, shape (N, D)
        Training data.
    lr : float
        Adam's learning rate (the paper: 0.005, 0.001, 0.0001; :data:`PAPER_LEARNING_RATES`).
    epochs : int
        Passes over X.
    batch_size : int, default 64
        Minibatch size (the last minibatch of an epoch may be smaller).
    seed : int, default 0
        Seeds the encoder's initial weights, the minibatch order and the reparameterisation
        noise: a run is reproducible bit for bit (on one machine and thread count).
    X_test : array_like, shape (M, D), optional
        Held-out data, scored at every evaluation (never trained on).
    eval_every : int, optional
        Evaluate every ``eval_every`` Adam updates (default: once per epoch); the first
        evaluation is before any update and the last after the final update.
    eval_at : sequence of int, optional
        Evaluate after exactly these numbers of updates instead (e.g. a geometric grid for
        a log-scale plot); before the first and after the last update as well. Replaces
        ``eval_every``.
    encoder_widths : sequence of int, optional
        Hidden widths of the encoder MLP (default: the decoder's hidden widths reversed);
        its activation is the decoder's.
    learn_noise : bool, default True
        Train the noise variance (see the module notes) or keep ``net.noise_var``.
    noise_floor : float, optional
        Lower bound of the learned noise variance (default 1e-6 times the mean variance of
        the columns of X).
    n_samples : int, default 1
        Reparameterised samples per point in the ELBO estimate.
    dtype : {"float64", "float32"}
        Precision of training (diagnostics are always float64).
    max_regions : int, default 20_000
        Partition limit of the exact diagnostics (NaN with a warning above it).
    kl_points : int, optional
        Use only the first ``kl_points`` rows of X and X_test for the KL (the NLL always
        uses all rows); default all.
    evaluate : bool, default True
        Compute the exact diagnostics (False: only the MC ELBO and times are recorded).
    time_limit : float, optional
        Stop after this many seconds of training time.
    callback : callable, optional
        ``callback(record)`` with the dict of each evaluation.

    Returns
    -------
    VAEResult
    """
    torch = _torch()
    net = check_net(net)
    net.require_elementwise("train_vae (its encoder mirrors the decoder's activation)")
    X = check_data(X, dim=net.data_dim)
    X_test = None if X_test is None else check_data(X_test, dim=net.data_dim, name="X_test")
    lr = _positive_float(lr, "lr")
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    n_samples = _positive_int(n_samples, "n_samples")
    max_regions = _positive_int(max_regions, "max_regions")
    if kl_points is not None:
        kl_points = _positive_int(kl_points, "kl_points")
    seed = check_int(seed, "seed", 0)
    N, D, S = X.shape[0], net.data_dim, net.latent_dim
    n_batches = -(-N // batch_size)
    eval_every = n_batches if eval_every is None else _positive_int(eval_every, "eval_every")
    eval_set: set[int] | None = None
    if eval_at is not None:
        eval_set = {_positive_int(u, "eval_at entries") for u in eval_at}
    if encoder_widths is None:
        encoder_widths = tuple(reversed(net.hidden_widths))
    encoder_widths = tuple(_positive_int(w, "encoder_widths entries") for w in encoder_widths)
    if time_limit is not None:
        time_limit = _positive_float(time_limit, "time_limit")
    if noise_floor is None:
        noise_floor = 1e-6 * float(np.mean(np.var(X, axis=0))) if N > 1 else 1e-12
        noise_floor = max(noise_floor, 1e-300)
    noise_floor = _positive_float(noise_floor, "noise_floor")
    nv0 = np.asarray(net.noise_var, dtype=np.float64)
    if learn_noise and np.any(nv0 < noise_floor):
        raise ValueError(f"the initial noise variance {net.noise_var} is below noise_floor "
                         f"{noise_floor}")
    from .torch_interop import _resolve_dtype
    tdt = _resolve_dtype(dtype)

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    decoder = to_torch(net, dtype=tdt)
    # the encoder's activation: the decoder's, or with per-layer activations its first layer's
    act, eta = ((net.activations[0], net.slopes[0]) if net.mixed_activations
                else (net.activation, net.slope))
    encoder = _encoder(D, S, encoder_widths, act, eta, rng, tdt)
    log_nv = torch.tensor(np.log(nv0), dtype=tdt, requires_grad=learn_noise)
    params = list(encoder.parameters()) + list(decoder.parameters())
    if learn_noise:
        params.append(log_nv)
    opt = torch.optim.Adam(params, lr=lr)
    # the floor only applies to a learned variance (a fixed one is used as given)
    log_floor = math.log(noise_floor) if learn_noise else -math.inf

    prior_cov = None if net.has_identity_prior else np.asarray(net.prior_cov)
    prior = _Prior.make(prior_cov, tdt)
    Xt = torch.from_numpy(X).to(tdt)

    stepped = [False]   # exp(log(v)) != v in general: the DGN's own value until a step

    def current_noise_var() -> Any:
        if not (learn_noise and stepped[0]):
            return net.noise_var
        with torch.no_grad():
            lv = torch.clamp(log_nv, min=log_floor).double().numpy()
        return float(np.exp(lv)) if lv.ndim == 0 else np.exp(lv)

    hist: dict[str, list[float]] = {k: [] for k in HISTORY_FIELDS}
    train_time = 0.0
    elbo_acc: list[float] = []
    floor_hit = False
    diverged = False

    def record(update: int) -> None:
        nonlocal elbo_acc
        t0 = time.perf_counter()
        nvc = current_noise_var()
        vals: dict[str, float] = dict.fromkeys(
            ("nll_train", "nll_test", "kl_train", "kl_test", "elbo_train", "elbo_test",
             "n_regions"), float("nan"))
        if evaluate:
            vals = _evaluate(decoder, encoder, nvc, prior_cov, X, X_test, S, max_regions,
                             kl_points)
        rec = {"update": float(update), "epoch": update / n_batches, "train_time": train_time,
               "eval_time": time.perf_counter() - t0,
               "elbo_mc": float(np.mean(elbo_acc)) if elbo_acc else float("nan"),
               "noise_var": float(np.mean(nvc)), **vals}
        elbo_acc = []
        for k in HISTORY_FIELDS:
            hist[k].append(rec[k])
        if callback is not None:
            callback(rec)

    record(0)
    update = 0
    stop = False
    for _ in range(epochs):
        order = rng.permutation(N)
        for bi in range(n_batches):
            t0 = time.perf_counter()
            idx = torch.from_numpy(order[bi * batch_size:(bi + 1) * batch_size])
            opt.zero_grad(set_to_none=True)
            loss = -_elbo(encoder, decoder, log_nv, log_floor, Xt[idx], prior, n_samples,
                          gen).mean()
            if not torch.isfinite(loss):
                diverged = True
                stop = True
                train_time += time.perf_counter() - t0
                warnings.warn(f"VAE training diverged (non-finite loss) at update {update}",
                              RuntimeWarning, stacklevel=2)
                break
            loss.backward()
            opt.step()
            stepped[0] = True
            train_time += time.perf_counter() - t0
            update += 1
            elbo_acc.append(-float(loss.detach()))
            if learn_noise and bool(torch.any(log_nv.detach() <= log_floor)):
                floor_hit = True
            if (update in eval_set) if eval_set is not None else (update % eval_every == 0):
                record(update)
            if time_limit is not None and train_time >= time_limit:
                stop = True
                break
        if stop:
            break
    if hist["update"][-1] != update:
        record(update)
    history = {k: np.asarray(v, dtype=np.float64) for k, v in hist.items()}
    model = from_torch(decoder, current_noise_var(), prior_cov=prior_cov)
    config = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "seed": int(seed),
              "eval_every": eval_every if eval_set is None else None,
              "eval_at": None if eval_set is None else sorted(eval_set), "encoder_widths": encoder_widths,
              "learn_noise": bool(learn_noise), "noise_floor": noise_floor,
              "log_noise_floor": log_floor,
              "n_samples": n_samples, "dtype": str(tdt).replace("torch.", ""),
              "updates": update}
    return VAEResult(model, history, encoder, decoder, log_nv.detach().clone(), config,
                     floor_hit, diverged)
