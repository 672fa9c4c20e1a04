"""The most probable latent point of a data point (:func:`map_latent`), by small exact QPs.

On every region the MAP problem (docs/DESIGN.md §2.6: Lemma 2, Prop. 3) is a convex
quadratic program over a polyhedron in S <= 4 dimensions. It is solved exactly, without an
iterative solver, by enumerating the faces of the region (:func:`_face_maps`): the
minimiser over each face's affine hull is a closed-form linear map of x, and the best
feasible candidate is the optimum. :func:`_nearest_point` (the point of a polyhedron
nearest to the origin, used by the samplers of :mod:`fastpath._sampling`) uses the same
enumeration.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._estep import _RESIDUAL_FLOATS, _model, _prepare

__all__ = ["map_latent"]

Arr = NDArray[np.float64]

#: feasibility tolerance of QP candidates, relative to |d| + |C||u| (map_latent, sampling)
_FEAS_RTOL = 1e-9
#: relative rank tolerance of active constraint sets and of the flat-prior pseudo-inverse
_RANK_RTOL = 1e-12


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

