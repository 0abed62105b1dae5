#!/usr/bin/env bash
# Tests .ci/libclang.sh on fake file trees, including the way a fresh machine fails: Debian with
# only libclang-cpp (pulled in by other packages) has no libclang bindgen can load, though
# `ldconfig -p | grep libclang` matches. .ci/run runs this before trusting the detection.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=libclang.sh
source .ci/libclang.sh

fails=0
check() { # check LABEL EXPECTED(found|absent) [ENV=VALUE...]: runs find_bindgen_libclang
    local label="$1" want="$2" got out
    shift 2
    if out="$(env "$@" bash -c 'source .ci/libclang.sh; find_bindgen_libclang')"; then
        got=found
    else
        got=absent
    fi
    if [ "$got" = "$want" ]; then
        echo "ok    $label: $got ${out:-}"
    else
        echo "FAIL  $label: expected $want, got $got ${out:-}"
        fails=1
    fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
lay() { # lay ROOT FILE...: creates empty files under ROOT
    local root="$1" f
    shift
    for f in "$@"; do
        mkdir -p "$root/$(dirname "$f")"
        : > "$root/$f"
    done
}

fresh="$tmp/fresh" # what a fresh Debian 12 had in issue 13
lay "$fresh" usr/lib/x86_64-linux-gnu/libclang-cpp.so.14 usr/lib/x86_64-linux-gnu/libLLVM-14.so.1 \
    usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/llvm-14/lib/libclangAST.a \
    usr/lib/x86_64-linux-gnu/libclang_rt.asan-x86_64.so
check "fresh machine, only libclang-cpp" absent LIBCLANG_ROOT="$fresh"

runtime="$tmp/runtime" # libclang1-14 alone: the versioned soname
cp -a "$fresh/." "$runtime"
lay "$runtime" usr/lib/x86_64-linux-gnu/libclang-14.so.13
check "libclang-14.so.13 (libclang1-14)" found LIBCLANG_ROOT="$runtime"

dev="$tmp/dev" # libclang-dev: the unversioned link in the LLVM tree
cp -a "$fresh/." "$dev"
lay "$dev" usr/lib/llvm-14/lib/libclang.so
check "usr/lib/llvm-14/lib/libclang.so (libclang-dev)" found LIBCLANG_ROOT="$dev"

lay "$tmp/local" usr/local/lib/libclang.so.1
check "usr/local/lib/libclang.so.1" found LIBCLANG_ROOT="$tmp/local"

# LIBCLANG_PATH: clang-sys looks there alone.
check "LIBCLANG_PATH pointing nowhere" absent LIBCLANG_ROOT="$dev" LIBCLANG_PATH="$tmp/nowhere"
lay "$tmp/custom" lib/libclang-17.so
check "LIBCLANG_PATH = a directory with libclang-17.so" found LIBCLANG_ROOT="$fresh" \
    LIBCLANG_PATH="$tmp/custom/lib"
check "LIBCLANG_PATH = libclang-cpp itself" absent LIBCLANG_ROOT="$fresh" \
    LIBCLANG_PATH="$fresh/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"
check "LIBCLANG_PATH = libclang-14.so.13 itself" found LIBCLANG_ROOT="$fresh" \
    LIBCLANG_PATH="$runtime/usr/lib/x86_64-linux-gnu/libclang-14.so.13"

# The install path, with a fake apt-get that installs libclang-dev into the fake tree and logs.
mkdir -p "$tmp/bin"
cat > "$tmp/bin/apt-get" <<'FAKE'
#!/usr/bin/env bash
echo "apt-get $*" >> "$FAKE_LOG"
case " $* " in
    *" install "*) mkdir -p "$LIBCLANG_ROOT/usr/lib/llvm-14/lib" &&
        : > "$LIBCLANG_ROOT/usr/lib/llvm-14/lib/libclang.so" ;;
esac
FAKE
chmod +x "$tmp/bin/apt-get"
ensure() { # ensure LABEL ROOT EXPECTED_INSTALLS(0|1)
    local label="$1" root="$2" want="$3" log="$tmp/apt-$RANDOM.log"
    : > "$log"
    if env PATH="$tmp/bin:$PATH" LIBCLANG_ROOT="$root" FAKE_LOG="$log" \
        bash -c 'source .ci/libclang.sh; ensure_bindgen_libclang' >/dev/null &&
        [ "$(grep -c ' install ' "$log")" = "$want" ]; then
        echo "ok    $label: $want install(s)"
    else
        echo "FAIL  $label: expected $want install(s), apt-get log: $(tr '\n' ';' < "$log")"
        fails=1
    fi
}
cp -a "$fresh/." "$tmp/fresh2"
ensure "fresh machine: installs libclang-dev, then finds it" "$tmp/fresh2" 1
ensure "libclang present: installs nothing" "$dev" 0

# The names alone.
for name in libclang.so libclang-14.so libclang.so.1 libclang-14.so.13 libclang-14.0.6.so; do
    is_bindgen_libclang_name "$name" || { echo "FAIL  $name should be accepted"; fails=1; }
done
for name in libclang-cpp.so.14 libclang-cpp.so libclangAST.a libclang_rt.asan-x86_64.so \
    libclang.a libclang-14.a; do
    ! is_bindgen_libclang_name "$name" || { echo "FAIL  $name should be refused"; fails=1; }
done

# This machine, for the log.
if found="$(find_bindgen_libclang)"; then
    echo "this machine: $found"
else
    echo "this machine: no libclang bindgen can load"
fi
exit "$fails"
