/* The SIMT emulator's C ABI: how Rust launches a kernel's host build (csrc/emu/ runs it on the
 * CPU). src/ffi/emu.rs is generated from this file by bindgen and committed, like
 * src/ffi/params.rs; the drift test (`cargo test --features regen-bindings`) fails when they
 * disagree.
 *
 * Every kernel of csrc/kernels/ is declared here with PA_EMU_DECLARE(name, Params): its host
 * build (emitted by PA_KERNEL in csrc/pa/host.cuh) is the C function `name_emu`. build.rs fails
 * when a kernel has no declaration, so `cargo test` can reach every kernel entry point.
 */
#ifndef PA_EMU_H
#define PA_EMU_H

#include <stdint.h>

#include "pa_params.h"
#include "pa_test_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Orders in which the emulator runs the threads of a CTA between two sync points (and the CTAs
 * of the grid). A kernel whose output depends on the order has a race. */
#define PA_EMU_SCHEDULE_ASCENDING 0
#define PA_EMU_SCHEDULE_DESCENDING 1
#define PA_EMU_SCHEDULE_RANDOM 2

/* Return codes of a `name_emu` entry. */
#define PA_EMU_OK 0
#define PA_EMU_KERNEL_ERROR 1 /* the kernel broke a rule (divergence, barrier, address, ...) */
#define PA_EMU_LAUNCH_ERROR 2 /* the launch itself is invalid (dims, shared memory size) */

/* Bytes of PaEmuReport::detail, including the terminating NUL. */
#define PA_EMU_DETAIL_BYTES 1024

/* One launch on the emulator: the same grid, block and dynamic shared memory as on the GPU,
 * plus the schedule. */
typedef struct PaEmuLaunch {
    uint32_t grid[3];
    uint32_t block[3];
    uint32_t smem_bytes;
    /* PA_EMU_SCHEDULE_* */
    uint32_t schedule;
    /* Seed of PA_EMU_SCHEDULE_RANDOM (ignored by the others). */
    uint64_t seed;
    /* Stack of each emulated thread in bytes; 0 picks the default (256 KiB). */
    uint32_t stack_bytes;
    uint32_t _pad0;
} PaEmuLaunch;

/* What the emulator saw: the error (when the return code is not PA_EMU_OK) and counters. */
typedef struct PaEmuReport {
    /* NUL-terminated description of the first error, empty on success. */
    char detail[PA_EMU_DETAIL_BYTES];
    uint64_t ctas;
    uint64_t barriers;
    uint64_t collectives;
    uint64_t fiber_switches;
} PaEmuReport;

#define PA_EMU_DECLARE(name, Params) \
    int name##_emu(const PaEmuLaunch *launch, const Params *params, PaEmuReport *report);

/* ---- library kernels (csrc/pa_params.h) ---- */
PA_EMU_DECLARE(pa_fill_u32, PaFillParams)
PA_EMU_DECLARE(pa_attn_fwd_bf16_d64, PaAttnFwdParams)
PA_EMU_DECLARE(pa_attn_fwd_bf16_d128, PaAttnFwdParams)
PA_EMU_DECLARE(pa_attn_fwd_f16_d64, PaAttnFwdParams)
PA_EMU_DECLARE(pa_attn_fwd_f16_d128, PaAttnFwdParams)
PA_EMU_DECLARE(pa_logprob_gather_bf16, PaLogProbGatherParams)
PA_EMU_DECLARE(pa_logprob_gather_f16, PaLogProbGatherParams)
PA_EMU_DECLARE(pa_logprob_gather_f32, PaLogProbGatherParams)
PA_EMU_DECLARE(pa_segment_sum_f32, PaSegmentSumParams)

/* ---- test and probe kernels (csrc/pa_test_params.h) ---- */
PA_EMU_DECLARE(emu_gemm_tile, PaEmuGemmTileParams)
PA_EMU_DECLARE(emu_planted, PaEmuPlantedParams)
PA_EMU_DECLARE(probe_shfl, PaProbeShflParams)
PA_EMU_DECLARE(probe_ldmatrix, PaProbeLdmatrixParams)
PA_EMU_DECLARE(probe_mma, PaProbeMmaParams)
PA_EMU_DECLARE(probe_cp_async, PaProbeCpAsyncParams)
PA_EMU_DECLARE(probe_convert, PaProbeConvertParams)
PA_EMU_DECLARE(probe_sm90_sync, PaProbeSm90SyncParams)
PA_EMU_DECLARE(probe_sm90_tma, PaProbeSm90TmaParams)
PA_EMU_DECLARE(probe_sm90_wgmma, PaProbeSm90WgmmaParams)
PA_EMU_DECLARE(probe_sm90_pipeline, PaProbeSm90PipelineParams)
PA_EMU_DECLARE(emu_planted_sm90, PaEmuPlantedSm90Params)

#ifdef __cplusplus
}
#endif

#endif /* PA_EMU_H */
