"""Reference bundles (docs/reference_bundles.md): the shipped golden bundles (schema, regions,
values against independent exact computations, the fast path against them), ``dgn
reference`` / ``dgn compare`` end to end (the done-when of issue 16), the Python API, and
bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dgn_core.model_json import model_schema
from dgn_core.regions import layer_maps
from dgn_tools.cli import main
from dgn_tools.reference import (
    assert_matches_reference,
    bundle_model,
    bundle_points,
    bundle_reference,
    bundle_schema,
    compare_to_reference,
    fastpath_results,
    golden_bundles,
    load_bundle,
)
from dgn_tools.schema_check import schema_errors
from tests.conftest import needs_cdd

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = {p.stem: p for p in golden_bundles()}
POSTERIOR_QUANTITIES = ("log_px", "region_weights", "posterior_mean", "posterior_cov")


def test_the_golden_set_is_complete():
    assert set(GOLDEN) == {f"S{S}_{a}" for S in (1, 2, 3) for a in ("relu", "leaky_relu", "abs")}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_bundle_matches_the_schemas_and_its_own_model(name):
    raw = json.loads(GOLDEN[name].read_text())
    assert schema_errors(raw, bundle_schema()) == []
    assert schema_errors(raw["model"], model_schema()) == []
    b = load_bundle(GOLDEN[name])
    net, X = bundle_model(b), bundle_points(b)
    assert f"S{net.latent_dim}_{net.activation}" == name and X.shape == (4, net.data_dim)
    # log p(x) and the posterior are certified (arb balls) to >= 30 digits; the EM step is
    # estimated, and says so
    for q, rec in b["quantities"].items():
        assert all(rec["certified"]) == (q in POSTERIOR_QUANTITIES), q
        assert min(rec["digits"]) >= 30, q
    # points: the strings are the shortest round-trip decimals of the doubles
    assert [[repr(float(t)) for t in row] for row in b["points"]] == b["points"]
    # regions: the same sign patterns as the fast path's independent float64 walk, and each
    # H-representation holds exactly at an interior point of the fast region
    import fastpath

    P = fastpath.partition(net)
    assert {tuple(r["signs"]) for r in b["regions"]} == {r.signs for r in P}
    for r in b["regions"]:
        fast = P[P.index_of(r["signs"])]
        z = [Fraction(float(t)) for t in fast.interior_point]
        C = [[Fraction(c) for c in row] for row in r["C"]]
        d = [Fraction(c) for c in r["d"]]
        assert all(sum(c * t for c, t in zip(row, z)) < di for row, di in zip(C, d))
        # the sign convention of the spec: +1 where the pre-activation is >= 0
        assert tuple(net.sign_patterns(np.array([float(t) for t in z]))[0]) == tuple(r["signs"])


def _within_claim(text: str, digits: int, scale: float, truth: Fraction, slack: Fraction
                  ) -> bool:
    """|truth - r| <= 10**-digits max(|r|, scale) (+ the independent value's own error)."""
    r = Fraction(text)
    return abs(truth - r) <= Fraction(1, 10**digits) * max(abs(r), Fraction(scale)) + slack


def _mpf_fraction(v) -> Fraction:
    sign, man, exp, _ = v._mpf_
    return (-1) ** int(sign) * Fraction(int(man)) * Fraction(2) ** int(exp)


@needs_cdd
@pytest.mark.parametrize("name", ["S1_relu", "S1_abs", "S2_leaky_relu"])
def test_golden_values_hold_their_claims_against_mpmath(name):
    """Every value's claim |true - r| <= 10^-n max(|r|, s) holds against the exact path
    in mpmath at 50 digits (independent of the arb balls and of the bundle's two-run
    estimate), up to that computation's own 1e-45."""
    import verified_dgn

    b = load_bundle(GOLDEN[name])
    net, X = bundle_model(b), bundle_points(b)
    post = verified_dgn.posterior(net, X, dps=50)
    order = [post.partition.index_of(r["signs"]) for r in b["regions"]]
    truth = {"log_px": post.log_px, "region_weights": post.e0[:, order],
             "posterior_mean": post.mean, "posterior_cov": post.cov}
    slack = Fraction(1, 10**45)
    for q, exact in truth.items():
        rec = b["quantities"][q]
        flat = np.asarray(exact, dtype=object).ravel()
        for i, v in enumerate(flat):
            assert _within_claim(rec["values"][i], rec["digits"][i], rec["scales"][i],
                                 _mpf_fraction(v), slack), (q, i, rec["values"][i], v)


def _em_digits_needed(b) -> float:
    """13 digits, less what float64 must lose to the conditioning of the last layer's M-step
    system H = sum E[h h^T] (h = (a(h_{L-1}(z)), 1)), built from the fast posterior: a linear
    solve loses log10 cond(H) of float64's ~16 digits (less 2 for the assembly)."""
    import fastpath

    net, X = bundle_model(b), bundle_points(b)
    P = fastpath.partition(net)
    post = fastpath.posterior(net, X, partition=P)
    Dh = net.widths[-2]
    H = np.zeros((Dh + 1, Dh + 1))
    for w, region in enumerate(P):
        pre, _, _ = layer_maps(net, region.signs)
        M, c = pre[-1]
        dl = np.where(np.array(region.signs[-Dh:]) > 0, 1.0, net.slope)
        Pw = np.vstack([dl[:, None] * M, np.zeros((1, net.latent_dim))])
        pw = np.append(dl * c, 1.0)
        for n in range(X.shape[0]):
            Pe1 = Pw @ post.e1[n, w]
            H += (Pw @ post.E2[n, w] @ Pw.T + np.outer(Pe1, pw) + np.outer(pw, Pe1)
                  + post.e0[n, w] * np.outer(pw, pw))
    return min(13.0, 14.0 - float(np.log10(np.linalg.cond(H))))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_fast_path_matches_the_golden_bundles(name):
    """The fast path reaches >= 13 digits on log p(x) and the posterior at S = 1, 2 and 3
    (measured: 14.2 to 15.8), and on the EM step less the digits the M-step's conditioning
    costs in float64 (measured 10.4 at S1_leaky_relu, log10 cond 5.2; >= 13.7 at S = 2, 3)."""
    b = load_bundle(GOLDEN[name])
    res = fastpath_results(b)
    post = {k: v for k, v in res.items() if k in POSTERIOR_QUANTITIES or k == "region_signs"}
    assert_matches_reference(post, b, digits=13)
    em = {k: v for k, v in res.items() if k.startswith("em_")}
    assert len(em) == 3
    assert_matches_reference(em, b, digits=_em_digits_needed(b))


# ------------------------------------------------------------------------------ CLI
def _fast_json(bundle_path: Path, out: Path, change=None) -> Path:
    res = fastpath_results(bundle_path)
    if change is not None:
        change(res)
    out.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in res.items()}))
    return out


