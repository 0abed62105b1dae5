// The test-only kernel list: probes of the intrinsics layer and the emulator, the sample tile
// kernel and the planted-bug kernels (csrc/test_kernels/, parameters in csrc/pa_test_params.h),
// one line per kernel, X(exported name, kernel struct), as in csrc/registry.cuh. They exist for the
// tests alone, so they are never in the fatbin users ship: csrc/test_kernels.cu expands this list
// into the emulator (host build, the registry table `pa_test_kernel_registry`) and, where nvcc is
// found, into a separate test fatbin that only the crate's GPU tests load (build.rs,
// `PA_TEST_FATBIN`; tests/gpu/emu_fidelity.rs).
#pragma once

#include "test_kernels/emu_gemm_tile.cuh"
#include "test_kernels/emu_planted.cuh"
#include "test_kernels/emu_planted_sm90.cuh"
#include "test_kernels/probe_convert.cuh"
#include "test_kernels/probe_cp_async.cuh"
#include "test_kernels/probe_ldmatrix.cuh"
#include "test_kernels/probe_log2.cuh"
#include "test_kernels/probe_mma.cuh"
#include "test_kernels/probe_shfl.cuh"
#include "test_kernels/probe_sm90_pipeline.cuh"
#include "test_kernels/probe_sm90_sync.cuh"
#include "test_kernels/probe_sm90_tma.cuh"
#include "test_kernels/probe_sm90_wgmma.cuh"
#include "test_kernels/probe_tile.cuh"

#define PA_TEST_KERNEL_LIST(X)                                              \
    X(emu_gemm_tile, pa::kernels::EmuGemmTile)                              \
    X(emu_planted, pa::kernels::EmuPlanted)                                 \
    X(probe_shfl, pa::kernels::ProbeShfl)                                   \
    X(probe_ldmatrix, pa::kernels::ProbeLdmatrix)                           \
    X(probe_mma, pa::kernels::ProbeMma)                                     \
    X(probe_cp_async, pa::kernels::ProbeCpAsync)                            \
    X(probe_convert, pa::kernels::ProbeConvert)                             \
    X(probe_log2, pa::kernels::ProbeLog2)                                   \
    X(probe_tile_bf16, pa::kernels::ProbeTile<pa::bf16>)                    \
    X(probe_tile_f16, pa::kernels::ProbeTile<pa::f16>)                      \
    /* Hopper (sm_90a) probes and planted bugs */                           \
    X(probe_sm90_sync, pa::kernels::ProbeSm90Sync)                          \
    X(probe_sm90_tma, pa::kernels::ProbeSm90Tma)                            \
    X(probe_sm90_wgmma, pa::kernels::ProbeSm90Wgmma)                        \
    X(probe_sm90_pipeline, pa::kernels::ProbeSm90Pipeline)                  \
    X(emu_planted_sm90, pa::kernels::EmuPlantedSm90)
