#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (no Rust there; python3 with PyTorch is) what scripts/gpucheck/build.sh
# bundled: the GPU tests, the emulator-fidelity test, compute-sanitizer (memcheck, racecheck,
# synccheck, initcheck) on a small case, the forward bench, one Nsight Compute profile of the d128
# forward, and the PyTorch peers (each SDPA backend on its own, FlexAttention; forward and
# forward+backward).
#
# Usage: OUT=/some/dir bash gpucheck/run.sh     (OUT defaults to gpucheck/out)
#
# Everything it writes goes into ONE archive, $OUT/gpucheck-<date>-<card>.tar.gz (a GPU machine
# hands back only a few files), rebuilt after every step so a run cut short still leaves one;
# the work happens in a temporary folder outside $OUT. A short summary is printed last (and is
# summary.txt in the archive). Here, scripts/gpucheck/file_results.py files the archive under
# bench/results/<date>-<card>/.
#
# Time: one command, under 6.5 minutes even if every step hits its limit (limits below, in
# seconds; a healthy H100/H200 run should take about 3). Smoke-run here without a GPU, every
# step fails or skips within a second (1 s in all). On top, the whole run is capped at
# GPUCHECK_BUDGET_S (default 390): a step gets at most what is left of it, and a step that would
# get under 5 s is skipped. A lent device has 15 minutes for a whole session including its
# start: call this with a timeout_s that leaves room to run it once more.
#
#   step                      limit  measured / expected
#   forward_gpu                  60  H200 2026-11-28: 8.7 s before the per-element bounds; their
#                                    f64 pass costs about 1.2x the f64 reference (8k causal d128,
#                                    3 heads, 2 cores here: 30 s reference, 35 s bounds), so about
#                                    20 s on a 16-core GPU host
#   gpu_fill                     15  0.3 s
#   logprob_gpu                  20  1.1 s
#   emu_gpu_fidelity             30  0.3 s
#   sanitizer_{memcheck,racecheck,synccheck,initcheck}
#                              4x20  0.4-1.4 s of test each, plus the tool's start
#   forward_bench                30  a few seconds (12 problems x 23 launches)
#   [tile sweep: see step 6]
#   ncu_forward_d128             35  one kernel, 7 sections (a few replays), plus the bench run
#   peers                       110  6 shapes x 2 masks: 3 SDPA backends + Flex, fwd and fwd+bwd;
#                                    Flex compiles once per shape and pass (its deadline is 100)
#   total                       380
set -u
export PYTHONUNBUFFERED=1
# Tests and the bench fail (instead of skipping) when they find no device.
export PREFIX_ATTN_REQUIRE_GPU=1
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/out}"
BUDGET_S="${GPUCHECK_BUDGET_S:-390}"
T_START=$(date +%s)
mkdir -p "$OUT"

slug() { tr '[:upper:]' '[:lower:]' | sed -e 's/nvidia//g' -e 's/[^a-z0-9]\+/-/g' -e 's/^-*//' -e 's/-*$//'; }
CARD_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
CARD="$(printf '%s' "${CARD_NAME:-no-gpu}" | slug)"
[ -n "$CARD" ] || CARD=gpu
DATE="$(date -u +%Y-%m-%d)"
NAME="gpucheck-$DATE-$CARD"
ARCHIVE="$OUT/$NAME.tar.gz"
TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/gpucheck.XXXXXX")"
WORK="$TMP_ROOT/$NAME"
mkdir -p "$WORK/logs" "$WORK/bench" "$WORK/ncu"
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

# 1. GPU tests: the emulator matrix, edge cases and 8k x 32/8-head shapes on the device within
#    the derived device bounds, strided and head-major views, determinism; the fill kernel; the
#    log-prob gather (only the GPU test of that binary; its emulator tests ran in cargo test).
if [ -x "$HERE/bin/forward_gpu" ]; then
    run_step forward_gpu 60 "$HERE/bin/forward_gpu" --test-threads=1 --nocapture
else
    skip_step forward_gpu "bin/forward_gpu missing"
fi
if [ -x "$HERE/bin/gpu_fill" ]; then
    run_step gpu_fill 15 "$HERE/bin/gpu_fill" --nocapture
else
    skip_step gpu_fill "bin/gpu_fill missing"