@needs_cdd
@pytest.mark.parametrize("widths, activation", [("1,3,2", "abs"), ("2,4,2", "relu")])
def test_reference_then_compare_done_when(tmp_path, capsys, widths, activation):
    """Issue 16's done-when: a bundle written by `dgn reference` at 40 digits holds
    certified digits >= 30, the fast path read back by `dgn compare` reaches >= 13 digits,
    and a result changed in its 8th digit is caught and named."""
    bundle = tmp_path / "ref.json"
    assert main(["reference", "--random", widths, "--activation", activation, "--n", "2",
                 "--digits", "40", "--out", str(bundle), "--npz", str(tmp_path / "ref.npz"),
                 "--no-em", "--quiet"]) == 0
    b = load_bundle(bundle)
    for q in POSTERIOR_QUANTITIES:
        _, ref_digits, _, cert = bundle_reference(b, q)
        assert cert.all() and ref_digits.min() >= 30, q
    assert "em_options" in b and b["em_options"] is None
    good = _fast_json(bundle, tmp_path / "fast.json")
    capsys.readouterr()
    assert main(["compare", str(bundle), str(good), "--digits", "13"]) == 0
    assert "PASS" in capsys.readouterr().out

    def perturb(res):  # the 8th significant digit of one posterior mean entry
        res["posterior_mean"][1, 0] *= 1 + 3e-8

    bad = _fast_json(bundle, tmp_path / "bad.json", perturb)
    assert main(["compare", str(bundle), str(bad), "--digits", "13"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "posterior_mean" in out and "point 1" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("posterior_mean"))
    # 3e-8 relative: about 7.5 digits, more where the scale (the posterior standard
    # deviation) exceeds |mean|
    assert "BELOW 13" in line and 7 <= float(line.split()[2]) < 9
    with pytest.raises(AssertionError, match=r"posterior_mean: [78]\.\d digits at point 1"):
        assert_matches_reference(json.loads(bad.read_text()), bundle, digits=13)
    # the npz twin: the same values as floats, with digits; no unicode or object arrays
    with np.load(tmp_path / "ref.npz") as f:
        assert all(f[k].dtype.kind in "fiub" for k in f.files)
        np.testing.assert_array_equal(f["log_px"], bundle_reference(b, "log_px")[0])
        assert json.loads(f["bundle_json"].tobytes()) == b


def test_compare_reads_csv_npz_npy_and_region_orders(tmp_path, capsys):
    path = GOLDEN["S2_relu"]
    b = load_bundle(path)
    res = fastpath_results(b)
    # region_signs lets another implementation keep its own region order
    perm = np.arange(res["region_signs"].shape[0])[::-1]
    shuffled = dict(res, region_weights=res["region_weights"][:, perm],
                    region_signs=res["region_signs"][perm])
    assert compare_to_reference(shuffled, b, digits=13).passed
    no_signs = {k: v for k, v in shuffled.items() if k != "region_signs"}
    cmp = compare_to_reference(no_signs, b, digits=13)
    assert not cmp.passed and [q.name for q in cmp.failures] == ["region_weights"]
    np.savez(tmp_path / "r.npz", **res)
    np.save(tmp_path / "lp.npy", res["log_px"])
    rows = ["quantity,point,index,value"]
    rows += [f"log_px,{n},,{float(v)!r}" for n, v in enumerate(res["log_px"])]
    rows += [f"posterior_cov,{n},{i};{j},{float(res['posterior_cov'][n, i, j])!r}"
             for n in range(len(res["log_px"])) for i in range(2) for j in range(2)]
    rows += [f"em_W1,,{i};{j},{float(v)!r}" for (i, j), v in np.ndenumerate(res["em_W1"])]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    for args in (["r.npz"], ["lp.npy", "--quantity", "log_px"], ["r.csv"]):
        capsys.readouterr()
        assert main(["compare", str(path), str(tmp_path / args[0]), *args[1:],
                     "--digits", "10"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "em_W1" in out and "not in the results" in out
    assert main(["compare", str(path), "--fastpath", "--digits", "10",
                 "--json", str(tmp_path / "cmp.json")]) == 0
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert report["passed"] and report["quantities"]["log_px"]["digits"] >= 13


def test_agreement_measure():
    """Digits are -log10(|y - r| / max(|r|, s)), capped at the reference's digits; NaN: 0."""
    b = load_bundle(GOLDEN["S1_relu"])
    ref, digits, scales, _ = bundle_reference(b, "log_px")
    cmp = compare_to_reference({"log_px": ref}, b)
    # float(r) differs from the 35-digit r by its rounding, <= 2**-53 |r| (|r| >= s = 1
    # here, or absolute below): about 16 digits, not the reference's 35, and not inf
    assert 15.6 < cmp.quantities["log_px"].digits < 18 < digits.min()
    y = ref + 1e-9 * np.maximum(np.abs(ref), scales)
    assert cmp.threshold == 10
    d = compare_to_reference({"log_px": y}, b).quantities["log_px"].digits
    assert 8.9 < d < 9.1
    y = ref.copy()
    y[1] = np.nan
    q = compare_to_reference({"log_px": y}, b).quantities["log_px"]
    assert q.digits == 0 and q.worst == (1,)


@pytest.mark.parametrize("argv, words", [
    (["compare", "{g}", "{d}/none.json"], "no results file"),
    (["compare", "{d}/none.json", "--fastpath"], "no bundle file"),
    (["compare", "{g}"], "RESULTS file or --fastpath"),
    (["compare", "{g}", "{d}/unknown.json"], "unknown quantities"),
    (["compare", "{g}", "{d}/shape.json"], "has shape"),
    (["compare", "{g}", "{d}/lp.npy"], "--quantity"),
    (["compare", "{g}", "{d}/lp.txt"], "unknown results format"),
    (["compare", "{d}/unknown.json", "--fastpath"], "not a reference bundle"),
    (["compare", "{g}", "{d}/bad.csv"], "line 2"),
    (["reference", "--random", "2,3,2", "--out", "{d}/unknown.json"], "--force"),
    (["reference", "--random", "4,3,2", "--out", "{d}/new.json"], "S <= 3"),
    (["reference", "--random", "2,3,2", "--digits", "0", "--out", "{d}/new.json"], "--digits"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, words):
    (tmp_path / "unknown.json").write_text(json.dumps({"log_pz": [1.0]}))
    (tmp_path / "shape.json").write_text(json.dumps({"log_px": [1.0, 2.0, 3.0]}))
    np.save(tmp_path / "lp.npy", np.zeros(4))
    (tmp_path / "lp.txt").write_text("1\n")
    (tmp_path / "bad.csv").write_text("quantity,point,index,value\nlog_px,x,,1.0\n")
    argv = [a.format(g=GOLDEN["S1_relu"], d=tmp_path) for a in argv]
    if argv[0] == "reference" and importlib.util.find_spec("cdd") is None:
        pytest.skip("dgn reference needs pycddlib")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err


@needs_cdd
@pytest.mark.parametrize("name", [
    "S1_relu", "S1_abs",                                   # ~1 s each: run in CI
    pytest.param("S2_abs", marks=pytest.mark.slow),        # minutes (the EM step in mpmath)
])
def test_regenerated_bundle_matches_the_shipped_one(tmp_path, name):
    """tools/make_golden_bundles.py reproduces a shipped bundle: the same model, points and
    regions, and values that agree within both files' claimed digits."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_golden_bundles as mg
    finally:
        sys.path.pop(0)
    path, _ = mg.make(name, tmp_path, quiet=True)
    new, old = load_bundle(path), load_bundle(GOLDEN[name])
    for key in ("model", "points", "regions", "em_options", "conventions"):
        assert new[key] == old[key], key
    for name, q_old in old["quantities"].items():
        q_new = new["quantities"][name]
        for a, b, na, nb, s in zip(q_new["values"], q_old["values"], q_new["digits"],
                                   q_old["digits"], q_old["scales"]):
            tol = Fraction(1, 10 ** min(na, nb)) * 2 * max(abs(Fraction(b)), Fraction(s))
            assert abs(Fraction(a) - Fraction(b)) <= tol, (name, a, b)


@needs_cdd
def test_reference_from_a_json_model_and_csv_points(tmp_path, capsys):
    """A model file in either format and points from a file give the same bundle as the
    model and points themselves (exact: the points are written with repr)."""
    b0 = load_bundle(GOLDEN["S1_abs"])
    net, X = bundle_model(b0), bundle_points(b0)
    net.to_json(tmp_path / "m.json")
    net.save(tmp_path / "m.npz")
    (tmp_path / "x.csv").write_text("x1,x2\n" + "".join(
        f"{float(a)!r},{float(b)!r}\n" for a, b in X))
    for model in ("m.json", "m.npz"):
        out = tmp_path / f"ref_{model}.json"
        assert main(["reference", str(tmp_path / model), "--points", str(tmp_path / "x.csv"),
                     "--digits", "20", "--no-em", "--quiet", "--out", str(out)]) == 0
        b = load_bundle(out)
        assert b["model"] == b0["model"] and b["points"] == b0["points"]
        assert b["regions"] == b0["regions"]
        cmp = compare_to_reference({q: bundle_reference(b0, q)[0] for q in POSTERIOR_QUANTITIES},
                                   b, digits=15)
        assert cmp.passed, cmp.table()
    assert main(["reference", str(tmp_path / "m.json"), "--random", "1,3,2",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert main(["reference", str(tmp_path / "m.json"), "--points", str(tmp_path / "m.npz"),
                 "--out", str(tmp_path / "y.json")]) == 2
    assert "m.npz" in capsys.readouterr().err
