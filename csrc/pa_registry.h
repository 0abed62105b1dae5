/* The kernel registry as the host library exports it: one PaKernelInfo per kernel, generated from
 * the kernel lists (csrc/registry.cuh, shipped; csrc/test_registry.cuh, test-only), so Rust takes every kernel's name,
 * launch shape, shared memory and emulator entry from here and never spells them itself.
 * Mirrored in Rust by src/ffi/registry.rs (tools/regen-bindings), like the other headers.
 */
#ifndef PA_REGISTRY_H
#define PA_REGISTRY_H

#include <stdint.h>

#include "pa_emu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types a kernel is instantiated for (PaKernelInfo::dtype). */
#define PA_DTYPE_NONE 0
#define PA_DTYPE_BF16 1
#define PA_DTYPE_F16 2
#define PA_DTYPE_F32 3

/* Code paths (PaKernelInfo::arch): what a device must be to run the kernel's SASS. */
#define PA_ARCH_SM80 80   /* mma.sync, cp.async, ldmatrix: every card from sm_80 on */
#define PA_ARCH_SM90A 90  /* wgmma, TMA, setmaxnreg: compute capability 9.0 exactly (sm_90a) */

/* The host build of a kernel: runs a whole grid on the emulator. `params` points at the kernel's
 * parameter struct (PaKernelInfo::params names its type). Returns PA_EMU_OK or an error code with
 * `report->detail` filled. */
typedef int (*PaEmuEntry)(const PaEmuLaunch *launch, const void *params, PaEmuReport *report);

typedef struct PaKernelInfo {
    /* exported symbol of the fatbin */
    const char *name;
    /* kernels of one family share a parameter struct and a launch preparation, e.g. "attn_fwd" */
    const char *family;
    /* name of the parameter struct (csrc/pa_params.h, csrc/pa_test_params.h) and its size */
    const char *params;
    uint32_t params_bytes;
    /* PA_ARCH_* */
    uint32_t arch;
    /* block size the kernel is written for (attention kernels: exactly this; others: at most) */
    uint32_t threads;
    /* __launch_bounds__ minimum CTAs per SM */
    uint32_t min_blocks;
    /* dynamic shared memory per CTA in bytes (0: the launch decides, e.g. probes) */
    uint32_t smem_bytes;
    /* tile configuration, 0 where it does not apply */
    uint32_t dtype; /* PA_DTYPE_* */
    uint32_t head_dim;
    uint32_t block_q;
    uint32_t block_k;
    uint32_t warps;
    uint32_t stages;
    uint32_t _pad0;
    PaEmuEntry emu;
} PaKernelInfo;

/* Every registered kernel of the shipped fatbin (csrc/registry.cuh), in registry order; *count
 * receives how many. */
const PaKernelInfo *pa_kernel_registry(uint32_t *count);

/* The test-only kernels (csrc/test_registry.cuh: probes, planted bugs), in list order: in the
 * emulator and the test fatbin, never in the shipped one. */
const PaKernelInfo *pa_test_kernel_registry(uint32_t *count);

#ifdef __cplusplus
}
#endif

#endif /* PA_REGISTRY_H */
