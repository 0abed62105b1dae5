#!/usr/bin/env bash
# Builds HERE (called by build.sh, with nvcc) the prefix_attn wheel with the CUDA kernels, and puts
# it with the package's tests, its timing script and its pytest config into DEST (default
# gpucheck/python), for run.sh's `python` mode on the GPU machine (which has PyTorch and
# transformers but no Rust). maturin comes from the CI environment (.ci/python.sh) when it is
# there, else from a small venv of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST="${1:-gpucheck/python}"
CACHE="${PREFIX_ATTN_CACHE:-$HOME/.cache/prefix-attn}"
MATURIN="$CACHE/py/venv-torch2.11.0/bin/maturin"
if [ ! -x "$MATURIN" ]; then
    MATURIN="$CACHE/py/venv-maturin/bin/maturin"
    if [ ! -x "$MATURIN" ]; then
        python3 -m venv "$CACHE/py/venv-maturin"
        "$CACHE/py/venv-maturin/bin/python" -m pip install --quiet maturin==1.13.1
    fi
fi
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
rm -f "$DEST"/prefix_attn-*.whl
# The kernels must be in it: nvcc required (build.sh sets NVCC and the architectures).
export PREFIX_ATTN_REQUIRE_NVCC=1
unset PREFIX_ATTN_SKIP_NVCC
(cd python && "$MATURIN" build --release --compatibility linux --out "$DEST" 2>&1 \
    | { grep -v '^warning: prefix-attn@' || true; })
rm -rf "$DEST/tests" "$DEST/bench"
cp -r python/tests python/bench python/pyproject.toml "$DEST/"
find "$DEST" -name __pycache__ -prune -exec rm -rf {} +
ls -la "$DEST"
