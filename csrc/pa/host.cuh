// Host path of the intrinsics layer: kernel sources compiled by g++ (C++17) for the SIMT emulator
// in csrc/emu/. No CUDA header is needed. Each CTA's threads run as fibers; the functions below
// either read the running fiber's indices (cheap, inline) or enter the runtime, which switches
// fibers at block barriers and warp collectives and computes the collectives with PTX semantics.
//
// Call sites. Every sync point (barrier, collective, cp.async wait) takes two trailing defaulted
// arguments, the caller's file and line (__builtin_FILE/__builtin_LINE), so the runtime can check
// that all lanes of a warp (all threads of a CTA) reached the SAME call site. A helper that wraps
// a collective can forward its own caller's site with PA_SITE_PARAM / PA_SITE_ARG:
//     PA_DEVICE void load_a(uint32_t (&a)[4], const bf16* s PA_SITE_PARAM) {
//         pa::ldmatrix_x4(a[0], a[1], a[2], a[3], s PA_SITE_ARG);
//     }
// (both expand to nothing on the device). Without it, the helper's line is the site.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../pa_registry.h"
#include "types.cuh"

#define PA_DEVICE inline
#define PA_UNROLL

#define PA_SITE_PARAM , const char *pa_site_file = __builtin_FILE(), int pa_site_line = __builtin_LINE()
#define PA_SITE_ARG , pa_site_file, pa_site_line
#define PA_SITE_DEFAULTS const char *pa_site_file = __builtin_FILE(), int pa_site_line = __builtin_LINE()

// One line of the kernel list (csrc/registry.cuh) as an emulator entry: `name_pa_body` is what
// every emulated thread runs (pa::kernel_entry, csrc/pa/entry.cuh), `name_pa_emu` runs a whole
// grid (the PaEmuEntry of the kernel's registry row, built by PA_REGISTRY_ROW). The kernel's
// kThreads is checked against the launch like __launch_bounds__. Every thread's body receives the
// launch's one parameter struct by reference, as a __grid_constant__ parameter on the device:
// the same object for all (its fields' addresses are stable, e.g. the tensor maps TMA reads).
#define PA_DEFINE_KERNEL(name, ...)                                                           \
    static void name##_pa_body(const void *params) {                                          \
        ::pa::kernel_entry<__VA_ARGS__>(*static_cast<const __VA_ARGS__::Params *>(params));   \
    }                                                                                         \
    static int name##_pa_emu(const PaEmuLaunch *launch, const void *params,                   \
                             PaEmuReport *report) {                                           \
        return ::pa::emu::run_grid(#name, launch, params, &name##_pa_body,                    \
                                   (uint32_t)__VA_ARGS__::kThreads, report);                  \
    }
#define PA_REGISTRY_ROW(name, ...) ::pa::registry_row<__VA_ARGS__>(#name, &name##_pa_emu),

