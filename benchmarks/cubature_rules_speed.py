"""E-step time with the simplex cubature's symmetric rules against the conical ones, in one process.

    python benchmarks/cubature_rules_speed.py em    # the S = 2 surface of em.py (N = 300, 16,16)
    python benchmarks/cubature_rules_speed.py s3    # estep.py's S = 3 net, 200 points

One kernel thread, one BLAS thread. Alternates the two rule sets twice (``simplex_rule``
replaced by ``conical_rule`` and the compiled rule table rebuilt), each timed as the min and
median of 3 ``estep_statistics`` calls, with the time spent in the cubature kernels (the S = 2
pair cubature ``_pairs_range``, the S >= 3 ``simplex_stats``) beside it, and the largest
differences between the two runs' statistics.
"""
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import em as B
import numpy as np

import fastpath
from fastpath import _jit_cubature, _jit_pair_cubature
from fastpath import _simplex_cubature as sc
from fastpath._estep_statistics import estep_statistics
from fastpath._threads import threads
from verified_dgn import DGN

case = sys.argv[1]
if case == "em":
    widths, X = B.CASES["s2"](False)
    net = B.DGN.random(widths, activation="leaky_relu", slope=0.1, seed=0,
                       noise_var=0.05 * float(np.mean(np.var(X, axis=0))))
else:
    net = DGN.random((3, 6, 6, 3), activation="relu", seed=0, noise_var=0.05)
    X, _ = net.sample(200, seed=1)
P = fastpath.partition(net)
acc = collections.Counter()
for mod, name in ((_jit_pair_cubature, "_pairs_range"), (_jit_cubature, "simplex_stats")):
    f = getattr(mod, name)
    def g(*a, _f=f, _n=name, **k):
        t = time.perf_counter()
        r = _f(*a, **k)
        acc[_n] += time.perf_counter() - t
        return r
    setattr(mod, name, g)
orig = sc.simplex_rule
def use(conical):
    sc.simplex_rule = sc.conical_rule if conical else orig
    sc._rule_table.cache_clear()
res = {}
for _ in range(2):
    for conical in (True, False):
        use(conical)
        with threads(1):
            st = estep_statistics(net, X, partition=P)
            acc.clear()
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                st = estep_statistics(net, X, partition=P)
                ts.append(time.perf_counter() - t)
        res[conical] = st
        print(case, "conical" if conical else "symmetric",
              f"min {min(ts):.3f} median {np.median(ts):.3f}",
              {k: round(v / 3, 4) for k, v in acc.items()}, flush=True)
a, b = res[True], res[False]
print("log-likelihood difference", abs(a.log_likelihood - b.log_likelihood),
      "S2 (relative)", np.max(np.abs(a.S2 - b.S2)) / np.max(np.abs(a.S2)),
      "x1 (relative)", np.max(np.abs(a.x1 - b.x1)) / np.max(np.abs(a.x1)))
