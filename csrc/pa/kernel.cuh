// Entry point of the intrinsics layer for kernel sources. A kernel source includes this header
// and nothing else from CUDA: every hardware feature it uses is reached through `pa::` functions
// declared here, each with a device path (nvcc, __CUDA_ARCH__) and a host path (the emulator).
#pragma once

#include "../pa_params.h"

#if defined(__CUDACC__)
#include "device.cuh"
#else
#include "host.cuh"
#endif
