// Device path of the intrinsics layer: compiled by nvcc only (sm_80 and newer). Every function is
// one instruction or a few; the PTX spelled here is what the host path (host.cuh + csrc/emu/)
// emulates, section by section of the PTX ISA.
#pragma once

#include <stdint.h>

#include "types.cuh"

#define PA_DEVICE __device__ __forceinline__
#define PA_UNROLL _Pragma("unroll")

// Call-site forwarding for helpers that wrap a collective (see host.cuh): nothing on the device.
#define PA_SITE_PARAM
#define PA_SITE_ARG

// A kernel takes exactly one parameter struct from pa_params.h by value, named `p`. It is a
// __grid_constant__ parameter, so `&p.field` is an address in parameter space rather than in a
// local copy: TMA needs that for the tensor maps it receives (pa_tma.h).
#define PA_KERNEL(name, Params) extern "C" __global__ void name(const __grid_constant__ Params p)
#define PA_KERNEL_BOUNDS(name, Params, max_threads, min_blocks)                        \
    extern "C" __global__ void __launch_bounds__(max_threads, min_blocks) name(        \
        const __grid_constant__ Params p)

namespace pa {

// ---- indices ----
PA_DEVICE uint32_t thread_idx_x() { return threadIdx.x; }
PA_DEVICE uint32_t thread_idx_y() { return threadIdx.y; }
PA_DEVICE uint32_t thread_idx_z() { return threadIdx.z; }
PA_DEVICE uint32_t block_idx_x() { return blockIdx.x; }
PA_DEVICE uint32_t block_idx_y() { return blockIdx.y; }
PA_DEVICE uint32_t block_idx_z() { return blockIdx.z; }
PA_DEVICE uint32_t block_dim_x() { return blockDim.x; }
PA_DEVICE uint32_t block_dim_y() { return blockDim.y; }
PA_DEVICE uint32_t block_dim_z() { return blockDim.z; }
PA_DEVICE uint32_t grid_dim_x() { return gridDim.x; }
PA_DEVICE uint32_t grid_dim_y() { return gridDim.y; }
PA_DEVICE uint32_t grid_dim_z() { return gridDim.z; }
// Linear thread index within the CTA (x fastest), the order in which threads form warps.
PA_DEVICE uint32_t thread_linear() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
PA_DEVICE uint32_t lane_id() { return thread_linear() & 31u; }
PA_DEVICE uint32_t warp_id() { return thread_linear() >> 5; }

// ---- shared memory and barrier ----
// The CTA's dynamic shared memory (size given at launch), 128-byte aligned.
template <typename T>
PA_DEVICE T* dyn_smem() {
    extern __shared__ __align__(128) unsigned char pa_dyn_smem_bytes[];
    return reinterpret_cast<T*>(pa_dyn_smem_bytes);
}

PA_DEVICE void sync_threads() { __syncthreads(); }

// ---- warp shuffles (full mask, width 32) ----
PA_DEVICE float shfl_xor(float v, int lane_mask) { return __shfl_xor_sync(0xffffffffu, v, lane_mask); }
PA_DEVICE uint32_t shfl_xor(uint32_t v, int lane_mask) {
    return __shfl_xor_sync(0xffffffffu, v, lane_mask);
}
PA_DEVICE float shfl_idx(float v, int src_lane) { return __shfl_sync(0xffffffffu, v, src_lane); }
PA_DEVICE uint32_t shfl_idx(uint32_t v, int src_lane) {
    return __shfl_sync(0xffffffffu, v, src_lane);
}

// ---- ldmatrix (PTX ISA: "Warp-level matrix load instruction: ldmatrix") ----
PA_DEVICE uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

PA_DEVICE void ldmatrix_x1(uint32_t& r0, const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(r0)
                 : "r"(smem_u32(smem)));
}
PA_DEVICE void ldmatrix_x2(uint32_t& r0, uint32_t& r1, const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(smem)));
}
PA_DEVICE void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                           const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(smem)));
}
PA_DEVICE void ldmatrix_x1_trans(uint32_t& r0, const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r0)
                 : "r"(smem_u32(smem)));
}
PA_DEVICE void ldmatrix_x2_trans(uint32_t& r0, uint32_t& r1, const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(smem)));
}
PA_DEVICE void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                 const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(smem)));
}

// ---- mma.sync m16n8k16, f32 accumulation (PTX ISA: "Matrix Fragments for mma.m16n8k16 with
// floating point type"); d may alias c. ----
PA_DEVICE void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                 const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}
PA_DEVICE void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

// ---- cp.async (PTX ISA: "Data Movement and Conversion Instructions: cp.async") ----
PA_DEVICE void cp_async_16(void* smem_dst, const void* gmem_src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem_dst)),
                 "l"(gmem_src)
                 : "memory");
}
// valid = false: src-size 0, so nothing is read and the 16 destination bytes are zeroed.
PA_DEVICE void cp_async_16_zfill(void* smem_dst, const void* gmem_src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem_dst)),
                 "l"(gmem_src), "r"(valid ? 16 : 0)
                 : "memory");
}
PA_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
PA_DEVICE void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- memory and math ----
PA_DEVICE void atomic_add_f32(float* addr, float v) { atomicAdd(addr, v); }
// ex2.approx.ftz.f32: about 2 ulp, subnormal inputs and results flushed to zero.
PA_DEVICE float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// lg2.approx.ftz.f32: absolute error about 2^-22 near 1, relative about 2^-22 elsewhere;
// subnormal inputs flushed to zero.
PA_DEVICE float log2_fast(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// ---- bit views ----
PA_DEVICE uint32_t f32_as_u32(float x) { return __float_as_uint(x); }
PA_DEVICE float u32_as_f32(uint32_t x) { return __uint_as_float(x); }

// ---- 16-bit conversions (round to nearest even; NaN becomes the canonical NaN) ----
PA_DEVICE float to_float(bf16 x) { return __uint_as_float(static_cast<uint32_t>(x.bits) << 16); }
PA_DEVICE float to_float(f16 x) {
    float f;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(f) : "h"(x.bits));
    return f;
}
PA_DEVICE bf16 to_bf16(float f) {
    uint16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(f));
    return bf16{r};
}
PA_DEVICE f16 to_f16(float f) {
    uint16_t r;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(r) : "f"(f));
    return f16{r};
}
// cvt.rn.{bf16x2,f16x2}.f32 d, a, b puts a in the upper half: pass hi first.
PA_DEVICE uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
PA_DEVICE uint32_t pack_f16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

}  // namespace pa
