"""The exact integer algebra of the partition walk (:mod:`verified_dgn.exact_partition`).

Network parameters are float64, i.e. dyadic rationals. Each layer is scaled by a power of
two to Python integers once per net, so the pre-activation maps of a region,
``h^l(z) = M^l z + c^l``, are integer matrices ``N^l = [c^l, M^l]`` times a known positive
scale, and a region's constraint rows, exact signs at a point and one-sided signs along a
direction are integer computations.

Element-wise layers (relu, leaky_relu, abs): unit k's constraint row is ``q_k N_k``
(``q_k h_k(z) >= 0``). Max-pooling layers: a group passes on its winner's row; the row of a
loser i of a group whose winner is j is ``N_j - N_i`` (``h_j(z) - h_i(z) >= 0``), the
winner's own row is zero (:func:`dgn_core.regions.region_inequalities` is the same rule in
rationals).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.activations import IDENTITY
from dgn_core.model import DGN

__all__ = ["IntVec", "_IntNet"]

IntVec = list


def _dyadic_exponent(a: NDArray[np.float64]) -> int:
    """Smallest e >= 0 with ``a * 2**e`` integral for every entry (floats are dyadic)."""
    e = 0
    for x in a.ravel().tolist():
        den = Fraction(x).denominator
        e = max(e, den.bit_length() - 1)
    return e


def _int_array(a: NDArray[np.float64], e: int) -> NDArray[Any]:
    out = np.empty(a.shape, dtype=object)
    flat = out.reshape(-1)
    for i, x in enumerate(a.ravel().tolist()):
        f = Fraction(x) * (1 << e)
        assert f.denominator == 1
        flat[i] = f.numerator
    return out


def _first_max(vals: Sequence[Any]) -> int:
    """Index of the first maximum (the tie rule of max-pooling: the first index wins)."""
    best = 0
    for i in range(1, len(vals)):
        if vals[i] > vals[best]:
            best = i
    return best


class _IntNet:
    """The network's layers scaled to Python integers, and the exact per-region algebra.

    Layer l has ``W_l = Wi_l / 2**e_l`` and ``v_l = vi_l / 2**e_l`` with integer ``Wi_l``,
    ``vi_l``. The slope of an element-wise hidden layer l is eta_l = ``sn[l] / sd[l]``
    (``sd[l]`` a power of two); that layer's activation scaled by ``sd[l]`` multiplies by
    ``sd[l]`` (sign +1) or ``sn[l]`` (sign -1). A max-pooling layer passes on its winners'
    values unscaled (``sd[l] = 1``). Every integer pre-activation below equals the true one
    times a positive scale (the same for all units of a layer), so its sign, and the order
    of the units of a max group, are exact.
    """

    def __init__(self, net: DGN) -> None:
        self.net = net
        self.S = net.latent_dim
        self.L = net.n_layers
        self.hidden = list(net.hidden_widths)
        self.n_units = net.n_hidden_units
        self.offsets = np.concatenate([[0], np.cumsum(self.hidden)]).astype(int).tolist()
        self.W: list[NDArray[Any]] = []
        self.v: list[NDArray[Any]] = []
        self.pow2: list[int] = []
        for W, v in zip(net.weights, net.biases):
            e = max(_dyadic_exponent(W), _dyadic_exponent(v))
            self.W.append(_int_array(W, e))
            self.v.append(_int_array(v, e))
            self.pow2.append(1 << e)
        #: per hidden layer: its max-pooling group sizes, () for an element-wise layer
        self.pools: list[tuple[int, ...]] = [tuple(p) for p in net.pool_sizes]
        #: per hidden layer: whether it is an identity layer (no kink: zero constraint rows,
        #: pattern entries always +1, never a vanishing unit)
        self.linear: list[bool] = [a == IDENTITY for a in net.activations]
        #: per max layer: for every unit (layer-local), the (start, stop) of its group
        self.group_of: list[list[tuple[int, int]]] = []
        for pool in self.pools:
            spans: list[tuple[int, int]] = []
            start = 0
            for k in pool:
                spans.extend([(start, start + k)] * k)
                start += k
            self.group_of.append(spans)
        # a max layer has no slope: the winners' rows pass on with factor 1 (sn unused)
        fr = [Fraction(1) if pool else Fraction(s) for s, pool in zip(net.slopes, self.pools)]
        self.sn = [s.numerator for s in fr]
        self.sd = [s.denominator for s in fr]
        # scale of N^l: true N^l = integer N^l / sigma_l, the same for every region
        self.sigma = [self.pow2[0]]
        for l in range(1, self.L):
            self.sigma.append(self.sigma[-1] * self.sd[l - 1] * self.pow2[l])
        self.Wf = [np.asarray(W, dtype=np.float64) for W in net.weights]
        self.vf = [np.asarray(v, dtype=np.float64) for v in net.biases]
        self.slopes = [1.0 if pool else float(s) for s, pool in zip(net.slopes, self.pools)]
        # N^1 = [v1, W1] does not depend on the region
        self.N1 = np.concatenate([self.v[0][:, None], self.W[0]], axis=1)
        # N^{l+1} of hidden layers, keyed by the signs of layers 1..l (shared by the regions
        # of one cell of the earlier layers); read-only once stored
        self._cache: list[dict[tuple[int, ...], NDArray[Any]]] = [{} for _ in range(self.L)]
        self._cache_size = 4096

    # ------------------------------------------------------------------ per-layer rules
    def _delta(self, q: Sequence[int], l: int) -> NDArray[Any]:
        """The scaled activation slopes of element-wise hidden layer ``l`` (from 0)."""
        sd, sn = self.sd[l], self.sn[l]
        return np.array([sd if s > 0 else sn for s in q], dtype=object)

    @staticmethod
    def _winners(ql: Sequence[int]) -> list[int]:
        """Layer-local index of the +1 entry of every group of a max layer, in group order
        (a walk pattern has exactly one +1 per group)."""
        return [i for i, s in enumerate(ql) if s > 0]

    def _winner_of_unit(self, ql: Sequence[int], l: int) -> list[int]:
        """For every unit of max layer ``l``, the layer-local index of its group's winner."""
        return np.repeat(self._winners(ql), self.pools[l]).tolist()

    def _output(self, x: NDArray[Any], ql: Sequence[int], l: int) -> NDArray[Any]:
        """Layer ``l``'s output (rows or values ``x`` of its units) with its pattern ``ql``,
        scaled by ``sd[l]``: the winners' entries of a max layer, ``delta * x`` otherwise."""
        if self.pools[l]:
            return x[self._winners(ql)]
        d = self._delta(ql, l)
        return d[:, None] * x if x.ndim == 2 else d * x

    def layer_signs(self, q: Sequence[int]) -> list[Sequence[int]]:
        return [q[self.offsets[l]:self.offsets[l + 1]] for l in range(self.L - 1)]

    # ------------------------------------------------------------------ region maps
    def region_maps(self, q: Sequence[int]) -> tuple[NDArray[Any], NDArray[Any]]:
        """Integer ``N = [c, M]`` of every hidden unit and of the output, on the region q.

        Returns
        -------
        Nh : object ndarray, shape (n_hidden_units, S + 1); true ``[c, M]`` of unit k in layer l
            is ``Nh[k] / sigma[l - 1]``.
        No : object ndarray, shape (D, S + 1); true ``[b_w, A_w] = No / sigma[L - 1]``.
        """
        N = self.N1
        blocks = []
        qs = self.layer_signs(q)
        for l in range(1, self.L):
            blocks.append(N)
            key = tuple(q[:self.offsets[l]])  # N^{l+1} depends on the signs of layers 1..l only
            cache = self._cache[l] if l < self.L - 1 else None
            if cache is not None and key in cache:
                N = cache[key]
                continue
            if not self.pools[l - 1] and self.sn[l - 1] == 0:
                # relu: inactive units contribute nothing
                on = [i for i, t in enumerate(qs[l - 1]) if t > 0]
                N = self.W[l][:, on] @ N[on] if on else np.zeros(
                    (self.W[l].shape[0], self.S + 1), dtype=object)  # entries int 0
            else:
                N = self.W[l] @ self._output(N, qs[l - 1], l - 1)
            N[:, 0] += self.v[l] * (self.sigma[l - 1] * self.sd[l - 1])
            if cache is not None:
                if len(cache) >= self._cache_size:  # bounded memory: BFS has locality
                    cache.clear()
                cache[key] = N
        Nh = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, self.S + 1), dtype=object)
        return Nh, N

    def _rows(self, q: Sequence[int], Nh: NDArray[Any]) -> NDArray[Any]:
        """Constraint rows from the unit rows ``Nh`` (object ints or float64)."""
        qv = np.array(q, dtype=object if Nh.dtype == object else np.float64)
        H = qv[:, None] * Nh
        for l, pool in enumerate(self.pools):
            if pool:
                off, end = self.offsets[l], self.offsets[l + 1]
                win = np.asarray(self._winner_of_unit(q[off:end], l), dtype=np.intp) + off
                H[off:end] = Nh[win] - Nh[off:end]
            elif self.linear[l]:
                H[self.offsets[l]:self.offsets[l + 1]] = 0
        return H

    def constraint_rows(self, q: Sequence[int], Nh: NDArray[Any] | None = None
                        ) -> NDArray[Any]:
        """Integer constraint rows ``H`` of the region q: ``H[k, 0] + H[k, 1:] z >= 0``.

        Parameters
        ----------
        q : the region's pattern, length n_hidden_units.
        Nh : its unit rows from :meth:`region_maps` (computed when not given).

        Returns
        -------
        object ndarray, shape (n_hidden_units, S + 1): ``q_k Nh_k`` for an element-wise
        unit; for a unit i of a max group with winner j, ``Nh_j - Nh_i`` (zero for j). Row k
        is the true row times the positive ``sigma[l - 1]`` of its layer.
        """
        if Nh is None:
            Nh = self.region_maps(q)[0]
        return self._rows(q, Nh)

    def float_rows(self, q: Sequence[int]) -> NDArray[np.float64]:
        """float64 :meth:`constraint_rows` (the candidate pass only), shape
        (n_hidden_units, S + 1)."""
        N = np.concatenate([self.vf[0][:, None], self.Wf[0]], axis=1)
        blocks = []
        qs = self.layer_signs(q)
        for l in range(1, self.L):
            blocks.append(N)
            if self.pools[l - 1]:
                N = self.Wf[l] @ N[self._winners(qs[l - 1])]
            else:
                dl = np.where(np.asarray(qs[l - 1]) > 0, 1.0, self.slopes[l - 1])
                N = self.Wf[l] @ (dl[:, None] * N)
            N[:, 0] += self.vf[l]
        return self._rows(q, np.concatenate(blocks, axis=0))

    # ------------------------------------------------------------------ patterns at points
    def _max_signs(self, hl: Sequence[Any], l: int) -> tuple[list[int], list[int], list[int]]:
        """(pattern, winners, ties) of max layer ``l`` from its values ``hl``: +1 at the first
        maximum of every group; ties are the other units equal to their group's maximum."""
        ql = [-1] * len(hl)
        win: list[int] = []
        ties: list[int] = []
        start = 0
        for k in self.pools[l]:
            vals = hl[start:start + k]
            j = _first_max(vals)
            ql[start + j] = 1
            win.append(start + j)
            ties.extend(start + i for i, x in enumerate(vals) if i != j and x == vals[j])
            start += k
        return ql, win, ties

    def forward_signs(self, x_hom: IntVec) -> tuple[tuple[int, ...], list[int]]:
        """Exact pattern at the point ``x / t`` given as integers ``[t, x]``, t > 0.

        Returns the pattern (element-wise: +1 where ``h >= 0``; max: +1 at the first maximum
        of every group) and the sorted units whose constraint row vanishes there: ``h == 0``
        (element-wise), or a tie with the group's winner (max; the winner is not listed).
        """
        t = x_hom[0]
        h = self.W[0] @ np.array(x_hom[1:], dtype=object) + self.v[0] * t
        scale = self.pow2[0] * t
        signs: list[int] = []
        zeros: list[int] = []
        for l in range(1, self.L):
            off = len(signs)
            hl = h.tolist()
            if self.pools[l - 1]:
                ql, win, ties = self._max_signs(hl, l - 1)
                zeros.extend(off + i for i in ties)
                x = h[win]
            elif self.linear[l - 1]:  # no kink: +1 everywhere, nothing vanishes
                ql = [1] * len(hl)
                x = None
            else:
                ql = [1 if x >= 0 else -1 for x in hl]
                zeros.extend(off + i for i, x in enumerate(hl) if x == 0)
                x = None
            signs.extend(ql)
            if l == self.L - 1:
                break  # the output layer carries no sign
            if x is None:
                x = self._delta(ql, l - 1) * h
            h = self.W[l] @ x + self.v[l] * (scale * self.sd[l - 1])
            scale = scale * self.sd[l - 1] * self.pow2[l]
        return tuple(signs), zeros

    def one_sided_signs(self, base: Sequence[int], zero: Sequence[int], n: IntVec) -> tuple[int, ...]:
        """Pattern on ``p + s n`` for small ``s > 0``.

        Parameters
        ----------
        base : the pattern at p, valid for every unit whose constraint row does not vanish at
            p (entries of element-wise units in ``zero`` are ignored; a max group's +1 is a
            maximum at p).
        zero : units whose constraint row vanishes at p (element-wise: ``h(p) == 0``; max:
            ties with the group's winner at p, the winner itself may be listed or not).
        n : integer direction, length S.

        An element-wise unit in ``zero`` takes the sign of its directional derivative along
        n (0 -> +1). In a max group with ties at p, the winner on ``p + s n`` is the tied unit
        with the largest directional derivative, the first index on equal derivatives (then
        the units stay tied along the whole segment). Derivatives are computed layer by layer
        with the one-sided pattern of the earlier layers (a max output's derivative is its
        winner's); on ``p + s n`` every pre-activation is affine for small s, so this is the
        exact forward pattern there.
        """
        q = list(base)
        elem: dict[int, list[int]] = {}  # layer -> layer-local element-wise units to decide
        tied: dict[int, dict[int, set[int]]] = {}  # layer -> group start -> tied units
        for k in zero:
            l = self._layer_of(k)
            i = k - self.offsets[l]
            if self.linear[l]:  # an identity unit's zero row: its entry stays +1
                continue
            if self.pools[l]:
                a, b = self.group_of[l][i]
                off = self.offsets[l]
                w = a + self._winners(q[off + a:off + b])[0]
                tied.setdefault(l, {}).setdefault(a, {w}).add(i)
            else:
                elem.setdefault(l, []).append(i)
        for l in list(tied):  # a group whose winner alone vanishes (its zero row) is decided
            tied[l] = {a: s for a, s in tied[l].items() if len(s) > 1}
            if not tied[l]:
                del tied[l]
        if not elem and not tied:
            return tuple(q)
        last = max(list(elem) + list(tied))  # deepest layer that needs derivatives
        g = self.W[0] @ np.array(n, dtype=object)  # derivative of h^1 along n
        act: NDArray[Any] | None = None
        for l in range(last + 1):
            off = self.offsets[l]
            rows = elem.get(l, []) + sorted(i for s in tied.get(l, {}).values() for i in s)
            if l > 0:
                assert act is not None
                if l == last:  # only the rows that are needed
                    vals = {r: int(self.W[l][r] @ act) for r in rows}
                else:
                    g = self.W[l] @ act
            if l == 0 or l < last:
                gl = g.tolist()
                vals = {r: gl[r] for r in rows}
            for i in elem.get(l, []):
                q[off + i] = 1 if vals[i] >= 0 else -1
            for a, units in tied.get(l, {}).items():
                cand = sorted(units)
                best = cand[_first_max([vals[i] for i in cand])]
                b = self.group_of[l][a][1]
                q[off + a:off + b] = [1 if i == best else -1 for i in range(a, b)]
            if l == last:
                break
            act = self._output(g, q[off:self.offsets[l + 1]], l)
        return tuple(q)

    def _layer_of(self, k: int) -> int:
        for l in range(len(self.hidden)):
            if k < self.offsets[l + 1]:
                return l
        raise IndexError(k)
