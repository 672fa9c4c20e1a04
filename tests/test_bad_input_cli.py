"""Bad input to the ``dgn`` command line: each case exits with status 2 and one line on
stderr that names the problem, shows no traceback, and leaves every file as it was (no output
overwritten, no run folder left behind).

The cases run ``dgn_tools.cli.main`` in-process. ``{d}`` in an argument is the folder of
shared input files (:func:`inputs`), ``{t}`` the test's own empty folder (also the working
directory, where the default outputs would go).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dgn_core.data import noisy_circle
from dgn_core.model import DGN
from dgn_tools.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Input files shared by the cases (none of them may change)."""
    d = tmp_path_factory.mktemp("inputs")
    X = noisy_circle(60, seed=0)
    np.savetxt(d / "data.csv", X, delimiter=",")
    np.save(d / "data.npy", X)
    # five points repeated: a curve through all of them sends the noise variance to 0
    np.save(d / "repeated.npy", np.repeat(np.random.default_rng(0).standard_normal((5, 2)), 40, 0))
    np.save(d / "huge.npy", X * 1e200)
    (d / "words.csv").write_text("1,2\n3,oops\n")
    DGN.random((1, 4, 2), seed=0).save(d / "model.npz")
    DGN.random((1, 4, 2), seed=1).save(d / "model2.npz")
    (d / "damaged.npz").write_bytes(b"not a zip archive")
    for name in ("exists.png", "exists.csv"):
        (d / name).write_text("the user's own file\n")
    (d / "folder").mkdir()
    (d / "folder.png").mkdir()
    # a finished run (no iterations: fast) for the --resume and overwrite cases
    assert main(["fit", "--data", str(d / "data.npy"), "--widths", "4", "--max-iter", "0",
                 "--quiet", "--out", str(d / "run")]) == 0
    # a run whose data file changed afterwards, and one whose checkpoint is damaged
    np.save(d / "moving.npy", X)
    assert main(["fit", "--data", str(d / "moving.npy"), "--widths", "4", "--max-iter", "0",
                 "--quiet", "--out", str(d / "run_moved")]) == 0
    np.save(d / "moving.npy", X + 0.001)
    assert main(["fit", "--data", str(d / "data.npy"), "--widths", "4", "--max-iter", "0",
                 "--quiet", "--out", str(d / "run_bad_checkpoint")]) == 0
    (d / "run_bad_checkpoint" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    (d / "broken_run").mkdir()
    (d / "broken_run" / "config.json").write_text("{not json")
    cfg = json.loads((d / "run" / "config.json").read_text())
    for name, key, value in (("run_edited", "latent_dim", "2"), ("run_cut", "noise_floor", None)):
        (d / name).mkdir()
        edited = {k: v for k, v in cfg.items() if k != key}
        if value is not None:
            edited[key] = value
        (d / name / "config.json").write_text(json.dumps(edited))
    return d


def _snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder under ``folders`` with a hash of its content."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# (argv, a word the error line must contain); every case must also leave all files alone
CASES = [
    # ------------------------------------------------------------------ malformed lists
    pytest.param(["fit", "--widths", "8,,8"], "empty entry", id="fit-widths-double-comma"),
    pytest.param(["fit", "--widths", ","], "empty entry", id="fit-widths-comma-only"),
    pytest.param(["fit", "--widths", "8,"], "empty entry", id="fit-widths-trailing-comma"),
    pytest.param(["fit", "--widths", "8,a"], "widths", id="fit-widths-not-integer"),
    pytest.param(["fit", "--widths", "8,0"], "positive", id="fit-widths-zero"),
    pytest.param(["partition", "--random", "2,,2"], "empty entry", id="partition-random-double-comma"),
    pytest.param(["partition", "--random", "2"], "at least two", id="partition-random-one-width"),
    pytest.param(["posterior", "--random", "1,,2"], "empty entry", id="posterior-random-double-comma"),
    pytest.param(["select", "--candidates", "8;;"], "empty candidate", id="select-candidates-empty"),
    pytest.param(["select", "--candidates", ";"], "empty candidate", id="select-candidates-semicolon"),
    pytest.param(["select", "--candidates", "8,,8;4"], "empty entry", id="select-candidates-double-comma"),
    # ------------------------------------------------------------------ fit: options
    pytest.param(["fit", "--latent-dim", "5"], "1 to 4", id="fit-latent-dim-5"),
    pytest.param(["fit", "--latent-dim", "0"], "--latent-dim", id="fit-latent-dim-0"),
    pytest.param(["fit", "--data", "{d}/repeated.npy", "--noise-floor", "0"], "at least",
                 id="fit-noise-floor-0"),
    pytest.param(["fit", "--noise-floor", "nan"], "--noise-floor", id="fit-noise-floor-nan"),
    pytest.param(["fit", "--noise-floor", "1"], "variance", id="fit-noise-floor-above-data-variance"),
    pytest.param(["fit", "--noise-var", "1e-9"], "--noise-floor", id="fit-noise-var-below-floor"),
    pytest.param(["fit", "--noise-var", "-1"], "--noise-var", id="fit-noise-var-negative"),
    pytest.param(["fit", "--noise-var", "inf"], "--noise-var", id="fit-noise-var-inf"),
    pytest.param(["fit", "--max-iter", "-1"], "--max-iter", id="fit-max-iter-negative"),
    pytest.param(["fit", "--checkpoint-every", "0"], "--checkpoint-every", id="fit-checkpoint-every-0"),
    pytest.param(["fit", "--tol", "-1"], "--tol", id="fit-tol-negative"),
    pytest.param(["fit", "--n", "0"], "--n", id="fit-n-0"),
    pytest.param(["fit", "--slope", "nan"], "slope", id="fit-slope-nan"),
    pytest.param(["fit", "--activation", "tanh"], "one of relu, leaky_relu, abs",
                 id="fit-activation-unknown"),
    pytest.param(["fit", "--activation", "relu,abs,relu"], "3 activation(s) but the net has 2 hidden",
                 id="fit-activation-per-layer-count"),
    pytest.param(["fit", "--prior", "cauchy:1"], "prior", id="fit-prior-unknown"),
    pytest.param(["fit", "--prior", "box:0.01"], "outside the box", id="fit-box-prior-too-small"),
    # ------------------------------------------------------------------ fit: data
    pytest.param(["fit", "--data", "{d}/missing.npy"], "--data", id="fit-data-missing"),
    pytest.param(["fit", "--data", "{d}/folder"], "folder", id="fit-data-is-a-folder"),
    pytest.param(["fit", "--data", "{d}/words.csv"], "words.csv", id="fit-data-not-numeric"),
    pytest.param(["fit", "--data", "{d}/huge.npy"], "rescale", id="fit-data-1e200"),
    # ------------------------------------------------------------------ fit: run folders
    pytest.param(["fit", "--out", "{d}/exists.csv"], "is a file", id="fit-out-is-a-file"),
    pytest.param(["fit", "--out", "{d}/exists.csv/run"], "not a folder", id="fit-out-below-a-file"),
    pytest.param(["fit", "--out", "{d}/run"], "already holds a run", id="fit-out-holds-a-run"),
    pytest.param(["fit", "--resume", "{d}/folder"], "config.json", id="fit-resume-not-a-run"),
    pytest.param(["fit", "--resume", "{d}/missing"], "config.json", id="fit-resume-missing"),
    pytest.param(["fit", "--resume", "{d}/broken_run"], "damaged", id="fit-resume-damaged-config"),
    pytest.param(["fit", "--resume", "{d}/run_edited"], "'latent_dim' is '2'",
                 id="fit-resume-config-wrong-type"),
    pytest.param(["fit", "--resume", "{d}/run_cut"], "'noise_floor' is missing",
                 id="fit-resume-config-key-missing"),
    pytest.param(["fit", "--resume", "{d}/run", "--widths", "8,8"], "--widths 8,8 conflicts",
                 id="fit-resume-conflicting-widths"),
    pytest.param(["fit", "--resume", "{d}/run", "--data", "cosine"], "--data cosine conflicts",
                 id="fit-resume-conflicting-data"),
    pytest.param(["fit", "--resume", "{d}/run", "--seed", "3"], "--seed 3 conflicts",
                 id="fit-resume-conflicting-seed"),
    pytest.param(["fit", "--resume", "{d}/run", "--prior", "gaussian:1"], "--prior",
                 id="fit-resume-conflicting-prior"),
    pytest.param(["fit", "--resume", "{d}/run", "--out", "{t}/elsewhere"], "--out",
                 id="fit-resume-with-another-out"),
    pytest.param(["fit", "--resume", "{d}/run_moved", "--max-iter", "2"], "different data",
                 id="fit-resume-after-the-data-changed"),
    pytest.param(["fit", "--resume", "{d}/run_bad_checkpoint", "--max-iter", "2"],
                 "not a readable EM checkpoint", id="fit-resume-damaged-checkpoint"),
    # ------------------------------------------------------------------ select
    pytest.param(["select", "--data", "{d}/data.csv", "--out", "{d}/data.csv"], "input file",
                 id="select-out-is-the-data"),
    pytest.param(["select", "--data", "{d}/data.csv", "--out", "{d}/data.csv", "--force"],
                 "input file", id="select-out-is-the-data-even-with-force"),
    pytest.param(["select", "--out", "{d}/exists.csv"], "--force", id="select-out-exists"),
    pytest.param(["select", "--out", "{d}/folder"], "folder", id="select-out-is-a-folder"),
    pytest.param(["select", "--latent-dim", "9"], "1 to 4", id="select-latent-dim-9"),
    pytest.param(["select", "--max-iter", "-1"], "--max-iter", id="select-max-iter-negative"),
    pytest.param(["select", "--data", "{d}/folder"], "folder", id="select-data-is-a-folder"),
    # ------------------------------------------------------------------ partition
    pytest.param(["partition", "--out", "{d}/exists.png"], "--force", id="partition-out-exists"),
    pytest.param(["partition", "--out", "{d}/folder.png"], "folder", id="partition-out-is-a-folder"),
    pytest.param(["partition", "{d}/model.npz", "--out", "{d}/model.npz", "--force"], "input file",
                 id="partition-out-is-the-model"),
    pytest.param(["partition", "{d}/folder"], "directory", id="partition-model-is-a-folder"),
    pytest.param(["partition", "{d}/damaged.npz"], "damaged.npz", id="partition-model-damaged"),
    pytest.param(["partition", "{d}/missing.npz"], "missing.npz", id="partition-model-missing"),
    pytest.param(["partition", "{d}/model.npz", "--random", "1,4,2"], "not both",
                 id="partition-model-and-random"),
    pytest.param(["partition", "--max-regions", "0"], "--max-regions", id="partition-max-regions-0"),
    pytest.param(["partition", "--window", "-1"], "--window", id="partition-window-negative"),
    # ------------------------------------------------------------------ posterior
    pytest.param(["posterior", "--grid", "100000"], "from 2 to 1000", id="posterior-grid-huge"),
    pytest.param(["posterior", "--grid", "1"], "--grid", id="posterior-grid-1"),
    pytest.param(["posterior", "--exact", "--grid", "500"], "--exact", id="posterior-exact-grid-500"),
    pytest.param(["posterior", "--point", "1,2,3"], "two finite", id="posterior-point-three-numbers"),
    pytest.param(["posterior", "--point", "a,b"], "--point=-1,2", id="posterior-point-not-numbers"),
    pytest.param(["posterior", "--point", "-1,nan"], "finite", id="posterior-point-nan"),
    pytest.param(["posterior", "--out", "{d}/exists.png"], "--force", id="posterior-out-exists"),
    pytest.param(["posterior", "--random", "1,4,3"], "data dimension 2", id="posterior-data-dim-3"),
    pytest.param(["posterior", "--noise", "0"], "--noise", id="posterior-noise-0"),
    # ------------------------------------------------------------------ check
    pytest.param(["check", "no such check"], "Lemma 3", id="check-unknown-name-lists-the-names"),
    pytest.param(["check", "Lemma", "3"], "quote names with spaces", id="check-unquoted-name"),
    pytest.param(["check", "{d}/model.npz", "{d}/model2.npz"], "at most one",
                 id="check-two-models"),
    pytest.param(["check", "{d}/missing.npz"], "missing.npz", id="check-model-missing"),
    pytest.param(["check", "--random", "1,,2"], "empty entry", id="check-random-double-comma"),
]


@pytest.mark.parametrize("argv, word", CASES)
def test_bad_input(argv, word, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(d=inputs, t=tmp_path) for a in argv]
    before = _snapshot(inputs, tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dgn {argv[0]}: error: ")
    assert word in lines[0], err
    assert "Traceback" not in err
    assert _snapshot(inputs, tmp_path) == before     # nothing written, changed or left behind


def test_huge_data_is_not_blamed_on_noise_var(inputs, tmp_path, capsys):
    # the noise variance derived from data at 1e200 overflowed and was reported as a bad
    # --noise-var, an option never given
    assert main(["fit", "--data", str(inputs / "huge.npy"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "noise-var" not in err and "huge.npy" in err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------- file-system errors
def _raise_oserror(code: int, where: int = -1):
    """A replacement for a writer that fails as the OS would, naming the path it was given
    (positional argument ``where``)."""
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[where]))
    return fail


@pytest.mark.parametrize("code, fix", [(errno.EACCES, "permissions"),
                                       (errno.EROFS, "read-only"),
                                       (errno.ENOSPC, "free space")])
def test_write_failure_is_one_line_with_path_and_fix(code, fix, tmp_path, monkeypatch, capsys):
    # a folder that cannot be written (root ignores permission bits, so the failure is
    # injected where the picture is written)
    import dgn_tools.plotting as plotting

    monkeypatch.setattr(plotting, "save_figure", _raise_oserror(code))
    out = tmp_path / "p.png"
    assert main(["partition", "--random", "1,3,2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(out) in err and fix in err


def test_run_folder_read_only_mid_run(tmp_path, monkeypatch, capsys):
    # the folder becomes unwritable after EM: saving the model fails
    monkeypatch.setattr(DGN, "save", _raise_oserror(errno.EACCES))
    run = tmp_path / "run"
    assert main(["fit", "--n", "50", "--widths", "3", "--max-iter", "1", "--quiet",
                 "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "model.npz" in err and "permissions" in err


def test_checkpoint_write_fails_mid_run(tmp_path, monkeypatch, capsys):
    # the folder becomes unwritable during EM: the checkpoint after iteration 1 fails
    import fastpath._em_checkpoint as ckpt

    monkeypatch.setattr(ckpt, "atomic_write_npz", _raise_oserror(errno.EROFS, where=0))
    run = tmp_path / "run"
    assert main(["fit", "--n", "50", "--widths", "3", "--max-iter", "3", "--quiet",
                 "--checkpoint-every", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "checkpoint.npz" in err and "read-only" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["partition", "--random", "1,3,2", "--out", str(folder / "p.png")]) == 2
        err = capsys.readouterr().err
        assert "not writable" in err and str(folder) in err
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("command", ["partition", "posterior"])
def test_exact_without_pycddlib(command, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "cdd", None)      # as if pycddlib were not installed
    out = tmp_path / "p.png"
    assert main([command, "--exact", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pycddlib" in err
    assert not out.exists()


def test_internal_errors_keep_their_traceback(tmp_path, monkeypatch):
    # a bare ValueError from inside the computation is a bug, not an input error
    import fastpath

    def bug(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(fastpath, "partition", bug)
    with pytest.raises(ValueError, match="internal bug"):
        main(["partition", "--random", "1,3,2", "--out", str(tmp_path / "p.png")])
    assert not (tmp_path / "p.png").exists()


def test_resume_with_the_saved_options_is_accepted(inputs, tmp_path, capsys):
    # the options given with --resume are compared with the saved ones, not with defaults
    import shutil

    run = tmp_path / "run"
    shutil.copytree(inputs / "run", run)
    saved = json.loads((run / "config.json").read_text())
    assert main(["fit", "--resume", str(run), "--widths", "4", "--data", saved["data"],
                 "--max-iter", "1", "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["n_iter"] == 1
