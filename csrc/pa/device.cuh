// Device path of the intrinsics layer: compiled by nvcc only. Every name here follows
// /work/helper-notes/intrinsics-contract.md (the host path in host.cuh mirrors it).
#pragma once

#include <stdint.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// A kernel takes exactly one parameter struct from pa_params.h by value, named `p`.
#define PA_KERNEL(name, Params) extern "C" __global__ void name(const Params p)
#define PA_KERNEL_BOUNDS(name, Params, max_threads, min_blocks) \
    extern "C" __global__ void __launch_bounds__(max_threads, min_blocks) name(const Params p)
#define PA_DEVICE __device__ __forceinline__
#define PA_UNROLL _Pragma("unroll")

namespace pa {

__device__ __forceinline__ uint32_t thread_idx_x() { return threadIdx.x; }
__device__ __forceinline__ uint32_t block_idx_x() { return blockIdx.x; }
__device__ __forceinline__ uint32_t block_idx_y() { return blockIdx.y; }
__device__ __forceinline__ uint32_t block_idx_z() { return blockIdx.z; }
__device__ __forceinline__ uint32_t block_dim_x() { return blockDim.x; }
__device__ __forceinline__ uint32_t grid_dim_x() { return gridDim.x; }
__device__ __forceinline__ uint32_t grid_dim_y() { return gridDim.y; }
__device__ __forceinline__ uint32_t grid_dim_z() { return gridDim.z; }
__device__ __forceinline__ uint32_t lane_id() { return threadIdx.x & 31u; }
__device__ __forceinline__ uint32_t warp_id() { return threadIdx.x >> 5; }

__device__ __forceinline__ void sync_threads() { __syncthreads(); }

template <typename T>
__device__ __forceinline__ T* dyn_smem() {
    extern __shared__ __align__(16) unsigned char pa_dyn_smem_bytes[];
    return reinterpret_cast<T*>(pa_dyn_smem_bytes);
}

// ---- warp collectives ----
__device__ __forceinline__ float shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ uint32_t shfl_xor(uint32_t v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ float shfl_idx(float v, int s) { return __shfl_sync(0xffffffffu, v, s); }
__device__ __forceinline__ uint32_t shfl_idx(uint32_t v, int s) { return __shfl_sync(0xffffffffu, v, s); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t& r0, const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_addr(s)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t& r0, uint32_t& r1, const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1) : "r"(smem_addr(s)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                            const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(s)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t& r0, const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_addr(s)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t& r0, uint32_t& r1, const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1) : "r"(smem_addr(s)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                                  const void* s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(s)));
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

// ---- async copies ----
__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_16_zfill(void* dst, const void* src, bool valid) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- memory / math ----
__device__ __forceinline__ void atomic_add_f32(float* addr, float v) { atomicAdd(addr, v); }
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// ---- 16-bit types ----
using bf16 = __nv_bfloat16;
using f16 = __half;
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(f16 x) { return __half2float(x); }
__device__ __forceinline__ bf16 to_bf16(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ f16 to_f16(float x) { return __float2half_rn(x); }
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<bf16>(float lo, float hi) { return pack_bf16x2(lo, hi); }
template <>
__device__ __forceinline__ uint32_t pack2<f16>(float lo, float hi) { return pack_f16x2(lo, hi); }

template <typename T>
struct MmaOp;
template <>
struct MmaOp<bf16> {
    __device__ __forceinline__ static void run(float d[4], const uint32_t a[4], const uint32_t b[2],
                                               const float c[4]) {
        mma_m16n8k16_bf16(d, a, b, c);
    }
};
template <>
struct MmaOp<f16> {
    __device__ __forceinline__ static void run(float d[4], const uint32_t a[4], const uint32_t b[2],
                                               const float c[4]) {
        mma_m16n8k16_f16(d, a, b, c);
    }
};

}  // namespace pa
