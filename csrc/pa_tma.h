/* Tensor maps for TMA tiled loads (cp.async.bulk.tensor), shared by the device build, the SIMT
 * emulator and Rust (src/ffi/tma.rs is generated from this file by tools/regen-bindings).
 *
 * A kernel receives a PaTensorMap by value inside its parameter struct (a __grid_constant__
 * parameter on the device, see PA_KERNEL in csrc/pa/device.cuh) and passes its address to
 * pa::sm90::tma_load_*d. The 128 bytes hold one of two encodings, written on the host by
 * prefix_attn::sm90::TensorMapDesc:
 *   - for the GPU: NVIDIA's opaque CUtensorMap, filled by cuTensorMapEncodeTiled (the layout is
 *     undocumented; only the hardware reads it);
 *   - for the emulator: PaTensorMapEmu below, our own fields, read by csrc/emu/tma.cpp.
 * The emulator refuses a map without PA_TMA_EMU_MAGIC, so a device-encoded map handed to the
 * emulator (or garbage) is an error, not a silent misread.
 */
#ifndef PA_TMA_H
#define PA_TMA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest tensor rank of cp.async.bulk.tensor (.1d .. .5d) and cuTensorMapEncodeTiled. */
#define PA_TMA_MAX_RANK 5
/* Largest box extent per dimension (cuTensorMapEncodeTiled: boxDim[i] <= 256). */
#define PA_TMA_MAX_BOX 256
/* First word of an emulator-encoded map ("PAT1" read as a little-endian u32). */
#define PA_TMA_EMU_MAGIC 0x31544150u

/* Element types, numbered as CUtensorMapDataType (CUDA driver API) for the ones supported. */
#define PA_TMA_DTYPE_U8 0
#define PA_TMA_DTYPE_U16 1
#define PA_TMA_DTYPE_U32 2
#define PA_TMA_DTYPE_I32 3
#define PA_TMA_DTYPE_U64 4
#define PA_TMA_DTYPE_I64 5
#define PA_TMA_DTYPE_F16 6
#define PA_TMA_DTYPE_F32 7
#define PA_TMA_DTYPE_F64 8
#define PA_TMA_DTYPE_BF16 9

/* Shared-memory swizzle of the box, numbered as CUtensorMapSwizzle. */
#define PA_TMA_SWIZZLE_NONE 0
#define PA_TMA_SWIZZLE_32B 1
#define PA_TMA_SWIZZLE_64B 2
#define PA_TMA_SWIZZLE_128B 3

/* The 128 bytes a kernel receives: 64-byte aligned, as cp.async.bulk.tensor requires of the
 * tensor-map operand. Opaque to kernels. */
typedef struct __attribute__((aligned(64))) PaTensorMap {
    uint64_t opaque[16];
} PaTensorMap;

/* The emulator's encoding of a tiled tensor map, stored in PaTensorMap's 128 bytes. Dimension 0
 * is the innermost (contiguous) one. Interleave is always none, elementStrides are all 1 and
 * out-of-bounds elements are filled with zeros (CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE): the only
 * configuration TensorMapDesc encodes, for the device as for the emulator. */
typedef struct PaTensorMapEmu {
    uint32_t magic;      /* PA_TMA_EMU_MAGIC */
    uint32_t dtype;      /* PA_TMA_DTYPE_* */
    uint32_t elem_bytes; /* 1, 2, 4 or 8 */
    uint32_t rank;       /* 1 ..= PA_TMA_MAX_RANK */
    uint32_t swizzle;    /* PA_TMA_SWIZZLE_* */
    uint32_t box_dim[PA_TMA_MAX_RANK];  /* elements per box dimension (unused ones: 1) */
    uint64_t global_address;            /* address of element (0, ..., 0) */
    uint64_t global_dim[PA_TMA_MAX_RANK];    /* elements per dimension (unused ones: 1) */
    uint64_t global_stride[PA_TMA_MAX_RANK]; /* bytes between neighbours in each dimension;
                                                [0] = elem_bytes */
} PaTensorMapEmu;

#ifdef __cplusplus
}
#endif

#endif /* PA_TMA_H */