namespace pa {
namespace emu {

// Where a sync point was called from.
struct Site {
    const char *file;
    int line;
};

// What a running emulated thread may ask about itself without entering the runtime.
struct ThreadView {
    uint32_t tid[3];
    uint32_t linear;
    uint32_t lane;
    uint32_t warp;
    uint32_t bid[3];
    uint32_t bdim[3];
    uint32_t gdim[3];
    unsigned char *smem;
};

// The fiber running on this OS thread (set by the runtime before each switch into a fiber).
extern __thread const ThreadView *tl_view;

int run_grid(const char *kernel, const PaEmuLaunch *launch, const void *params,
             void (*entry)(const void *), uint32_t max_threads, PaEmuReport *report);

void barrier(Site site);
enum class ShflMode : int { Xor = 0, Idx = 1 };
uint32_t shfl(uint32_t v, int32_t b, ShflMode mode, Site site);
void ldmatrix(uint32_t *regs, int count, bool trans, const void *row_addr, Site site);
// ldmatrix into `count` separate registers.
inline void ldmatrix_into(uint32_t *const *regs, int count, bool trans, const void *row_addr,
                          Site site) {
    uint32_t r[4];
    ldmatrix(r, count, trans, row_addr, site);
    for (int i = 0; i < count; i++) *regs[i] = r[i];
}
enum class MmaKind : int { Bf16 = 0, F16 = 1 };
void mma(MmaKind kind, float *d, const uint32_t *a, const uint32_t *b, const float *c, Site site);
void cp_async(void *smem_dst, const void *gmem_src, bool valid, uint32_t bytes, Site site);
void cp_async_commit();
void cp_async_wait(int n, Site site);

inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

}  // namespace emu

// The host build holds every path's code: the emulator runs sm_90a kernels too.
constexpr bool arch_compiled(int) { return true; }

// A kernel that traps on the GPU fails its emulated launch.
[[noreturn]] void trap_thread();
inline void trap() { trap_thread(); }

// ---- indices ----
inline uint32_t thread_idx_x() { return emu::tl_view->tid[0]; }
inline uint32_t thread_idx_y() { return emu::tl_view->tid[1]; }
inline uint32_t thread_idx_z() { return emu::tl_view->tid[2]; }
inline uint32_t block_idx_x() { return emu::tl_view->bid[0]; }
inline uint32_t block_idx_y() { return emu::tl_view->bid[1]; }
inline uint32_t block_idx_z() { return emu::tl_view->bid[2]; }
inline uint32_t block_dim_x() { return emu::tl_view->bdim[0]; }
inline uint32_t block_dim_y() { return emu::tl_view->bdim[1]; }
inline uint32_t block_dim_z() { return emu::tl_view->bdim[2]; }
inline uint32_t grid_dim_x() { return emu::tl_view->gdim[0]; }
inline uint32_t grid_dim_y() { return emu::tl_view->gdim[1]; }
inline uint32_t grid_dim_z() { return emu::tl_view->gdim[2]; }
inline uint32_t thread_linear() { return emu::tl_view->linear; }
inline uint32_t lane_id() { return emu::tl_view->lane; }
inline uint32_t warp_id() { return emu::tl_view->warp; }

// ---- shared memory and barrier ----
template <typename T>
inline T *dyn_smem() {
    return reinterpret_cast<T *>(emu::tl_view->smem);
}

inline void sync_threads(PA_SITE_DEFAULTS) { emu::barrier({pa_site_file, pa_site_line}); }

// ---- warp shuffles: PTX shfl.sync.{bfly,idx}.b32 with c = 0x1f (width 32) ----
inline uint32_t shfl_xor(uint32_t v, int lane_mask, PA_SITE_DEFAULTS) {
    return emu::shfl(v, lane_mask, emu::ShflMode::Xor, {pa_site_file, pa_site_line});
}
inline float shfl_xor(float v, int lane_mask, PA_SITE_DEFAULTS) {
    return emu::bits_f32(emu::shfl(emu::f32_bits(v), lane_mask, emu::ShflMode::Xor,
                                   {pa_site_file, pa_site_line}));
}
inline uint32_t shfl_idx(uint32_t v, int src_lane, PA_SITE_DEFAULTS) {
    return emu::shfl(v, src_lane, emu::ShflMode::Idx, {pa_site_file, pa_site_line});
}
inline float shfl_idx(float v, int src_lane, PA_SITE_DEFAULTS) {
    return emu::bits_f32(emu::shfl(emu::f32_bits(v), src_lane, emu::ShflMode::Idx,
                                   {pa_site_file, pa_site_line}));
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 ----
inline void ldmatrix_x1(uint32_t &r0, const void *smem, PA_SITE_DEFAULTS) {
    emu::ldmatrix(&r0, 1, false, smem, {pa_site_file, pa_site_line});
}
inline void ldmatrix_x2(uint32_t &r0, uint32_t &r1, const void *smem, PA_SITE_DEFAULTS) {
    uint32_t *r[2] = {&r0, &r1};
    emu::ldmatrix_into(r, 2, false, smem, {pa_site_file, pa_site_line});
}
inline void ldmatrix_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *smem,
                        PA_SITE_DEFAULTS) {
    uint32_t *r[4] = {&r0, &r1, &r2, &r3};
    emu::ldmatrix_into(r, 4, false, smem, {pa_site_file, pa_site_line});
}
inline void ldmatrix_x1_trans(uint32_t &r0, const void *smem, PA_SITE_DEFAULTS) {
    emu::ldmatrix(&r0, 1, true, smem, {pa_site_file, pa_site_line});
}
inline void ldmatrix_x2_trans(uint32_t &r0, uint32_t &r1, const void *smem, PA_SITE_DEFAULTS) {
    uint32_t *r[2] = {&r0, &r1};
    emu::ldmatrix_into(r, 2, true, smem, {pa_site_file, pa_site_line});
}
inline void ldmatrix_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                              const void *smem, PA_SITE_DEFAULTS) {
    uint32_t *r[4] = {&r0, &r1, &r2, &r3};
    emu::ldmatrix_into(r, 4, true, smem, {pa_site_file, pa_site_line});
}

