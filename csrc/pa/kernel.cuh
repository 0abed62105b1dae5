// Entry point of the intrinsics layer for kernel sources. A kernel source includes this header
// and nothing else from CUDA: every hardware feature it uses is reached through `pa::` functions
// declared here, each with a device path (nvcc, device.cuh) and a host path (the SIMT emulator,
// host.cuh, compiled by g++ and run by csrc/emu/). Both paths define exactly the same names.
//
// The contract (docs/testing-without-gpu.md has the long form):
//   PA_DEVICE, PA_UNROLL; kernels are structs deriving pa::KernelSpec (entry.cuh), listed in
//   csrc/registry.cuh, and defined per path by PA_DEFINE_KERNEL
//   pa::thread_idx_x/_y/_z, block_idx_x/_y/_z, block_dim_x/_y/_z, grid_dim_x/_y/_z,
//   thread_linear, lane_id, warp_id, dyn_smem<T>(), sync_threads(), trap()
//   shfl_xor, shfl_idx (float, uint32_t), ldmatrix_x1/_x2/_x4[_trans],
//   mma_m16n8k16_bf16 / _f16, MmaOp<T>::run
//   cp_async_16, cp_async_16_zfill, cp_async_4_zfill, cp_async_commit, cp_async_wait<N>
//   atomic_add_f32, exp2_fast, log2_fast (lg2.approx, the inverse of exp2_fast), mul_rn (a
//   product rounded on its own: nvcc never fuses it into an FMA)
//   bf16, f16, u32x4 (16-byte vector), to_float, to_bf16, to_f16, pack_bf16x2, pack_f16x2,
//   pack2<T>, from_float<T>, f32_as_u32 / u32_as_f32 (bit casts), opaque_u32 (an optimisation barrier)
//   pa::min / pa::max (constexpr), PA_SITE_PARAM / PA_SITE_ARG (forward a caller's call site,
//   see host.cuh)
// The tile layer (csrc/tile/) is written on these.
// Hopper (sm_90a), namespace pa::sm90 (sm90.cuh has the layouts and rules):
//   Mbarrier {init, arrive, arrive_expect_tx, expect_tx, try_wait, wait, inval},
//   fence_mbarrier_init, fence_proxy_async_smem, named_barrier_sync / _arrive,
//   tma_load_1d.._5d, tma_prefetch_map, smem_addr, smem_align_up<A>, Swizzle, Major,
//   make_smem_desc, WgAcc<N>, WgFragA, wgmma_ss<N, T, MajorA, MajorB>, wgmma_rs<N, T, MajorB>,
//   wgmma_fence, wgmma_commit, wgmma_wait<n>, fence_operands, acc_row / acc_col,
//   frag_a_row / frag_a_col, frag_a_from_acc<T>, setmaxnreg_inc<R> / _dec<R>.
#pragma once

#include "../pa_params.h"
#include "../pa_test_params.h"

#if defined(__CUDACC__)
#include "device.cuh"
#else
#include "host.cuh"
#endif

#include "common.cuh"
#if defined(__CUDACC__)
#include "device_sm90.cuh"
#else
#include "host_sm90.cuh"
#endif

#include "sm90.cuh"
#include "entry.cuh"
