# Sourced by .ci/run (and .ci/libclang-test.sh): finds the libclang that bindgen would load for
# the bindings drift check (tools/regen-bindings). bindgen loads it at run time through
# clang-sys, which does not ask ldconfig: it looks in LIBCLANG_PATH alone when that is set, else
# in `llvm-config --prefix`/{bin,lib,lib64}, LD_LIBRARY_PATH, LIBRARY_PATH and the directories
# /usr/local/llvm*/lib*, /usr/local/lib*{,/*,/*/*}, /usr/lib*{,/*,/*/*}, for files named
# libclang.so, libclang-*.so, libclang.so.* or libclang-*.so.*, skipping any name with "-cpp."
# (libclang-cpp is LLVM's C++ library, not the C API bindgen needs; a fresh Debian with only
# that one has no usable libclang). clang-sys also checks the ELF class; this does not.
#
# LIBCLANG_ROOT (tests only) is prepended to the system directories, and when set, llvm-config,
# LD_LIBRARY_PATH and LIBRARY_PATH are not consulted, so a test sees only its fake tree.

# Succeeds when file name $1 is one clang-sys would load.
is_bindgen_libclang_name() {
    case "$1" in
        *-cpp.*) return 1 ;;
        libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) return 0 ;;
        *) return 1 ;;
    esac
}

# The directories clang-sys searches, one per line (existing ones only).
libclang_search_dirs() {
    local root="${LIBCLANG_ROOT:-}" d prefix
    if [ -z "$root" ]; then
        if command -v llvm-config >/dev/null 2>&1 && prefix="$(llvm-config --prefix 2>/dev/null)"; then
            printf '%s\n' "$prefix/bin" "$prefix/lib" "$prefix/lib64"
        fi
        local IFS=:
        for d in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do
            printf '%s\n' "$d"
        done
        unset IFS
    fi
    for d in "$root"/usr/local/llvm*/lib* "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* \
        "$root"/usr/local/lib* "$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*; do
        [ -d "$d" ] && printf '%s\n' "$d"
    done
    return 0
}

# Prints the path of the first libclang bindgen would find; fails when there is none.
find_bindgen_libclang() {
    local dir f name
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        # A file that matches, or else a directory to search (as clang-sys does).
        name="$(basename "$LIBCLANG_PATH")"
        if [ -f "$LIBCLANG_PATH" ] && is_bindgen_libclang_name "$name"; then
            printf '%s\n' "$LIBCLANG_PATH"
            return 0
        fi
        set -- "$LIBCLANG_PATH"
    else
        local dirs
        mapfile -t dirs < <(libclang_search_dirs)
        set -- ${dirs[@]+"${dirs[@]}"}
    fi
    for dir in "$@"; do
        [ -d "$dir" ] || continue
        for f in "$dir"/libclang*; do
            [ -e "$f" ] || continue
            if is_bindgen_libclang_name "$(basename "$f")"; then
                printf '%s\n' "$f"
                return 0
            fi
        done
    done
    return 1
}

# Installs libclang-dev (Debian's apt) when bindgen would find no libclang, then checks again;
# prints what bindgen will load, or fails saying why.
ensure_bindgen_libclang() {
    local found
    if ! find_bindgen_libclang >/dev/null; then
        if [ -n "${LIBCLANG_PATH:-}" ]; then
            echo "LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang bindgen can load: fix or unset it" >&2
            return 1
        fi
        echo "no libclang bindgen can load: installing libclang-dev"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
    fi
    if ! found="$(find_bindgen_libclang)"; then
        echo "still no libclang bindgen can load after installing libclang-dev" >&2
        return 1
    fi
    echo "bindgen will load $found"
}