// ---- mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 (d may alias c) ----
inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                              const float c[4], PA_SITE_DEFAULTS) {
    emu::mma(emu::MmaKind::Bf16, d, a, b, c, {pa_site_file, pa_site_line});
}
inline void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                             const float c[4], PA_SITE_DEFAULTS) {
    emu::mma(emu::MmaKind::F16, d, a, b, c, {pa_site_file, pa_site_line});
}

// ---- cp.async: lands at its issue or at the wait_group that completes its group (per schedule) ----
inline void cp_async_16(void *smem_dst, const void *gmem_src, PA_SITE_DEFAULTS) {
    emu::cp_async(smem_dst, gmem_src, true, 16, {pa_site_file, pa_site_line});
}
inline void cp_async_16_zfill(void *smem_dst, const void *gmem_src, bool valid,
                              PA_SITE_DEFAULTS) {
    emu::cp_async(smem_dst, gmem_src, valid, 16, {pa_site_file, pa_site_line});
}
inline void cp_async_4_zfill(void *smem_dst, const void *gmem_src, bool valid, PA_SITE_DEFAULTS) {
    emu::cp_async(smem_dst, gmem_src, valid, 4, {pa_site_file, pa_site_line});
}
inline void cp_async_commit() { emu::cp_async_commit(); }
template <int N>
inline void cp_async_wait(PA_SITE_DEFAULTS) {
    static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
    emu::cp_async_wait(N, {pa_site_file, pa_site_line});
}

// ---- memory and math ----
// One emulated thread runs at a time, so a plain add is atomic; the order of adds follows the
// schedule (as on a GPU, float atomics make sums order-dependent).
inline void atomic_add_f32(float *addr, float v) { *addr += v; }
// ex2.approx.ftz.f32 / lg2.approx.ftz.f32 on the device, specified only within a maximum error;
// here the launch's model of them (PA_EMU_APPROX_* in pa_emu.h, csrc/emu/approx.cpp): correctly
// rounded, or moved within the documented error, with subnormal inputs and results flushed.
namespace emu {
float exp2_approx(float x);
float log2_approx(float x);
}  // namespace emu
inline float exp2_fast(float x) { return emu::exp2_approx(x); }
inline float log2_fast(float x) { return emu::log2_approx(x); }
// A product rounded on its own. g++ may contract `a * b + c` into an FMA where the target has
// one, as nvcc does; the volatile keeps this product a separate rounding on every host target.
inline float mul_rn(float a, float b) {
    volatile float p = a * b;
    return p;
}

// ---- bit views ----
// Only an optimisation barrier on the device (a mov the compiler cannot see through).
inline uint32_t opaque_u32(uint32_t x) { return x; }
inline uint32_t f32_as_u32(float x) { return emu::f32_bits(x); }
inline float u32_as_f32(uint32_t x) { return emu::bits_f32(x); }

// ---- 16-bit conversions: round to nearest even, NaN -> canonical NaN 0x7fff, as cvt.rn ----
inline float to_float(bf16 x) { return emu::bits_f32(static_cast<uint32_t>(x.bits) << 16); }

inline float to_float(f16 x) {
    const uint32_t h = x.bits;
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        // zero or subnormal: man * 2^-24, exact in f32
        const float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
        return emu::bits_f32(emu::f32_bits(mag) | sign);
    }
    if (exp == 31) return emu::bits_f32(sign | 0x7f800000u | (man << 13));
    return emu::bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

inline bf16 to_bf16(float f) {
    const uint32_t u = emu::f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{0x7fff};
    const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return bf16{static_cast<uint16_t>((u + rounding) >> 16)};
}

inline f16 to_f16(float f) {
    const uint32_t u = emu::f32_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return f16{0x7fff};
    if (a >= 0x477ff000u) return f16{static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520: inf
    if (a >= 0x38800000u) {  // normal f16: rebias the exponent, round 13 mantissa bits away
        uint32_t r = a - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return f16{static_cast<uint16_t>(sign | (r >> 13))};
    }
    const int e = static_cast<int>(a >> 23);
    if (e < 102) return f16{static_cast<uint16_t>(sign)};  // below 2^-25: rounds to zero
    // subnormal f16: the value in units of 2^-24 is m >> shift, rounded to nearest even
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - e;  // 14..24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return f16{static_cast<uint16_t>(sign | q)};
}

inline uint32_t pack_bf16x2(float lo, float hi) {
    return static_cast<uint32_t>(to_bf16(lo).bits) | (static_cast<uint32_t>(to_bf16(hi).bits) << 16);
}
inline uint32_t pack_f16x2(float lo, float hi) {
    return static_cast<uint32_t>(to_f16(lo).bits) | (static_cast<uint32_t>(to_f16(hi).bits) << 16);
}

}  // namespace pa
