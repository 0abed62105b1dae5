#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (no Rust there; python3 with PyTorch is) what scripts/gpucheck/build.sh
# bundled: the GPU tests, the emulator-fidelity test, compute-sanitizer (memcheck, racecheck,
# synccheck, initcheck) on a small case, the forward bench, one Nsight Compute profile of the d128
# forward, and the PyTorch peers (each SDPA backend on its own, FlexAttention; forward and
# forward+backward).
#
# Usage: OUT=/some/dir bash gpucheck/run.sh [charts]     (OUT defaults to gpucheck/out)
#   (no argument)  correctness, sanitizers, the tile sweep, our benches, the peers, a profile;
#   charts         the shared-vs-paired charts of `cargo bench --bench sharing` in GPU mode with
#                  their peers (bench_charts.sh): a second call, when the device time allows.
#   python         the prefix_attn Python package's CUDA tests and its timing against
#                  FlexAttention and SDPA (python_steps.sh; the wheel from build.sh).
#
# Everything it writes goes into ONE archive, $OUT/gpucheck-<date>-<card>[-charts].tar.gz (a GPU
# machine hands back only a few files), rebuilt after every step so a run cut short still leaves
# one; the work happens in a temporary folder outside $OUT. A short summary is printed last (and
# is summary.txt in the archive). Here, scripts/gpucheck/file_results.py files the archive under
# bench/results/<date>-<card>/.
#
# Time: a lent device has 15 minutes for a whole session including its start (about a minute),
# and one command may run 10. The run is capped at GPUCHECK_BUDGET_S (default 510): a step gets at
# most what is left of it, and a step that would get under 5 s is skipped, so the steps run in
# order of importance (correctness first, the profile last). Step limits below, in seconds
# (estimates where not measured; the first device run, 2026-11-28 on an H200, measured the
# forward's steps before the registry, the backward and the sweep existed):
#
#   step                      limit  measured / expected
#   forward_gpu                  90  H200 2026-11-28: 8.7 s, before the per-element bounds (their
#                                    f64 pass costs about 1.2x the f64 reference) and the sweep of
#                                    every registered configuration (small cases): about 40 s
#   backward_gpu                120  never run; mostly the f64 reference of the 2k cases
#   ops_gpu                      30  never run; SwiGLU over 2^27 elements, rotary on an 8k row,
#                                    checked on every core
#   emu_gpu_fidelity             45  0.3 s on the H200 before the tile-op and Hopper probes
#   gpu_fill                     15  0.3 s
#   logprob_gpu                  20  1.1 s
#   forward_bench                30  a few seconds (12 problems x 24 launches)
#   tile_sweep                   60  every registered forward configuration x 12 problems
#   backward_bench               75  forward+backward, 12 problems; twice on an H200 (default
#                                    and chosen-only sm90a backward)
#   sanitizer_{memcheck,synccheck,initcheck}
#                              3x40  never run as one process: the forward's cases took 0.4-1.4 s
#                                    per tool on the H200 (2026-11-28) plus the tool's start; now
#                                    every kernel's small case (both forward paths, both backward
#                                    paths, fill, gather, SwiGLU, rotary)
#   sanitizer_racecheck          75  the same, racecheck (slowest on shared memory)
#   peers                       110  6 shapes x 2 masks: 3 SDPA backends + Flex, fwd and fwd+bwd
#   peers_fwd_bwd                60  SDPA and Flex forward+backward on backward_bench's problems
#   ncu_forward_d128             35  one kernel, 7 sections
#   total                       885  the 510 s budget cuts the tail: the profile and the peers'
#                                    second table are the first to go
#   charts (second call)        480  bench_charts.sh: quick sweep, peers, ours, charts
set -u
export PYTHONUNBUFFERED=1
# Tests and the bench fail (instead of skipping) when they find no device.
export PREFIX_ATTN_REQUIRE_GPU=1
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/out}"
MODE="${1:-checks}"
BUDGET_S="${GPUCHECK_BUDGET_S:-510}"
T_START=$(date +%s)
mkdir -p "$OUT"

