#!/usr/bin/env bash
# Gets nvcc 13.0 from PyPI, the one way this project gets it (README "Getting nvcc", .ci/run and
# the hint of Error::KernelsNotBuilt all run this script):
#
#     export NVCC="$(bash scripts/get-nvcc.sh)"
#
# Installs into DIR (first argument; default $PREFIX_ATTN_CACHE/cuda-13.0, PREFIX_ATTN_CACHE
# defaulting to ~/.cache/prefix-attn) unless DIR already holds a working nvcc, checks that it
# runs, and prints its path as the only line on stdout (pip's output and notes go to stderr).
# Needs python3 with pip and network access to PyPI; takes about 270 MB once installed.
#
# Every piece is pinned to 13.0: nvcc finds its own front end (nvvm: cicc) and headers (crt,
# cccl, runtime) next to itself, and an unpinned pip pulls newer crt/nvvm wheels whose ptxas
# input this nvcc rejects ("ptxas fatal: Unsupported .version").
set -euo pipefail

PACKAGES=(
    "nvidia-cuda-nvcc==13.0.*"
    "nvidia-cuda-cccl==13.0.*"
    "nvidia-cuda-crt==13.0.*"
    "nvidia-nvvm==13.0.*"
    "nvidia-cuda-runtime==13.0.*"
)

cache="${PREFIX_ATTN_CACHE:-$HOME/.cache/prefix-attn}"
dir="${1:-$cache/cuda-13.0}"
nvcc="$dir/nvidia/cu13/bin/nvcc"

if [ ! -x "$nvcc" ] || ! "$nvcc" --version >/dev/null 2>&1; then
    echo "get-nvcc: installing ${PACKAGES[*]} into $dir" >&2
    # --upgrade: a half-finished earlier install in DIR is replaced, not kept.
    python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$dir" \
        "${PACKAGES[@]}" >&2
fi
if ! "$nvcc" --version | tail -n 1 >&2; then
    echo "get-nvcc: $nvcc does not run after the install" >&2
    exit 1
fi
echo "$nvcc"
