"""The exact marginal, posterior and posterior moments of a DGN in float64 (Theorem 1).

For the model z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) with g(z) = A_w z + b_w
on every region w of the partition (DESIGN.md 2.3)::

    Sigma_w    = (Sigma_z^-1 + A_w^T Sigma_x^-1 A_w)^-1
    mu_w(x)    = Sigma_w A_w^T Sigma_x^-1 (x - b_w)
    kappa_w(x) = N(x; b_w, Sigma_x + A_w Sigma_z A_w^T)
    p(x)       = sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w)
    p(z|x)     = p(x)^-1 sum_w 1[z in w] kappa_w(x) N(z; mu_w(x), Sigma_w)

with Phi_w(mu, Sigma) = P(z in w), z ~ N(mu, Sigma). The per-region posterior moments are
e0_w = E[1_w(z) | x], e1_w = E[z 1_w(z) | x] and E2_w = E[z z^T 1_w(z) | x].

Computation (everything in log space):

* Whitening. With s = sqrt(diag Sigma_x), Sigma_z = L_z L_z^T, the whitened quantities are
  x~ = x / s, b~_w = b_w / s, B_w = (A_w / s) L_z (D, S) and u = L_z^-1 z. Then
  G_w = I + B_w^T B_w (S x S), Sigma_w = L_z G_w^-1 L_z^T, mu_w = L_z G_w^-1 B_w^T (x~ - b~_w),
  and (Woodbury, determinant lemma; no D x D matrix is ever formed)
  log kappa_w = -(D log 2 pi + log det Sigma_x + log det G_w + Q_w) / 2.
* The quadratic form Q_w = (x - b_w)^T (Sigma_x + A_w Sigma_z A_w^T)^-1 (x - b_w). Its cheap
  form ||x~ - b~_w||^2 - y^T G_w^-1 y (y = B_w^T (x~ - b~_w); two GEMMs for all points and
  regions) cancels when x is near the region's affine image, far from the origin or the noise
  is small. Every pair whose rounding bound exceeds ``_Q_RTOL`` (1.5e-11) times the largest
  term of 2 log kappa_w (max(1, Q, |D log 2 pi + log det Sigma_x + log det G_w|)) is
  recomputed in the residual form Q = ||x~ - b~_w - B_w u||^2 + ||u||^2 at u = L_z^-1 mu_w,
  an exact identity whose error is second order in the error of u (mu_w minimises it).
* log Phi_w, E[z | z in w] - mu_w and E[(z - mu_w)(z - mu_w)^T | z in w] come from
  :class:`fastpath.integrals.ConeBatch` (signed vertex cones, log space, central form).
  log p(x) = logsumexp_w (log kappa_w + log Phi_w); e0 = exp(log kappa_w + log Phi_w - log p).
* Pruning (S >= 2, on by default). Phi_w <= Phi(-delta_w), delta_w the Mahalanobis distance
  from mu_w to w (the half-space supporting w at its nearest point contains w;
  :meth:`fastpath.integrals.ConeBatch.log_mass_bound`, no orthants), so
  u_w = log kappa_w + log Phi(-delta_w) bounds log(kappa_w Phi_w) from above (with the
  rounding bound of Q_w included). The cone integrals
  are evaluated only for pairs with u_w >= L - T, where L <= log p(x) is a log-sum-exp of
  evaluated pairs and T = ``prune`` (default 60): every skipped pair has e0 < exp(-T)
  (8.8e-27) and the computed p(x) is low by a relative R exp(-T) at most. Skipped pairs get
  e0 = e1 = E2 = 0 (log e0 = -inf). Pairs are skipped only when that saves work: when more
  than half of a chunk's pairs survive the bound (checked first on 32 evenly spaced points
  of the chunk: above 65% there, the other points are not bounded), or S = 1 (the
  closed-form interval kernel is cheaper than the bound), every pair is evaluated. ``prune=None`` always evaluates every
  pair.
* Memory: points are processed in chunks (``chunk_size`` points; default about 2^20 / (R (1 +
  S + S^2)) floats of moments per chunk). :func:`log_marginal` keeps O(N) memory; the
  E-step generator :func:`_estep_chunks` and :func:`estep_statistics` never materialise
  (N, R, S, S).

Public functions validate their inputs (:func:`dgn_core.data.check_data` for X); private
kernels (leading underscore) assume valid input.
"""

from __future__ import annotations

import itertools
import math
import numbers
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy.special import log_ndtr, logsumexp, ndtri_exp

from dgn_core.data import DataError, check_data
from dgn_core.model import DGN
from dgn_core.regions import Partition

from .integrals import ConeBatch, PolyhedronCones

__all__ = [
    "DEFAULT_PRUNE",
    "EStepChunk",
    "EStepStatistics",
    "Posterior",
    "estep_statistics",
    "log_marginal",
    "log_posterior_density",
    "map_latent",
    "posterior",
    "posterior_density",
    "sample_posterior",
]

Arr = NDArray[np.float64]

_EPS = float(np.finfo(np.float64).eps)
_LOG_2PI = math.log(2.0 * math.pi)
#: default log-weight margin below which (point, region) pairs are skipped (module notes)
DEFAULT_PRUNE = 60.0
#: refine Q in residual form where its rounding bound exceeds this times
#: max(1, Q, 2 |const_w|), the largest term of 2 log kappa_w (module notes)
_Q_RTOL = 2.0 ** -36
#: floats of per-pair moments per chunk (default chunk size)
_CHUNK_FLOATS = 1 << 20
#: pruning evaluates pairs region by region only when at most this fraction survives the
#: bound (otherwise one batched pass over every pair is faster)
_SPARSE_MAX_FRACTION = 0.5
#: points of a chunk whose bounds are computed first, and the surviving fraction above
#: which the chunk is evaluated densely without bounding the rest (measured: saves the
#: bound, ~10% of a dense S = 2 E-step)
_PRUNE_PROBE = 32
_PROBE_DENSE = 0.65
#: floats of a (pairs, D) residual block in the refinement of Q
_RESIDUAL_FLOATS = 1 << 21
#: feasibility tolerance of QP candidates, relative to |d| + |C||u| (map_latent, sampling)
_FEAS_RTOL = 1e-9
#: relative rank tolerance of active constraint sets and of the flat-prior pseudo-inverse
_RANK_RTOL = 1e-12
#: proposals with acceptance below this switch the sampler to sequential inverse-CDF
_MIN_ACCEPT = 1e-6
#: acceptance above which the sampler proposes from the untruncated Gaussian
_PLAIN_ACCEPT = 0.05
#: root-finding tolerances of the sequential sampler (whitened units = posterior sds)
_ROOT_XTOL = 1e-12
_ROOT_RTOL = 1e-12


# =========================================================================== validation
def _check_net(net: Any) -> DGN:
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    return net


