"""The ``dgn`` command line (each command's tests in their own functions)."""

from __future__ import annotations

import numpy as np
import pytest

from fastpath.cli import example_posterior_net, main, posterior_figure
from tests.conftest import needs_cdd

PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- dgn posterior
@needs_cdd
def test_posterior_command_exact(tmp_path, capsys):
    out = tmp_path / "fig3.png"
    rc = main(["posterior", "--random", "1,4,2", "--noise", "0.05", "--exact", "--grid", "4",
               "--point", "0.1,-0.2", "--out", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == PNG
    assert f"wrote {out}" in capsys.readouterr().out
    assert not list(tmp_path.glob(".fig3.*"))  # the atomic write left no temporary file


def test_posterior_command_fast_s1_and_s2(tmp_path):
    for latent in (1, 2):
        out = tmp_path / f"s{latent}.png"
        assert main(["posterior", "--latent", str(latent), "--grid", "6", "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == PNG


def test_posterior_command_input_errors(tmp_path, capsys):
    out = tmp_path / "x.png"
    # data dimension 3: no heat map of p(x) to draw
    assert main(["posterior", "--random", "1,4,3", "--out", str(out)]) == 2
    assert "data dimension 2" in capsys.readouterr().err
    assert main(["posterior", "--noise", "-1", "--out", str(out)]) == 2
    assert "--noise" in capsys.readouterr().err
    assert main(["posterior", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["posterior", "--point", "a,b"])
    with pytest.raises(SystemExit):
        main(["posterior", "--point", "1,2,3"])
    assert not out.exists()


def test_posterior_figure_panels():
    """Three panels; the posterior panel draws the density and the mean of the given point."""
    net = example_posterior_net(1, noise_var=0.01)
    fig = posterior_figure(net, np.array([0.6, 0.0]), grid=5)
    axes = fig.axes
    assert len([a for a in axes if a.get_title()]) == 3
    post_ax = axes[2]
    assert "posterior of x = (0.600, 0.000)" in post_ax.get_title()
    labels = [l.get_label() for l in post_ax.get_lines()]
    assert "p(z | x)" in labels and any(l.startswith("E[z|x]") for l in labels)
    import matplotlib.pyplot as plt

    plt.close(fig)
