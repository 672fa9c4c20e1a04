"""Numerical checks of the theory's lemmas, propositions and theorems.

Every check is a function that takes what it needs (a net, points, a precision), measures
something, and returns a :class:`CheckResult` saying what was measured, the largest residual
and the digits it verified. ``proofs_checks/`` holds one runnable script per result and
``dgn check`` runs the registered checks on a model.

Registering a check::

    @register("Lemma 3", "the map from regions to sign patterns is a bijection")
    def check_lemma3(net, **kw) -> CheckResult: ...
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dgn_core.exceptions import DGNError

__all__ = ["CheckResult", "CheckNotApplicable", "register", "registry", "run_checks",
           "digits_from_residual", "script_main", "STATUSES", "ReferenceTooCostly",
           "skipped_result", "call_check"]

#: the outcomes of a check: the claim verified (PASS), refuted beyond the reference's own
#: error (FAIL), not decided because the independent reference did not reach the accuracy
#: needed (INCONCLUSIVE, with the reference's error estimate), or not run because the
#: check does not handle the model (SKIPPED, with the reason)
STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "SKIPPED")


class CheckNotApplicable(DGNError, ValueError):
    """A check asked to run on a net it cannot handle (e.g. a latent dimension its
    reference quadrature does not cover)."""


class ReferenceTooCostly(DGNError, RuntimeError):
    """An independent reference would exceed its work budget on this net (e.g. a
    z-quadrature whose panels must be finer than the noise); the check is INCONCLUSIVE."""


@dataclass
class CheckResult:
    """Outcome of one numerical check.

    Attributes
    ----------
    name : str
        The result checked, as numbered in the paper ("Lemma 3", "Theorem 1", ...).
    statement : str
        What was checked, in words.
    passed : bool
        True when the claim was verified (status PASS).
    measured : str
        What was measured, in words (how many regions / points / cases, which quantity).
    residual : float or None
        The largest residual measured (0.0 for an identity verified in exact arithmetic).
    digits : float or None
        Significant digits verified (``inf`` for exact identities).
    seconds : float
        Wall-clock time of the check.
    details : dict
        Anything else worth printing.
    status : str
        One of :data:`STATUSES`; by default PASS or FAIL from ``passed``. INCONCLUSIVE and
        SKIPPED set ``passed`` to False; only FAIL is a failure (:attr:`failed`).
    """

    name: str
    statement: str
    passed: bool
    measured: str
    residual: float | None = None
    digits: float | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "PASS" if self.passed else "FAIL"
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        self.passed = self.status == "PASS"

    @property
    def failed(self) -> bool:
        """Whether the check refuted the claim (an inconclusive or skipped check did not)."""
        return self.status == "FAIL"

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (non-finite numbers as the strings "inf", "nan")."""
        def num(v: float | None) -> float | str | None:
            return v if v is None or math.isfinite(v) else str(v)

        return {"name": self.name, "statement": self.statement, "status": self.status,
                "measured": self.measured, "residual": num(self.residual),
                "digits": num(self.digits), "seconds": self.seconds,
                "details": {str(k): str(v) for k, v in self.details.items()}}

    def __str__(self) -> str:
        parts = [f"[{self.status}] {self.name}: {self.statement}", f"    measured: {self.measured}"]
        if self.residual is not None:
            parts.append(f"    largest residual: {self.residual:.3g}")
        if self.digits is not None:
            d = "exact (rational arithmetic)" if math.isinf(self.digits) else f"{self.digits:.1f}"
            parts.append(f"    digits verified: {d}")
        for k, v in self.details.items():
            parts.append(f"    {k}: {v}")
        parts.append(f"    time: {self.seconds:.2f} s")
        return "\n".join(parts)


def digits_from_residual(residual: float, scale: float = 1.0) -> float:
    """Significant digits that a relative residual ``residual / scale`` certifies."""
    if residual == 0:
        return math.inf
    return max(0.0, -math.log10(abs(residual) / (abs(scale) if scale else 1.0)))


_REGISTRY: dict[str, tuple[str, Callable[..., CheckResult]]] = {}

# modules that define checks, imported on demand by registry(); their order (and within a
# module, the order of definition) is the order of `dgn check --list`
_CHECK_MODULES = [
    "dgn_tools.checks.partition_checks",
    "dgn_tools.checks.integral_checks",
    "dgn_tools.checks.marginal_checks",
    "dgn_tools.checks.posterior_checks",
    "dgn_tools.checks.mixture_checks",
    "dgn_tools.checks.zero_noise_checks",
    "dgn_tools.checks.em_checks",
]


