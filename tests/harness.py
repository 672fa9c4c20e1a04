"""Comparison of fast float64 results with high-precision references (mpmath).

In the style of scipy.special's ``_mptestutils``: every comparison states its tolerances
(``rtol``, ``atol``) and the working precision ``dps`` of the reference, and a failure prints
the worst cases with their arguments. A reference given as a function is evaluated at ``dps``
digits; with ``recheck`` the worst cases are evaluated again at ``dps + 15`` digits and the
two reference values must agree to far better than the tolerance (a digit claim is only as
good as the reference; docs/DESIGN.md §2.4).

Tolerance convention: a case passes when ``|fast - ref| <= atol + rtol * |ref|``. For a
quantity in log space (log P) ``atol`` is the relative accuracy of P and ``rtol`` covers the
rounding of the inputs, which moves log P by about ``2 eps |log P|`` (``log P ~ -h^2/2``).

Usage::

    from harness import assert_matches_reference
    fast = kernel(h, k, rho)                       # (n,) float64
    assert_matches_reference(fast, lambda i: oracle(h[i], k[i], rho[i]),
                             rtol=1e-14, atol=1e-13, dps=30,
                             args=np.stack([h, k, rho], axis=1), label="log Phi_2")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Comparison", "assert_matches_reference", "mp_values"]


@dataclass
class Comparison:
    """What a comparison measured (returned on success, printed on failure)."""

    label: str
    n: int
    max_abs_err: float
    max_rel_err: float
    worst_excess: float  # max of |err| / (atol + rtol |ref|); <= 1 passes
    dps: int

    def __str__(self) -> str:
        return (f"{self.label}: {self.n} cases at dps={self.dps}, max abs err "
                f"{self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g}, "
                f"worst err/tolerance {self.worst_excess:.3g}")


def mp_values(fn: Callable[[int], Any], n: int, dps: int) -> list[mpmath.mpf]:
    """Evaluate ``fn(i)`` for ``i < n`` at ``dps`` decimal digits."""
    with mpmath.workdps(dps):
        return [mpmath.mpf(fn(i)) for i in range(n)]


def _same_special(f: float, r: mpmath.mpf) -> bool | None:
    """True/False when one side is non-finite, None when both are finite."""
    r_nan = mpmath.isnan(r)
    r_inf = mpmath.isinf(r)
    if math.isnan(f) or r_nan:
        return math.isnan(f) and r_nan
    if math.isinf(f) or r_inf:
        return math.isinf(f) and r_inf and (f > 0) == (r > 0)
    return None


def assert_matches_reference(
    fast: ArrayLike,
    ref: Sequence[Any] | Callable[[int], Any],
    *,
    rtol: float,
    atol: float = 0.0,
    dps: int = 30,
    args: ArrayLike | None = None,
    label: str = "",
    recheck: bool = True,
    n_recheck: int = 3,
) -> Comparison:
    """Assert ``|fast - ref| <= atol + rtol * |ref|`` case by case.

    Parameters
    ----------
    fast : array_like, shape (n,)
        Fast-path values (float64).
    ref : sequence of n mpmath/float values, or callable ``ref(i)``
        The reference. A callable is evaluated at ``dps`` digits for every case (and again
        at ``dps + 15`` digits for the ``n_recheck`` worst cases when ``recheck``).
    rtol, atol : float
        Stated tolerances (see the module docstring for log-space quantities).
    dps : int
        Decimal digits of the reference evaluation.
    args : array_like, shape (n, ...), optional
        The arguments of each case, printed for the worst cases on failure.
    label : str
        Name of the compared quantity.
    recheck : bool
        Recompute the worst cases at ``dps + 15`` and require the references to agree to
        ``(atol + rtol |ref|) / 100``.

    Returns
    -------
    Comparison
        Measured maxima, for reporting.

    Raises
    ------
    AssertionError
        With a table of the worst cases, when a case is out of tolerance, when a special
        value (nan, +-inf) differs, or when the reference is not stable under ``dps + 15``.
    """
    fast = np.asarray(fast, dtype=np.float64).ravel()
    n = fast.size
    if callable(ref):
        refs = mp_values(ref, n, dps)
    else:
        refs = [mpmath.mpf(r) for r in ref]
        if len(refs) != n:
            raise ValueError(f"{len(refs)} reference values for {n} fast values")
    args_arr = None if args is None else np.asarray(args)
    abs_err = np.zeros(n)
    rel_err = np.zeros(n)
    excess = np.zeros(n)
    special_fail = []
    with mpmath.workdps(dps):
        for i, (f, r) in enumerate(zip(fast, refs)):
            same = _same_special(float(f), r)
            if same is not None:
                if not same:
                    special_fail.append(i)
                    excess[i] = np.inf
                continue
            e = abs(mpmath.mpf(float(f)) - r)
            abs_err[i] = float(e)
            rel_err[i] = float(e / abs(r)) if r != 0 else (0.0 if e == 0 else np.inf)
            tol = atol + rtol * float(abs(r))
            excess[i] = float(e) / tol if tol > 0 else (0.0 if e == 0 else np.inf)
    order = np.argsort(-excess)
    result = Comparison(label, n, float(abs_err.max(initial=0.0)),
                        float(rel_err.max(initial=0.0)), float(excess.max(initial=0.0)), dps)

    def table(rows: Sequence[int]) -> str:
        lines = []
        for i in rows:
            a = "" if args_arr is None else f" args={np.array2string(args_arr[i], precision=17)}"
            lines.append(f"  case {i}:{a} fast={fast[i]!r} ref={mpmath.nstr(refs[i], 20)} "
                         f"abs={abs_err[i]:.3g} rel={rel_err[i]:.3g} err/tol={excess[i]:.3g}")
        return "\n".join(lines)

    if special_fail or result.worst_excess > 1.0:
        bad = [int(i) for i in order if excess[i] > 1.0][:10]
        raise AssertionError(
            f"{label}: {sum(excess > 1.0)} of {n} cases out of tolerance "
            f"(rtol={rtol:g}, atol={atol:g}, dps={dps})\n{table(bad)}")
    if recheck and callable(ref) and n:
        for i in order[:n_recheck]:
            i = int(i)
            if not mpmath.isfinite(refs[i]):
                continue
            with mpmath.workdps(dps + 15):
                r2 = mpmath.mpf(ref(i))
                diff = float(abs(r2 - refs[i]))
            tol = atol + rtol * float(abs(refs[i]))
            if diff > tol / 100:
                raise AssertionError(
                    f"{label}: reference not stable at dps={dps + 15} for case {i}: "
                    f"{mpmath.nstr(refs[i], 25)} vs {mpmath.nstr(r2, 25)} (tolerance {tol:.3g})"
                    f"\n{table([i])}")
    return result
