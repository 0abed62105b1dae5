#!/usr/bin/env bash
# The fuzz targets of fuzz/ (docs/fuzzing.md): a smoke run of every target, a few seconds each
# with a fixed seed, from the committed seed corpus (fuzz/seeds/) and regression inputs
# (fuzz/regressions/). Stable Rust: `cargo fuzz` with `--sanitizer none` passes no -Z flag, so no
# nightly and no RUSTC_BOOTSTRAP; `-a` keeps debug assertions and overflow checks on.
#
#   bash .ci/fuzz.sh                 # CI: fmt check of fuzz/, build, smoke run of every target
#   bash .ci/fuzz.sh --planted       # also: each bug planted in the oracle must be caught
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh vis_end batch   # a longer run of some targets
#
# cargo-fuzz is installed once into $PREFIX_ATTN_CACHE/cargo-fuzz (default
# ~/.cache/prefix-attn/cargo-fuzz), and the fuzz build's target dir lives in the same cache, so a
# fresh clone rebuilds only prefix-attn and the targets.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PREFIX_ATTN_CACHE:-$HOME/.cache/prefix-attn}"
CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH="${FUZZ_SECONDS:-4}"
TARGETS=(vis_end block_mask row_builder batch log_probs views)
# Plant (PREFIX_ATTN_FUZZ_PLANT) -> a target that must fail with it (docs/fuzzing.md).
PLANTS=("rule vis_end" "rule block_mask" "rule row_builder" "rule batch" "row-end vis_end"
        "ragged block_mask" "position row_builder" "position batch" "truncate batch"
        "lse log_probs" "reach views" "overlap views")

planted=0
picked=()
for a in "$@"; do
    case "$a" in
        --planted) planted=1 ;;
        *) picked+=("$a") ;;
    esac
done
[ ${#picked[@]} -gt 0 ] && TARGETS=("${picked[@]}")

t0=$(date +%s)
say() { printf 'fuzz: %s (%ss)\n' "$1" "$(( $(date +%s) - t0 ))"; }

# cargo-fuzz, cached outside the clone.
export PATH="$CACHE/cargo-fuzz/bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CACHE/cargo-fuzz"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$CACHE/cargo-fuzz"
fi

cargo fmt --manifest-path fuzz/Cargo.toml -- --check
say "fmt check of fuzz/ passed"

# The kernels are not what is fuzzed: no nvcc build (the emulator library is still built).
export PREFIX_ATTN_SKIP_NVCC=1
unset PREFIX_ATTN_REQUIRE_NVCC
TARGET_DIR="$CACHE/ci-fuzz-target"
FUZZ=(cargo fuzz run --sanitizer none -O -a --target-dir "$TARGET_DIR")
# Corpora: new inputs go to a scratch folder, the committed ones are only read.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
if ! cargo fuzz build --sanitizer none -O -a --target-dir "$TARGET_DIR" >"$SCRATCH/build.log" 2>&1; then
    cat "$SCRATCH/build.log"
    exit 1
fi
say "built"

status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$SCRATCH/$t" "$SCRATCH/artifacts/$t"
    dirs=("$SCRATCH/$t" "fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    if "${FUZZ[@]}" "$t" "${dirs[@]}" -- -seed=1 -max_total_time="$SECONDS_EACH" \
        -artifact_prefix="$SCRATCH/artifacts/$t/" -print_final_stats=1 >"$SCRATCH/$t.log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$SCRATCH/$t.log" | grep -o '[0-9]*$')
        say "$t: ${runs:-?} inputs, no failure"
    else
        status=1
        say "$t FAILED"
        grep -v '^#[0-9]' "$SCRATCH/$t.log" | tail -40
        for f in "$SCRATCH/artifacts/$t"/*; do
            [ -f "$f" ] && echo "input (base64): $(base64 -w0 "$f")"
        done
    fi
done

if [ "$planted" = 1 ]; then
    for p in "${PLANTS[@]}"; do
        set -- $p
        mkdir -p "$SCRATCH/plant-$1-$2"
        if PREFIX_ATTN_FUZZ_PLANT="$1" "${FUZZ[@]}" "$2" "$SCRATCH/plant-$1-$2" -- -seed=1 \
            -max_total_time=30 -artifact_prefix="$SCRATCH/plant-$1-$2/" >"$SCRATCH/plant.log" 2>&1; then
            status=1
            say "planted '$1' NOT caught by $2 in 30 s"
        else
            say "planted '$1' caught by $2: $(grep -A1 'panicked at' "$SCRATCH/plant.log" | tail -1 | cut -c1-100)"
        fi
    done
fi

say "done"
exit $status