fi
if [ -x "$HERE/bin/logprob_gather_emu" ]; then
    run_step logprob_gpu 20 "$HERE/bin/logprob_gather_emu" gpu_gather_matches_the_cpu_gather \
        --exact --test-threads=1 --nocapture
else
    skip_step logprob_gpu "bin/logprob_gather_emu missing"
fi

# 2. Emulator fidelity: the probes on the device against the emulator (bits, derived bounds, the
#    documented error of ex2 / lg2.approx).
if [ -x "$HERE/bin/emu_gpu_fidelity" ]; then
    run_step emu_gpu_fidelity 30 "$HERE/bin/emu_gpu_fidelity" --test-threads=1 --nocapture
else
    skip_step emu_gpu_fidelity "bin/emu_gpu_fidelity missing"
fi

# 3. compute-sanitizer on the small case (a fully padded row, a ragged d128 row with sharing).
SAN="$(cuda_tool compute-sanitizer)"
if [ -n "$SAN" ] && [ -x "$HERE/bin/forward_gpu" ]; then
    for tool in memcheck racecheck synccheck initcheck; do
        extra=()
        [ "$tool" = racecheck ] && extra=(--racecheck-report all)
        run_step "sanitizer_$tool" 20 "$SAN" --tool "$tool" ${extra[@]+"${extra[@]}"} \
            --error-exitcode 9 "$HERE/bin/forward_gpu" gpu_sanitizer_case --exact \
            --test-threads=1 --nocapture
    done
else
    skip_step sanitizer "compute-sanitizer or bin/forward_gpu not found"
fi

# 4. Forward throughput, ours (CUDA events): forward_bench.csv and cases.json for the peers.
if [ -x "$HERE/bin/forward_bench" ]; then
    run_step forward_bench 30 "$HERE/bin/forward_bench" "$WORK/bench"
else
    skip_step forward_bench "bin/forward_bench missing"
fi

# 5. (reserved) ------------------------------------------------------------------------------
# 6. TILE-CONFIGURATION SWEEP (issue 9; added with the kernel registry of issue 8): time every
#    registered forward configuration and print one table per (arch, head dim) into
#    $WORK/bench/sweep*.md. Add it here as `run_step tile_sweep LIMIT ...` and take LIMIT from the
#    peers' 110 s (and their --deadline) so that the limits in the table above still add up to
#    at most 380 s.
# ---------------------------------------------------------------------------------------------

# 7. Nsight Compute: the first timed launch of the d128 forward (after the bench's 3 warm-ups),
#    the sections that say where its time goes. The bench's own numbers under ncu are not kept.
NCU="$(cuda_tool ncu)"
if [ -n "$NCU" ] && [ -x "$HERE/bin/forward_bench" ]; then
    run_step ncu_forward_d128 35 "$NCU" --target-processes all \
        --kernel-name "regex:pa_attn_fwd.*d128" --launch-skip 3 --launch-count 1 \
        --section SpeedOfLight --section LaunchStats --section Occupancy \
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section SchedulerStats --section WarpStateStats \
        "$HERE/bin/forward_bench" "$TMP_ROOT/ncu-bench"
    cp "$WORK/logs/ncu_forward_d128.log" "$WORK/ncu/ncu-forward-d128.txt" 2>/dev/null
else
    skip_step ncu_forward_d128 "ncu or bin/forward_bench not found"
fi

# 8. The PyTorch peers on the same problems (each SDPA backend, FlexAttention; fwd, fwd+bwd).
if [ -s "$WORK/bench/cases.json" ]; then
    run_step peers 110 python3 "$HERE/peers.py" "$WORK/bench/cases.json" "$WORK/bench" \
        --deadline 100
else
    skip_step peers "no cases.json from forward_bench"
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
    echo
    echo "total: $(( $(date +%s) - T_START ))s of a ${BUDGET_S}s budget; failed steps: $FAILED"
} > "$WORK/summary.txt"
archive
rm -rf "$TMP_ROOT"
echo
tar -xzOf "$ARCHIVE" "$NAME/summary.txt"
echo "archive: $ARCHIVE ($(du -k "$ARCHIVE" | cut -f1) KiB, $(tar -tzf "$ARCHIVE" | grep -vc '/$') files)"
exit "$FAILED"
