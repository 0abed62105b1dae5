#!/usr/bin/env bash
# Stub CUDA libraries for building and starting, on a machine with no GPU and no CUDA driver, a
# binary in whose build cudarc links at build time (`dynamic-linking`, which candle-core asks for):
#
#     bash scripts/cuda-stubs.sh DIR [MANIFEST]
#
# Such a binary has libcuda, libnvrtc, libcublas, libcublasLt and libcurand as DT_NEEDED entries
# (and libcudart, from candle-kernels), so the linker needs them to link it and the loader to start
# it. No registry ships the driver library, so this script writes look-alikes into DIR: every C
# function of the five libraries' cudarc bindings (read from the cudarc source that MANIFEST's
# build uses, default this repository's Cargo.toml, so the list follows cudarc's version), each
# returning the library's "not initialised" status: CUDA_ERROR_STUB_LIBRARY (34) for the driver,
# NVRTC_ERROR_INTERNAL_ERROR (11), CUBLAS_STATUS_NOT_INITIALIZED (1),
# CURAND_STATUS_INITIALIZATION_FAILED (203); functions returning a string return a fixed one, and
# cuGetErrorString/cuGetErrorName succeed with that text (so an error message names the stub).
# cuInit then fails cleanly, so `prefix_attn::cuda::Gpu::new` is `Err(NoDevice)`, as on a real
# machine without a GPU. The statuses are values of cudarc's enums in every bindings version.
#
# Each stub carries the real library's SONAME (libcuda.so.1; libnvrtc, libcublas, libcublasLt
# .so.MAJOR; libcurand.so.10), so a binary linked against them runs unchanged against NVIDIA's
# libraries. MAJOR is that of CUDA_STUBS_MAJOR, else of `$NVCC --version`, else of `nvcc
# --version` on PATH, else 13. libcudart is not stubbed: the real one comes with nvcc
# (scripts/get-nvcc.sh installs it beside nvcc) and opens libcuda only on its first runtime call;
# when NVCC's toolkit has it, DIR gets `libcudart.so` and `libcudart.so.MAJOR` links to it.
#
# Put DIR on LIBRARY_PATH (the linker) and LD_LIBRARY_PATH (the loader); .ci/candle-env.sh does,
# only where the machine has no CUDA driver: on LD_LIBRARY_PATH a stub shadows the real library.
# Prints DIR as the only line on stdout. Needs python3, a C compiler (cc, or CC) and cargo.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: bash scripts/cuda-stubs.sh DIR [MANIFEST]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
manifest="${2:-$repo/Cargo.toml}"

# The CUDA major version of the SONAMEs.
major="${CUDA_STUBS_MAJOR:-}"
if [ -z "$major" ]; then
    for cand in "${NVCC:-}" "$(command -v nvcc || true)"; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        major="$("$cand" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p' | head -n 1)"
        [ -n "$major" ] && break
    done
fi
major="${major:-13}"

# The cudarc sources of MANIFEST's dependency graph (one per cudarc version in it).
srcs="$(cargo metadata --quiet --format-version 1 --manifest-path "$manifest" |
    python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cudarc":
        print(os.path.dirname(p["manifest_path"]))
')"
if [ -z "$srcs" ]; then
    echo "cuda-stubs: cudarc is not in the dependency graph of $manifest" >&2
    exit 1
fi

