"""The checks' exact forward pass (an oracle that shares no code with the partition walk).

Element-wise layers and max-pooling groups, in integer numerators over running integer
denominators. Used by :mod:`dgn_tools.checks.partition_checks` (which re-exports it) and the
other checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from dgn_core.model import DGN

__all__ = ["ExactForward"]


class ExactForward:
    """The oracle: an exact forward pass of the network at a rational point.

    Every layer ``l`` is stored as integers ``Wi_l``, ``vi_l`` over one common denominator
    ``den_l`` (exact: float64 entries are rationals). At a point ``z = x / t`` the
    pre-activations are tracked as integer numerators over a running integer denominator,
    so no Fraction is normalised inside the loop. ``tests/test_partition_exact.py`` checks
    it against a plain Fraction loop and against ``DGN.forward_exact``.
    """

    def __init__(self, net: DGN) -> None:
        self.net = net
        self.layers = []
        for W, v in zip(net.weights, net.biases):
            Wq = [[Fraction(float(x)) for x in row] for row in W]
            vq = [Fraction(float(x)) for x in v]
            den = math.lcm(*(f.denominator for row in Wq for f in row),
                           *(f.denominator for f in vq))
            self.layers.append(([[int(f * den) for f in row] for row in Wq],
                                [int(f * den) for f in vq], den))
        #: per hidden layer: its max-pooling group sizes (() for an element-wise layer)
        self.pools = [tuple(p) for p in net.pool_sizes]
        # a max layer has no slope: its winners' values pass on unscaled (sd = 1)
        fr = [Fraction(1) if p else Fraction(s) for s, p in zip(net.slopes, self.pools)]
        self.sn = [s.numerator for s in fr]
        self.sd = [s.denominator for s in fr]

    def numerators(self, z: Sequence[Any]) -> tuple[list[int], list[int], int, list[int]]:
        """Integer numerators: hidden pre-activations ``H`` (flat) with denominators
        ``dens`` per unit, and the output numerators over ``out_den``.
        """
        zq = [Fraction(t) for t in z]
        t = math.lcm(*(f.denominator for f in zq)) if zq else 1
        x = [int(f * t) for f in zq]
        den = t  # true h = x / den
        pre: list[int] = []
        dens: list[int] = []
        L = len(self.layers)
        for l, (Wi, vi, dl) in enumerate(self.layers):
            # (Wi / dl) (x / den) + vi / dl = (Wi x + vi den) / (dl den)
            h = [sum(w * a for w, a in zip(row, x)) + b * den for row, b in zip(Wi, vi)]
            den = dl * den
            if l == L - 1:
                return pre, dens, den, h
            pre.extend(h)
            dens.extend([den] * len(h))
            if self.pools[l]:  # max-pooling: the maximum of every group (one denominator)
                x, start = [], 0
                for k in self.pools[l]:
                    x.append(max(h[start:start + k]))
                    start += k
                continue
            # activation of this layer, scaled by sd: sd * h for h > 0, sn * h otherwise
            sd, sn = self.sd[l], self.sn[l]
            x = [a * sd if a > 0 else a * sn for a in h]
            den = den * sd
        raise AssertionError("unreachable")

    def signs(self, pre: Sequence[Any]) -> tuple[tuple[int, ...], list[int]]:
        """Pattern from the hidden pre-activations ``pre`` (flat, exact numerators or
        Fractions) and the units whose constraint row vanishes there.

        Element-wise units: +1 where ``h >= 0``, vanishing where ``h == 0``; identity units
        (no kink): always +1, never vanishing. Max-pooling groups: +1 at the first maximum,
        -1 elsewhere; vanishing: the other units equal to the maximum (ties).
        """
        q: list[int] = []
        zero: list[int] = []
        off = 0
        for w, pool, act in zip(self.net.hidden_widths, self.pools, self.net.activations):
            h = pre[off:off + w]
            if act == "identity":
                q.extend([1] * w)
            elif not pool:
                q.extend(1 if a >= 0 else -1 for a in h)
                zero.extend(off + i for i, a in enumerate(h) if a == 0)
            else:
                start = 0
                for k in pool:
                    g = h[start:start + k]
                    j = next(i for i, a in enumerate(g) if a == max(g))  # first maximum
                    q.extend(1 if i == j else -1 for i in range(k))
                    zero.extend(off + start + i for i, a in enumerate(g)
                                if i != j and a == g[j])
                    start += k
            off += w
        return tuple(q), zero

    def __call__(self, z: Sequence[Any]) -> tuple[list[Fraction], list[Fraction]]:
        """Hidden pre-activations (flat, sign-pattern order) and the output g(z), exact."""
        pre, dens, out_den, out = self.numerators(z)
        return ([Fraction(a, d) for a, d in zip(pre, dens)],
                [Fraction(a, out_den) for a in out])

    def pattern(self, z: Sequence[Any]) -> tuple[tuple[int, ...], bool]:
        """Sign pattern (+1 where h >= 0; max groups: +1 at the first maximum) and whether
        some unit's constraint row vanishes at z (h == 0, or a tie in a max group)."""
        pre, _, _, _ = self.numerators(z)
        q, zero = self.signs(pre)
        return q, bool(zero)
