"""dgn_tools.plotting leaves matplotlib's global state alone and still writes pictures."""

from __future__ import annotations

import subprocess
import sys

from dgn_core.model import DGN

PNG = b"\x89PNG\r\n\x1a\n"

_PROBE = """
import sys
import matplotlib
before = matplotlib.get_backend()
import dgn_tools.plotting
import dgn_tools.cli
from dgn_core.model import DGN
import fastpath
from dgn_tools.plotting import plot_partition, save_figure
ax = plot_partition(fastpath.partition(DGN.random((2, 4, 2), seed=0)))
save_figure(ax.figure, sys.argv[1])
print(before, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_import_and_use_keep_the_backend(tmp_path):
    """A notebook's backend (here svg, set by MPLBACKEND) is the same after importing the
    tools and drawing and saving a figure, and pyplot is never imported."""
    out = tmp_path / "p.png"
    env = {"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", _PROBE, str(out)], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["svg", "svg", "False"]
    assert out.read_bytes()[:8] == PNG


def test_save_figure_is_atomic_and_keeps_no_temporary(tmp_path):
    import fastpath
    from dgn_tools.plotting import plot_curve, save_figure

    ax = plot_curve(fastpath.partition(DGN.random((1, 4, 2), seed=0)))
    path = save_figure(ax.figure, tmp_path / "sub" / "curve.png")
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in path.parent.iterdir()] == ["curve.png"]
