// Entry point of the intrinsics layer for kernel sources. A kernel source includes this header
// and nothing else from CUDA: every hardware feature it uses is reached through `pa::` functions
// declared here, each with a device path (nvcc, device.cuh) and a host path (the SIMT emulator,
// host.cuh, compiled by g++ and run by csrc/emu/). Both paths define exactly the same names.
//
// The contract (docs/testing-without-gpu.md has the long form):
//   PA_KERNEL(name, Params) / PA_KERNEL_BOUNDS(name, Params, max_threads, min_blocks)
//   PA_DEVICE, PA_UNROLL
//   pa::thread_idx_x/_y/_z, block_idx_x/_y/_z, block_dim_x/_y/_z, grid_dim_x/_y/_z,
//   lane_id, warp_id, dyn_smem<T>(), sync_threads()
//   shfl_xor, shfl_idx (float, uint32_t), ldmatrix_x1/_x2/_x4[_trans],
//   mma_m16n8k16_bf16 / _f16, MmaOp<T>::run
//   cp_async_16, cp_async_16_zfill, cp_async_commit, cp_async_wait<N>
//   atomic_add_f32, exp2_fast
//   bf16, f16, to_float, to_bf16, to_f16, pack_bf16x2, pack_f16x2, pack2<T>
// Additions beyond the original contract (usable by kernels on both paths):
//   thread_idx_y/_z, block_dim_y/_z (3-D blocks), pa::u32x4 (16-byte vector, 16-byte aligned),
//   pa::min / pa::max (constexpr), f32_as_u32 / u32_as_f32 (bit casts), thread_linear,
//   from_float<T>, PA_SITE_PARAM / PA_SITE_ARG (forward a caller's call site, see host.cuh),
//   log2_fast (lg2.approx, the inverse of exp2_fast; for log-sum-exp).
// Hopper (sm_90 / sm_90a), namespace pa::sm90 (sm90.cuh has the layouts and rules):
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
