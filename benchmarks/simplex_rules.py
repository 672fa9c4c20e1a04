"""Accuracy of the simplex cubature's rules per spread band: symmetric vs conical.

    python benchmarks/simplex_rules.py 2 [seed]
    python benchmarks/simplex_rules.py 3 [seed]

8000 random simplices (half of them thin) with log-density spreads |c| D + D^2 / 2 from 0.05
to 16, N(0, I): for each band of ``_rules``, the largest error of log m0 (absolute, of the
mass normalised at the simplex's centre: see ``stats``), of the
mean (relative to sqrt(trace Cov)) and of the covariance (relative to trace Cov) of the
band's rule (``simplex_rule``: the symmetric rule where tabulated) and of the
conical product rule of the same degree, both against the conical rule with 24 (s = 2) /
16 (s = 3) points per axis.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from fastpath import _simplex_cubature as sc

rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
s = int(sys.argv[1])
M = 8000
def stats(X, lam, w):
    """Per simplex (K, s+1, s): the N(0, I) mass relative to the density at the centre c, the
    mean offset from c and the covariance, by the rule (lam, w). The exponent is formed as
    -(c.d + |d|^2 / 2), d = x - c, so that it does not cancel far from the origin: the
    comparison then sees the rules' errors, not the rounding of |log m0| ~ |c|^2 / 2."""
    c = X.mean(axis=1)
    d = np.einsum("qv,kvs->kqs", lam, X - c[:, None])
    f = w[None] * np.exp(-(np.einsum("ks,kqs->kq", c, d) + 0.5 * np.sum(d * d, axis=-1)))
    m0 = f.sum(axis=1)
    mean = np.einsum("kq,kqs->ks", f, d) / m0[:, None]
    dd = d - mean[:, None]
    cov = np.einsum("kq,kqi,kqj->kij", f, dd, dd) / m0[:, None, None]
    return m0, mean, cov


# random simplices: half thin; spread = |c| D + D^2/2 targeted log-uniformly in [0.05, 16]
X = rng.normal(size=(M, s + 1, s))
thin = np.arange(M) < M // 2
X[thin, -1] = X[thin, 0] + 0.02 * rng.normal(size=(thin.sum(), s)) + 0.5 * (X[thin, 1] - X[thin, 0])
X -= X.mean(axis=1, keepdims=True)
D = np.max(np.linalg.norm(X[:, :, None] - X[:, None], axis=-1), axis=(1, 2))
X /= D[:, None, None]
target = 10 ** rng.uniform(np.log10(0.05), np.log10(16), M)
Dn = 10 ** rng.uniform(-2, 0.7, M)
Dn = np.minimum(Dn, np.sqrt(2 * target) * 0.999)
cn = (target - Dn ** 2 / 2) / Dn
dirs = rng.normal(size=(M, s))
dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
X = X * Dn[:, None, None] + (cn[:, None] * dirs)[:, None, :]
spread = sc._spread(X)
ref = stats(X, *sc.conical_rule(s, 24 if s == 2 else 16))
lo = 0.0
for bound, n in sc._rules(s):
    sel = (spread > lo) & (spread <= bound)
    for name, rule in (("conical", sc.conical_rule(s, n)), ("simplex_rule", sc.simplex_rule(s, n))):
        got = stats(X[sel], *rule)
        scale = np.sqrt(np.trace(ref[2][sel], axis1=1, axis2=2))
        e_lm = np.max(np.abs(np.log(got[0] / ref[0][sel])))
        e_mean = np.max(np.linalg.norm(got[1] - ref[1][sel], axis=1) / scale)
        e_cov = np.max(np.linalg.norm(got[2] - ref[2][sel], axis=(1, 2)) / scale ** 2)
        print(f"s={s} band ({lo:g},{bound:g}] n={n} {name:12s} nodes {rule[1].size:4d}  "
              f"count {sel.sum():5d}  log m0 {e_lm:.1e}  mean {e_mean:.1e}  cov {e_cov:.1e}")
    lo = bound
