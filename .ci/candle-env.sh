# Sourced, not run: the environment of a build in which candle-core's `cuda` feature is on (the
# repository's `cargo test --features candle`, and ci/downstream), on a machine with or without a
# GPU. .ci/run sources it in a subshell for those steps only:
#
#     ( source .ci/candle-env.sh && cargo test --features candle --test candle_op )
#
# What such a build needs, and what this sets:
# - nvcc, for candle-kernels' build script (cudaforge looks at NVCC first) and for our fatbin:
#   NVCC, from scripts/get-nvcc.sh unless already set.
# - cudarc's bindings version. candle-core asks for `cuda-version-from-build-system`, which runs
#   the `nvcc` on PATH; our NVCC is not on PATH, and putting it there would rerun prefix-attn's
#   build script (it watches PATH). So CUDARC_CUDA_VERSION, unless already set, is NVCC's release
#   (13.0 -> 13000): the bindings match the libraries the binary links, rather than the newest
#   bindings (cudarc's `fallback-latest`), whose extra symbols a 13.0 toolkit would not have.
# - CUDA_COMPUTE_CAP, unless already set: cudaforge compiles candle's kernels for this one
#   architecture and, without it, asks nvidia-smi and fails where there is none. 80: PTX for
#   compute_80 runs (JIT) on every GPU our kernels support.
# - The libraries the binary is linked against and started with: candle makes cudarc link at
#   build time (`dynamic-linking`: libcuda, libnvrtc, libcublas, libcublasLt, libcurand) and
#   candle-kernels links libcudart. On a machine without a CUDA driver (no libcuda.so.1 known to
#   the loader) they are stubs (scripts/cuda-stubs.sh; cuInit fails, so every device call is an
#   error) plus NVCC's own libcudart, in $PREFIX_ATTN_CACHE/cuda-stubs-MAJOR, prepended to
#   LIBRARY_PATH (the linker: cudarc adds no search path of its own without CUDA_HOME) and
#   LD_LIBRARY_PATH (the loader). On a machine with a driver nothing is stubbed, since a stub
#   libcuda would shadow the real one: the CUDA toolkit's libraries must be found there the usual
#   way (CUDA_HOME, or LIBRARY_PATH/LD_LIBRARY_PATH). PREFIX_ATTN_CUDA_STUBS=1 forces the stubs,
#   =0 forbids them.
# PREFIX_ATTN_STUBS_MANIFEST names the Cargo.toml whose cudarc the stubs are generated from
# (default: this repository's).

_pa_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_pa_cache="${PREFIX_ATTN_CACHE:-$HOME/.cache/prefix-attn}"

if [ -z "${NVCC:-}" ]; then
    NVCC="$(bash "$_pa_root/scripts/get-nvcc.sh")" || return 1
fi
export NVCC

_pa_release="$("$NVCC" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\),.*/\1 \2/p' | head -n 1)"
if [ -z "$_pa_release" ]; then
    echo "candle-env: cannot read the release of $NVCC" >&2
    return 1
fi
read -r _pa_major _pa_minor <<<"$_pa_release"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-${_pa_major}0${_pa_minor}0}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"

_pa_stubs="${PREFIX_ATTN_CUDA_STUBS:-}"
if [ -z "$_pa_stubs" ]; then
    # The loader's cache, read whole (a `| grep -q` would die of SIGPIPE under pipefail).
    _pa_ld="$("$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null || true)"
    case "$_pa_ld" in
        *"libcuda.so.1 "*) _pa_stubs=0 ;;
        *) _pa_stubs=1 ;;
    esac
fi
if [ "$_pa_stubs" = 1 ]; then
    _pa_dir="$(CUDA_STUBS_MAJOR="$_pa_major" bash "$_pa_root/scripts/cuda-stubs.sh" \
        "$_pa_cache/cuda-stubs-$_pa_major" "${PREFIX_ATTN_STUBS_MANIFEST:-$_pa_root/Cargo.toml}")" ||
        return 1
    export LIBRARY_PATH="$_pa_dir${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$_pa_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "candle-env: stub CUDA libraries (no driver here) in $_pa_dir" >&2
else
    echo "candle-env: no stubs (a CUDA driver is installed, or PREFIX_ATTN_CUDA_STUBS=0)" >&2
fi
echo "candle-env: NVCC=$NVCC CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
unset _pa_root _pa_cache _pa_ld _pa_release _pa_major _pa_minor _pa_stubs _pa_dir
