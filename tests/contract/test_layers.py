"""The layer rule of docs/ARCHITECTURE.md, checked by parsing every import (lazy ones too).

import-linter enforces the same contracts in .ci/run; this test is a second, independent
reading of the source, and it shows that the rule can fail: a forbidden import written into
a copy of a module is reported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> top-level modules it must never import
FORBIDDEN = {
    "dgn_core": {"verified_dgn", "fastpath", "dgn_tools", "scipy", "mpmath", "cdd",
                 "matplotlib", "torch", "cvxpy", "sympy"},
    "verified_dgn": {"fastpath", "dgn_tools"},
    "fastpath": {"verified_dgn", "dgn_tools", "cdd", "matplotlib"},
}


def _imports(source: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _violations(package: str, files: dict[str, str]) -> list[str]:
    return [f"{name} imports {bad}" for name, src in files.items()
            for bad in sorted(_imports(src) & FORBIDDEN[package])]


def _sources(package: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / package).rglob("*.py")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_crosses_the_layers(package):
    files = _sources(package)
    assert files, package
    assert _violations(package, files) == []


def test_a_forbidden_import_is_caught():
    files = _sources("fastpath")
    name = next(iter(files))
    files[name] += "\n\ndef _late():\n    from verified_dgn.integrals import gaussian_moments\n"
    assert _violations("fastpath", files) == [f"{name} imports verified_dgn"]
