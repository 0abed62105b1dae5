#!/usr/bin/env bash
# CI step for the prefix_attn Python package (python/): a pinned PyTorch in a virtual environment
# cached outside the clone, fmt and clippy of the package's crate, the wheel built by maturin
# (CPU build: the tests run the kernels under the emulator, so nvcc is skipped here; the GPU
# check builds the wheel with the kernels), then its tests on the CPU.
#
# The environment: python/requirements-ci.txt pins every package (torch 2.11.0, the GPU machine's
# version, and its CUDA dependencies: PyPI's Linux torch needs them even to import on a CPU). It
# is installed once into $PREFIX_ATTN_CACHE/py/venv-torch2.11.0 (default ~/.cache/prefix-attn),
# about 4.9 GB, 7.5 minutes cold; a warm run only checks the lock file's hash (under a second).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CACHE="${PREFIX_ATTN_CACHE:-$HOME/.cache/prefix-attn}"
VENV="$CACHE/py/venv-torch2.11.0"
LOCK=python/requirements-ci.txt
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$want" ]; then
    echo "python: installing $LOCK into $VENV (once; about 4.9 GB)"
    t0=$(date +%s)
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check -r "$LOCK"
    echo "$want" > "$VENV/.lock-sha256"
    echo "python: environment installed in $(( $(date +%s) - t0 )) s"
else
    echo "python: environment $VENV is up to date"
fi
PY="$VENV/bin/python"

# The package's crate: its own workspace and target (dependencies from crates.io kept between
# runs outside the clone); kernels not compiled (CPU tests), whatever .ci/run requires of the
# root crate.
export CARGO_TARGET_DIR="$CACHE/ci-python-target"
export PREFIX_ATTN_REQUIRE_NVCC=0 PREFIX_ATTN_SKIP_NVCC=1
(cd python && cargo fmt --all -- --check)

echo "python: maturin build (release)"
rm -rf python/dist
(cd python && "$VENV/bin/maturin" build --release --compatibility linux --out dist 2>&1 \
    | { grep -v '^warning: prefix-attn@' || true; })
wheel="$(ls python/dist/prefix_attn-*.whl)"
echo "python: cargo clippy"
(cd python && cargo clippy --release --all-targets -- -D warnings 2>&1 \
    | { grep -v '^warning: prefix-attn@' || true; })

# The tests import the built wheel (unpacked into a scratch folder), never python/prefix_attn.
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
"$PY" -m pip install --quiet --no-deps --no-compile --disable-pip-version-check --target "$SITE" "$wheel"
echo "python: pytest (CPU; CUDA cases are skipped with the reason)"
cd "$ROOT"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$SITE" \
    "$PY" -m pytest -c python/pyproject.toml -q -rs -p no:cacheprovider python/tests
