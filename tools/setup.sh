#!/usr/bin/env bash
# Set up everything this project needs, idempotently:
#   system packages (apt-get): libcdd-dev libgmp-dev, and a compiler + Python headers when
#   missing (pycddlib builds against them); a virtual environment in .venv with the package
#   installed from pyproject.toml. With --test, also the test tools and the optional torch
#   extra (CPU build). Then the fast path's compiled kernels are compiled (tens of seconds
#   the first time, loaded from the cache in about a second later: `dgn warmup`). A second
#   run with nothing to do takes a couple of seconds.
#
# usage: bash tools/setup.sh [--test]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "setup.sh: $PY not found; install Python 3.11 or set PYTHON=/path/to/python3" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# ---- system packages -----------------------------------------------------------------
pkgs=()
for p in libcdd-dev libgmp-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
done
command -v gcc >/dev/null 2>&1 || pkgs+=(gcc)
pyinc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$pyinc/Python.h" ] || pkgs+=(python3-dev)
"$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "setup.sh: installing system packages: ${pkgs[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# ---- virtual environment ---------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: creating .venv"
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi

extras="exact"
[ "$want_test" = 1 ] && extras="exact,dev,torch"
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
    if [ "$want_test" = 1 ] && ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
        # the CPU build; a bare `torch` requirement could pull a multi-GB CUDA build
        echo "setup.sh: installing torch (CPU build)"
        .venv/bin/python -m pip install -q "torch==2.13.0" \
            || echo "setup.sh: torch not installed; tests that need it will be skipped" >&2
    fi
    if [ "$want_test" = 1 ] && ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
        extras="exact,dev"
    fi
    echo "setup.sh: installing the package with extras [$extras]"
    .venv/bin/python -m pip install -q -e ".[$extras]"
    rm -f .venv/.installed-*
    # a test install satisfies the plain one as well
    touch "$stamp"
    [ "$want_test" = 1 ] && touch ".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-exact"
fi

# ---- compiled kernels ---------------------------------------------------------------------
.venv/bin/dgn warmup --quiet
exit 0
