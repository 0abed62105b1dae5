#!/usr/bin/env bash
# Builds HERE (no GPU needed) everything scripts/gpucheck/run.sh needs on a GPU machine, which has
# no Rust toolchain: the release GPU test binary (tests/gpu: forward, backward, fill, log-prob
# gather, SwiGLU, rotary, the emulator-fidelity probes), the forward and forward+backward benches,
# the sharing bench (charts) and the scripts, into the git-ignored folder gpucheck/ (kept under
# 60 MiB: a device call carries 64 MiB in all). Then, on the GPU machine: `bash gpucheck/run.sh`
# (results under $OUT), and in a second call if device time allows, `bash gpucheck/run.sh charts`
# or `python` (bench/results/README.md: fitting a session's device time).
#
# Size: every binary embeds the whole fatbin, so the kernels are built for the lent machines'
# architecture only (H100/H200: sm_90a; set PREFIX_ATTN_CUDA_ARCHS to override), and the binaries
# travel as one xz archive, bin.tar.xz, whose 64 MiB window sees the fatbin repeated in every
# binary; run.sh unpacks it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEST="$ROOT/gpucheck"
: "${NVCC:=$HOME/.cache/prefix-attn/cuda-13.0/nvidia/cu13/bin/nvcc}"
: "${PREFIX_ATTN_CUDA_ARCHS:=90a}"
export NVCC PREFIX_ATTN_REQUIRE_NVCC=1 PREFIX_ATTN_CUDA_ARCHS
export CARGO_TERM_COLOR=never

rm -rf "$DEST"
mkdir -p "$DEST/bin"

# The test binary of everything that needs a device (tests/gpu: forward, backward, fill, log-prob
# gather, SwiGLU, rotary, the emulator-fidelity probes, which it loads from the test-only
# fatbin); run.sh runs its modules as separate steps through libtest's name filter (`forward::`,
# `backward::`...).
tests=(gpu)
args=()
for t in "${tests[@]}"; do
    [ -e "tests/$t/main.rs" ] && args+=(--test "$t")
done

# Copies every executable cargo reports in its JSON messages to $DEST/bin/<target name>.
collect() {
    python3 -c '
import json, shutil, sys
dest = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        name = m["target"]["name"]
        exe = m["executable"]
        shutil.copy2(exe, dest + "/" + name)
        print("  " + name + " <- " + exe)
' "$DEST/bin"
}

echo "== building GPU test binaries: ${tests[*]}"
cargo test --release --no-run "${args[@]}" --message-format=json-render-diagnostics | collect
echo "== building the forward and forward+backward benches"
cargo build --release --example forward_bench --example backward_bench \
    --message-format=json-render-diagnostics | collect
echo "== building the sharing bench (cargo bench --bench sharing, GPU mode: run.sh charts)"
cargo bench --no-run --bench sharing --message-format=json-render-diagnostics | collect

echo "== building the prefix_attn wheel with the kernels (run.sh python)"
bash scripts/gpucheck/python_build.sh "$DEST/python"

if command -v strip >/dev/null; then
    strip --strip-debug "$DEST"/bin/* || true
fi
cp scripts/gpucheck/run.sh scripts/gpucheck/peers.py scripts/gpucheck/peers_backward.py \
    scripts/gpucheck/bench_charts.sh scripts/gpucheck/peers_sweep.py \
    scripts/gpucheck/python_steps.sh "$DEST/"
chmod +x "$DEST/run.sh" "$DEST"/bin/*
echo "== packing bin/ into bin.tar.xz"
python3 - "$DEST" <<'PY'
import lzma, sys, tarfile
dest = sys.argv[1]
# preset 9: a 64 MiB dictionary, so each binary's copy of the fatbin costs almost nothing.
with tarfile.open(dest + "/bin.tar.xz", "w:xz", preset=9) as t:
    t.add(dest + "/bin", arcname="bin")
PY
rm -rf "$DEST/bin"
{
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' (+ uncommitted changes)')"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "archs $PREFIX_ATTN_CUDA_ARCHS"
    "$NVCC" --version | tail -n 1
} > "$DEST/BUILD_INFO"

size_kib=$(du -sk "$DEST" | cut -f1)
echo "== gpucheck/: $((size_kib / 1024)) MiB"
ls -la "$DEST"
if [ "$size_kib" -ge $((60 * 1024)) ]; then
    echo "gpucheck/ is over 60 MiB" >&2
    exit 1
fi
