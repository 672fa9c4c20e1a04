"""The proofs_checks/ scripts: every one starts, and script_main passes its options on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dgn_tools.checks import _REGISTRY, CheckResult, script_main

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "proofs_checks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_help(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "--thorough" in out.stdout and "--model" in out.stdout


def test_script_main_passes_options(monkeypatch, capsys):
    seen = []

    def fake(**kw):
        seen.append(kw)
        return CheckResult("Fake", "a check", passed=kw["seed"] != 13, measured="nothing")

    monkeypatch.setitem(_REGISTRY, "Fake", ("a check", fake))
    extra = (("--iters", "max_iter", int, "iterations"),)
    assert script_main("Fake", "d", ["--seed", "3"], dps_help="digits", extra=extra) == 0
    assert script_main("Fake", "d", ["--thorough", "--dps", "40", "--iters", "5"],
                       dps_help="digits", extra=extra) == 0
    assert script_main("Fake", "d", ["--seed", "13"]) == 1
    assert seen == [
        {"net": None, "quick": True, "seed": 3, "max_iter": None},
        {"net": None, "quick": False, "seed": 0, "max_iter": 5, "dps": 40},
        {"net": None, "quick": True, "seed": 13},
    ]
    assert "[PASS] Fake" in capsys.readouterr().out
