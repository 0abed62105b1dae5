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

// The spec of a kernel written over a tile configuration `Cfg` (attn/config.cuh,
// attn/bwd_config.cuh, and on sm90a the toolkit's Sm90KvRingConfig and Sm90RegSplit in
// attn/sm90_kit.cuh): the element type, head dim, tile, warps, stages and threads the
// registry row reports come from the configuration, so that the kernel struct names only its
// family, its parameters, its shared memory and what is its own.
template <class Params_, class Cfg, int kArch_ = PA_ARCH_SM80>
struct TiledKernelSpec : KernelSpec<Params_, Cfg::kThreads, 1> {
    using T = typename Cfg::T;
    static constexpr int kArch = kArch_;
    static constexpr int kDtype = DtypeCode<T>::value;
    static constexpr int kHeadDim = Cfg::kHeadDim;
    static constexpr int kBlockQ = Cfg::kBlockQ;
    static constexpr int kBlockK = Cfg::kBlockK;
    static constexpr int kWarps = Cfg::kWarps;
    static constexpr int kStages = Cfg::kStages;
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
