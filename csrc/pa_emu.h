/* The SIMT emulator's C ABI: how Rust launches a kernel's host build (csrc/emu/ runs it on the
 * CPU). Each kernel's entry is reached through the registry (csrc/pa_registry.h), never declared
 * by name. src/ffi/emu.rs is generated from this file by bindgen (tools/regen-bindings) and
 * committed, like src/ffi/params.rs; CI runs the generator with --check.
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

/* How exp2_fast and log2_fast compute on the host (csrc/emu/approx.cpp). On the device they are
 * ex2.approx.ftz.f32 and lg2.approx.ftz.f32, which the PTX ISA specifies only within a maximum
 * error: ex2 within 2 ulp of the correctly rounded result; lg2 within 2^-22 absolute for inputs
 * in (0.5, 2) and 2^-22 relative elsewhere. EXACT returns the correctly rounded value; PERTURBED
 * moves it by a pseudo-random amount within that error, drawn from a hash of the seed and the
 * input's bits (so a value depends on neither the thread nor the schedule); WORST_UP and
 * WORST_DOWN move it by the whole error, up or down. Every mode flushes subnormal inputs and
 * results to zero, as .ftz does. */
#define PA_EMU_APPROX_EXACT 0
#define PA_EMU_APPROX_PERTURBED 1
#define PA_EMU_APPROX_WORST_UP 2
#define PA_EMU_APPROX_WORST_DOWN 3

/* Return codes of an emulator entry (PaEmuEntry, csrc/pa_registry.h). */
#define PA_EMU_OK 0
#define PA_EMU_KERNEL_ERROR 1 /* the kernel broke a rule (divergence, barrier, address, ...) */
#define PA_EMU_LAUNCH_ERROR 2 /* the launch itself is invalid (dims, shared memory size) */

/* Bytes of PaEmuReport::detail, including the terminating NUL. */
#define PA_EMU_DETAIL_BYTES 1024

/* One launch on the emulator: the same grid, block and dynamic shared memory as on the GPU,
 * plus the schedule and the model of the approximate instructions. */
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
    /* PA_EMU_APPROX_* */
    uint32_t approx;
    /* Seed of PA_EMU_APPROX_PERTURBED (ignored by the others). */
    uint64_t approx_seed;
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

#ifdef __cplusplus
}
#endif

#endif /* PA_EMU_H */
