// How a kernel becomes an entry of the fatbin and of the emulator: the kernel spec every
// registered kernel derives from, and the per-path definers that csrc/kernels.cu expands once per
// line of the kernel list (csrc/registry.cuh).
//
// A kernel is a struct:
//     struct MyKernel : pa::KernelSpec<PaMyParams, /*threads*/ 128> {
//         static constexpr const char *kFamily = "my_family";
//         PA_DEVICE static void run(const PaMyParams &p) { ... }
//     };
// plus one line X(my_kernel_name, MyKernel) in the list. Everything else — the extern "C" symbol
// with its launch bounds, the emulator entry, the registry row Rust reads (name, params type,
// threads, shared memory, tile configuration) — is generated from that line.
#pragma once

#include "../pa_registry.h"
#include "params_names.cuh"

namespace pa {

// Registry defaults. `kThreads` is the block size the kernel is written for (attention kernels:
// exactly; grid-stride kernels: at most) and becomes __launch_bounds__(kThreads, kMinBlocks).
template <class Params_, int kThreads_, int kMinBlocks_ = 1>
struct KernelSpec {
    using Params = Params_;
    static constexpr int kThreads = kThreads_;
    static constexpr int kMinBlocks = kMinBlocks_;
    static constexpr int kArch = PA_ARCH_SM80;
    static constexpr int kSmemBytes = 0;
    static constexpr int kDtype = PA_DTYPE_NONE;
    static constexpr int kHeadDim = 0;
    static constexpr int kBlockQ = 0;
    static constexpr int kBlockK = 0;
    static constexpr int kWarps = 0;
    static constexpr int kStages = 0;
};

template <typename T>
struct DtypeCode;
template <>
struct DtypeCode<bf16> {
    static constexpr int value = PA_DTYPE_BF16;
};
template <>
struct DtypeCode<f16> {
    static constexpr int value = PA_DTYPE_F16;
};
template <>
struct DtypeCode<float> {
    static constexpr int value = PA_DTYPE_F32;
};

// The kernel body, or a trap where this compilation pass cannot hold it (an sm_90a kernel in the
// sm_80 pass): `arch_compiled` is path-specific (device.cuh / host.cuh). Inside a template the
// discarded branch is never instantiated, so sm_90a instructions never reach an sm_80 assembler.
template <class K>
PA_DEVICE void kernel_entry(const typename K::Params &p) {
    if constexpr (arch_compiled(K::kArch)) {
        K::run(p);
    } else {
        trap();
    }
}

}  // namespace pa

#if !defined(__CUDACC__)
namespace pa {

// The registry row of kernel K (host build only: the table lives in the emulator library, which
// every build links, so the GPU path reads it too).
template <class K>
PaKernelInfo registry_row(const char *name, PaEmuEntry emu) {
    PaKernelInfo r{};
    r.name = name;
    r.family = K::kFamily;
    r.params = ParamsName<typename K::Params>::value;
    r.params_bytes = (uint32_t)sizeof(typename K::Params);
    r.arch = (uint32_t)K::kArch;
    r.threads = (uint32_t)K::kThreads;
    r.min_blocks = (uint32_t)K::kMinBlocks;
    r.smem_bytes = (uint32_t)K::kSmemBytes;
    r.dtype = (uint32_t)K::kDtype;
    r.head_dim = (uint32_t)K::kHeadDim;
    r.block_q = (uint32_t)K::kBlockQ;
    r.block_k = (uint32_t)K::kBlockK;
    r.warps = (uint32_t)K::kWarps;
    r.stages = (uint32_t)K::kStages;
    r.emu = emu;
    return r;
}

}  // namespace pa
#endif