def register(name: str, statement: str) -> Callable[[Callable[..., CheckResult]], Callable[..., CheckResult]]:
    """Decorator adding a check to the registry and timing it."""

    def deco(fn: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        def wrapped(*args: Any, **kwargs: Any) -> CheckResult:
            t0 = time.perf_counter()
            res = fn(*args, **kwargs)
            res.seconds = time.perf_counter() - t0
            return res

        wrapped.__name__ = fn.__name__
        wrapped.__doc__ = fn.__doc__
        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        _REGISTRY[name] = (statement, wrapped)
        return wrapped

    return deco


def registry() -> dict[str, tuple[str, Callable[..., CheckResult]]]:
    """All registered checks: name -> (statement, function)."""
    for mod in _CHECK_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency, not a module not written yet
                raise
    return dict(_REGISTRY)


def skipped_result(name: str, statement: str, reason: str) -> CheckResult:
    """The result of a check that does not handle the model it was given."""
    return CheckResult(name=name, statement=statement, passed=False, status="SKIPPED",
                       measured=f"not run: {reason}")


def call_check(name: str, **kwargs: Any) -> CheckResult:
    """Run one registered check; keyword arguments it does not take (e.g. ``dps`` for an
    exact geometric check) are dropped, a :class:`CheckNotApplicable` becomes a SKIPPED
    result and a :class:`ReferenceTooCostly` an INCONCLUSIVE one, naming the reason."""
    import inspect

    statement, fn = registry()[name]
    params = inspect.signature(getattr(fn, "__wrapped__", fn)).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    t0 = time.perf_counter()
    try:
        return fn(**kwargs)
    except CheckNotApplicable as exc:
        res = skipped_result(name, statement, str(exc))
    except ReferenceTooCostly as exc:
        res = CheckResult(name=name, statement=statement, passed=False, status="INCONCLUSIVE",
                          measured=f"not decided: {exc}")
    res.seconds = time.perf_counter() - t0
    return res


def run_checks(names: list[str] | None = None, **kwargs: Any) -> list[CheckResult]:
    """Run the named checks (all when ``names`` is None) with shared keyword arguments
    (see :func:`call_check`: unknown ones are dropped per check, inapplicable checks are
    SKIPPED and the rest still run)."""
    reg = registry()
    todo = list(reg) if names is None else names
    for n in todo:
        if n not in reg:
            raise KeyError(f"no check named {n!r}; known: {sorted(reg)}")
    return [call_check(n, **kwargs) for n in todo]


def script_main(check: str, description: str, argv: list[str] | None = None, *,
                thorough_help: str = "larger suite, more samples",
                dps_help: str | None = None,
                model_help: str = "a DGN saved with DGN.save",
                extra: tuple[tuple[str, str, type, str], ...] = ()) -> int:
    """The command line of a ``proofs_checks/`` script: run one registered check, print it.

    Options: ``--thorough`` (``quick=False``), ``--seed N``, ``--model PATH.npz``, ``--dps D``
    when ``dps_help`` is given (passed on only when set), and each ``(flag, keyword, type,
    help)`` of ``extra`` (passed on as ``keyword``, None when not given). Returns the exit
    status: 1 when the check failed, else 0 (passed, inconclusive or skipped: the printed
    status says which).
    """
    import argparse
    from pathlib import Path

    from dgn_core.model import DGN

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--thorough", action="store_true", help=thorough_help)
    ap.add_argument("--seed", type=int, default=0)
    if dps_help is not None:
        ap.add_argument("--dps", type=int, default=None, help=dps_help)
    for flag, _, typ, hlp in extra:
        ap.add_argument(flag, type=typ, default=None, help=hlp)
    ap.add_argument("--model", type=Path, default=None, help=model_help)
    args = ap.parse_args(argv)
    net = DGN.load(args.model) if args.model is not None else None
    kw: dict[str, Any] = {key: getattr(args, flag.lstrip("-").replace("-", "_"))
                          for flag, key, _, _ in extra}
    if dps_help is not None and args.dps is not None:
        kw["dps"] = args.dps
    result = call_check(check, net=net, quick=not args.thorough, seed=args.seed, **kw)
    print(result)
    return 1 if result.failed else 0
