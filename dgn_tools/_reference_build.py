"""Building a reference bundle (docs/reference_bundles.md): the model, the points, the exact
regions and the reference values of :mod:`dgn_tools.reference`, from the exact path.

Certified values (log p(x), and the posterior when :func:`verified_dgn.certified.posterior`
is available) come from arb balls: a value's ``digits`` is then a theorem. Estimated values
(the posterior from mpmath when no certified posterior exists, and the EM step) come from
two exact-path runs at different precisions: ``digits`` is the agreement of the two, marked
``"certified": false``.

Every value ``r`` carries a ``scale`` ``s`` and ``digits`` ``n`` meaning
``|true - r| <= 10**-n * max(|r|, s)`` (module :mod:`dgn_tools.reference`, SCALES).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from dgn_core.model import DGN
from dgn_core.model_json import model_to_dict

__all__ = ["build_bundle", "BUNDLE_FORMAT", "BUNDLE_VERSION", "CONVENTIONS"]

BUNDLE_FORMAT = "verified_dgn.ReferenceBundle"
BUNDLE_VERSION = 1

CONVENTIONS = {
    "layer_indexing": "0-based: model.layers[i] = {W: W_i, v: v_i}, the npz model file's W{i}, "
                      "v{i}; widths = [S, D_1, ..., D]",
    "weight_orientation": "W_i has shape (D_{i+1}, D_i) and multiplies a column vector from the "
                          "left: h_{i+1} = W_i a(h_i) + v_i (a: identity on h_0 = z, the "
                          "activation on hidden layers)",
    "sign_pattern": "one entry per hidden unit, layer by layer (the outputs of W_0 first), unit "
                    "by unit (row order of W_i): +1 where the unit's pre-activation is >= 0 on "
                    "the region, -1 where it is < 0; a unit constant on the region gets the "
                    "sign of the constant, 0 -> +1",
    "regions": "regions[k] = {z : C z <= d} with non-redundant facets, entries exact rationals "
               "'p/q' (or integers 'p'); region_weights[n][k] is P(z in regions[k] | x_n)",
    "agreement": "a value r with digits n and scale s satisfies |true - r| <= 10^-n max(|r|, s); "
                 "results are compared by -log10(|y - r| / max(|r|, s)), capped at n",
    "flattening": "values, digits, scales and certified are flat lists in row-major (C) order "
                  "of the quantity's shape",
}

#: scale floors ``s`` of the agreement measure (module notes); "std"/"var": per point, the
#: largest posterior standard deviation / variance; "max": the largest |entry| of the array
SCALE_RULES = {
    "log_px": "1 (absolute below 1, relative above)",
    "region_weights": "1e-3 (weights are probabilities summing to 1)",
    "posterior_mean": "the point's largest posterior standard deviation sqrt(max_i cov_ii)",
    "posterior_cov": "the point's largest posterior variance max_i cov_ii",
    "em": "the largest |entry| of the updated array (the scale of the parameter)",
}
WEIGHT_SCALE = 1e-3

Progress = Callable[[str], None]


def _fmt(v: Fraction, sig: int) -> str:
    """``v`` with ``sig`` significant digits, ``%e`` style (exact decimal rounding)."""
    if v == 0:
        return "0"
    neg, a = v < 0, abs(v)
    # an estimate of floor(log10 a) from bit lengths (str() of a huge integer is refused
    # by Python beyond 4300 digits), corrected by the loops below
    e = int((a.numerator.bit_length() - a.denominator.bit_length()) * 0.30102999566398120)
    while a * Fraction(10) ** (sig - 1 - e) >= 10**sig:
        e += 1
    while a * Fraction(10) ** (sig - 1 - e) < 10 ** (sig - 1):
        e -= 1
    m = round(a * Fraction(10) ** (sig - 1 - e))
    if m >= 10**sig:
        m //= 10
        e += 1
    digs = str(m)
    mant = digs[0] + ("." + digs[1:] if len(digs) > 1 else "")
    return f"{'-' if neg else ''}{mant}e{e:+d}"


def _digits_of(err: Fraction, ref: Fraction, scale: float, cap: int) -> int:
    """``floor(-log10(err / max(|ref|, scale)))`` in [0, cap]."""
    denom = max(abs(ref), Fraction(scale))
    if err == 0:
        return cap
    ratio = err / denom
    # floor(-log10(ratio)) from the exact rational, without float underflow
    n = max(0, math.floor(-math.log10(ratio.numerator) + math.log10(ratio.denominator)))
    while n > 0 and ratio > Fraction(1, 10**n):
        n -= 1
    while n + 1 <= cap and ratio <= Fraction(1, 10 ** (n + 1)):
        n += 1
    return min(n, cap)


def _arb_fraction(x: Any) -> Fraction:
    m, e = x.man_exp()
    return Fraction(int(m)) * Fraction(2) ** int(e)


def ball_record(ball: Any, scale: float, digits: int) -> tuple[str, int]:
    """A certified value: the ball's midpoint to ``digits + 5`` significant digits and the
    digits certified in the agreement measure (the rounding of the string included)."""
    if not ball.is_finite():
        return "nan", 0
    mid = _arb_fraction(ball.mid())
    rad = _arb_fraction(ball.rad())
    sig = digits + 5 + max(0, -int(math.floor(math.log10(max(scale, 1e-300)))))
    text = _fmt(mid, sig)
    err = abs(Fraction(text) - mid) + rad
    return text, _digits_of(err, Fraction(text), scale, digits + 5)


def estimate_record(hi: Any, lo: Any, scale: float, digits: int) -> tuple[str, int]:
    """An estimated value: ``hi`` (mpf or Fraction) with the digits it shares with ``lo``
    (a run at lower precision), at most ``digits``."""
    fh, fl = _to_fraction(hi), _to_fraction(lo)
    text = _fmt(fh, digits + 5)
    err = abs(fh - fl) + abs(Fraction(text) - fh)
    return text, _digits_of(err, Fraction(text), scale, digits)


def _to_fraction(v: Any) -> Fraction:
    if isinstance(v, Fraction):
        return v
    import mpmath

    if isinstance(v, mpmath.mpf):
        sign, man, exp, _ = v._mpf_  # mpf.man_exp drops the sign
        if not man and exp:
            raise ValueError(f"not a finite number: {v}")
        return (-1) ** int(sign) * Fraction(int(man)) * Fraction(2) ** int(exp)
    return Fraction(v)


class _Quantity:
    """The flat records of one quantity."""

    def __init__(self, shape: Sequence[int], index_names: Sequence[str], description: str,
                 scale_rule: str) -> None:
        self.shape = [int(s) for s in shape]
        self.index_names = list(index_names)
        self.description = description
        self.scale_rule = scale_rule
        n = int(np.prod(self.shape)) if self.shape else 1
        self.values = ["nan"] * n
        self.digits = [0] * n
        self.scales = [1.0] * n
        self.certified = [False] * n

    def set(self, flat: int, rec: tuple[str, int], scale: float, certified: bool) -> None:
        self.values[flat], self.digits[flat] = rec
        self.scales[flat] = float(scale)
        self.certified[flat] = bool(certified)

    def as_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "index_names": self.index_names,
                "description": self.description, "scale_rule": self.scale_rule,
                "values": self.values, "digits": self.digits, "scales": self.scales,
                "certified": self.certified}


def _certified_posterior(net: DGN, X: np.ndarray, digits: int, partition: Any
                         ) -> list[tuple[list[Any], list[Any], list[list[Any]]]] | None:
    """(weights, mean, cov) balls per point from verified_dgn.certified.posterior, or None
    when that function is not available (the caller then estimates)."""
    try:
        from verified_dgn import certified
        post_fn = certified.posterior
    except (ImportError, AttributeError):
        return None
    res = post_fn(net, X, digits=digits, partition=partition)
    out = []
    for p in res:
        w = next((getattr(p, k) for k in ("region_weights", "weights", "e0") if hasattr(p, k)),
                 None)
        mean, cov = getattr(p, "mean", None), getattr(p, "cov", None)
        if w is None or mean is None or cov is None:
            return None
        S = net.latent_dim
        out.append(([w[k] for k in range(len(w))], [mean[i] for i in range(S)],
                    [[cov[i, j] if hasattr(cov, "nrows") else cov[i][j] for j in range(S)]
                     for i in range(S)]))
    return out


def build_bundle(net: DGN, X: np.ndarray, *, digits: int = 30, em: bool = True,
                 progress: Progress | None = None) -> dict[str, Any]:
    """The reference bundle (a JSON-ready dict) of ``net`` at the points ``X`` (N, D).

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 3 (the certified path's range).
    X : ndarray, shape (N, D)
    digits : int
        Digits asked of the certified values; the estimated ones are computed at
        ``digits + 10`` and compared with a run at ``digits``.
    em : bool
        Include one exact EM step's updated parameters.
    progress : callable, optional
        Called with a line of text at each stage.
    """
    import verified_dgn
    from verified_dgn import certified

    say = progress or (lambda _msg: None)
    X = np.asarray(X, dtype=np.float64)
    N, S = X.shape[0], net.latent_dim
    say(f"partition of {net!r} (exact)")
    P = verified_dgn.partition(net)
    R = len(P)
    say(f"{R} regions; certified log p(x) of {N} point(s) at {digits} digits")
    quantities: dict[str, _Quantity] = {}
    lp = certified.log_marginal(net, X, digits=digits, partition=P)
    q = quantities["log_px"] = _Quantity([N], ["point"], "log p(x_n), natural log",
                                         SCALE_RULES["log_px"])
    for n, b in enumerate(lp):
        q.set(n, ball_record(b, 1.0, digits), 1.0, True)

    qw = quantities["region_weights"] = _Quantity(
        [N, R], ["point", "region"], "P(z in regions[k] | x_n)", SCALE_RULES["region_weights"])
    qm = quantities["posterior_mean"] = _Quantity([N, S], ["point", "i"], "E[z_i | x_n]",
                                                  SCALE_RULES["posterior_mean"])
    qc = quantities["posterior_cov"] = _Quantity([N, S, S], ["point", "i", "j"],
                                                 "Cov[z_i, z_j | x_n]",
                                                 SCALE_RULES["posterior_cov"])
    say("posterior (certified if available)")
    cert = _certified_posterior(net, X, digits, P)
    post_hi = None
    if cert is not None:
        for n, (w, mean, cov) in enumerate(cert):
            var = max(float(cov[i][i].mid()) for i in range(S))
            for k in range(R):
                qw.set(n * R + k, ball_record(w[k], WEIGHT_SCALE, digits), WEIGHT_SCALE, True)
            for i in range(S):
                qm.set(n * S + i, ball_record(mean[i], math.sqrt(var), digits),
                       math.sqrt(var), True)
                for j in range(S):
                    qc.set((n * S + i) * S + j, ball_record(cov[i][j], var, digits), var, True)
    if cert is None or em:
        say(f"exact posterior (mpmath) at dps {digits + 10} and {digits}")
        post_hi = verified_dgn.posterior(net, X, dps=digits + 10, partition=P)
        post_lo = verified_dgn.posterior(net, X, dps=digits, partition=P)
    if cert is None:
        assert post_hi is not None
        for n in range(N):
            var = max(float(post_hi.cov[n, i, i]) for i in range(S))
            for k in range(R):
                qw.set(n * R + k, estimate_record(post_hi.e0[n, k], post_lo.e0[n, k],
                                                  WEIGHT_SCALE, digits), WEIGHT_SCALE, False)
            for i in range(S):
                qm.set(n * S + i, estimate_record(post_hi.mean[n, i], post_lo.mean[n, i],
                                                  math.sqrt(var), digits), math.sqrt(var), False)
                for j in range(S):
                    qc.set((n * S + i) * S + j,
                           estimate_record(post_hi.cov[n, i, j], post_lo.cov[n, i, j], var,
                                           digits), var, False)
    em_options: dict[str, Any] | None = None
    if em:
        assert post_hi is not None
        say(f"one exact EM step at dps {digits + 10} and {digits}")
        _, info_hi = verified_dgn.em_step(net, X, dps=digits + 10, partition=P,
                                          posterior=post_hi)
        _, info_lo = verified_dgn.em_step(net, X, dps=digits, partition=P, posterior=post_lo)
        L = net.n_layers
        noise = "isotropic" if net.isotropic_noise else "diagonal"
        em_options = {"noise": noise, "update_prior_cov": False, "weight_prior": None,
                      "noise_floor": 0.0, "updated": [f"em_W{L - 1}", f"em_v{L - 1}",
                                                      "em_noise_var"],
                      "note": "one ECM step of verified_dgn.em_step: the last layer, then the "
                              "noise given the new last layer; inner layers unchanged"}
        arrays = {
            f"em_W{L - 1}": (info_hi["last_layer"][0], info_lo["last_layer"][0],
                             ["row", "col"], f"updated W_{L - 1} (last layer)"),
            f"em_v{L - 1}": (info_hi["last_layer"][1], info_lo["last_layer"][1], ["row"],
                             f"updated v_{L - 1} (last layer)"),
            "em_noise_var": (info_hi["noise_var"], info_lo["noise_var"], ["row"],
                             "updated noise variance per data dimension (D,)"),
        }
        for name, (hi, lo, idx, desc) in arrays.items():
            hi, lo = np.asarray(hi, dtype=object), np.asarray(lo, dtype=object)
            qe = quantities[name] = _Quantity(hi.shape, idx, desc, SCALE_RULES["em"])
            flat_hi, flat_lo = hi.ravel(), lo.ravel()
            scale = max(float(abs(v)) for v in flat_hi) or 1.0
            for f in range(flat_hi.size):
                qe.set(f, estimate_record(flat_hi[f], flat_lo[f], scale, digits), scale, False)
    regions = [{"signs": [int(s) for s in r.signs],
                "C": [[str(Fraction(c)) for c in row] for row in r.C],
                "d": [str(Fraction(c)) for c in r.d]} for r in P]
    import verified_dgn as _vd

    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "conventions": CONVENTIONS,
        "generator": {"package": "verified-dgn", "version": _vd.__version__,
                      "digits_requested": int(digits),
                      "estimated_values": "computed at dps digits + 10, digits = agreement "
                                          "with a run at dps digits"},
        "model": model_to_dict(net),
        "points": [[repr(float(t)) for t in row] for row in X],
        "regions": regions,
        "em_options": em_options,
        "quantities": {k: v.as_dict() for k, v in quantities.items()},
    }
