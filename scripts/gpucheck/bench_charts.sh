#!/usr/bin/env bash
# Runs ON THE GPU MACHINE, from the folder scripts/gpucheck/build.sh fills (gpucheck/): the
# shared-vs-paired charts of `cargo bench --bench sharing` in GPU mode, with the PyTorch peers.
#   1. bin/sharing with PREFIX_ATTN_BENCH_CASES_ONLY=1 writes the problems (cases.json);
#   2. peers_sweep.py times SDPA (cuDNN, FA2: paired), FlexAttention (shared) and a PyTorch MLP
#      on them (peers.csv);
#   3. bin/sharing --bench times ours and writes tables and charts with the peers in them.
# libcublas comes from PyTorch's wheels: its folder is put on LD_LIBRARY_PATH for step 3.
#
# Usage: OUT=/dir bash gpucheck/bench_charts.sh     (results in $OUT/bench-charts/)
# Time: the quick sweep (12 points) by default, about 4-6 minutes in all (estimated: never run
# on a device yet); PREFIX_ATTN_BENCH_QUICK=0 runs the full sweep (much longer).
# Limits: PEERS_BUDGET_S (default 150) for step 2, BENCH_TIMEOUT_S (default 330) for step 3.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/out}"
DEST="$OUT/bench-charts"
mkdir -p "$DEST"
export PREFIX_ATTN_BENCH_OUT="$DEST"
export PREFIX_ATTN_BENCH_QUICK="${PREFIX_ATTN_BENCH_QUICK:-1}"
export PREFIX_ATTN_BENCH_LABEL="${PREFIX_ATTN_BENCH_LABEL:-$(head -n 1 "$HERE/BUILD_INFO" 2>/dev/null)}"
BIN="${GPUCHECK_BIN:-$HERE/bin}/sharing"
if [ ! -x "$BIN" ]; then
    echo "bench_charts: $BIN missing (scripts/gpucheck/build.sh builds it)" >&2
    exit 1
fi

rc=0
PREFIX_ATTN_BENCH_CASES_ONLY=1 "$BIN" --bench || rc=1

if [ -s "$DEST/cases.json" ] && command -v python3 >/dev/null; then
    timeout --kill-after=10 $(( ${PEERS_BUDGET_S:-150} + 60 )) \
        python3 "$HERE/peers_sweep.py" "$DEST/cases.json" "$DEST/peers.csv" \
        --budget-s "${PEERS_BUDGET_S:-150}" > "$DEST/peers.log" 2>&1 || rc=1
    tail -n 5 "$DEST/peers.log"
fi
[ -s "$DEST/peers.csv" ] && export PREFIX_ATTN_BENCH_PEERS="$DEST/peers.csv"

CUBLAS_DIR="$(python3 - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
hits = [h for r in roots for h in glob.glob(os.path.join(r, "nvidia", "**", "libcublas.so*"), recursive=True)]
print(os.path.dirname(sorted(hits)[0]) if hits else "")
PY
)"
[ -n "$CUBLAS_DIR" ] && export LD_LIBRARY_PATH="$CUBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "bench_charts: libcublas from ${CUBLAS_DIR:-the system loader path}"

timeout --kill-after=10 "${BENCH_TIMEOUT_S:-330}" "$BIN" --bench > "$DEST/bench.log" 2>&1 || rc=1
grep -v '^Benchmarking' "$DEST/bench.log" | tail -n 60
exit "$rc"
