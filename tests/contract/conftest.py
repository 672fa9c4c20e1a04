"""The ``backend`` fixture: one test body, run against the exact and the fast path.

A :class:`BackendCase` bundles what a shared property needs to know about a backend: the
module, whether its numbers are exact, the precision options of its calls (the exact
backend at ``dps=20``, enough for every tolerance below and quick), a float view of its
results, and the tolerance a property may allow on a float64 value computed from them.
Properties that need cddlib skip the exact case where pycddlib is missing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from types import ModuleType
from typing import Any

import mpmath
import numpy as np
import pytest

from tests.conftest import HAVE_CDD

#: the exact backend's working precision in these tests
EXACT_DPS = 20


def to_mpf(x: Any) -> mpmath.mpf:
    """An mpf from a float, an int, a Fraction, a numpy scalar or an mpf (exactly)."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, np.generic):
        x = x.item()
    return mpmath.mpf(x)


@dataclass(frozen=True)
class BackendCase:
    """One backend as the shared properties see it."""

    name: str
    module: ModuleType
    exact: bool
    #: precision options passed to every call that takes them (keyword-only in the API)
    options: dict[str, Any] = field(default_factory=dict)
    #: relative tolerance for values the backend claims to full precision: 1e-12 in float64
    #: (a few hundred ulps: sums of positive terms, rounding of the inputs), 10**-(dps - 2)
    #: in the exact backend (its claim is 10**-dps relative; 2 digits of slack for the
    #: references below, which are themselves computed at 40 digits)
    rtol: float = 1e-12

    def floats(self, a: Any) -> np.ndarray:
        """A float64 view of a result (object arrays of mpf or Fraction included)."""
        arr = np.asarray(a, dtype=object) if self.exact else np.asarray(a)
        return np.asarray(np.vectorize(float, otypes=[np.float64])(arr)) if self.exact \
            else np.asarray(arr, dtype=np.float64)

    def assert_close(self, got: Any, ref: Any, *, rtol: float | None = None, atol: float = 0.0,
                     what: str = "value") -> None:
        """``|got - ref| <= atol + rtol |ref|`` elementwise, evaluated in mpmath at 40 digits
        (so an exact backend's digits beyond float64 are really compared)."""
        rtol = self.rtol if rtol is None else rtol
        g = np.asarray(got, dtype=object).ravel()
        r = np.asarray(ref, dtype=object).ravel()
        assert g.shape == r.shape, (what, g.shape, r.shape)
        with mpmath.workdps(40):
            for i, (a, b) in enumerate(zip(g.tolist(), r.tolist(), strict=True)):
                a, b = to_mpf(a), to_mpf(b)
                if mpmath.isinf(b) or mpmath.isinf(a):
                    assert a == b, f"{self.name}: {what}[{i}] = {a}, reference {b}"
                    continue
                err = abs(a - b)
                assert err <= atol + rtol * abs(b), (
                    f"{self.name}: {what}[{i}] = {mpmath.nstr(a, 25)}, reference "
                    f"{mpmath.nstr(b, 25)}, error {mpmath.nstr(err, 3)} > "
                    f"atol {atol:g} + rtol {rtol:g} * |ref|")

    def partition(self, net: Any, **kw: Any) -> Any:
        return self.module.partition(net, **kw)

    def __repr__(self) -> str:
        return self.name


@functools.cache
def _case(name: str) -> BackendCase:
    if name == "exact":
        import verified_dgn
        return BackendCase("exact", verified_dgn, True, {"dps": EXACT_DPS},
                           rtol=10.0 ** -(EXACT_DPS - 2))
    import fastpath
    return BackendCase("fast", fastpath, False, {})


@pytest.fixture(params=["exact", "fast"])
def backend(request: pytest.FixtureRequest) -> BackendCase:
    if request.param == "exact" and not HAVE_CDD:
        pytest.skip("pycddlib is not installed")
    return _case(request.param)
