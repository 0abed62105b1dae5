// Host path of the Hopper intrinsics: the emulator's entry points (csrc/emu/mbarrier.cpp,
// named_barrier.cpp, tma.cpp, warpgroup.cpp, wgmma.cpp). Same names and meanings as
// device_sm90.cuh; what the emulator models and checks is said at each function.
#pragma once

#include <stdint.h>

#include "../pa_tma.h"
#include "host.cuh"
#include "types.cuh"

// Call-site parameter of functions with no other parameter (see host.cuh); such functions
// forward it with PA_SITE_ARG like the others.
#define PA_SITE_ONLY PA_SITE_DEFAULTS

namespace pa {
namespace emu {
namespace sm90 {

// Bookkeeping of one thread's wgmma register block (accumulator or A fragment): which wgmma
// group still owns it, and when the thread last accessed it (to check the wgmma.fence rules).
struct RegTrack {
    uint32_t pending = 0;             // 1 + wgmma group that reads/writes it asynchronously; 0: none
    uint32_t access_fence = 0xffffffffu;  // warpgroup fence count at the last access; ~0: never
    Site wgmma_site{nullptr, 0};      // the wgmma that made it pending
};
// An element access: fails if a wgmma not yet covered by a wait_group owns the block; records the
// access for the fence rule. `what` names the block in messages.
void reg_touch(RegTrack *r, const char *what);
// The block goes out of scope: fails if a wgmma still owns it.
void reg_retire(RegTrack *r, const char *what);

uint32_t smem_addr(const void *p);

void mbar_init(void *bar, uint32_t count, Site site);
void mbar_arrive(void *bar, uint32_t count, uint32_t tx_bytes, bool expect_tx, Site site);
void mbar_expect_tx(void *bar, uint32_t tx_bytes, Site site);
bool mbar_try_wait(void *bar, uint32_t parity, Site site);
void mbar_inval(void *bar, Site site);

void named_barrier(uint32_t id, uint32_t threads, bool sync, Site site);

void tma_load(void *dst, const PaTensorMap *map, void *bar, const int32_t *coords, int rank,
              Site site);
void tma_prefetch_map(const PaTensorMap *map, Site site);

// fence.proxy.async.shared::cta: publishes the ordinary (generic-proxy) stores to shared memory
// made so far to the async proxy (wgmma operand reads; TMA writes already reach both).
void fence_proxy_async();

// Warpgroup-wide instructions other than the mma: gathered like a collective of 128 threads.
enum class WgOp : int { Fence = 1, Commit = 2, Wait = 3, SetMaxNRegInc = 4, SetMaxNRegDec = 5 };
void warpgroup_op(WgOp op, int arg, Site site);

// One thread's part of a wgmma.mma_async.
struct WgmmaCall {
    int n;            // N of m64nNk16
    int dtype;        // 0 bf16, 1 f16
    int a_regs;       // 1: A from registers (a, a_track), 0: from desc_a
    int trans_a;      // imm-trans-a (0 K-major, 1 M-major); 0 with A in registers
    int trans_b;      // imm-trans-b (0 K-major, 1 N-major)
    uint64_t desc_a;
    uint64_t desc_b;
    uint32_t scale_d; // 0: D = A*B, else D = A*B + D
    const uint32_t *a;
    RegTrack *a_track;
    float *d;         // n / 2 floats
    RegTrack *d_track;
};
void wgmma(const WgmmaCall &call, Site site);

uint64_t make_smem_desc(uint32_t start_addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle, Site site);

}  // namespace sm90
}  // namespace emu

namespace sm90 {

// ---- shared addresses: the emulator places the CTA's dynamic shared memory at a
// schedule-dependent 128-byte aligned address of a 256 KiB shared window (0 under the ascending
// schedule, 128 mod 1024 under the descending one), so a kernel that assumes more alignment than
// CUDA promises fails under one schedule. ----
inline uint32_t smem_addr(const void *p) { return emu::sm90::smem_addr(p); }

// ---- mbarrier: state kept beside shared memory (the 8 bytes hold a signature the emulator
// checks, so an ordinary store over a live mbarrier is reported) ----
inline void mbar_init(void *bar, uint32_t count, PA_SITE_DEFAULTS) {
    emu::sm90::mbar_init(bar, count, {pa_site_file, pa_site_line});
}
inline void mbar_arrive(void *bar, uint32_t count, PA_SITE_DEFAULTS) {
    emu::sm90::mbar_arrive(bar, count, 0, false, {pa_site_file, pa_site_line});
}
inline void mbar_arrive_expect_tx(void *bar, uint32_t bytes, PA_SITE_DEFAULTS) {
    emu::sm90::mbar_arrive(bar, 1, bytes, true, {pa_site_file, pa_site_line});
}
inline void mbar_expect_tx(void *bar, uint32_t bytes, PA_SITE_DEFAULTS) {
    emu::sm90::mbar_expect_tx(bar, bytes, {pa_site_file, pa_site_line});
}
// A failed try_wait is a scheduling point: the thread sleeps until the barrier changes (or until
// no thread can progress, when it gets `false` once; a second stall is a reported deadlock).
inline bool mbar_try_wait(void *bar, uint32_t parity, PA_SITE_DEFAULTS) {
    return emu::sm90::mbar_try_wait(bar, parity, {pa_site_file, pa_site_line});
}
inline void mbar_inval(void *bar, PA_SITE_DEFAULTS) {
    emu::sm90::mbar_inval(bar, {pa_site_file, pa_site_line});
}
// Visibility of an mbarrier's init is not modelled: every thread and the emulated TMA see it at
// once (docs/testing-without-gpu.md, blind spots).
inline void fence_mbarrier_init() {}
// Proxy ordering, generic stores before async-proxy reads: the emulator keeps the async proxy's
// view of shared memory, which TMA writes and this fence update and which every wgmma operand
// must match (a missing fence is reported). Lenient in one way: any thread's fence publishes
// every thread's stores so far (the ISA asks each writing thread to fence). The other direction
// (async reads, then ordinary stores) is not checked.
inline void fence_proxy_async_smem() { emu::sm90::fence_proxy_async(); }

// ---- named barriers 1..15 (0 is sync_threads'), counts in threads, warp granularity ----
inline void named_barrier_sync(uint32_t id, uint32_t threads, PA_SITE_DEFAULTS) {
    emu::sm90::named_barrier(id, threads, true, {pa_site_file, pa_site_line});
}
inline void named_barrier_arrive(uint32_t id, uint32_t threads, PA_SITE_DEFAULTS) {
    emu::sm90::named_barrier(id, threads, false, {pa_site_file, pa_site_line});
}

// ---- TMA: the box lands at the issue, when a thread waits on its mbarrier, or by a seeded coin
// (per schedule), then completes its bytes on the mbarrier ----
inline void tma_load_1d(void *dst, const PaTensorMap *map, void *bar, int32_t c0, PA_SITE_DEFAULTS) {
    const int32_t c[5] = {c0, 0, 0, 0, 0};
    emu::sm90::tma_load(dst, map, bar, c, 1, {pa_site_file, pa_site_line});
}
inline void tma_load_2d(void *dst, const PaTensorMap *map, void *bar, int32_t c0, int32_t c1,
                        PA_SITE_DEFAULTS) {
    const int32_t c[5] = {c0, c1, 0, 0, 0};
    emu::sm90::tma_load(dst, map, bar, c, 2, {pa_site_file, pa_site_line});
}
inline void tma_load_3d(void *dst, const PaTensorMap *map, void *bar, int32_t c0, int32_t c1,
                        int32_t c2, PA_SITE_DEFAULTS) {
    const int32_t c[5] = {c0, c1, c2, 0, 0};
    emu::sm90::tma_load(dst, map, bar, c, 3, {pa_site_file, pa_site_line});
}
inline void tma_load_4d(void *dst, const PaTensorMap *map, void *bar, int32_t c0, int32_t c1,
                        int32_t c2, int32_t c3, PA_SITE_DEFAULTS) {
    const int32_t c[5] = {c0, c1, c2, c3, 0};
    emu::sm90::tma_load(dst, map, bar, c, 4, {pa_site_file, pa_site_line});
}
inline void tma_load_5d(void *dst, const PaTensorMap *map, void *bar, int32_t c0, int32_t c1,
                        int32_t c2, int32_t c3, int32_t c4, PA_SITE_DEFAULTS) {
    const int32_t c[5] = {c0, c1, c2, c3, c4};
    emu::sm90::tma_load(dst, map, bar, c, 5, {pa_site_file, pa_site_line});
}
inline void tma_prefetch_map(const PaTensorMap *map, PA_SITE_DEFAULTS) {
    emu::sm90::tma_prefetch_map(map, {pa_site_file, pa_site_line});
}

// ---- wgmma register blocks: element access checks that no wgmma still owns the registers (the
// read-before-wait net) and records the access (the fence net) ----
template <int N>
struct WgAcc {
    static_assert(N % 16 == 0 && N >= 16 && N <= 256, "wgmma N: a multiple of 16 in [16, 256]");
    static constexpr int kRegs = N / 2;
    float v_[N / 2];
    mutable emu::sm90::RegTrack track_;
    WgAcc() = default;
    WgAcc(const WgAcc &) = delete;
    WgAcc &operator=(const WgAcc &) = delete;
    ~WgAcc() { emu::sm90::reg_retire(&track_, "wgmma accumulator"); }
    float &operator[](int i) {
        emu::sm90::reg_touch(&track_, "wgmma accumulator");
        return v_[i];
    }
    float operator[](int i) const {
        emu::sm90::reg_touch(&track_, "wgmma accumulator");
        return v_[i];
    }
};
struct WgFragA {
    uint32_t v_[4];
    mutable emu::sm90::RegTrack track_;
    WgFragA() = default;
    WgFragA(const WgFragA &) = delete;
    WgFragA &operator=(const WgFragA &) = delete;
    ~WgFragA() { emu::sm90::reg_retire(&track_, "wgmma A fragment"); }
    uint32_t &operator[](int i) {
        emu::sm90::reg_touch(&track_, "wgmma A fragment");
        return v_[i];
    }
    uint32_t operator[](int i) const {
        emu::sm90::reg_touch(&track_, "wgmma A fragment");
        return v_[i];
    }
};

// Operand fences only matter to nvcc's scheduling (device_sm90.cuh); nothing to do here.
template <typename... Regs>
inline void fence_operands(Regs &...) {}

inline void wgmma_fence(PA_SITE_DEFAULTS) {
    emu::sm90::warpgroup_op(emu::sm90::WgOp::Fence, 0, {pa_site_file, pa_site_line});
}
inline void wgmma_commit(PA_SITE_DEFAULTS) {
    emu::sm90::warpgroup_op(emu::sm90::WgOp::Commit, 0, {pa_site_file, pa_site_line});
}
template <int Pending>
inline void wgmma_wait(PA_SITE_DEFAULTS) {
    static_assert(Pending >= 0 && Pending <= 7, "wgmma.wait_group N: N in [0, 7]");
    emu::sm90::warpgroup_op(emu::sm90::WgOp::Wait, Pending, {pa_site_file, pa_site_line});
}

template <int N, int Ty, int TA, int TB>
inline void wgmma_ss_raw(WgAcc<N> &d, uint64_t da, uint64_t db, bool accumulate,
                         const char *file, int line) {
    const emu::sm90::WgmmaCall call{N,        Ty,      0,       TA,       TB,      da,
                                    db,       accumulate ? 1u : 0u,       nullptr, nullptr,
                                    d.v_,     &d.track_};
    emu::sm90::wgmma(call, {file, line});
}
template <int N, int Ty, int TB>
inline void wgmma_rs_raw(WgAcc<N> &d, const WgFragA &a, uint64_t db, bool accumulate,
                         const char *file, int line) {
    const emu::sm90::WgmmaCall call{N,    Ty,      1,      0,         TB,        0,
                                    db,   accumulate ? 1u : 0u,       a.v_,      &a.track_,
                                    d.v_, &d.track_};
    emu::sm90::wgmma(call, {file, line});
}

template <int Regs>
inline void setmaxnreg_inc(PA_SITE_DEFAULTS) {
    static_assert(Regs >= 24 && Regs <= 256 && Regs % 8 == 0, "setmaxnreg: a multiple of 8 in [24, 256]");
    emu::sm90::warpgroup_op(emu::sm90::WgOp::SetMaxNRegInc, Regs, {pa_site_file, pa_site_line});
}
template <int Regs>
inline void setmaxnreg_dec(PA_SITE_DEFAULTS) {
    static_assert(Regs >= 24 && Regs <= 256 && Regs % 8 == 0, "setmaxnreg: a multiple of 8 in [24, 256]");
    emu::sm90::warpgroup_op(emu::sm90::WgOp::SetMaxNRegDec, Regs, {pa_site_file, pa_site_line});
}

// Descriptor encoding with the emulator's checks of the byte values (multiples of 16 below
// 2^18, which the 14-bit fields would otherwise silently truncate).
inline uint64_t encode_smem_desc(uint32_t start_addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle,
                                 PA_SITE_DEFAULTS) {
    return emu::sm90::make_smem_desc(start_addr, lbo, sbo, swizzle, {pa_site_file, pa_site_line});
}

}  // namespace sm90
}  // namespace pa
