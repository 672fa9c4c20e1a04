"""Status codes and small scalar helpers of the compiled one-call lane (fastpath._jit_one_shot)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit

# status codes (0: done; the others name why the general path takes the call)
OK = 0
INVALID = 1        # not finite, covariance not clearly accepted: the general path checks
EMPTY = 2          # a zero row with d < 0, or a row overflowing: the general path's case
FAR = 3            # P at least the tail distance away (or overflow in the units)
LINES = 4          # rank < 2 (lines) or too many rows to enumerate
THIN = 5           # no interior point found clearly inside (LP, emptiness)
NONSIMPLE = 6      # a non-simple vertex, close vertices, duplicate rows, odd edges
TAIL = 7           # the tail slices of _cone_tail
CANCEL = 8         # cancellation beyond what the cubature took
NONFINITE = 9      # results not finite
ORTHANT = 10       # an orthant the general path computes by another route (S = 3)
REASONS = ("ok", "invalid input", "empty", "far", "lines or many rows", "thin or LP",
           "non-simple", "tail", "cancellation", "non-finite", "orthant route")



@jit
def round_half_even(x: float) -> float:
    r = float(math.floor(x + 0.5))
    if r - x == 0.5 and r % 2.0 != 0.0:
        r -= 1.0
    return r


@jit
def cov_ok(cov: NDArray[np.float64]) -> bool:
    """Finite, symmetric within 1e-10 of the largest entry, condition number < 1e12."""
    c00 = cov[0, 0]
    c01 = cov[0, 1]
    c10 = cov[1, 0]
    c11 = cov[1, 1]
    if not (math.isfinite(c00) and math.isfinite(c01) and math.isfinite(c10)
            and math.isfinite(c11)):
        return False
    scale = max(max(abs(c00), abs(c01)), max(abs(c10), abs(c11)))
    if not scale > 0.0 or abs(c01 - c10) > 1e-10 * scale:
        return False
    a = c00 / scale
    c = c11 / scale
    b = 0.5 * (c01 + c10) / scale
    if not (a > 0.0 and c > 0.0):
        return False
    hi = 0.5 * (a + c) + math.hypot(0.5 * (a - c), b)
    lo = (a * c - b * b) / hi
    return lo > 0.0 and hi < 1e12 * lo


@jit
def solve2(c00: float, c01: float, c10: float, c11: float, b0: float, b1: float
            ) -> tuple[float, float]:
    """[[c00, c01], [c10, c11]] x = b by LU with partial pivoting (as LAPACK's gesv: the
    multiplier by the pivot's reciprocal), more accurate than Cramer's rule for nearly
    parallel rows."""
    if abs(c10) > abs(c00):
        c00, c01, c10, c11 = c10, c11, c00, c01
        b0, b1 = b1, b0
    l = c10 * (1.0 / c00)
    u11 = c11 - l * c01
    x1 = (b1 - l * b0) / u11
    x0 = (b0 - c01 * x1) / c00
    return x0, x1


@jit
def vertices2(C: NDArray[np.float64], d: NDArray[np.float64], m: int, det_tol: float,
              X: NDArray[np.float64], ci: NDArray[np.intp]) -> int:
    """Solutions of the non-singular pairs of rows (lexicographic, as solve_subsets) into
    X, their pairs into ci; returns their number."""
    k = 0
    for i in range(m):
        for j in range(i + 1, m):
            det = C[i, 0] * C[j, 1] - C[i, 1] * C[j, 0]
            if not abs(det) > det_tol:
                continue
            X[k, 0], X[k, 1] = solve2(C[i, 0], C[i, 1], C[j, 0], C[j, 1], d[i], d[j])
            ci[k, 0] = i
            ci[k, 1] = j
            k += 1
    return k


@jit
def max_viol(C: NDArray[np.float64], d: NDArray[np.float64], m: int, x0: float,
              x1: float) -> float:
    v = -math.inf
    for r in range(m):
        v = max(v, C[r, 0] * x0 + C[r, 1] * x1 - d[r])
    return v


def _warmup() -> None:
    from ._jit_one_shot import _warmup as lane_warmup

    lane_warmup()
