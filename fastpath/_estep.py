"""The E-step of a DGN in float64: Theorem 1 for chunks of points.

This is the engine behind :func:`fastpath.log_marginal`, :func:`fastpath.posterior` and EM
(:func:`fastpath._estep_statistics.estep_statistics`, the sums EM needs). For the model
and notation see :mod:`fastpath.distributions` and docs/DESIGN.md §2.3. Computation
(everything in log space):

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
  :class:`fastpath.integrals.ConeBatch` (signed vertex cones, log space, central form;
  docs/DESIGN.md §2.4). log p(x) = logsumexp_w (log kappa_w + log Phi_w);
  e0 = exp(log kappa_w + log Phi_w - log p).
* Pruning (S >= 2; ``prune=True``, the default, is a margin of T = 60 nats). Phi_w <=
  Phi(-delta_w), delta_w the Mahalanobis distance from mu_w to w (the half-space supporting w
  at its nearest point contains w; :meth:`fastpath.integrals.ConeBatch.log_mass_bound`, no
  orthants), so u_w = log kappa_w + log Phi(-delta_w) bounds log(kappa_w Phi_w) from above
  (with the rounding bound of Q_w included). The cone integrals are evaluated only for pairs
  with u_w >= L - T, where L <= log p(x) is a log-sum-exp of evaluated pairs: every skipped
  pair has e0 < exp(-T) (8.8e-27 for T = 60) and the computed p(x) is low by a relative
  R exp(-T) at most. Skipped pairs get e0 = e1 = E2 = 0 (log e0 = -inf). Pairs are skipped
  only when that saves work: when more than half of a chunk's pairs survive the bound
  (checked first on 32 evenly spaced points of the chunk: above 65% there, the other points
  are not bounded), or S = 1 (the closed-form interval kernel is cheaper than the bound),
  every pair is evaluated. ``prune=False`` or ``None`` always evaluates every pair.
* Memory: points are processed in chunks (``chunk_size`` points; default about 2^20 /
  (R (1 + S + S^2)) floats of moments per chunk). :func:`fastpath.log_marginal` keeps O(N)
  memory; the E-step generator :func:`_estep_chunks` and
  :func:`fastpath._estep_statistics.estep_statistics` never materialise (N, R, S, S).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from dgn_core.data import check_data
from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import MAX_CONDITION

from ._checks import _check_chunk_size, _check_net, _check_partition, _check_prune
from ._cone_tail import TAIL_DISTANCE, cone_sum_only
from ._region_maps import affine_maps, cone_batch
from ._standardise import lower_solve
from ._threads import threads
from .integrals import ConeBatch

__all__ = ["EStepChunk", "kernel_threads"]

Arr = NDArray[np.float64]

_EPS = float(np.finfo(np.float64).eps)
_LOG_2PI = math.log(2.0 * math.pi)
#: refine Q in residual form where its rounding bound exceeds this times
#: max(1, Q, 2 |const_w|), the largest term of 2 log kappa_w (module notes)
_Q_RTOL = 2.0 ** -36
#: floats of per-pair moments per chunk (default chunk size)
_CHUNK_FLOATS = 1 << 20
#: pruning evaluates pairs region by region only when at most this fraction survives the
#: bound (otherwise one batched pass over every pair is faster)
_SPARSE_MAX_FRACTION = 0.5
#: S >= 2: the posterior moments of a chunk by the compiled :func:`fastpath._jit_estep.assemble`;
#: False: the numpy form of :func:`_assemble` (its test reference)
COMPILED_ASSEMBLY = [True]
#: points of a chunk whose bounds are computed first, and the surviving fraction above
#: which the chunk is evaluated densely without bounding the rest (the bound would not pay)
_PRUNE_PROBE = 32
_PROBE_DENSE = 0.65
#: floats of a (pairs, D) residual block in the refinement of Q
_RESIDUAL_FLOATS = 1 << 21
#: pairs with e0 >= exp(-this) get far-tail moments where their mean is far from the region
_TAIL_NATS = 46.0
#: ... and e0 d^5 above this (d the whitened distance; see _fix_tails)
_TAIL_WEIGHT = 100.0


# =========================================================================== precomputation
@dataclass(frozen=True, eq=False)
class _Model:
    """Per-region quantities of Theorem 1 that do not depend on x (whitened; module notes)."""

    partition: Partition
    cones: ConeBatch
    R: int
    S: int
    D: int
    A: Arr            # (R, D, S) A_w
    b: Arr            # (R, D) b_w
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


def _model(net: DGN, partition: Partition) -> _Model:
    """The x-independent quantities of ``net`` on the regions of ``partition``."""
    A, b = affine_maps(net, partition)
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
    # a noise variance far below the weights' scale makes G singular to float64 (its Cholesky
    # would raise LinAlgError, its inverse be garbage): named here, before either
    ev = np.linalg.eigvalsh(G)
    with np.errstate(divide="ignore", invalid="ignore"):
        condG = ev[:, -1] / ev[:, 0]
    bad = ~(condG < MAX_CONDITION)
    if np.any(bad):
        w = int(np.argmax(bad))
        raise ValueError(
            f"the noise variance (smallest {float(nv.min()):.3g}) is too small for float64 "
            f"at these weights: the posterior precision I + A_w^T Sigma_x^-1 A_w of region "
            f"{w} has condition number {float(condG[w]):.3g} (>= {MAX_CONDITION:.0e}); "
            f"verified_dgn computes this model exactly")
    LG = np.linalg.cholesky(G)
    logdet_G = 2.0 * np.sum(np.log(np.diagonal(LG, axis1=1, axis2=2)), axis=1)
    eye = np.broadcast_to(np.eye(S), G.shape)
    Ginv: Arr = np.asarray(np.linalg.solve(G, eye), dtype=np.float64)
    Ginv = 0.5 * (Ginv + np.swapaxes(Ginv, 1, 2))
    cov_z: Arr = Ginv if Lz is None else np.asarray(Lz @ Ginv @ Lz.T, dtype=np.float64)
    cov_z = 0.5 * (cov_z + np.swapaxes(cov_z, 1, 2))
    const = -0.5 * (D * _LOG_2PI + float(np.sum(np.log(nv))) + logdet_G)
    return _Model(
        partition=partition, cones=cone_batch(partition), R=R, S=S, D=D, A=A, b=b,
        inv_s=inv_s, Lz=Lz, B=B, Bcat=np.ascontiguousarray(B.transpose(1, 0, 2).reshape(D, R * S)),
        bt=bt, btT=np.ascontiguousarray(bt.T), bnorm=np.sqrt(np.sum(bt * bt, axis=1)),
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
    if S == 2:
        # the einsums below written out: the same products summed in the same order (equal
        # bit for bit), without einsum's overhead on a length-2 axis
        Gi = model.Ginv
        mu_u = np.empty_like(y)
        mu_u[..., 0] = Gi[:, 0, 0] * y[..., 0] + Gi[:, 0, 1] * y[..., 1]
        mu_u[..., 1] = Gi[:, 1, 0] * y[..., 0] + Gi[:, 1, 1] * y[..., 1]
        yGy = y[..., 0] * mu_u[..., 0] + y[..., 1] * mu_u[..., 1]
    else:
        mu_u = np.einsum("rij,nrj->nri", model.Ginv, y)
        yGy = np.einsum("nri,nri->nr", y, mu_u)
    rr = xx[:, None] - 2.0 * xb + model.bb
    Q = rr - yGy
    # rounding of the length-D dot products: the probabilistic bound lambda sqrt(D) eps |a||b|
    # (Higham & Mary 2019; lambda = 8 fails with probability < 2 exp(-32) per product). It
    # is 3.5x tighter than the worst-case D eps at D = 784 and still well above the actual
    # errors (checked against mpmath in tests/test_distributions_fast.py).
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


def _chunk(model: _Model, Xc: Arr, moments: bool, prune: float | None) -> _ChunkResult:
    """Theorem 1 for a chunk of points Xc (n, D): log p(x) and (central) region moments.

    The cone integrals of all pairs are evaluated by the signed cone sum; then the pairs
    that carry weight and whose mean lies far outside the region (whitened distance d >= 8
    and e0 d^5 >= 100: where the cone sum's covariance error, ~1e-14 d^5 relative, would
    reach 1e-12 of the posterior's) get their moments again with the far-tail method
    (:mod:`fastpath._cone_tail`), which the dense pass skips because most far pairs carry
    no weight.
    """
    with cone_sum_only():
        res = _chunk_cones(model, Xc, moments, prune)
    if moments:
        _fix_tails(model, res)
    return res


def _fix_tails(model: _Model, res: _ChunkResult) -> None:
    """Recompute, in place, the moments of the pairs with weight that lie far in a tail."""
    if model.S not in (2, 3):
        return
    assert res.dm is not None and res.tcov is not None and res.mu_z is not None
    Lc = np.asarray(np.linalg.cholesky(model.cov_z), dtype=np.float64)   # (R, S, S)
    if COMPILED_ASSEMBLY[0]:
        from ._jit_estep import far_pairs

        far = far_pairs(res.log_w, res.log_px, res.dm, Lc, _TAIL_NATS, TAIL_DISTANCE ** 2,
                        _TAIL_WEIGHT)
    else:
        far = _far_pairs_numpy(res, Lc)
    nn, ww = np.nonzero(far)
    if nn.size == 0:
        return
    _, b, c = model.cones._mean_cov_pairs(ww, res.mu_z[nn, ww], model.cov_z[ww])
    res.dm[nn, ww] = b
    res.tcov[nn, ww] = c


def _chunk_cones(model: _Model, Xc: Arr, moments: bool, prune: float | None,
                 forms: _Forms | None = None) -> _ChunkResult:
    """:func:`_chunk` with the cone sums' moments everywhere."""
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
            return _chunk_cones(model, Xc, moments, None, forms)
    upper = model.const - 0.5 * (forms.Q - forms.bound) + cones.log_mass_bound(mu_z, model.cov_z)
    todo = upper >= (np.max(upper, axis=1, keepdims=True) - prune)
    if todo.mean() > _SPARSE_MAX_FRACTION:
        # little to skip: one batched pass over every pair beats per-region calls
        return _chunk_cones(model, Xc, moments, None, forms)
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


def _far_pairs_numpy(res: _ChunkResult, Lc: Arr) -> NDArray[np.bool_]:
    """The screen of :func:`_fix_tails` in numpy (the compiled
    :func:`fastpath._jit_estep.far_pairs` is the same test): pairs with weight whose
    truncated mean lies far in a tail, as an (n, R) mask."""
    assert res.dm is not None
    far = np.zeros(res.log_w.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        cand = (res.log_w - res.log_px[:, None]) >= -_TAIL_NATS
    nn, ww = np.nonzero(cand)
    if nn.size == 0:
        return far
    # the truncated mean lies in the region, so its whitened offset from mu_w bounds the
    # distance from mu_w to the region from above: a cheap screen for "far"
    y = lower_solve(Lc[ww], res.dm[nn, ww])
    # ... and only where the cone sum's error matters: its covariance is off by ~1e-14 d^5
    # relative to itself (measured: 6e-11 at d = 8, 1e-4 at 100, 5e2 at 1000), weighted
    # by e0 in the posterior; pairs whose e0 d^5 stays below 100 keep it (<= 1e-12)
    d2 = np.sum(y * y, axis=-1)
    e0 = np.exp(res.log_w[nn, ww] - res.log_px[nn])
    far[nn, ww] = (d2 >= TAIL_DISTANCE ** 2) & (e0 * d2 * d2 * np.sqrt(d2) > _TAIL_WEIGHT)
    return far


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
    assert res.mu_z is not None and res.dm is not None and res.tcov is not None
    if res.mu_z.shape[2] >= 2 and COMPILED_ASSEMBLY[0]:
        # the rest in one compiled pass per point (S = 1 never imports the kernels)
        from ._jit_estep import assemble_chunk

        return EStepChunk(rows, res.log_px, *assemble_chunk(res.log_w, ew, top[:, 0],
                                                             tot[:, 0], res.mu_z, res.dm,
                                                             res.tcov))
    e0 = ew / tot
    with np.errstate(divide="ignore"):
        log_e0 = (res.log_w - top) - np.log(tot)
    live = e0 > 0
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
                  chunk_size: int | None = None, *, prune: float | bool | None = True
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
    prune : float, bool or None, default True
        Margin in nats of the skipped pairs (module notes): True is 60, a number (>= 30) is
        the margin, False or None evaluates every pair.

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


def kernel_threads(net: DGN, n_jobs: int | None) -> Any:
    """The thread block of an E-step computation: ``n_jobs`` kernel threads, and BLAS at one
    thread where compiled kernels run (S >= 2); at S = 1 there are none and BLAS keeps its
    threads for the large products of wide data."""
    return threads(n_jobs, blas=net.latent_dim >= 2)
