"""The README's Python example runs as written and does what its comments say."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README has no python example"
    example = blocks[0]
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # fit_em's ConvergenceWarning at 20 iterations
        exec(compile(example, str(README), "exec"), ns)  # noqa: S102 - our own README
    X, log_px, post, Zs, fit = ns["X"], ns["log_px"], ns["post"], ns["Zs"], ns["fit"]
    assert log_px.shape == (X.shape[0],) and np.all(np.isfinite(log_px))
    np.testing.assert_allclose(post.e0.sum(axis=1), 1.0, atol=1e-12)
    assert Zs.shape == (100, 1)
    ll = np.asarray(fit.log_likelihood)
    assert ll.size == 21 and np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    best, table = ns["best"], ns["table"]
    assert len(best.init_results) == 3 and best.val_log_likelihood
    assert len(table.rows) == 4 and table.n_val_points == 300


def test_readme_starts_with_the_two_commands():
    text = README.read_text().splitlines()
    i = text.index("```bash")
    assert text[i + 1] == "bash tools/setup.sh && .venv/bin/dgn fit"
    assert text[i + 2] == "bash tools/setup.sh --test && .venv/bin/python -m pytest"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash tools/setup.sh --test && .venv/bin/python -m pytest" in ci
