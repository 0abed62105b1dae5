// Device path of the Hopper (sm_90 / sm_90a) intrinsics: inline PTX, one instruction or a few per
// function. What each instruction does, and what the emulator checks around it, is in
// host_sm90.cuh and csrc/emu/; the kernel-facing vocabulary built on these is sm90.cuh.
//
// Architecture guards. The fatbin also holds SASS for sm_80..sm_89 and PTX for compute_90, which
// lack these instructions: there every function here traps, so kernels using them still compile
// (and must only be launched on compute capability 9.0, which the sm_90a SASS serves).
//   PA_SM90_PTX   TMA, mbarrier expect-tx / try_wait, fence.proxy.async   (sm_90)
//   PA_SM90A_PTX  wgmma and setmaxnreg: "architecture-specific" features   (sm_90a only)
#pragma once

#include <stdint.h>

#include "../pa_tma.h"
#include "types.cuh"
#include "wgmma_sm90_asm.cuh"

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
#define PA_SM90_PTX 1
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PA_SM90A_PTX 1
#endif

// Call-site parameter of functions with no other parameter (see host.cuh): nothing here.
#define PA_SITE_ONLY

namespace pa {
namespace sm90 {

PA_DEVICE void unsupported_arch() { asm volatile("trap;"); }

// ---- shared addresses ----
// The 32-bit shared-window address of a pointer into shared memory (cvta.to.shared).
PA_DEVICE uint32_t smem_addr(const void* p) { return pa::smem_u32(p); }

// ---- mbarrier (PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier") ----
PA_DEVICE void mbar_init(void* bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count)
                 : "memory");
}
PA_DEVICE void mbar_arrive(void* bar, uint32_t count) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "{\n.reg .b64 st;\nmbarrier.arrive.release.cta.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(
            smem_addr(bar)),
        "r"(count)
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void mbar_arrive_expect_tx(void* bar, uint32_t bytes) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.release.cta.shared::cta.b64 st, [%0], %1;\n}\n" ::
            "r"(smem_addr(bar)),
        "r"(bytes)
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void mbar_expect_tx(void* bar, uint32_t bytes) {
#if defined(PA_SM90_PTX)
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
#else
    unsupported_arch();
#endif
}
// One try_wait.parity: true once the phase with parity `parity` has completed (the hardware may
// suspend the thread for a while before answering false).
PA_DEVICE bool mbar_try_wait(void* bar, uint32_t parity) {
#if defined(PA_SM90_PTX)
    uint32_t done;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
    return done != 0;
#else
    unsupported_arch();
    return false;
#endif
}
PA_DEVICE void mbar_inval(void* bar) {
    asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// Makes prior mbarrier.init visible to other threads and to the async proxy (TMA).
PA_DEVICE void fence_mbarrier_init() {
#if defined(PA_SM90_PTX)
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#else
    unsupported_arch();
#endif
}
// Orders this thread's prior generic-proxy shared-memory accesses (ordinary loads and stores)
// before subsequent async-proxy accesses (TMA writes, wgmma operand reads), and vice versa.
PA_DEVICE void fence_proxy_async_smem() {
#if defined(PA_SM90_PTX)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
    unsupported_arch();
#endif
}

// ---- named barriers (PTX ISA, "bar, barrier"): bar.sync / bar.arrive a, b are the .aligned
// forms: every thread of a participating warp executes them, b counts threads (a multiple of 32).
PA_DEVICE void named_barrier_sync(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
PA_DEVICE void named_barrier_arrive(uint32_t id, uint32_t threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- TMA (PTX ISA, "cp.async.bulk.tensor"): tiled mode, global -> shared, completing on an
// mbarrier with complete_tx::bytes. Coordinates are in elements, innermost dimension first. ----
PA_DEVICE uint64_t map_addr(const PaTensorMap* map) { return reinterpret_cast<uint64_t>(map); }

PA_DEVICE void tma_load_1d(void* dst, const PaTensorMap* map, void* bar, int32_t c0) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "cp.async.bulk.tensor.1d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2}], [%3];\n" ::"r"(smem_addr(dst)),
        "l"(map_addr(map)), "r"(c0), "r"(smem_addr(bar))
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void tma_load_2d(void* dst, const PaTensorMap* map, void* bar, int32_t c0, int32_t c1) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_addr(dst)),
        "l"(map_addr(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void tma_load_3d(void* dst, const PaTensorMap* map, void* bar, int32_t c0, int32_t c1,
                           int32_t c2) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_addr(dst)),
        "l"(map_addr(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void tma_load_4d(void* dst, const PaTensorMap* map, void* bar, int32_t c0, int32_t c1,
                           int32_t c2, int32_t c3) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(smem_addr(dst)),
        "l"(map_addr(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
        : "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void tma_load_5d(void* dst, const PaTensorMap* map, void* bar, int32_t c0, int32_t c1,
                           int32_t c2, int32_t c3, int32_t c4) {
#if defined(PA_SM90_PTX)
    asm volatile(
        "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n" ::"r"(smem_addr(dst)),
        "l"(map_addr(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4), "r"(smem_addr(bar))
        : "memory");
#else
    unsupported_arch();
#endif
}
// Prefetches the tensor map (in param space) into the descriptor cache.
PA_DEVICE void tma_prefetch_map(const PaTensorMap* map) {
#if defined(PA_SM90_PTX)
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(map_addr(map)) : "memory");
#else
    unsupported_arch();
#endif
}

// ---- wgmma register blocks: plain register arrays on the device (the host path adds state) ----
// Accumulator of one wgmma.m64nNk16 with f32 accumulation: N/2 registers per thread.
template <int N>
struct WgAcc {
    static_assert(N % 16 == 0 && N >= 16 && N <= 256, "wgmma N: a multiple of 16 in [16, 256]");
    static constexpr int kRegs = N / 2;
    float v_[N / 2];
    WgAcc() = default;
    WgAcc(const WgAcc&) = delete;
    WgAcc& operator=(const WgAcc&) = delete;
    PA_DEVICE float& operator[](int i) { return v_[i]; }
    PA_DEVICE float operator[](int i) const { return v_[i]; }
};
// A operand of one wgmma.m64nNk16 from registers (16-bit types): 4 registers per thread.
struct WgFragA {
    uint32_t v_[4];
    WgFragA() = default;
    WgFragA(const WgFragA&) = delete;
    WgFragA& operator=(const WgFragA&) = delete;
    PA_DEVICE uint32_t& operator[](int i) { return v_[i]; }
    PA_DEVICE uint32_t operator[](int i) const { return v_[i]; }
};

// Keeps the compiler from moving accesses of these registers across a wgmma instruction (the
// registers change asynchronously; an empty asm that "writes" them pins their accesses).
template <int N>
PA_DEVICE void fence_operand(WgAcc<N>& acc) {
    PA_UNROLL
    for (int i = 0; i < N / 2; i++) asm volatile("" : "+f"(acc.v_[i])::"memory");
}
PA_DEVICE void fence_operand(WgFragA& a) {
    PA_UNROLL
    for (int i = 0; i < 4; i++) asm volatile("" : "+r"(a.v_[i])::"memory");
}
PA_DEVICE void fence_operands() {}
template <typename First, typename... Rest>
PA_DEVICE void fence_operands(First& first, Rest&... rest) {
    fence_operand(first);
    fence_operands(rest...);
}

// wgmma.fence / commit_group / wait_group (PTX ISA, "wgmma.fence", "wgmma.commit_group",
// "wgmma.wait_group"): all .sync.aligned, executed by every thread of the warpgroup.
PA_DEVICE void wgmma_fence() {
#if defined(PA_SM90A_PTX)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
    unsupported_arch();
#endif
}
PA_DEVICE void wgmma_commit() {
#if defined(PA_SM90A_PTX)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
    unsupported_arch();
#endif
}
template <int Pending>
PA_DEVICE void wgmma_wait() {
    static_assert(Pending >= 0 && Pending <= 7, "wgmma.wait_group N: N in [0, 7]");
#if defined(PA_SM90A_PTX)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#else
    unsupported_arch();
#endif
}

// wgmma.mma_async m64nNk16 f32 += {bf16,f16} x {bf16,f16}: one specialisation per N with the
// instruction spelled for both input types, A from a descriptor (ss) or registers (rs).
// Operands after the accumulators: ss: desc-a, desc-b, scale-d, imm-trans-a, imm-trans-b;
// rs: a0..a3, desc-b, scale-d, imm-trans-b. imm-scale-a/b are 1 (no negation).
template <int N>
struct WgmmaPtx;

#define PA_WGMMA_PTX_TYPE(N, NAME, TY)                                                          \
    template <int TA, int TB>                                                                   \
    PA_DEVICE static void ss_##NAME(float* d, uint64_t da, uint64_t db, uint32_t sd) {          \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " PA_WG_ARG_##N##_2                      \
                     ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " "       \
                     PA_WG_REGS_##N ", " PA_WG_ARG_##N##_0 ", " PA_WG_ARG_##N##_1                \
                     ", p, 1, 1, " PA_WG_ARG_##N##_3 ", " PA_WG_ARG_##N##_4 ";\n}\n"             \
                     : PA_WG_OUT_##N(d)                                                         \
                     : "l"(da), "l"(db), "r"(sd), "n"(TA), "n"(TB));                            \
    }                                                                                           \
    template <int TB>                                                                           \
    PA_DEVICE static void rs_##NAME(float* d, const uint32_t* a, uint64_t db, uint32_t sd) {    \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " PA_WG_ARG_##N##_5                      \
                     ", 0;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " "       \
                     PA_WG_REGS_##N ", {" PA_WG_ARG_##N##_0 ", " PA_WG_ARG_##N##_1 ", "          \
                     PA_WG_ARG_##N##_2 ", " PA_WG_ARG_##N##_3 "}, " PA_WG_ARG_##N##_4            \
                     ", p, 1, 1, " PA_WG_ARG_##N##_6 ";\n}\n"                                    \
                     : PA_WG_OUT_##N(d)                                                         \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(sd), "n"(TB));  \
    }

#define PA_WGMMA_PTX(N)                      \
    template <>                              \
    struct WgmmaPtx<N> {                     \
        PA_WGMMA_PTX_TYPE(N, bf16, "bf16")   \
        PA_WGMMA_PTX_TYPE(N, f16, "f16")     \
    };

PA_WGMMA_PTX(16)
PA_WGMMA_PTX(32)
PA_WGMMA_PTX(48)
PA_WGMMA_PTX(64)
PA_WGMMA_PTX(80)
PA_WGMMA_PTX(96)
PA_WGMMA_PTX(112)
PA_WGMMA_PTX(128)
PA_WGMMA_PTX(144)
PA_WGMMA_PTX(160)
PA_WGMMA_PTX(176)
PA_WGMMA_PTX(192)
PA_WGMMA_PTX(208)
PA_WGMMA_PTX(224)
PA_WGMMA_PTX(240)
PA_WGMMA_PTX(256)

#undef PA_WGMMA_PTX
#undef PA_WGMMA_PTX_TYPE

// Raw entry points used by sm90.cuh's wgmma<...>(): Ty 0 = bf16, 1 = f16.
template <int N, int Ty, int TA, int TB>
PA_DEVICE void wgmma_ss_raw(WgAcc<N>& d, uint64_t da, uint64_t db, bool accumulate) {
#if defined(PA_SM90A_PTX)
    if constexpr (Ty == 0)
        WgmmaPtx<N>::template ss_bf16<TA, TB>(d.v_, da, db, accumulate ? 1u : 0u);
    else
        WgmmaPtx<N>::template ss_f16<TA, TB>(d.v_, da, db, accumulate ? 1u : 0u);
#else
    unsupported_arch();
#endif
}
template <int N, int Ty, int TB>
PA_DEVICE void wgmma_rs_raw(WgAcc<N>& d, const WgFragA& a, uint64_t db, bool accumulate) {
#if defined(PA_SM90A_PTX)
    if constexpr (Ty == 0)
        WgmmaPtx<N>::template rs_bf16<TB>(d.v_, a.v_, db, accumulate ? 1u : 0u);
    else
        WgmmaPtx<N>::template rs_f16<TB>(d.v_, a.v_, db, accumulate ? 1u : 0u);
#else
    unsupported_arch();
#endif
}

// setmaxnreg.{inc,dec}.sync.aligned.u32 (PTX ISA, "setmaxnreg"): sm_90a.
template <int Regs>
PA_DEVICE void setmaxnreg_inc() {
    static_assert(Regs >= 24 && Regs <= 256 && Regs % 8 == 0, "setmaxnreg: a multiple of 8 in [24, 256]");
#if defined(PA_SM90A_PTX)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Regs));
#else
    unsupported_arch();
#endif
}
template <int Regs>
PA_DEVICE void setmaxnreg_dec() {
    static_assert(Regs >= 24 && Regs <= 256 && Regs % 8 == 0, "setmaxnreg: a multiple of 8 in [24, 256]");
#if defined(PA_SM90A_PTX)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Regs));
#else
    unsupported_arch();
#endif
}

// Matrix descriptor (PTX ISA, "Matrix Descriptor Format"): see make_smem_desc in sm90.cuh.
PA_DEVICE uint64_t encode_smem_desc(uint32_t start_addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle) {
    return static_cast<uint64_t>((start_addr & 0x3ffffu) >> 4) |
           (static_cast<uint64_t>((lbo & 0x3ffffu) >> 4) << 16) |
           (static_cast<uint64_t>((sbo & 0x3ffffu) >> 4) << 32) |
           (static_cast<uint64_t>(swizzle & 3u) << 62);
}

}  // namespace sm90
}  // namespace pa
