"""Accuracy of the simplex cubature's rules per spread band: symmetric vs conical.

    python benchmarks/simplex_rules.py 2 [seed]
    python benchmarks/simplex_rules.py 3 [seed]

8000 random simplices (half of them thin) with log-density spreads |c| D + D^2 / 2 from 0.05
to 16, N(0, I): for each band of ``_rules``, the largest error of log m0 (absolute, of the
mass normalised at the simplex's centre: see tests/simplex_inputs.py), of the
mean (relative to sqrt(trace Cov)) and of the covariance (relative to trace Cov) of the
band's rule (``simplex_rule``: the symmetric rule where tabulated) and of the
conical product rule of the same degree, both against the conical rule with 24 (s = 2) /
16 (s = 3) points per axis.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import numpy as np
from simplex_inputs import normalised_stats, random_simplices, rule_errors

from fastpath import _simplex_cubature as sc

rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
s = int(sys.argv[1])
X = random_simplices(rng, s, 8000, 16.0)
spread = sc._spread(X)
ref = normalised_stats(X, *sc.conical_rule(s, 24 if s == 2 else 16))
lo = 0.0
for bound, n in sc._rules(s):
    sel = (spread > lo) & (spread <= bound)
    ref_sel = (ref[0][sel], ref[1][sel], ref[2][sel])
    for name, rule in (("conical", sc.conical_rule(s, n)), ("simplex_rule", sc.simplex_rule(s, n))):
        e_lm, e_mean, e_cov = rule_errors(X[sel], ref_sel, *rule)
        print(f"s={s} band ({lo:g},{bound:g}] n={n} {name:12s} nodes {rule[1].size:4d}  "
              f"count {sel.sum():5d}  log m0 {e_lm:.1e}  mean {e_mean:.1e}  cov {e_cov:.1e}")
    lo = bound
