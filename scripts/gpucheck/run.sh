#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (no Rust there; python3 with PyTorch is) what scripts/gpucheck/build.sh
# bundled: the GPU tests, the emulator-fidelity test if bundled, compute-sanitizer memcheck and
# racecheck on a small case, and a forward TFLOP/s table against PyTorch SDPA (paired format) and
# FlexAttention (the same shared-format mask). Every step's output goes to $OUT/<step>.log and its
# exit code to $OUT/steps.tsv; a failing step does not stop the others; the summary comes last.
#
# Usage: OUT=/some/dir bash gpucheck/run.sh    (OUT defaults to gpucheck/out)
#
# Time: the step limits add up to about 7 minutes in the worst case (every step hitting its
# limit); a healthy run takes well under 5. A lent device has 15 minutes for a whole session:
# call it with a timeout_s that leaves room to run it once more.
set -u
export PYTHONUNBUFFERED=1
# Tests and the bench fail (instead of skipping) when they find no device.
export PREFIX_ATTN_REQUIRE_GPU=1
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/out}"
mkdir -p "$OUT"
STEPS="$OUT/steps.tsv"
printf 'step\trc\tseconds\tnote\n' > "$STEPS"
FAILED=0

# run_step NAME TIMEOUT_S CMD...: runs CMD with a time limit, logs it, records rc and time.
run_step() {
    local name="$1" limit="$2"
    shift 2
    local log="$OUT/$name.log"
    echo "=== $name ($(date -u +%H:%M:%S)): $*"
    local t0 rc dt
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    local note=""
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note="timed out after ${limit}s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$note" >> "$STEPS"
    [ "$rc" -ne 0 ] && FAILED=1
    tail -n 20 "$log"
    echo "--- $name: rc=$rc in ${dt}s $note"
}

skip_step() {
    printf '%s\t-\t0\tskipped: %s\n' "$1" "$2" >> "$STEPS"
    echo "=== $1: skipped ($2)"
}

cat "$HERE/BUILD_INFO" 2>/dev/null
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$OUT/nvidia-smi.txt"
head -n 15 "$OUT/nvidia-smi.txt"

# 1. GPU tests: the emulator matrix and edge cases on the device, 8k x 32/8 heads, strided and
#    head-major views, determinism. Estimated (not yet timed on a device) at 10-20 s, mostly the
#    f64 reference of the 8k causal case (~5 s on one core of a 2-core dev box); the edge cases
#    add well under a second. The limit leaves room for a slow host CPU.
if [ -x "$HERE/bin/forward_gpu" ]; then
    run_step forward_gpu 75 "$HERE/bin/forward_gpu" --test-threads=1 --nocapture
else
    skip_step forward_gpu "bin/forward_gpu missing"
fi
if [ -x "$HERE/bin/gpu_fill" ]; then
    run_step gpu_fill 20 "$HERE/bin/gpu_fill" --nocapture
fi
# The log-prob gather kernels on the device against the CPU gather (only the GPU test of that
# binary; its emulator tests already ran in cargo test). Seconds: three small batches, one with
# a 152k vocabulary.
if [ -x "$HERE/bin/logprob_gather_emu" ]; then
    run_step logprob_gpu 30 "$HERE/bin/logprob_gather_emu" gpu_gather_matches_the_cpu_gather \
        --exact --test-threads=1 --nocapture
else
    skip_step logprob_gpu "bin/logprob_gather_emu missing"
fi

# 2. Emulator fidelity (emulator and GPU agree bit for bit), when the crate has such a test.
found_fidelity=0
for b in "$HERE"/bin/*fidelity*; do
    [ -x "$b" ] || continue
    found_fidelity=1
    run_step "$(basename "$b")" 45 "$b" --test-threads=1 --nocapture
done
[ "$found_fidelity" -eq 0 ] && skip_step emu_fidelity "no fidelity test binary bundled"

# 3. compute-sanitizer on the small case.
SAN="$(command -v compute-sanitizer || true)"
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -z "$SAN" ] && [ -x "$c" ] && SAN="$c"
done
if [ -n "$SAN" ] && [ -x "$HERE/bin/forward_gpu" ]; then
    for tool in memcheck racecheck; do
        extra=()
        [ "$tool" = racecheck ] && extra=(--racecheck-report all)
        run_step "sanitizer_$tool" 45 "$SAN" --tool "$tool" ${extra[@]+"${extra[@]}"} --error-exitcode 9 \
            "$HERE/bin/forward_gpu" gpu_sanitizer_case --exact --test-threads=1 --nocapture
    done
else
    skip_step sanitizer "compute-sanitizer or bin/forward_gpu not found"
fi

# 4. Forward throughput: ours (CUDA events), then the PyTorch peers on the same problems.
mkdir -p "$OUT/bench"
if [ -x "$HERE/bin/forward_bench" ]; then
    run_step forward_bench 45 "$HERE/bin/forward_bench" "$OUT/bench"
else
    skip_step forward_bench "bin/forward_bench missing"
fi
if [ -s "$OUT/bench/cases.json" ]; then
    run_step peers 90 python3 "$HERE/peers.py" "$OUT/bench/cases.json" "$OUT/bench"
else
    skip_step peers "no cases.json from forward_bench"
fi

# Summary, last.
echo
echo "================ summary ================"
column -t -s $'\t' "$STEPS" 2>/dev/null || cat "$STEPS"
if [ -s "$OUT/bench/table.md" ]; then
    echo
    cat "$OUT/bench/table.md"
elif [ -s "$OUT/bench/forward_bench.csv" ]; then
    echo
    column -t -s , "$OUT/bench/forward_bench.csv" 2>/dev/null || cat "$OUT/bench/forward_bench.csv"
fi
echo "logs: $OUT"
exit "$FAILED"