def _check_chunk_size(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return int(chunk_size)


def _check_prune(prune: Any) -> float | None:
    if prune is None:
        return None
    try:
        T = float(prune)
    except (TypeError, ValueError):
        raise TypeError(f"prune must be a positive number or None, got {prune!r}") from None
    if not np.isfinite(T) or T < 30.0:
        # below ~30 nats the skipped weights (< e^-T) would be visible in float64 results
        raise ValueError(f"prune must be a finite number >= 30 (a margin in nats) or None, "
                         f"got {prune!r}")
    return T


def _same_hidden_layers(a: DGN, b: DGN) -> bool:
    return (a.activation == b.activation and a.slope == b.slope and a.n_layers == b.n_layers
            and a.latent_dim == b.latent_dim
            and all(np.array_equal(x, y) for x, y in zip(a.weights[:-1], b.weights[:-1]))
            and all(np.array_equal(x, y) for x, y in zip(a.biases[:-1], b.biases[:-1])))


def _check_partition(net: DGN, partition: Any) -> Partition:
    if partition is None:
        from .partition_walk import partition as _partition
        return _partition(net)
    if not isinstance(partition, Partition):
        raise TypeError(f"partition must be a Partition (fastpath.partition(net)), "
                        f"got {type(partition).__name__}")
    if len(partition) == 0:
        raise ValueError("partition has no regions")
    if not _same_hidden_layers(partition.net, net):
        raise ValueError("partition was computed for a different network (its hidden layers, "
                         "activation or latent dimension differ from net's)")
    return partition


# =========================================================================== precomputation
_CONES: weakref.WeakKeyDictionary[Partition, ConeBatch] = weakref.WeakKeyDictionary()


def _cones(partition: Partition) -> ConeBatch:
    """The vertex-cone decompositions of a partition's regions (net-independent; cached)."""
    cb = _CONES.get(partition)
    if cb is None:
        cb = ConeBatch.from_partition(partition)
        _CONES[partition] = cb
    return cb


@dataclass(frozen=True, eq=False)
class _Model:
    """Per-region quantities of Theorem 1 that do not depend on x (whitened; module notes)."""

    partition: Partition
    cones: ConeBatch
    R: int
    S: int
    D: int
    inv_s: Arr        # (D,) 1 / noise sd
    Lz: Arr | None    # (S, S) Cholesky factor of Sigma_z; None for the identity
    B: Arr            # (R, D, S) (A_w / s) L_z
    Bcat: Arr         # (D, R S) B laid out for one GEMM
    bt: Arr           # (R, D) b_w / s
    btT: Arr          # (D, R)
    bnorm: Arr        # (R,) |b~_w|
    bb: Arr           # (R,) |b~_w|^2
    By: Arr           # (R, S) B_w^T b~_w
    Bfro: Arr         # (R,) Frobenius norm of B_w
    G: Arr            # (R, S, S) I + B^T B
    Ginv: Arr         # (R, S, S)
    condG: Arr        # (R,) condition number of G_w
    logdet_G: Arr     # (R,) log det G_w
    const: Arr        # (R,) -(D log 2pi + log det Sigma_x + log det G_w) / 2
    cov_z: Arr        # (R, S, S) Sigma_w

    def mu_z(self, mu_u: Arr) -> Arr:
        """z-space means from whitened ones, (..., R, S)."""
        if self.Lz is None:
            return mu_u
        return mu_u @ self.Lz.T


def _affine_maps(net: DGN, partition: Partition) -> tuple[Arr, Arr]:
    if partition.net is net or partition.net == net:
        return partition.A_stack, partition.b_stack
    # same hidden layers (checked), other output layer or noise: the regions are the same,
    # the affine maps are recomputed from the sign patterns
    from .partition_walk import layer_maps_batch
    _, _, A, b = layer_maps_batch(net, partition.sign_matrix)
    return np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)


def _model(net: DGN, partition: Partition) -> _Model:
    cones = _cones(partition)
    A, b = _affine_maps(net, partition)
    R, D, S = A.shape
    nv = np.asarray(net.noise_var_vector, dtype=np.float64)
    inv_s = 1.0 / np.sqrt(nv)
    Lz: Arr | None = (None if net.has_identity_prior
                      else np.asarray(np.linalg.cholesky(net.prior_cov), dtype=np.float64))
    B = A * inv_s[None, :, None]
    if Lz is not None:
        B = B @ Lz
    B = np.ascontiguousarray(B)
    bt = np.ascontiguousarray(b * inv_s)
    G = np.eye(S) + np.swapaxes(B, 1, 2) @ B
    LG = np.linalg.cholesky(G)
    logdet_G = 2.0 * np.sum(np.log(np.diagonal(LG, axis1=1, axis2=2)), axis=1)
    eye = np.broadcast_to(np.eye(S), G.shape)
    Ginv: Arr = np.asarray(np.linalg.solve(G, eye), dtype=np.float64)
    Ginv = 0.5 * (Ginv + np.swapaxes(Ginv, 1, 2))
    ev = np.linalg.eigvalsh(G)
    condG = ev[:, -1] / ev[:, 0]
    cov_z: Arr = Ginv if Lz is None else np.asarray(Lz @ Ginv @ Lz.T, dtype=np.float64)
    cov_z = 0.5 * (cov_z + np.swapaxes(cov_z, 1, 2))
    const = -0.5 * (D * _LOG_2PI + float(np.sum(np.log(nv))) + logdet_G)
    return _Model(
        partition=partition, cones=cones, R=R, S=S, D=D, inv_s=inv_s, Lz=Lz, B=B,
        Bcat=np.ascontiguousarray(B.transpose(1, 0, 2).reshape(D, R * S)), bt=bt,
        btT=np.ascontiguousarray(bt.T), bnorm=np.sqrt(np.sum(bt * bt, axis=1)),
        bb=np.sum(bt * bt, axis=1), By=np.einsum("rdi,rd->ri", B, bt),
        Bfro=np.sqrt(np.sum(B * B, axis=(1, 2))), G=G, Ginv=Ginv, condG=condG, logdet_G=logdet_G,
        const=const, cov_z=cov_z)


