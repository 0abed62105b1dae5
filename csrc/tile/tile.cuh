// The tile layer: register and shared-memory tiles of 16-bit operands and fp32 accumulators, and
// the warp-level products and reductions attention kernels are written in. Layouts are defined
// once, in geometry.cuh.
#pragma once

#include "geometry.cuh"
#include "mma.cuh"
#include "reg.cuh"
#include "rows.cuh"
#include "smem.cuh"
#include "store.cuh"
