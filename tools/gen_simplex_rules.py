"""Write the symmetric simplex cubature rules of fastpath._simplex_cubature (the .npz table).

    pip install fenics-basix==0.11.0      # in a separate environment: only this script needs it
    python tools/gen_simplex_rules.py fastpath/_simplex_rules.npz [--overwrite]

Xiao and Gimbutas' rules (Comput. Math. Appl. 59 (2010) 663-676) as basix tabulates them:
fully symmetric, positive weights, every node inside the simplex, exact to the stated
degree with fewer nodes than the conical product rule of that degree (triangles: 37 / 49
/ 60 / 73 / 87 / 103 / 141 nodes for degrees 13 .. 23 and 27, against 49 .. 196;
tetrahedra: 95 / 146 / 214 nodes for degrees 11 / 13 / 15, against 216 / 343 / 512; basix
has tetrahedral rules up to degree 15 only). Stored per (s, degree): barycentric nodes
(Q, s + 1) and weights (Q,) summing to 1, the layout of ``conical_rule``. The script checks
each rule's exactness on every monomial of its degree before writing.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile

import numpy as np

#: (s, degree) of the table: the degrees 2n - 1 of fastpath._simplex_cubature._rules' bands
DEGREES = {2: (13, 15, 17, 19, 21, 23, 27), 3: (11, 13, 15)}


def _exact_monomial(alpha: tuple[int, ...]) -> float:
    """The mean over the unit simplex of prod x_i^alpha_i: s! prod alpha_i! / (s + |alpha|)!"""
    s = len(alpha)
    return math.factorial(s) * math.prod(math.factorial(a) for a in alpha) / math.factorial(
        s + sum(alpha))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.overwrite:
        print(f"{a.out} exists (--overwrite to replace it)", file=sys.stderr)
        return 2
    import basix
    from basix import CellType, QuadratureType

    cells = {2: CellType.triangle, 3: CellType.tetrahedron}
    arrays = {}
    for s, degrees in DEGREES.items():
        for deg in degrees:
            pts, w = basix.make_quadrature(cells[s], deg, rule=QuadratureType.xiao_gimbutas)
            pts = np.asarray(pts, dtype=np.float64)
            w = np.asarray(w, dtype=np.float64) * math.factorial(s)     # sum 1
            lam = np.column_stack([1.0 - pts.sum(axis=1), pts])
            assert np.all(w > 0) and np.all(lam > 0), (s, deg)
            for alpha in itertools.product(range(deg + 1), repeat=s):
                if sum(alpha) <= deg:
                    got = float(np.sum(w * np.prod(pts ** np.array(alpha), axis=1)))
                    ref = _exact_monomial(alpha)
                    assert abs(got - ref) <= 1e-14 * max(1.0, ref) + 1e-15, (s, deg, alpha)
            arrays[f"lam_{s}_{deg}"] = lam
            arrays[f"w_{s}_{deg}"] = w
            print(f"s = {s}, degree {deg}: {w.size} nodes")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.out)), suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.chmod(tmp, 0o644)
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