def _default_chunk(model: _Model, moments: bool) -> int:
    per_pair = (1 + model.S + model.S * model.S) if moments else 2 + model.S
    per_point = model.R * per_pair + 2 * model.D
    return max(1, _CHUNK_FLOATS // per_point)


# =========================================================================== kernels
@dataclass
class _Forms:
    """Whitened Theorem 1 quantities of a chunk of points for every region."""

    Xt: Arr      # (n, D) x / s
    mu_u: Arr    # (n, R, S) whitened posterior means L_z^-1 mu_w
    Q: Arr       # (n, R) quadratic forms (cheap form unless refined)
    bound: Arr   # (n, R) rounding bound of Q (0 where refined)


def _quadratic_forms(model: _Model, Xc: Arr) -> _Forms:
    """Cheap Q for all pairs with a rigorous rounding bound (two GEMMs, O(n R S^2) more)."""
    n = Xc.shape[0]
    R, S, D = model.R, model.S, model.D
    Xt = Xc * model.inv_s
    xx = np.einsum("nd,nd->n", Xt, Xt)
    xb = Xt @ model.btT                                                   # (n, R)
    y = (Xt @ model.Bcat).reshape(n, R, S) - model.By                    # B^T (x~ - b~)
    mu_u = np.einsum("rij,nrj->nri", model.Ginv, y)
    rr = xx[:, None] - 2.0 * xb + model.bb
    yGy = np.einsum("nri,nri->nr", y, mu_u)
    Q = rr - yGy
    # rounding of the length-D dot products: the probabilistic bound lambda sqrt(D) eps |a||b|
    # (Higham & Mary 2019; lambda = 8 fails with probability < 2 exp(-32) per product). The
    # worst-case D eps is 3.5x larger at D = 784 and was measured ~250x above the actual
    # errors; this one stays ~60x above them (tests/test_distributions_fast.py).
    gam = (8.0 * math.sqrt(D) + 8.0) * _EPS
    xn = np.sqrt(xx)
    scale = xn[:, None] + model.bnorm
    mun = np.sqrt(np.einsum("nri,nri->nr", mu_u, mu_u))
    # ... and of y^T G^-1 y: the solve for mu_u errs by ~ cond(G) eps |mu_u| (first order in
    # y^T mu_u; the residual form is second order in it)
    yn = np.sqrt(np.einsum("nri,nri->nr", y, y))
    bound = gam * (scale * scale + 2.0 * mun * scale * model.Bfro) \
        + 8.0 * S * _EPS * (np.abs(rr) + np.abs(yGy) + model.condG * yn * mun)
    return _Forms(Xt, mu_u, Q, bound)


def _needs_refinement(model: _Model, forms: _Forms) -> NDArray[np.bool_]:
    # the error of log kappa = const - Q/2 relative to its largest term stays below _Q_RTOL / 2
    scale = np.maximum(np.maximum(1.0, np.abs(forms.Q)), 2.0 * np.abs(model.const))
    return forms.bound > _Q_RTOL * scale


def _refine(model: _Model, forms: _Forms, mask: NDArray[np.bool_]) -> None:
    """Recompute Q in residual form for the pairs in ``mask`` (n, R), in place."""
    nn, ww = np.nonzero(mask)
    if nn.size == 0:
        return
    order = np.argsort(ww, kind="stable")
    nn, ww = nn[order], ww[order]
    cuts = np.flatnonzero(np.diff(ww)) + 1
    step = max(1, _RESIDUAL_FLOATS // model.D)
    for idx in np.split(np.arange(nn.size), cuts):
        w = int(ww[idx[0]])
        Bw, bw = model.B[w], model.bt[w]
        for a in range(0, idx.size, step):
            sel = idx[a:a + step]
            rows = nn[sel]
            u = forms.mu_u[rows, w]                                       # (k, S)
            E = forms.Xt[rows] - bw - u @ Bw.T                            # (k, D) residual
            forms.Q[rows, w] = np.einsum("kd,kd->k", E, E) + np.einsum("ks,ks->k", u, u)
            forms.bound[rows, w] = 0.0


@dataclass
class _ChunkResult:
    log_px: Arr            # (n,)
    log_w: Arr             # (n, R) log kappa + log Phi; -inf where skipped
    mu_z: Arr | None       # (n, R, S)
    dm: Arr | None         # (n, R, S) E[z | w] - mu_w (0 where skipped)
    tcov: Arr | None       # (n, R, S, S) Cov[z | x, w] (0 where skipped)
    log_m0: Arr | None     # (n, R) log Phi_w (-inf where skipped)


def _chunk(model: _Model, Xc: Arr, moments: bool, prune: float | None,
           forms: _Forms | None = None) -> _ChunkResult:
    """Theorem 1 for a chunk of points Xc (n, D): log p(x) and (central) region moments."""
    if forms is None:
        forms = _quadratic_forms(model, Xc)
    mu_z = model.mu_z(forms.mu_u)
    n, R, S = Xc.shape[0], model.R, model.S
    cones = model.cones
    if prune is None or S == 1 or R == 1:
        _refine(model, forms, _needs_refinement(model, forms))
        if moments:
            lm, dm, tcov = cones.truncated_mean_cov(mu_z, model.cov_z)
        else:
            lm, dm, tcov = cones.log_mass(mu_z, model.cov_z), None, None
        log_w = model.const - 0.5 * forms.Q + lm
        log_px = logsumexp(log_w, axis=1)
        return _ChunkResult(log_px, log_w, mu_z, dm, tcov, lm)

    # ---- pruned evaluation (module notes)
    # log Phi_w <= log Phi(-Mahalanobis distance from mu_w to w) (integrals' cheap bound)
    if n >= 4 * _PRUNE_PROBE:
        # a clearly dense chunk goes to the batched pass without bounding every pair
        pr = np.linspace(0, n - 1, _PRUNE_PROBE).astype(np.intp)
        up = model.const - 0.5 * (forms.Q[pr] - forms.bound[pr]) \
            + cones.log_mass_bound(mu_z[pr], model.cov_z)
        if (up >= (np.max(up, axis=1, keepdims=True) - prune)).mean() > _PROBE_DENSE:
            return _chunk(model, Xc, moments, None, forms)
    upper = model.const - 0.5 * (forms.Q - forms.bound) + cones.log_mass_bound(mu_z, model.cov_z)
    todo = upper >= (np.max(upper, axis=1, keepdims=True) - prune)
    if todo.mean() > _SPARSE_MAX_FRACTION:
        # little to skip: one batched pass over every pair beats per-region calls
        return _chunk(model, Xc, moments, None, forms)
    log_w = np.full((n, R), -np.inf)
    lm_all = np.full((n, R), -np.inf)
    dm = np.zeros((n, R, S)) if moments else None
    tcov = np.zeros((n, R, S, S)) if moments else None
    done = np.zeros((n, R), dtype=bool)
    for _ in range(2):
        _refine(model, forms, todo & _needs_refinement(model, forms))
        _sparse_integrals(model, mu_z, todo, moments, lm_all, dm, tcov)
        log_w = np.where(todo, model.const - 0.5 * forms.Q + lm_all, log_w)
        done |= todo
        L = logsumexp(log_w, axis=1)                                      # <= log p(x)
        todo = (upper >= (L[:, None] - prune)) & ~done
        if not todo.any():
            break
    else:  # pragma: no cover - the second pass covers every pair above L - T
        raise RuntimeError("pruning did not converge")
    return _ChunkResult(logsumexp(log_w, axis=1), log_w, mu_z, dm, tcov, lm_all)


def _sparse_integrals(model: _Model, mu_z: Arr, mask: NDArray[np.bool_], moments: bool,
                      lm: Arr, dm: Arr | None, tcov: Arr | None) -> None:
    """Cone integrals of the pairs in ``mask`` (n, R), one vectorised call per region."""
    cones = model.cones.cones
    counts = mask.sum(axis=0)
    for w in np.flatnonzero(counts):
        rows = np.flatnonzero(mask[:, w])
        pc = cones[w]
        if moments:
            a, b, c = pc.truncated_mean_cov(mu_z[rows, w], model.cov_z[w])
            lm[rows, w] = a
            dm[rows, w] = b           # type: ignore[index]
            tcov[rows, w] = c         # type: ignore[index]
        else:
            lm[rows, w] = pc.log_mass(mu_z[rows, w], model.cov_z[w])


# =========================================================================== E-step
@dataclass(frozen=True, eq=False)
class EStepChunk:
    """The E-step of a block of rows of X (yielded by :func:`_estep_chunks`).

    Attributes
    ----------
    rows : slice
        The rows of X this chunk covers (n = rows.stop - rows.start).
    log_px : ndarray, shape (n,)
        log p(x).
    log_e0 : ndarray, shape (n, R)
        log e0 = log P(z in w | x); -inf for pruned pairs.
    e0 : ndarray, shape (n, R)
        P(z in w | x); rows sum to 1.
    e1 : ndarray, shape (n, R, S)
        E[z 1_w(z) | x].
    E2 : ndarray, shape (n, R, S, S)
        E[z z^T 1_w(z) | x].
    cmean : ndarray, shape (n, R, S)
        E[z | x, z in w] (the truncated-Gaussian mean; 0 where e0 == 0).
    ccov : ndarray, shape (n, R, S, S)
        Cov[z | x, z in w] (0 where e0 == 0), computed about the region's own mean.
    mean : ndarray, shape (n, S)
        Posterior mean E[z | x] = sum_w e1.
    cov : ndarray, shape (n, S, S)
        Posterior covariance, by the law of total variance (no cancellation against
        |mean|^2): sum_w e0 (ccov_w + (cmean_w - mean)(cmean_w - mean)^T).
    """

    rows: slice
    log_px: Arr
    log_e0: Arr
    e0: Arr
    e1: Arr
    E2: Arr
    cmean: Arr
    ccov: Arr
    mean: Arr
    cov: Arr


def _assemble(rows: slice, res: _ChunkResult) -> EStepChunk:
    # e0 from the shifted weights (not log_w - log_px: log_px ~ -1e5 far from the data would
    # carry its rounding, 1e-11, into every e0), so rows sum to 1 to rounding
    top = np.max(res.log_w, axis=1, keepdims=True)
    ew = np.exp(res.log_w - top)
    tot = ew.sum(axis=1, keepdims=True)
    e0 = ew / tot
    with np.errstate(divide="ignore"):
        log_e0 = (res.log_w - top) - np.log(tot)
    live = e0 > 0
    assert res.mu_z is not None and res.dm is not None and res.tcov is not None
    dm = res.dm
    cmean = np.where(live[..., None], res.mu_z + dm, 0.0)
    # the kernels' own truncated covariance: E[(z - mu)(z - mu)^T] - dm dm^T would cancel
    # for points far from the data (mu_w many posterior sd outside region w)
    ccov = np.where(live[..., None, None], res.tcov, 0.0)
    e1 = e0[..., None] * cmean
    E2 = e0[..., None, None] * (ccov + cmean[..., :, None] * cmean[..., None, :])
    mean = e1.sum(axis=1)
    dev = cmean - mean[:, None, :]
    cov = np.einsum("nr,nrij->nij", e0, ccov + dev[..., :, None] * dev[..., None, :])
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    return EStepChunk(rows, res.log_px, log_e0, e0, e1, E2, cmean, ccov, mean, cov)


def _prepare(net: DGN, X: ArrayLike, partition: Any, chunk_size: Any, prune: Any
             ) -> tuple[DGN, Arr, Partition, int | None, float | None]:
    net = _check_net(net)
    X = check_data(X, dim=net.data_dim)
    chunk_size = _check_chunk_size(chunk_size)
    prune = _check_prune(prune)
    partition = _check_partition(net, partition)
    return net, X, partition, chunk_size, prune


def _estep_chunks(net: DGN, partition: Partition | None, X: ArrayLike,
                  chunk_size: int | None = None, *, prune: float | None = DEFAULT_PRUNE
                  ) -> Iterator[EStepChunk]:
    """The E-step of X in blocks of rows, never materialising (N, R, S, S).

    Parameters
    ----------
    net : DGN
    partition : Partition or None
        The partition of ``net`` (or of a net with the same hidden layers: the affine maps
        are recomputed); None computes it.
    X : array_like, shape (N, D)
    chunk_size : int, optional
        Points per block (default: about 2^20 floats of per-pair moments per block).
    prune : float or None
        Log-weight margin of the skipped pairs (module notes); None evaluates every pair.

    Yields
    ------
    EStepChunk
        For consecutive row blocks of X: log_px (n,), log_e0 / e0 (n, R), e1 (n, R, S),
        E2 (n, R, S, S), cmean (n, R, S), ccov (n, R, S, S), mean (n, S), cov (n, S, S).
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    model = _model(net, partition)
    step = chunk_size or _default_chunk(model, moments=True)
    for a in range(0, X.shape[0], step):
        rows = slice(a, min(X.shape[0], a + step))
        yield _assemble(rows, _chunk(model, X[rows], True, prune))


@dataclass(frozen=True, eq=False)
class EStepStatistics:
    """Per-region sufficient statistics of the E-step, summed over the data.

    With e0, e1, E2, cmean, ccov as in :class:`EStepChunk` (n the data index, w the
    region)::

        s0[w]     = sum_n e0[n, w]                              (R,)
        s1[w]     = sum_n e1[n, w]                              (R, S)
        S2[w]     = sum_n E2[n, w]                              (R, S, S)
        x0[w]     = sum_n e0[n, w] x_n                          (R, D)
        x1[w]     = sum_n x_n e1[n, w]^T                        (R, D, S)
        xx        = sum_n x_n * x_n   (elementwise)             (D,)
        resid2    = sum_n sum_w E[(x_n - A_w z - b_w)^2 1_w(z) | x_n]   (D,) elementwise,
                  = sum_{n,w} e0 ((x_n - b_w - A_w cmean)^2 + diag(A_w ccov A_w^T)),
                    computed in this residual form (no cancellation at small noise)

    Attributes
    ----------
    n : int
        Number of data points.
    log_px : ndarray, shape (N,)
        log p(x_n); ``log_px.sum()`` is the exact log-likelihood.
    s0, s1, S2, x0, x1, xx, resid2 : ndarray
        As above.
    """

    n: int
    log_px: Arr
    s0: Arr
    s1: Arr
    S2: Arr
    x0: Arr
    x1: Arr
    xx: Arr
    resid2: Arr

    @property
    def log_likelihood(self) -> float:
        """sum_n log p(x_n)."""
        return float(np.sum(self.log_px))


def estep_statistics(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
                     chunk_size: int | None = None, prune: float | None = DEFAULT_PRUNE
                     ) -> EStepStatistics:
    """Sufficient statistics of the E-step (see :class:`EStepStatistics`), in O(R D S) memory.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition, chunk_size, prune
        As in :func:`posterior`.

    Returns
    -------
    EStepStatistics
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    model = _model(net, partition)
    A, b = _affine_maps(net, partition)
    R, S, D = model.R, model.S, model.D
    s0 = np.zeros(R)
    s1 = np.zeros((R, S))
    S2 = np.zeros((R, S, S))
    x0 = np.zeros((R, D))
    x1 = np.zeros((R, D, S))
    resid2 = np.zeros(D)
    log_px = np.empty(X.shape[0])
    step = chunk_size or _default_chunk(model, moments=True)
    # diag(A ccov A^T) per region and pair: sum_ij A_di A_dj ccov_ij
    for a in range(0, X.shape[0], step):
        rows = slice(a, min(X.shape[0], a + step))
        ch = _assemble(rows, _chunk(model, X[rows], True, prune))
        Xc = X[rows]
        log_px[rows] = ch.log_px
        s0 += ch.e0.sum(axis=0)
        s1 += ch.e1.sum(axis=0)
        S2 += ch.E2.sum(axis=0)
        x0 += ch.e0.T @ Xc
        x1 += np.einsum("nd,nri->rdi", Xc, ch.e1)
        nn, ww = np.nonzero(ch.e0 > 0)
        for w in np.unique(ww):
            sel = nn[ww == w]
            e0 = ch.e0[sel, w]
            res = Xc[sel] - b[w] - ch.cmean[sel, w] @ A[w].T               # (k, D)
            resid2 += e0 @ (res * res)
            AC = np.einsum("di,kij->kdj", A[w], ch.ccov[sel, w])
            resid2 += np.einsum("k,kdj,dj->d", e0, AC, A[w])
    return EStepStatistics(X.shape[0], log_px, s0, s1, S2, x0, x1,
                           np.einsum("nd,nd->d", X, X), resid2)


# =========================================================================== public API
def log_marginal(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
                 chunk_size: int | None = None, prune: float | None = DEFAULT_PRUNE) -> Arr:
    """log p(x) of every row of X (Theorem 1), exact up to float64 rounding.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
        Data points (a 1-D array of length D is one point).
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given; pass it to reuse it).
    chunk_size : int, optional
        Points per block; memory is O(chunk_size R S) plus O(N).
    prune : float or None, default 60
        Skip (point, region) pairs certified to carry less than exp(-prune) of p(x)
        (module notes); None evaluates every pair.

    Returns
    -------
    log_px : ndarray, shape (N,)
        Finite for every finite x (log space throughout).

    Raises
    ------
    dgn_core.data.DataError
        X of the wrong width, empty, or with NaN / infinite values.
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    model = _model(net, partition)
    step = chunk_size or _default_chunk(model, moments=False)
    out = np.empty(X.shape[0])
    for a in range(0, X.shape[0], step):
        b = min(X.shape[0], a + step)
        out[a:b] = _chunk(model, X[a:b], False, prune).log_px
    return out


@dataclass(frozen=True, eq=False)
class Posterior:
    """The posterior p(z | x) of every data point: a mixture of truncated Gaussians.

    Attributes
    ----------
    log_px : ndarray, shape (N,)
        log p(x).
    log_e0 : ndarray, shape (N, R)
        log P(z in w | x) (-inf for pairs skipped by pruning).
    e0 : ndarray, shape (N, R)
        P(z in w | x); rows sum to 1.
    e1 : ndarray, shape (N, R, S)
        E[z 1_w(z) | x].
    E2 : ndarray, shape (N, R, S, S)
        E[z z^T 1_w(z) | x].
    mean : ndarray, shape (N, S)
        E[z | x].
    cov : ndarray, shape (N, S, S)
        Cov[z | x] (law of total variance; accurate far from the origin).
    region_mean : ndarray, shape (N, R, S)
        E[z | x, z in w] (0 where e0 == 0).
    region_cov : ndarray, shape (N, R, S, S)
        Cov[z | x, z in w] (0 where e0 == 0).
    partition : Partition
        The regions w, in the order of the R axis.
    """

    log_px: Arr
    log_e0: Arr
    e0: Arr
    e1: Arr
    E2: Arr
    mean: Arr
    cov: Arr
    region_mean: Arr
    region_cov: Arr
    partition: Partition

    @property
    def region_weights(self) -> Arr:
        """P(z in w | x), shape (N, R) (the same array as ``e0``)."""
        return self.e0

    @property
    def n_points(self) -> int:
        return int(self.log_px.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.e0.shape[1])

    def most_probable_region(self) -> NDArray[np.intp]:
        """Index of the region of largest posterior probability per point, shape (N,)."""
        return np.argmax(self.log_e0, axis=1)

    def __repr__(self) -> str:
        return (f"Posterior({self.n_points} points, {self.n_regions} regions, "
                f"latent dimension {self.mean.shape[1]})")


def posterior(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
              chunk_size: int | None = None, prune: float | None = DEFAULT_PRUNE) -> Posterior:
    """The exact posterior of every row of X: log p(x), region weights and moments.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given).
    chunk_size : int, optional
        Points per block of the computation (the result itself is (N, R, S, S)).
    prune : float or None, default 60
        As in :func:`log_marginal`: pairs with e0 < exp(-prune) (certified) are 0.

    Returns
    -------
    Posterior
        log_px (N,), log_e0 and e0 (N, R), e1 (N, R, S), E2 (N, R, S, S), mean (N, S),
        cov (N, S, S), region_mean (N, R, S), region_cov (N, R, S, S), partition.
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    model = _model(net, partition)
    N, R, S = X.shape[0], model.R, model.S
    out = {k: np.empty(shape) for k, shape in (
        ("log_px", (N,)), ("log_e0", (N, R)), ("e0", (N, R)), ("e1", (N, R, S)),
        ("E2", (N, R, S, S)), ("mean", (N, S)), ("cov", (N, S, S)),
        ("cmean", (N, R, S)), ("ccov", (N, R, S, S)))}
    step = chunk_size or _default_chunk(model, moments=True)
    for a in range(0, N, step):
        rows = slice(a, min(N, a + step))
        ch = _assemble(rows, _chunk(model, X[rows], True, prune))
        for k, arr in out.items():
            arr[rows] = getattr(ch, k)
    return Posterior(out["log_px"], out["log_e0"], out["e0"], out["e1"], out["E2"],
                     out["mean"], out["cov"], out["cmean"], out["ccov"], partition)


# --------------------------------------------------------------------------- density
def _single_point(net: DGN, x: ArrayLike) -> Arr:
    x = check_data(x, dim=net.data_dim, name="x")
    if x.shape[0] != 1:
        raise DataError(f"x must be one data point of shape ({net.data_dim},), got {x.shape[0]} rows")
    return x


def _check_latent_points(net: DGN, Z: ArrayLike, name: str = "Z") -> Arr:
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array") from None
    S = net.latent_dim
    if Z.ndim == 1:
        Z = Z[:, None] if S == 1 else Z[None, :]
    if Z.ndim != 2 or Z.shape[1] != S:
        raise ValueError(f"{name} must have shape (M, {S}), got shape {np.shape(Z)}")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return Z


def log_posterior_density(net: DGN, x: ArrayLike, Z: ArrayLike, *,
                          partition: Partition | None = None) -> Arr:
    """log p(z | x) at latent points Z for one data point x (Theorem 1's mixture form).

    For z in region w: log p(z|x) = log kappa_w(x) + log N(z; mu_w(x), Sigma_w) - log p(x).

    Parameters
    ----------
    net : DGN
    x : array_like, shape (D,)
    Z : array_like, shape (M, S)
    partition : Partition, optional

    Returns
    -------
    ndarray, shape (M,)
    """
    net = _check_net(net)
    x = _single_point(net, x)
    Z = _check_latent_points(net, Z)
    partition = _check_partition(net, partition)
    model = _model(net, partition)
    res = _chunk(model, x, False, None)
    forms = _quadratic_forms(model, x)
    _refine(model, forms, _needs_refinement(model, forms))
    w = partition.locate(Z)                                                 # (M,)
    U = Z if model.Lz is None else np.linalg.solve(model.Lz, Z.T).T
    dev = U - forms.mu_u[0, w]                                              # whitened
    maha = np.einsum("mi,mij,mj->m", dev, model.G[w], dev)
    logdet_lz = 0.0 if model.Lz is None else 2.0 * float(np.sum(np.log(np.diag(model.Lz))))
    # log N(z; mu_w, Sigma_w), Sigma_w = L_z G^-1 L_z^T; log det Sigma_w = logdet L_z^2 - logdet G
    log_gauss = -0.5 * (model.S * _LOG_2PI + logdet_lz - model.logdet_G[w] + maha)
    log_kappa = model.const[w] - 0.5 * forms.Q[0, w]
    return log_kappa + log_gauss - res.log_px[0]


def posterior_density(net: DGN, x: ArrayLike, Z: ArrayLike, *,
                      partition: Partition | None = None) -> Arr:
    """p(z | x) at latent points Z (M, S) for one data point x (D,); shape (M,).

    ``exp`` of :func:`log_posterior_density` (which stays accurate where this underflows).
    """
    return np.exp(log_posterior_density(net, x, Z, partition=partition))


# =========================================================================== small QPs
def _subsets(m: int, sizes: range) -> Iterator[tuple[int, tuple[int, ...]]]:
    for k in sizes:
        for J in itertools.combinations(range(m), k):
            yield k, J


def _face_maps(Cu: Arr, d: Arr, H: Arr, points: Arr | None, flat: bool
               ) -> tuple[Arr, Arr]:
    """Linear maps of the candidate minimisers of a small QP on every face of a polyhedron.

    The problem is min_u  u^T H u - 2 y^T u  (+ |u|^2 as tie-break when ``flat``) over
    {Cu u <= d}, for many right-hand sides y. For every set J of fewer than S independent
    rows, the minimiser over the affine hull {Cu_J u = d_J} is u = K_J y + k_J (with the
    minimum-norm choice among minimisers when H is singular); ``points`` (vertices) are
    added as constant candidates. The optimum lies in the relative interior of some face,
    where it is the candidate of that face's affine hull: so the best feasible candidate is
    the optimum (exact up to rounding; no iterative solver).

    Returns
    -------
    K : ndarray, shape (J, S, S)
    k : ndarray, shape (J, S)
    """
    m, S = Cu.shape
    Ks, ks = [], []
    norms = np.linalg.norm(Cu, axis=1)
    for size, Jt in _subsets(m, range(min(S, m + 1))):
        J = list(Jt)
        if size == 0:
            N = np.eye(S)
            u0 = np.zeros(S)
        else:
            CJ = Cu[J] / norms[J, None]
            _, sv, Vt = np.linalg.svd(CJ)
            if sv[-1] <= _RANK_RTOL * sv[0] * size:
                continue
            N = Vt[size:].T                                                 # (S, S - size)
            u0 = np.linalg.lstsq(CJ, d[J] / norms[J], rcond=None)[0]        # min-norm point
        Hn = N.T @ H @ N
        if flat:
            Hp = np.linalg.pinv(Hn, rcond=_RANK_RTOL, hermitian=True)
        else:
            Hp = np.linalg.inv(Hn)
        K = N @ Hp @ N.T
        Ks.append(K)
        ks.append(u0 - K @ (H @ u0))
    if points is not None and len(points):
        for v in points:
            Ks.append(np.zeros((S, S)))
            ks.append(np.asarray(v, dtype=np.float64))
    return np.array(Ks).reshape(-1, S, S), np.array(ks).reshape(-1, S)


def _feasible(U: Arr, Cu: Arr, d: Arr) -> NDArray[np.bool_]:
    """U (..., S) satisfies Cu u <= d up to _FEAS_RTOL relative; shape (...)."""
    if Cu.shape[0] == 0:
        return np.ones(U.shape[:-1], dtype=bool)
    lhs = U @ Cu.T
    tol = _FEAS_RTOL * (1.0 + np.abs(d) + np.linalg.norm(Cu, axis=1)
                        * np.linalg.norm(U, axis=-1)[..., None])
    return np.all(lhs <= d + tol, axis=-1)


def _nearest_point(a: Arr, h: Arr) -> Arr:
    """The point of {a u <= h} (non-empty, a (m, k)) of least Euclidean norm, shape (k,)."""
    k = a.shape[1]
    if np.all(h >= 0):
        return np.zeros(k)
    _, kk = _face_maps(a, h, np.zeros((k, k)), None, flat=True)
    cand = kk                                                               # y = 0
    # rank-k sets (vertices) too: the nearest point can be a vertex
    verts = []
    for J in itertools.combinations(range(a.shape[0]), k):
        CJ = a[list(J)]
        sv = np.linalg.svd(CJ, compute_uv=False)
        if sv[-1] > _RANK_RTOL * sv[0] * k:
            verts.append(np.linalg.solve(CJ, h[list(J)]))
    if verts:
        cand = np.vstack([cand, np.array(verts)])
    ok = _feasible(cand, a, h)
    if not ok.any():
        raise RuntimeError("no feasible point found for a polyhedron that should be non-empty")
    nrm = np.where(ok, np.sum(cand * cand, axis=1), np.inf)
    return cand[int(np.argmin(nrm))]


# =========================================================================== MAP latent
def map_latent(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
               prior: Literal["gaussian", "flat"] = "gaussian", chunk_size: int | None = None,
               return_info: bool = False) -> Any:
    """The most probable latent point of every data point (per-region convex QPs).

    With s = sqrt(diag Sigma_x) (the noise standard deviations):

    * ``prior="gaussian"`` (the posterior mode, MAP): the minimiser of
      ``F(z) = ||(x - g(z)) / s||^2 + z^T Sigma_z^-1 z``, i.e. of -2 log p(x|z) p(z).
      On region w this is min ||(x - A_w z - b_w)/s||^2 + z^T Sigma_z^-1 z subject to
      C_w z <= d_w, strictly convex; the answer is the best region's minimiser. For a model
      with Sigma_x = I this is docs/DESIGN.md §2.6's z*(x) = argmin ||x - g(z)||^2 + z^T Sigma_z^-1 z.
    * ``prior="flat"``: the minimiser of ``f(z) = ||(x - g(z)) / s||^2`` (no prior term);
      for isotropic noise GLO's latent argmin ||x - g(z)||^2 (Prop. 3). When the minimiser is
      not unique (x on the generator's image with several preimages, rank-deficient A_w),
      the one of least z^T Sigma_z^-1 z is returned: that is the limit of the Gaussian-prior
      mode as the noise goes to zero, where the posterior concentrates (Lemma 2). Fits
      within a relative 1e-9 of the best (plus (1e-10 (1 + |x/s|))^2 absolute, the rounding
      level of an exact fit) count as ties.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition : Partition, optional
    prior : {"gaussian", "flat"}
    chunk_size : int, optional
        Points per block.
    return_info : bool
        Also return the region index and the objective value (F, or f for flat).

    Returns
    -------
    Z : ndarray, shape (N, S)
    region : ndarray of int, shape (N,)   (only with ``return_info``)
    objective : ndarray, shape (N,)       (only with ``return_info``)

    Notes
    -----
    Each region's QP is solved exactly by enumerating the faces of the region (sets of
    fewer than S facets, and the vertices): the minimiser over each face's affine hull is a
    closed-form linear map of x, and the best feasible one (feasibility tolerance 1e-9
    relative) is the QP's solution. Objectives are evaluated in residual form.
    """
    net, X, partition, chunk_size, _ = _prepare(net, X, partition, chunk_size, None)
    if prior not in ("gaussian", "flat"):
        raise ValueError(f"prior must be 'gaussian' or 'flat', got {prior!r}")
    flat = prior == "flat"
    model = _model(net, partition)
    N, R, S, D = X.shape[0], model.R, model.S, model.D
    Lz = model.Lz
    faces = []
    for w, region in enumerate(partition):
        C = np.asarray(region.C, dtype=np.float64).reshape(-1, S)
        d = np.asarray(region.d, dtype=np.float64)
        V = np.asarray(region.vertices, dtype=np.float64).reshape(-1, S)
        Cu = C if Lz is None else C @ Lz
        Vu = V if Lz is None else np.asarray(np.linalg.solve(Lz, V.T).T, dtype=np.float64)
        GB = model.G[w] - np.eye(S)
        K, k = _face_maps(Cu, d, GB if flat else model.G[w], Vu, flat)
        faces.append((Cu, d, K, k))
    Zout = np.empty((N, S))
    reg = np.empty(N, dtype=np.intp)
    obj = np.empty(N)
    step = chunk_size or max(1, _RESIDUAL_FLOATS // (D + R * S + 1))
    for a in range(0, N, step):
        rows = slice(a, min(N, a + step))
        Xt = X[rows] * model.inv_s
        n = Xt.shape[0]
        xn = np.linalg.norm(Xt, axis=1)
        best_f = np.full(n, np.inf)
        best_p = np.full(n, np.inf)
        best_u = np.zeros((n, S))
        best_w = np.zeros(n, dtype=np.intp)
        for w, (Cu, d, K, k) in enumerate(faces):
            Bw, bw = model.B[w], model.bt[w]
            y = (Xt - bw) @ Bw                                                # (n, S)
            U = np.einsum("jab,nb->nja", K, y) + k                            # (n, J, S)
            ok = _feasible(U, Cu, d)
            if not ok.any(axis=1).all():  # rounding: keep the least violating candidate
                viol = np.max(U @ Cu.T - d, axis=-1) if Cu.shape[0] else np.zeros(U.shape[:2])
                bad = ~ok.any(axis=1)
                ok[bad, np.argmin(viol[bad], axis=1)] = True
            f, p = _objectives(U, Xt, Bw, bw)
            if flat:
                fm = np.min(np.where(ok, f, np.inf), axis=1, keepdims=True)
                tie = ok & (f <= fm + _flat_tie_tol(fm, xn[:, None]))
                j = np.argmin(np.where(tie, p, np.inf), axis=1)
            else:
                j = np.argmin(np.where(ok, f + p, np.inf), axis=1)
            ar = np.arange(n)
            fw, pw, uw = f[ar, j], p[ar, j], U[ar, j]
            if flat:
                better = (fw < best_f - _flat_tie_tol(np.minimum(fw, best_f), xn)) | (
                    (fw <= best_f + _flat_tie_tol(np.minimum(fw, best_f), xn)) & (pw < best_p))
            else:
                better = fw + pw < best_f + best_p
            best_f = np.where(better, fw, best_f)
            best_p = np.where(better, pw, best_p)
            best_u = np.where(better[:, None], uw, best_u)
            best_w = np.where(better, w, best_w)
        Zout[rows] = best_u if Lz is None else best_u @ Lz.T
        reg[rows] = best_w
        obj[rows] = best_f if flat else best_f + best_p
    if return_info:
        return Zout, reg, obj
    return Zout


def _flat_tie_tol(fm: Arr, xn: Arr) -> Arr:
    return 1e-9 * np.abs(fm) + (1e-10 * (1.0 + xn)) ** 2


def _objectives(U: Arr, Xt: Arr, Bw: Arr, bw: Arr) -> tuple[Arr, Arr]:
    """f = ||x~ - b~ - B u||^2 (residual form) and p = |u|^2 for candidates U (n, J, S)."""
    n, J, _ = U.shape
    f = np.empty((n, J))
    step = max(1, _RESIDUAL_FLOATS // max(1, J * Bw.shape[0]))
    for a in range(0, n, step):
        E = (Xt[a:a + step] - bw)[:, None, :] - U[a:a + step] @ Bw.T       # (k, J, D)
        f[a:a + step] = np.einsum("kjd,kjd->kj", E, E)
    return f, np.einsum("njs,njs->nj", U, U)


# =========================================================================== sampling
def _sample_interval(lo: Arr, hi: Arr, rng: np.random.Generator) -> Arr:
    """Exact inverse-CDF draws of N(0, 1) truncated to [lo, hi] (arrays of one shape).

    F(t) = V is solved in log space from the lower tail when t <= 0 and from the upper tail
    otherwise, so draws deep in either tail keep full relative accuracy.
    """
    V = rng.random(np.shape(lo))
    with np.errstate(divide="ignore"):
        lv, l1v = np.log(V), np.log1p(-V)
        t1 = ndtri_exp(np.logaddexp(l1v + log_ndtr(lo), lv + log_ndtr(hi)))
        t2 = -ndtri_exp(np.logaddexp(lv + log_ndtr(-hi), l1v + log_ndtr(-lo)))
    t = np.where(t1 <= 0, t1, t2)
    return np.clip(t, lo, hi)


def _normalise_rows(a: Arr, h: Arr) -> tuple[Arr, Arr]:
    """Unit rows; rows with a ~ 0 (constraints 0 <= h, true on the non-empty set) dropped."""
    nrm = np.linalg.norm(a, axis=1)
    keep = nrm > _RANK_RTOL * max(1.0, float(np.max(nrm, initial=0.0)))
    return a[keep] / nrm[keep, None], h[keep] / nrm[keep]


def _log_mass_whitened(a: Arr, h: Arr) -> float:
    k = a.shape[1]
    return float(PolyhedronCones.from_halfspaces(a, h).log_mass(np.zeros(k), np.eye(k)))


def _sample_whitened(a: Arr, h: Arr, n: int, rng: np.random.Generator,
                     log_mass: float | None = None, method: str = "auto") -> Arr:
    """n exact draws of N(0, I_k) truncated to {a u <= h} (unit rows a (m, k)), (n, k).

    ``method``: "auto" (below), or "reject" / "sequential" to force one (tests).

    * k = 1: inverse CDF on the interval (closed form).
    * acceptance >= _MIN_ACCEPT: rejection from N(0, I) when log_mass is large, else from
      N(0, I) restricted to the supporting half-space {n.u >= delta} at the nearest point
      n delta of the polyhedron (it contains the polyhedron), whose acceptance is
      mass / Phi(-delta) (decays only polynomially in delta).
    * otherwise sequential inverse CDF: the first coordinate (along n) from its marginal
      CDF F(t) = mass(P and {u_1 <= t}) / mass(P) (log-space Gaussian masses of the cut
      polyhedron), solved by Brent's method to |t - t*| <= 1e-12 (1 + |t*|) whitened units;
      then the slice at u_1 = t, recursively.
    """
    m, k = a.shape
    if n == 0:
        return np.zeros((0, k))
    if m == 0:
        return rng.standard_normal((n, k))
    if k == 1:
        c = a[:, 0]
        hi = np.min(h[c > 0] / c[c > 0]) if np.any(c > 0) else np.inf
        lo = np.max(h[c < 0] / c[c < 0]) if np.any(c < 0) else -np.inf
        return _sample_interval(np.full(n, lo), np.full(n, hi), rng)[:, None]
    if log_mass is None:
        log_mass = _log_mass_whitened(a, h)
    if not np.isfinite(log_mass):
        raise ValueError("cannot sample from a truncated Gaussian on a set of zero mass")
    p = _nearest_point(a, h)
    delta = float(np.linalg.norm(p))
    acc_plain = math.exp(log_mass)
    acc_half, delta_s = 0.0, 0.0
    if delta > 0:
        # a slightly larger half-space, still containing the polyhedron whatever the rounding
        delta_s = delta * (1.0 - 1e-9) - 1e-12
        acc_half = math.exp(min(0.0, log_mass - float(log_ndtr(-delta_s))))
    if method == "sequential" or (method == "auto" and max(acc_plain, acc_half) < _MIN_ACCEPT):
        return np.array([_sequential_draw(a, h, p, log_mass, rng) for _ in range(n)])
    use_half = delta > 0 and acc_plain < _PLAIN_ACCEPT and acc_half > acc_plain
    acc = acc_half if use_half else acc_plain
    out = np.empty((n, k))
    got, proposed = 0, 0
    cap = max(64, (1 << 22) // k)
    while got < n:
        batch = int(min(cap, max(64, 1.5 * (n - got) / acc)))
        G = rng.standard_normal((batch, k))
        if use_half:
            # u = t nv + (component orthogonal to nv), t ~ N(0, 1) truncated to [delta_s, inf)
            nv = p / delta
            with np.errstate(divide="ignore"):
                t = -ndtri_exp(np.log(rng.random(batch)) + float(log_ndtr(-delta_s)))
            G = G - np.outer(G @ nv, nv) + np.outer(np.maximum(t, delta_s), nv)
        inside = np.all(G @ a.T <= h, axis=1)
        take = G[inside][: n - got]
        out[got:got + len(take)] = take
        got += len(take)
        proposed += batch
        if proposed > 1e10:  # pragma: no cover - acceptance was certified >= _MIN_ACCEPT
            raise RuntimeError("rejection sampler made no progress (acceptance estimate wrong)")
    return out


def _sequential_draw(a: Arr, h: Arr, p: Arr, log_mass: float, rng: np.random.Generator) -> Arr:
    """One exact draw by sequential inverse CDF (see :func:`_sample_whitened`)."""
    k = a.shape[1]
    # orthonormal basis with the first axis toward the nearest point (the tail direction)
    first = p / np.linalg.norm(p) if np.linalg.norm(p) > 0 else np.eye(k)[0]
    Qb, _ = np.linalg.qr(np.column_stack([first, np.eye(k)]))
    Qb = Qb[:, :k]
    if Qb[:, 0] @ first < 0:
        Qb[:, 0] = -Qb[:, 0]
    aq = a @ Qb                                                             # rows in w-coords
    U = rng.random()
    log_target = math.log(U) + log_mass if U > 0 else -np.inf
    e1 = np.zeros(k)
    e1[0] = 1.0

    def log_cdf_mass(t: float) -> float:
        return _log_mass_whitened(np.vstack([aq, e1]), np.append(h, t))

    # bracket: Phi(t) >= mass(cut) and Phi(-t) >= mass(P) - mass(cut)
    lo_t = float(ndtri_exp(log_target + math.log(1e-3))) if np.isfinite(log_target) else -40.0
    hi_q = math.log1p(-U) + log_mass + math.log(1e-3) if U < 1 else -745.0
    hi_t = -float(ndtri_exp(hi_q))
    # the extent of P along w_1 (LP), which bounds the bracket where it is finite
    for sign in (1.0, -1.0):
        res = optimize.linprog(sign * e1, A_ub=aq, b_ub=h, bounds=[(None, None)] * k,
                               method="highs")
        if res.status == 0:
            if sign > 0:
                lo_t = max(lo_t, float(res.x[0]))
            else:
                hi_t = min(hi_t, float(res.x[0]))

    def g(t: float) -> float:
        return math.exp(log_cdf_mass(t) - log_mass) - U

    if hi_t <= lo_t:
        t = 0.5 * (lo_t + hi_t)
    else:
        glo, ghi = g(lo_t), g(hi_t)
        if glo >= 0:
            t = lo_t
        elif ghi <= 0:
            t = hi_t
        else:
            t = optimize.brentq(g, lo_t, hi_t, xtol=_ROOT_XTOL, rtol=_ROOT_RTOL, maxiter=200)
    # the slice w_1 = t
    a2, h2 = _normalise_rows(aq[:, 1:], h - aq[:, 0] * t)
    rest = _sample_whitened(a2, h2, 1, rng)[0] if k > 1 else np.zeros(0)
    return Qb @ np.concatenate([[t], rest])


def _sample_region(C: Arr, d: Arr, mean: Arr, cov: Arr, n: int, rng: np.random.Generator,
                   log_m0: float | None, method: str = "auto") -> Arr:
    """n exact draws of N(mean, cov) truncated to {C z <= d}, shape (n, S)."""
    L = np.linalg.cholesky(cov)
    a, h = _normalise_rows(C @ L, d - C @ mean)
    U = _sample_whitened(a, h, n, rng, log_m0, method)
    return mean + U @ L.T


def sample_posterior(net: DGN, x: ArrayLike, n: int, seed: int | np.random.Generator | None = None,
                     *, partition: Partition | None = None) -> Arr:
    """Exact samples of p(z | x), a mixture of truncated Gaussians (not MCMC).

    A region w is drawn with probability e0_w(x), then an exact draw of N(mu_w, Sigma_w)
    truncated to w: by rejection from N(mu_w, Sigma_w) when that accepts often, otherwise
    from the Gaussian restricted to the supporting half-space at the point of w nearest to
    mu_w (acceptance m0 / Phi(-delta) with delta that point's Mahalanobis distance), and
    by sequential inverse-CDF sampling when both accept less than 1e-6 (root finding to
    1e-12 (1 + |t|) posterior standard deviations; see :func:`_sample_whitened`).

    Parameters
    ----------
    net : DGN
    x : array_like, shape (D,)
    n : int
        Number of samples (>= 0).
    seed : int or numpy.random.Generator, optional
    partition : Partition, optional

    Returns
    -------
    Z : ndarray, shape (n, S)
        In random order.
    """
    net = _check_net(net)
    x = _single_point(net, x)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = np.random.default_rng(seed)
    partition = _check_partition(net, partition)
    model = _model(net, partition)
    res = _chunk(model, x, False, None)
    assert res.mu_z is not None and res.log_m0 is not None
    logw = res.log_w[0]
    prob = np.exp(logw - logsumexp(logw))
    prob = prob / prob.sum()
    counts = rng.multinomial(int(n), prob)
    S = model.S
    out = np.empty((int(n), S))
    pos = 0
    for w in np.flatnonzero(counts):
        r = partition[int(w)]
        C = np.asarray(r.C, dtype=np.float64).reshape(-1, S)
        d = np.asarray(r.d, dtype=np.float64)
        k = int(counts[w])
        out[pos:pos + k] = _sample_region(C, d, res.mu_z[0, w], model.cov_z[w], k, rng,
                                          float(res.log_m0[0, w]))
        pos += k
    return out[rng.permutation(int(n))]
