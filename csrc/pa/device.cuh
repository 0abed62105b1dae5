// Device path of the intrinsics layer: compiled by nvcc only.
#pragma once

#include <stdint.h>

// A kernel takes exactly one parameter struct from pa_params.h by value, named `p`.
#define PA_KERNEL(name, Params) extern "C" __global__ void name(const Params p)

namespace pa {

__device__ __forceinline__ uint32_t thread_idx_x() { return threadIdx.x; }
__device__ __forceinline__ uint32_t block_idx_x() { return blockIdx.x; }
__device__ __forceinline__ uint32_t block_idx_y() { return blockIdx.y; }
__device__ __forceinline__ uint32_t block_idx_z() { return blockIdx.z; }
__device__ __forceinline__ uint32_t block_dim_x() { return blockDim.x; }
__device__ __forceinline__ uint32_t grid_dim_x() { return gridDim.x; }

}  // namespace pa
