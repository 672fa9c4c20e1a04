"""Compiled adaptive 1-D log-integrals of the k = 3 kernel, one problem at a time.

The rule of :func:`fastpath._orthant_adaptive._adaptive_log_integral` (whose notes give it in
full) element by element instead of array by array: windows of ``N_NODES`` Gauss-Legendre
nodes refined by node-based passes (extend a free end while the integrand there, or the
secant bound of a concave log-integrand beyond it, is above e^-LEVEL of the maximum; shrink
to the bracket of the level set when fewer than 60% of the nodes lie above it), the
Legendre-tail test of the log-integrand at the nodes, and the parent/children refinement of
an unresolved window (a kink) to ``_REFINE_TOL``. The same constants, the same decisions:
the two implementations are cross-tested route by route (tests/test_jit_tvn.py).

The integrands are those of :func:`fastpath._tvn._log_tvn_plackett` (see :func:`evaluate`):
``BASE`` phi(x) Phi(beta_j) Phi(beta_k), ``ANTI`` phi(x) [Phi(beta_j) + Phi(beta_k) - 1]_+,
``PLACK`` Plackett's integrand in the Gaussianising variable u and ``PLACK_END`` the same
in x = log(r - r_a)/2 (:mod:`fastpath._tvn_end`). A numba kernel cannot
take a Python callable cheaply, so the integrand is chosen by ``kind`` with its parameters
in a float64 vector ``p``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, jit_inline
from ._jit_lnd import log_ndtr_vec, log_vec
from ._jit_special import exp_vec, gl_rule, log_ndtr, log_ndtr_diff, logaddexp, sorted_head, sum4
from ._orthant_adaptive import _REFINE_TOL, _SOV_DEPTH, _SOV_MAX_PANELS, _SOV_PASSES
from ._orthant_rules import _LOG_SQRT_2PI, _legendre_tail

#: Gauss-Legendre nodes per window / panel and log window level (_tvn._TVN_NODES, _TVN_LEVEL)
N_NODES = 40
LEVEL = 36.0
_X, _W = gl_rule(N_NODES)
_TAIL = np.ascontiguousarray(_legendre_tail(N_NODES))
_EPS = float(np.finfo(np.float64).eps)
#: children of one refinement level (three per open panel)
MAX_CHILD = 3 * _SOV_MAX_PANELS
#: rows of the scratch arrays (L and X of every child, and one for the window passes)
SCRATCH_ROWS = MAX_CHILD + 1
#: shape of the float scratch ``sF`` (panel values, cuts of the children, sums, and the
#: node arguments of :func:`evaluate`)
SCRATCH_F, SCRATCH_W = 9, max(MAX_CHILD, 2 * N_NODES)
#: log(1 - e^-0.7): below it log_ndtr_diff integrates phi instead (see :func:`evaluate`)
_LOG_CLOSE = math.log(-math.expm1(-0.7))
#: integrand kinds (see :func:`evaluate`)
BASE, ANTI, PLACK, PLACK_END = 0, 1, 2, 3
#: length of the parameter vector ``p``
N_PAR = 12


@jit_inline
def fmin(a: float, b: float) -> float:
    """np.minimum for scalars: nan if either is nan."""
    if a != a or b != b:
        return math.nan
    return a if a < b else b


@jit_inline
def fmax(a: float, b: float) -> float:
    """np.maximum for scalars: nan if either is nan."""
    if a != a or b != b:
        return math.nan
    return a if a > b else b


@jit
def _lnd_inplace(buf: NDArray[np.float64], m: int) -> None:
    """buf[:m] = log Phi(buf[:m]): the one inlined copy of :func:`log_ndtr_vec` (a map
    that LLVM vectorises; one copy keeps the compile time down)."""
    for i in range(m):
        buf[i] = log_ndtr_vec(buf[i])


@jit
def _log_inplace(buf: NDArray[np.float64], m: int) -> None:
    """buf[:m] = log(buf[:m]) (vectorised :func:`log_vec`; positive normal entries)."""
    for i in range(m):
        buf[i] = log_vec(buf[i])


@jit
def evaluate(kind: int, p: NDArray[np.float64], A: float, B: float, L: NDArray[np.float64],
             X: NDArray[np.float64], buf: NDArray[np.float64]) -> float:
    """The log-integrand at the N_NODES Gauss-Legendre nodes of [A, B]: fills ``L`` with
    its value minus the returned offset (nan as -inf) and ``X`` with the nodes; ``buf``
    is scratch of 2 N_NODES.

    BASE, ANTI: p = (h_j, h_k, r_ij, r_ik, s_j, s_k); the nodes as exact offsets y = B - x
    from the right end (the values stay exact where x is large), offset -B^2/2 - log
    sqrt(2 pi). PLACK: p = (h_i, h_j, h_k, r_ij, r_ik, s_j s_k, r_ij r_ik, s_a, s_c,
    4 s_a s_c, psi?, offset) as :func:`fastpath._tvn._tvn_plackett_term`.

    Every loop is straight-line (arguments, then :func:`_lnd_inplace` / :func:`_log_inplace`
    over all of them, then the sums), so that LLVM vectorises it; what needs a libm call
    (tan for psi, log(Phi(b) - Phi(a)) where Phi(a) > Phi(b)/2) is done in a second,
    scalar loop over the nodes concerned.
    """
    n = _X.size
    W = B - A
    if kind == PLACK_END:
        _plack_end(p, A, W, L, X, buf)
        return p[8]
    if kind == PLACK:
        hi_, hj, hk, rij, rik, sjk, r0 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
        sa, sc, q4 = p[7], p[8], p[9]
        if p[10] != 0.0:
            _plack_psi(p, A, W, L, X)
            return p[11]
        for i in range(n):
            u = A + W * _X[i]
            X[i] = u
            rq = math.sqrt(u * u + q4)
            t = (u + rq) / (2.0 * sc) if u >= 0.0 else 2.0 * sa / (rq - u)
            buf[i] = rq * (t + 1.0 / t)
            tt = t * t
            one_p = 1.0 + tt
            r = (1.0 - tt) / one_p
            omr2 = 4.0 * tt / (one_p * one_p)  # 1 - r^2
            cc = (r - r0) / sjk
            det = sjk * sjk * (1.0 - cc) * (1.0 + cc)
            num = hi_ * omr2 - (rij - r * rik) * hj - (rik - r * rij) * hk
            det = 0.0 if det <= 0.0 else det  # nan stays nan
            ui = num / math.sqrt(det * omr2)
            buf[n + i] = -math.inf if ui != ui else ui
        _log_inplace(buf, n)
        _lnd_inplace(buf[n:], n)
        for i in range(n):
            v = (-X[i] * X[i] - buf[i]) + buf[n + i]
            L[i] = -math.inf if v != v else v
        return p[11]
    hj, hk, rij, rik, sj, sk = p[0], p[1], p[2], p[3], p[4], p[5]
    cj = (hj - rij * B) / sj
    ck = (hk - rik * B) / sk
    gj = rij / sj
    gk = rik / sk
    anti = kind == ANTI
    for i in range(n):
        y = W * (1.0 - _X[i])
        X[i] = B - y
        bj = cj + gj * y
        bk = ck + gk * y
        # ANTI: log(Phi(b_j) - Phi(-b_k)) as log_ndtr_diff, reflected into the lower half
        flip = bj - bk > 0.0
        buf[i] = (-bj if flip else -bk) if anti else bj
        buf[n + i] = (bk if flip else bj) if anti else bk
    _lnd_inplace(buf, 2 * n)
    if not anti:
        for i in range(n):
            y = W * (1.0 - _X[i])
            v = (B * y - 0.5 * y * y) + (buf[i] + buf[n + i])
            L[i] = -math.inf if v != v else v
        return -0.5 * B * B - _LOG_SQRT_2PI
    # lhi + log(1 - e^d), d = log Phi(lo) - log Phi(hi) <= -0.7 (log_ndtr_diff's rule);
    # the other nodes of the support (marked +inf) by log_ndtr_diff itself
    for i in range(n):
        d = buf[i] - buf[n + i]
        buf[i] = 1.0 - exp_vec(0.0 if d > 0.0 else d)
    _log_inplace(buf, n)
    close = 0
    for i in range(n):
        y = W * (1.0 - _X[i])
        v = (B * y - 0.5 * y * y) + (buf[n + i] + buf[i])
        v = -math.inf if v != v else v
        inside = -(ck + gk * y) < cj + gj * y
        v = v if inside else -math.inf
        # d > -0.7 (log(1 - e^d) below _LOG_CLOSE, or nan): marked for the scalar loop
        fix = inside and not buf[i] >= _LOG_CLOSE
        v = math.inf if fix else v
        close += 1 if fix else 0
        L[i] = v
    if close:
        for i in range(n):
            if L[i] == math.inf:
                y = W * (1.0 - _X[i])
                v = (B * y - 0.5 * y * y) + log_ndtr_diff(-(ck + gk * y), cj + gj * y)
                L[i] = -math.inf if v != v else v
    return -0.5 * B * B - _LOG_SQRT_2PI


@jit
def _plack_end(p: NDArray[np.float64], A: float, W: float, L: NDArray[np.float64],
               X: NDArray[np.float64], buf: NDArray[np.float64]) -> None:
    """PLACK_END nodes: Plackett's integrand in x = log(r - r_a)/2 (c < 0), as
    :func:`fastpath._tvn_end._tvn_plackett_end`; p = (h_i, h_M, h_m, num(r_a), num'(r_a),
    s_j s_k, 1 + r_a, 1 - r_a, offset). Straight-line loops, as in :func:`evaluate`."""
    n = _X.size
    hi_, hM, hm, num_a, nd1, sjk, opa, oma = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    for i in range(n):
        x = A + W * _X[i]
        X[i] = x
        dl = exp_vec(2.0 * x)
        omr2 = (oma - dl) * (opa + dl)  # 1 - r^2
        det = dl * (2.0 * sjk - dl)
        num = num_a + dl * (nd1 - hi_ * dl)
        r = (opa - 1.0) + dl
        ui = num / math.sqrt(det * omr2)
        dq = hm - r * hM
        L[i] = dq * dq / (2.0 * omr2)
        buf[i] = max(omr2, 1e-300)  # log_vec wants a normal positive argument
        buf[n + i] = -math.inf if ui != ui else ui
    _log_inplace(buf, n)
    _lnd_inplace(buf[n:], n)
    for i in range(n):
        v = ((-L[i] - 0.5 * buf[i]) + buf[n + i]) + 2.0 * X[i]
        L[i] = -math.inf if v != v else v


@jit
def _plack_psi(p: NDArray[np.float64], A: float, W: float, L: NDArray[np.float64],
               X: NDArray[np.float64]) -> None:
    """PLACK nodes in psi = atan t (h_j = h_k = 0, where u is constant)."""
    hi_, hj, hk, rij, rik, sjk, r0 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    for i in range(_X.size):
        u = A + W * _X[i]
        X[i] = u
        t = math.tan(u)
        tt = t * t
        one_p = 1.0 + tt
        r = (1.0 - tt) / one_p
        omr2 = 4.0 * tt / (one_p * one_p)
        cc = (r - r0) / sjk
        det = sjk * sjk * (1.0 - cc) * (1.0 + cc)
        num = hi_ * omr2 - (rij - r * rik) * hj - (rik - r * rij) * hk
        ui = num / math.sqrt(fmax(det, 0.0) * omr2)
        if ui != ui:
            ui = -math.inf
        v = log_ndtr(ui)
        L[i] = -math.inf if v != v else v


@jit
def _lmax(L: NDArray[np.float64]) -> float:
    m = -math.inf
    for i in range(L.size):
        if L[i] > m:
            m = L[i]
    return m


@jit
def _integral(L: NDArray[np.float64], lmax: float, A: float, B: float, off: float,
              tmp: NDArray[np.float64]) -> float:
    """log of the Gauss-Legendre sum of e^L on [A, B] plus ``off`` (the exp loop is a map
    that LLVM vectorises)."""
    if not math.isfinite(lmax):
        return -math.inf
    n = _X.size
    for i in range(n):
        tmp[i] = _W[i] * exp_vec(L[i] - lmax)
    return lmax + math.log(sum4(tmp, n) * (B - A)) + off


@jit
def _smooth(L: NDArray[np.float64], lmax: float) -> bool:
    """The Legendre coefficients of degree n-8..n-1 of the log-integrand (clipped 1e4 below
    its maximum) are at rounding level (_adaptive_log_integral's ``smooth``)."""
    n = _X.size
    floor = lmax - 1e4
    scale = 0.0
    for i in range(n):
        scale = max(scale, abs(max(L[i], floor)))
    tail = 0.0
    for j in range(_TAIL.shape[0]):
        s = 0.0
        for i in range(n):
            s += _TAIL[j, i] * max(L[i], floor)
        tail = fmax(tail, abs(s))
    return tail <= 1e-13 + 256.0 * _EPS * scale


@jit
def _split3(L: NDArray[np.float64], X: NDArray[np.float64], A: float, B: float,
            cut: NDArray[np.float64], tmp: NDArray[np.float64]) -> None:
    """Three panels [cut0, cut1], [cut1, cut2], [cut2, cut3] of [A, B]: around the node
    where the slope of L jumps when the jump stands out (> 30 times the median), else the
    two halves and an empty third (_adaptive_log_integral's ``split3``)."""
    n = _X.size
    m = n - 2
    best = -1.0
    j = 1
    prev = (L[1] - L[0]) / (X[1] - X[0])
    for i in range(m):
        sl = (L[i + 2] - L[i + 1]) / (X[i + 2] - X[i + 1])
        jump = abs(sl - prev)
        prev = sl
        if not math.isfinite(jump):
            jump = math.inf
        tmp[i] = jump
        if jump > best:
            best = jump
            j = i + 1
    srt = sorted_head(tmp, m)
    med = 0.5 * (srt[m // 2 - 1] + srt[m // 2]) if m % 2 == 0 else srt[m // 2]
    kinky = best > 30.0 * med
    mid = 0.5 * (A + B)
    cut[0] = A
    cut[3] = B
    if kinky:
        xk = X[j]
        d = max(X[j + 1] - xk, xk - X[j - 1])
        cut[1] = max(A, xk - d)
        cut[2] = min(B, xk + d)
    else:
        cut[1] = mid
        cut[2] = mid


@jit
def adaptive(kind: int, p: NDArray[np.float64], lo: float, hi: float, a: float, b: float,
             sL: NDArray[np.float64], sX: NDArray[np.float64], sF: NDArray[np.float64],
             cuts: NDArray[np.float64]) -> tuple[float, int]:
    """log int_lo^hi e^L for one unimodal log-integrand L (``kind``, ``p``); [a, b] the
    initial window inside [lo, hi]. Returns (value, integrand evaluations).

    Scratch: ``sL``, ``sX`` (SCRATCH_ROWS, N_NODES); ``sF`` (SCRATCH_F, SCRATCH_W);
    ``cuts`` (_SOV_MAX_PANELS, 4).
    """
    n = _X.size
    level = LEVEL
    rmax = math.sqrt(2.0 * level)
    n_ok = int(0.6 * n)
    tmp = sF[7]
    L = sL[0]
    X = sX[0]
    evals = 0
    for npass in range(_SOV_PASSES):
        A, B = a, b
        W = B - A
        off = evaluate(kind, p, A, B, L, X, sF[8])
        evals += n
        lmax = _lmax(L)
        c = lmax - level
        dead = not math.isfinite(lmax)
        sec_l = (L[1] - L[0]) / (X[1] - X[0])
        sec_r = (L[n - 1] - L[n - 2]) / (X[n - 1] - X[n - 2])
        left_ok = (not A > lo) or L[0] <= c or (sec_l > 0.0 and L[0] - sec_l * (X[0] - A) <= c)
        right_ok = (not B < hi) or L[n - 1] <= c or (
            sec_r < 0.0 and L[n - 1] + sec_r * (B - X[n - 1]) <= c)
        left_ok = left_ok and not dead
        right_ok = right_ok and not dead
        cnt = 0
        first = -1
        last = n - 1
        for i in range(n):
            if L[i] >= c:
                cnt += 1
                if first < 0:
                    first = i
                last = i
        if first < 0:
            first = 0
        frac_l = (X[first] - A) / W
        frac_r = (B - X[last]) / W
        res_ok = cnt >= n_ok and frac_l <= 0.15 and frac_r <= 0.15
        if (left_ok and right_ok and res_ok) or npass == _SOV_PASSES - 1:
            val = _integral(L, lmax, A, B, off, tmp)
            if dead or _smooth(L, lmax):
                return val, evals
            _split3(L, X, A, B, cuts[0], tmp)
            v, e = _refine(kind, p, val, lmax + off, sL, sX, sF, cuts)
            return v, evals + e
        # new window
        An, Bn = A, B
        g_l = 2.0 * ((L[2] - L[1]) / (X[2] - X[1]) - sec_l) / (X[2] - X[0])
        g_r = 2.0 * (sec_r - (L[n - 2] - L[n - 3]) / (X[n - 2] - X[n - 3])) / (X[n - 1] - X[n - 3])
        curv_l = fmax(-(g_l if math.isfinite(g_l) else -1.0), 1.0)
        curv_r = fmax(-(g_r if math.isfinite(g_r) else -1.0), 1.0)
        if not left_ok and not dead:
            d_l = sec_l + 0.5 * curv_l * (X[1] - X[0])
            m_l = X[0] + fmin(d_l, 0.0) / curv_l
            lm_l = L[0] + (0.5 * d_l * d_l / curv_l if d_l < 0.0 else 0.0)
            reach_l = math.sqrt(2.0 * fmax(lm_l - c, 0.0) / curv_l)
            step_l = (L[0] - c) / sec_l if sec_l > 0.0 else 2.0 * (X[0] - m_l + reach_l)
            if not math.isfinite(step_l):
                step_l = 2.0 * W + rmax
            step_l = max(step_l, 0.0)
            An = fmax(lo, X[0] - 1.1 * step_l - 0.01 * (W + step_l) - 1e-12 * abs(X[0]))
        if not right_ok and not dead:
            d_r = sec_r - 0.5 * curv_r * (X[n - 1] - X[n - 2])
            m_r = X[n - 1] + fmax(d_r, 0.0) / curv_r
            lm_r = L[n - 1] + (0.5 * d_r * d_r / curv_r if d_r > 0.0 else 0.0)
            reach_r = math.sqrt(2.0 * fmax(lm_r - c, 0.0) / curv_r)
            step_r = (L[n - 1] - c) / -sec_r if sec_r < 0.0 else 2.0 * (m_r - X[n - 1] + reach_r)
            if not math.isfinite(step_r):
                step_r = 2.0 * W + rmax
            step_r = max(step_r, 0.0)
            Bn = fmin(hi, X[n - 1] + 1.1 * step_r + 0.01 * (W + step_r) + 1e-12 * abs(X[n - 1]))
        if left_ok and right_ok and not res_ok:
            An = X[first - 1] if first > 0 else A
            Bn = X[last + 1] if last < n - 1 else B
        if dead:
            An = fmax(lo, A - 2.0 * W - 1.0)
            Bn = fmin(hi, B + 2.0 * W + 1.0)
        a = An
        b = fmax(Bn, An + 1e-300)
    return math.nan, evals  # not reached: the last pass accepts


@jit
def _refine(kind: int, p: NDArray[np.float64], par_val: float, sub_lmax: float,
            sL: NDArray[np.float64], sX: NDArray[np.float64], sF: NDArray[np.float64],
            cuts: NDArray[np.float64]) -> tuple[float, int]:
    """The refinement of one unresolved window (split ``cuts[0]``, value ``par_val``):
    each parent is split in three panels; where the children's sum agrees with the parent
    to _REFINE_TOL it is accepted, else the children not resolved themselves (and not
    negligible) become parents, at most _SOV_MAX_PANELS of them."""
    n = _X.size
    level = LEVEL
    pval = sF[0]
    tot = sF[1]
    ca = sF[2]
    cb = sF[3]
    cval = sF[4]
    coff = sF[5]
    clmax = sF[6]
    tmp = sF[7]
    cpar = np.empty(MAX_CHILD, dtype=np.int64)
    agree = np.empty(_SOV_MAX_PANELS, dtype=np.bool_)
    nxt = np.empty(MAX_CHILD, dtype=np.bool_)
    pval[0] = par_val
    npar = 1
    pres = -math.inf
    evals = 0
    for depth in range(_SOV_DEPTH):
        m = 0
        for q in range(npar):
            tot[q] = -math.inf
            for s in range(3):
                if cuts[q, s + 1] > cuts[q, s]:
                    cpar[m] = q
                    ca[m] = cuts[q, s]
                    cb[m] = cuts[q, s + 1]
                    m += 1
        for ch in range(m):
            coff[ch] = evaluate(kind, p, ca[ch], cb[ch], sL[ch + 1], sX[ch + 1], sF[8])
            evals += n
            clmax[ch] = _lmax(sL[ch + 1])
            cval[ch] = _integral(sL[ch + 1], clmax[ch], ca[ch], cb[ch], coff[ch], tmp)
            tot[cpar[ch]] = logaddexp(tot[cpar[ch]], cval[ch])
        last = depth == _SOV_DEPTH - 1
        for q in range(npar):
            t, pv = tot[q], pval[q]
            agree[q] = last or abs(t - pv) <= _REFINE_TOL * max(1.0, abs(t)) or (
                not math.isfinite(t) and not math.isfinite(pv))
            if agree[q]:
                pres = logaddexp(pres, t)
        nn = 0
        for ch in range(m):
            nxt[ch] = False
            if agree[cpar[ch]]:
                continue
            lm = clmax[ch]
            fine = (lm + coff[ch] < sub_lmax - level - 20.0 or not math.isfinite(lm)
                    or _smooth(sL[ch + 1], lm))
            if fine:
                pres = logaddexp(pres, cval[ch])
            else:
                nxt[ch] = True
                nn += 1
        if nn == 0:
            break
        if nn > _SOV_MAX_PANELS:
            # bounded work: an integrand not resolved by this many open panels is accepted
            for ch in range(m):
                if nxt[ch]:
                    pres = logaddexp(pres, cval[ch])
            break
        npar = 0
        for ch in range(m):
            if nxt[ch]:
                pval[npar] = cval[ch]
                _split3(sL[ch + 1], sX[ch + 1], ca[ch], cb[ch], cuts[npar], tmp)
                npar += 1
    return pres, evals


def _warmup() -> None:
    # the kernels of this module are compiled into those of fastpath._jit_tvn
    return None