slug() { tr '[:upper:]' '[:lower:]' | sed -e 's/nvidia//g' -e 's/[^a-z0-9]\+/-/g' -e 's/^-*//' -e 's/-*$//'; }
CARD_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
CARD="$(printf '%s' "${CARD_NAME:-no-gpu}" | slug)"
[ -n "$CARD" ] || CARD=gpu
DATE="$(date -u +%Y-%m-%d)"
NAME="gpucheck-$DATE-$CARD"
[ "$MODE" = charts ] && NAME="$NAME-charts"
[ "$MODE" = python ] && NAME="$NAME-python"
ARCHIVE="$OUT/$NAME.tar.gz"
TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/gpucheck.XXXXXX")"
WORK="$TMP_ROOT/$NAME"
mkdir -p "$WORK/logs" "$WORK/bench" "$WORK/ncu"
# The binaries: bin/ when present, else unpacked from build.sh's bin.tar.xz (python3, since the
# machine may lack the xz tool) next to the work folder.
BIN="$HERE/bin"
if [ ! -d "$BIN" ] && [ -f "$HERE/bin.tar.xz" ]; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$HERE/bin.tar.xz" "$TMP_ROOT" && BIN="$TMP_ROOT/bin"
    chmod +x "$BIN"/* 2>/dev/null
fi
export GPUCHECK_BIN="$BIN"
STEPS="$WORK/steps.tsv"
printf 'step\trc\tseconds\tlimit\tnote\n' > "$STEPS"
FAILED=0

# The archive, rebuilt whole (small files: well under a second).
archive() {
    tar -czf "$ARCHIVE.part" -C "$TMP_ROOT" "$NAME" && mv -f "$ARCHIVE.part" "$ARCHIVE"
}

# run_step NAME LIMIT CMD...: runs CMD with a time limit (clipped to the run's budget), logs it to
# logs/NAME.log, records rc, time and limit in steps.tsv, and rebuilds the archive.
run_step() {
    local name="$1" limit="$2"
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - T_START) - 10 ))
    if [ "$left" -lt 5 ]; then
        skip_step "$name" "run budget (${BUDGET_S}s) spent"
        FAILED=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local log="$WORK/logs/$name.log"
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
    local t0 rc dt note=""
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && note="timed out after ${limit}s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$limit" "$note" >> "$STEPS"
    [ "$rc" -ne 0 ] && FAILED=1
    tail -n 12 "$log"
    echo "--- $name: rc=$rc in ${dt}s $note"
    archive
}

skip_step() {
    printf '%s\t-\t0\t-\tskipped: %s\n' "$1" "$2" >> "$STEPS"
    echo "=== $1: skipped ($2)"
}

# Finds a CUDA tool on PATH or in the toolkit's usual places.
cuda_tool() {
    local t
    t="$(command -v "$1" || true)"
    for c in "/usr/local/cuda/bin/$1" "/usr/local/cuda/$1/$1"; do
        [ -z "$t" ] && [ -x "$c" ] && t="$c"
    done
    printf '%s' "$t"
}

# ---- what ran where ----
cp "$HERE/BUILD_INFO" "$WORK/BUILD_INFO" 2>/dev/null
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$WORK/nvidia-smi.txt"
{
    echo "date: $DATE"
    echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "card: ${CARD_NAME:-none}"
    echo "card_slug: $CARD"
    echo "driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
    echo "cuda_driver_api: $(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)"
    echo "commit: $(sed -n 's/^commit //p' "$HERE/BUILD_INFO" 2>/dev/null)"
    echo "nvcc: $(tail -n 1 "$HERE/BUILD_INFO" 2>/dev/null)"
    echo "torch: $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)"
    echo "budget_s: $BUDGET_S"
} > "$WORK/run-info.txt"
cat "$WORK/run-info.txt"
archive

if [ "$MODE" = charts ]; then
    # The shared-vs-paired charts (MLP, attention op, attention layer) with the PyTorch peers.
    if [ -x "$BIN/sharing" ]; then
        run_step bench_charts 480 env OUT="$WORK" PEERS_BUDGET_S=120 BENCH_TIMEOUT_S=300 \
            bash "$HERE/bench_charts.sh"
    else
        skip_step bench_charts "bin/sharing missing"
    fi
elif [ "$MODE" = python ]; then
    # The prefix_attn Python package: its CUDA tests and timing (python_steps.sh).
    . "$HERE/python_steps.sh"
else
# 1. GPU tests: the emulator matrix, edge cases and 8k x 32/8-head shapes on the device within
#    the derived device bounds, for the default picks and every registered configuration the
#    device runs; strided and head-major views, determinism; the backward (preprocess, dK/dV,
#    dQ) on the same cases; the fill kernel; the log-prob gather (only the GPU test of that
#    binary; its emulator tests ran in cargo test).
if [ -x "$BIN/gpu" ]; then
    run_step forward_gpu 90 "$BIN/gpu" forward:: --test-threads=1 --nocapture
    run_step backward_gpu 120 "$BIN/gpu" backward:: --test-threads=1 --nocapture
    run_step ops_gpu 30 "$BIN/gpu" ops:: --test-threads=1 --nocapture
else
    skip_step forward_gpu "bin/gpu missing"
    skip_step backward_gpu "bin/gpu missing"
    skip_step ops_gpu "bin/gpu missing"
fi

# 2. Emulator fidelity: the probes on the device against the emulator (bits, derived bounds, the
#    documented error of ex2 / lg2.approx), the tile layer's operations, and on compute
#    capability 9.0 the Hopper probes (mbarrier, TMA, wgmma, the pipeline).
if [ -x "$BIN/gpu" ]; then
    run_step emu_gpu_fidelity 45 "$BIN/gpu" emu_fidelity:: --test-threads=1 --nocapture
    run_step gpu_fill 15 "$BIN/gpu" fill:: --nocapture
    run_step logprob_gpu 20 "$BIN/gpu" logprob_gather::gpu_gather_matches_the_cpu_gather \
        --exact --test-threads=1 --nocapture
else
    skip_step emu_gpu_fidelity "bin/gpu missing"
    skip_step gpu_fill "bin/gpu missing"
    skip_step logprob_gpu "bin/gpu missing"
fi

# 3. Throughput, ours (CUDA events, median): the default picks (forward_bench.csv, and cases.json
#    for the peers), every registered forward configuration (sweep.csv, one table per path and
#    head dim: the evidence src/attention/configs.rs's picks should quote), forward+backward.
if [ -x "$BIN/forward_bench" ]; then
    run_step forward_bench 30 "$BIN/forward_bench" "$WORK/bench"
    run_step tile_sweep 60 "$BIN/forward_bench" "$WORK/bench" --sweep
else
    skip_step forward_bench "bin/forward_bench missing"
fi
if [ -x "$BIN/backward_bench" ]; then
    run_step backward_bench 75 "$BIN/backward_bench" "$WORK/bench"
else
    skip_step backward_bench "bin/backward_bench missing"
fi

# 4. compute-sanitizer's four tools, each in one process over every kernel's small case (the
#    trials named *sanitizer_case: the forward with the default kernels and, on compute
#    capability 9.0, the sm80 path's too; the backward with the default and the sm90a kernels;
#    fill, log-prob gather, SwiGLU, rotary), so each tool starts once.
SAN="$(cuda_tool compute-sanitizer)"
if [ -n "$SAN" ] && [ -x "$BIN/gpu" ]; then
    for tool in memcheck racecheck synccheck initcheck; do
        extra=()
        limit=40
        [ "$tool" = racecheck ] && extra=(--racecheck-report all) && limit=75
        run_step "sanitizer_$tool" "$limit" "$SAN" --tool "$tool" ${extra[@]+"${extra[@]}"} \
            --error-exitcode 9 "$BIN/gpu" sanitizer_case --test-threads=1 --nocapture
    done
else
    skip_step sanitizer "compute-sanitizer or bin/gpu not found"
fi

# 5. The PyTorch peers on the same problems (each SDPA backend, FlexAttention; fwd, fwd+bwd),
#    and forward+backward next to ours (table_fwd_bwd.md).
if [ -s "$WORK/bench/cases.json" ]; then
    run_step peers 110 python3 "$HERE/peers.py" "$WORK/bench/cases.json" "$WORK/bench" \
        --deadline 100
else
    skip_step peers "no cases.json from forward_bench"
fi
if [ -s "$WORK/bench/cases_fwd_bwd.json" ]; then
    run_step peers_fwd_bwd 60 python3 "$HERE/peers_backward.py" "$WORK/bench/cases_fwd_bwd.json" \
        "$WORK/bench"
else
    skip_step peers_fwd_bwd "no cases_fwd_bwd.json from backward_bench"
fi

# 6. Nsight Compute: the first timed launch of the d128 forward (after the bench's 3 warm-ups),
#    the sections that say where its time goes. The bench's own numbers under ncu are not kept.
NCU="$(cuda_tool ncu)"
if [ -n "$NCU" ] && [ -x "$BIN/forward_bench" ]; then
    run_step ncu_forward_d128 35 "$NCU" --target-processes all \
        --kernel-name "regex:pa_attn_fwd.*d128" --launch-skip 3 --launch-count 1 \
        --section SpeedOfLight --section LaunchStats --section Occupancy \
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section SchedulerStats --section WarpStateStats \
        "$BIN/forward_bench" "$TMP_ROOT/ncu-bench"
    cp "$WORK/logs/ncu_forward_d128.log" "$WORK/ncu/ncu-forward-d128.txt" 2>/dev/null
else
    skip_step ncu_forward_d128 "ncu or bin/forward_bench not found"
fi
fi

# ---- summary, last ----
{
    echo "================ gpucheck summary: ${CARD_NAME:-no GPU}, $DATE ================"
    sed -n 's/^commit: /commit: /p; s/^driver: /driver: /p' "$WORK/run-info.txt"
    column -t -s $'\t' "$STEPS" 2>/dev/null || cat "$STEPS"
    echo
    for f in "$WORK"/logs/*.log; do
        [ -e "$f" ] || continue
        grep -hE '^test result:|ERROR SUMMARY|RACECHECK SUMMARY|floats from the correctly rounded|worst p difference' "$f" |
            sed "s|^|$(basename "$f" .log): |"
    done
    if [ -s "$WORK/bench/table.md" ]; then
        echo
        cat "$WORK/bench/table.md"
    elif [ -s "$WORK/bench/forward_bench.csv" ]; then
        echo
        column -t -s , "$WORK/bench/forward_bench.csv" 2>/dev/null || cat "$WORK/bench/forward_bench.csv"
    fi
    [ -s "$WORK/bench/table_fwd_bwd.md" ] && { echo; cat "$WORK/bench/table_fwd_bwd.md"; }
    [ -s "$WORK/logs/tile_sweep.log" ] && { echo; sed -n '/^forward TFLOP/,$p' "$WORK/logs/tile_sweep.log"; }
    [ -s "$WORK/bench-charts/summary.md" ] && { echo; cat "$WORK/bench-charts/summary.md"; }
    echo
    echo "total: $(( $(date +%s) - T_START ))s of a ${BUDGET_S}s budget; failed steps: $FAILED"
} > "$WORK/summary.txt"
archive
rm -rf "$TMP_ROOT"
echo
tar -xzOf "$ARCHIVE" "$NAME/summary.txt"
echo "archive: $ARCHIVE ($(du -k "$ARCHIVE" | cut -f1) KiB, $(tar -tzf "$ARCHIVE" | grep -vc '/$') files)"
exit "$FAILED"