mkdir -p "$dir/src"
# Writes DIR/src/<lib>.c for each library, one C definition per distinct function name found in
# the extern "C" blocks of cudarc's bindings (all bindings versions at once: a function a version
# lacks is one more unused symbol, while a missing one would fail the link).
python3 - "$dir/src" $srcs <<'PY'
import os, re, sys
out, roots = sys.argv[1], sys.argv[2:]
# cudarc module -> (C file, status type -> value returned)
LIBS = {
    "driver": ("cuda", {"CUresult": "34"}),
    "nvrtc": ("nvrtc", {"nvrtcResult": "11"}),
    "cublas": ("cublas", {"cublasStatus_t": "1"}),
    "cublaslt": ("cublasLt", {"cublasStatus_t": "1"}),
    "curand": ("curand", {"curandStatus_t": "203"}),
}
# Integer returns that are not statuses (versions, sizes): 0.
INTS = {"usize": "size_t", "::core::ffi::c_int": "int", "::core::ffi::c_uint": "unsigned int"}
decl = re.compile(r"^\s*fn (\w+)\((.*)\)(?:\s*->\s*(.+))?;\s*$")
for mod, (name, statuses) in LIBS.items():
    funcs = {}
    for root in roots:
        in_extern = False
        for line in open(f"{root}/src/{mod}/sys/mod.rs", encoding="utf-8"):
            if line.strip() == 'extern "C" {':
                in_extern = True
                continue
            if in_extern and line.strip() == "}":
                in_extern = False
                continue
            if not in_extern:
                continue
            m = decl.match(line)
            if not m:
                sys.exit(f"cuda-stubs: cannot read this declaration of {mod}: {line.strip()}")
            fname, ret = m.group(1), (m.group(3) or "").strip()
            if fname in ("cuGetErrorString", "cuGetErrorName"):
                # Succeed, naming the stub: an error's text then says where it came from.
                body = (f"int {fname}(int error, const char **text) "
                        f"{{ (void)error; *text = stub_message; return 0; }}")
            elif ret in statuses:
                body = f"int {fname}(void) {{ return {statuses[ret]}; }}"
            elif ret == "":
                body = f"void {fname}(void) {{ }}"
            elif ret == "*const ::core::ffi::c_char":
                body = f"const char *{fname}(void) {{ return stub_message; }}"
            elif ret in INTS:
                body = f"{INTS[ret]} {fname}(void) {{ return 0; }}"
            else:
                sys.exit(f"cuda-stubs: {mod}: {fname} returns {ret}, which this script cannot stub")
            funcs.setdefault(fname, body)
    if not funcs:
        sys.exit(f"cuda-stubs: no functions found in cudarc's {mod} bindings")
    with open(f"{out}/.{name}.c.tmp{os.getpid()}", "w") as f:
        f.write("/* Generated by scripts/cuda-stubs.sh from cudarc's bindings: a stub for building\n"
                "   and starting binaries without CUDA, not NVIDIA's library. Arguments are not\n"
                "   declared: the callee ignores them, which the C calling convention allows. */\n"
                "#include <stddef.h>\n"
                'static const char stub_message[] = "CUDA stub library (scripts/cuda-stubs.sh): no CUDA driver";\n')
        for fname in sorted(funcs):
            f.write(funcs[fname] + "\n")
    os.replace(f"{out}/.{name}.c.tmp{os.getpid()}", f"{out}/{name}.c")
    print(f"cuda-stubs: {name}: {len(funcs)} functions", file=sys.stderr)
PY

# Files and links are replaced by a rename, never rewritten in place: a build linking against DIR
# at the same time (another checkout's CI step) sees the old file or the new one, never half of one.
link() { # target, name
    ln -sfn "$1" "$dir/.$2.tmp.$$"
    mv -Tf "$dir/.$2.tmp.$$" "$dir/$2"
}
build() { # C-file stem, SONAME
    "${CC:-cc}" -shared -fPIC -O0 -w -o "$dir/.$2.tmp.$$" -Wl,-soname,"$2" "$dir/src/$1.c"
    mv -f "$dir/.$2.tmp.$$" "$dir/$2"
    link "$2" "lib$1.so"
}
build cuda libcuda.so.1
build nvrtc "libnvrtc.so.$major"
build cublas "libcublas.so.$major"
build cublasLt "libcublasLt.so.$major"
build curand libcurand.so.10

# The real libcudart of NVCC's toolkit (pip layout: bin/nvcc beside lib/libcudart.so.MAJOR).
if [ -n "${NVCC:-}" ]; then
    cudart="$(dirname "$NVCC")/../lib/libcudart.so.$major"
    if [ -f "$cudart" ]; then
        cudart="$(cd "$(dirname "$cudart")" && pwd)/libcudart.so.$major"
        link "$cudart" "libcudart.so.$major"
        link "libcudart.so.$major" libcudart.so
    else
        echo "cuda-stubs: no $cudart: libcudart must come from elsewhere" >&2
    fi
fi
echo "$dir"
