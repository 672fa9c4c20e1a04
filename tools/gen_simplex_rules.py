"""Write the symmetric simplex cubature rules of fastpath._simplex_cubature (the .npz table).

    # in a separate environment: only this script needs them
    pip install fenics-basix==0.11.0 modepy==2026.1
    python tools/gen_simplex_rules.py fastpath/_simplex_rules.npz [--overwrite]

Fully symmetric rules with positive weights and every node inside the simplex, exact to the
stated degree with fewer nodes than the conical product rule of that degree:

* Xiao and Gimbutas (Comput. Math. Appl. 59 (2010) 663-676) as basix tabulates them:
  triangles 37 / 49 / 60 / 73 / 87 / 103 / 141 nodes for degrees 13 .. 23 and 27, against
  49 .. 196; tetrahedra 95 / 146 / 214 nodes for degrees 11 / 13 / 15, against 216 / 343 /
  512 (basix's tetrahedral rules end at degree 15);
* Jaskowiec and Sukumar (Int. J. Numer. Methods Eng. 122 (2021) 148-171) as modepy
  tabulates them: tetrahedra 436 / 552 nodes for degrees 18 / 20, used for the bands of
  degrees 17-21 (conical rules 729 / 1000 / 1331 nodes; their rules end at degree 20;
  ``fastpath._simplex_cubature._BAND_DEGREE`` says which band takes which rule and why).

Stored per (s, degree): barycentric nodes (Q, s + 1) and weights (Q,) summing to 1, the
layout of ``conical_rule``. The script checks each rule's weights, nodes and exactness on
every monomial of its degree before writing.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

#: (s, degree) of the table by source: the degrees of fastpath._simplex_cubature's band rules
XIAO_GIMBUTAS = {2: (13, 15, 17, 19, 21, 23, 27), 3: (11, 13, 15)}
JASKOWIEC_SUKUMAR = {3: (18, 20)}


def _exact_monomial(alpha: tuple[int, ...]) -> float:
    """The mean over the unit simplex of prod x_i^alpha_i: s! prod alpha_i! / (s + |alpha|)!"""
    s = len(alpha)
    return math.factorial(s) * math.prod(math.factorial(a) for a in alpha) / math.factorial(
        s + sum(alpha))


def _rules() -> Iterator[tuple[int, int, tuple[NDArray[np.float64], NDArray[np.float64]]]]:
    """(s, degree, (nodes (Q, s) in the unit simplex, weights (Q,) summing to 1)) of every
    tabulated rule."""
    import basix
    from basix import CellType, QuadratureType
    from modepy.quadrature.jaskowiec_sukumar_tet_data import tet_data

    cells = {2: CellType.triangle, 3: CellType.tetrahedron}
    for s, degrees in XIAO_GIMBUTAS.items():
        for deg in degrees:
            pts, w = basix.make_quadrature(cells[s], deg, rule=QuadratureType.xiao_gimbutas)
            # basix's weights sum to the simplex's volume 1 / s!
            yield s, deg, (np.asarray(pts, dtype=np.float64),
                           np.asarray(w, dtype=np.float64) * math.factorial(s))
    # modepy's table is keyed by the rule's order, its "quad_degree" the exact degree;
    # points (3, Q) in the unit tetrahedron, weights printed to ~14 digits (their sum is
    # 1 + 1e-15 .. 2e-15: normalised here)
    by_degree = {int(r["quad_degree"]): r for r in tet_data.values()}
    for deg in JASKOWIEC_SUKUMAR[3]:
        r = by_degree[deg]
        w = np.asarray(r["weights"], dtype=np.float64)
        yield 3, deg, (np.ascontiguousarray(np.asarray(r["points"], dtype=np.float64).T),
                       w / math.fsum(w))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.overwrite:
        print(f"{a.out} exists (--overwrite to replace it)", file=sys.stderr)
        return 2
    arrays = {}
    for s, deg, (pts, w) in _rules():
        lam = np.column_stack([1.0 - pts.sum(axis=1), pts])
        assert np.all(w > 0) and np.all(lam > 0) and abs(math.fsum(w) - 1.0) <= 1e-15, (s, deg)
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
