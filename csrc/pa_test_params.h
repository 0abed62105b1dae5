/* Parameter structs of the test and probe kernels (csrc/kernels/emu_*.cu, probe_*.cu): kernels
 * that exist to test the SIMT emulator and the intrinsics layer, not part of the library's API.
 * Same rules as pa_params.h (C only, fixed-width integers, plain pointers). Mirrored in Rust by
 * src/ffi/emu.rs (generated from pa_emu.h, which includes this file).
 */
#ifndef PA_TEST_PARAMS_H
#define PA_TEST_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- emu_gemm_tile: the sample tensor-core tile kernel (128 threads, 16 KiB dynamic smem).
 * c = A * B for one 64x64x64 bf16 tile via cp.async, ldmatrix and mma; p = row softmax of
 * c * scale via warp shuffles and exp2_fast. */
typedef struct PaEmuGemmTileParams {
    const uint16_t *a; /* 64x64 bf16: [m][k] when a_kmajor == 0, [k][m] otherwise */
    const uint16_t *b; /* 64x64 bf16: [n][k] when b_kmajor == 0, [k][n] otherwise */
    float *c;          /* 64x64, [m][n] */
    float *p;          /* 64x64, [m][n], each row sums to 1 */
    float scale;
    uint32_t a_kmajor;
    uint32_t b_kmajor;
    uint32_t _pad0;
} PaEmuGemmTileParams;

/* ---- emu_planted: kernels with one deliberate bug each, to prove the nets catch them. ---- */
#define PA_EMU_PLANTED_CORRECT 0           /* smem exchange with its barrier: no bug */
#define PA_EMU_PLANTED_RACE 1              /* the same exchange without the barrier */
#define PA_EMU_PLANTED_OOB_WRITE 2         /* the last thread writes out[count] */
#define PA_EMU_PLANTED_DIVERGENT_SHFL 3    /* lanes 0-15 and 16-31 shuffle at different sites */
#define PA_EMU_PLANTED_EXIT_BEFORE_BARRIER 4 /* thread 5 returns before a barrier */
#define PA_EMU_PLANTED_SPLIT_BARRIER 5     /* even and odd warps wait at different barriers */
#define PA_EMU_PLANTED_LDMATRIX_OUTSIDE 6  /* one lane's row address lies past shared memory */
#define PA_EMU_PLANTED_READ_BEFORE_WAIT 7  /* reads cp.async data before cp.async.wait_group */
#define PA_EMU_PLANTED_SMEM_OVERRUN 8      /* writes one word past the dynamic shared memory */
#define PA_EMU_PLANTED_EARLY_OVERWRITE 9   /* cp.async refills a buffer the other warp still reads */
#define PA_EMU_PLANTED_MODES 10
/* Launch: one CTA of `count` threads (a multiple of 32), count * 4 bytes of dynamic smem. */
typedef struct PaEmuPlantedParams {
    const uint32_t *in; /* count words */
    uint32_t *out;      /* count words */
    int32_t count;
    int32_t mode;
} PaEmuPlantedParams;

/* ---- probe_shfl: every shuffle case per thread (any block of whole warps). ---- */
#define PA_PROBE_SHFL_CASES 16
typedef struct PaProbeShflParams {
    const uint32_t *values;   /* one per thread (global index) */
    const int32_t *src_lanes; /* one per thread: the source lane of shfl_idx, any int */
    uint32_t *out;            /* PA_PROBE_SHFL_CASES per thread */
} PaProbeShflParams;

/* ---- probe_ldmatrix: every ldmatrix form over one set of row addresses. ----
 * Launch: 64 threads, 1 CTA, PA_PROBE_LDMATRIX_ROWS * 16 bytes of dynamic smem. */
#define PA_PROBE_LDMATRIX_ROWS 128
#define PA_PROBE_LDMATRIX_REGS 14 /* x1, x2, x4, x1.trans, x2.trans, x4.trans */
typedef struct PaProbeLdmatrixParams {
    const uint16_t *rows;       /* PA_PROBE_LDMATRIX_ROWS rows of 8 b16, copied to smem */
    const int32_t *row_of_lane; /* per thread: the smem row whose address it supplies */
    uint32_t *out;              /* PA_PROBE_LDMATRIX_REGS per thread */
} PaProbeLdmatrixParams;

/* ---- probe_mma: one m16n8k16 per warp, fragments loaded from global by the PTX layout. ---- */
typedef struct PaProbeMmaParams {
    const uint16_t *a; /* tiles x [16][16] (m, k) */
    const uint16_t *b; /* tiles x [8][16] (n, k) */
    const float *c;    /* tiles x [16][8] (m, n) */
    float *d;          /* tiles x [16][8] (m, n) */
    uint32_t f16;      /* 0: bf16 inputs, 1: f16 inputs */
    uint32_t tiles;    /* warps in the grid; one tile each */
} PaProbeMmaParams;

/* ---- probe_cp_async: three commit groups per thread, completed one wait_group at a time. ----
 * Launch: 128 threads, 1 CTA, 3 * 128 * 16 bytes of dynamic smem. */
typedef struct PaProbeCpAsyncParams {
    const uint32_t *src;  /* 3 stages x 128 chunks x 4 words */
    const uint32_t *valid; /* 3 x 128 flags: 0 = zero-fill (src-size 0) */
    uint32_t *out;        /* 3 x 128 x 4 words: stage s chunk j as seen after its wait */
} PaProbeCpAsyncParams;

/* ---- probe_convert: conversions, packing, exp2_fast and float atomics, element-wise. ---- */
#define PA_PROBE_ATOMIC_SLOTS 16
typedef struct PaProbeConvertParams {
    const float *in;        /* count floats */
    const uint16_t *bits16; /* count raw 16-bit patterns */
    uint16_t *to_bf16;      /* to_bf16(in[i]) */
    uint16_t *to_f16;       /* to_f16(in[i]) */
    float *bf16_to_float;   /* to_float(bf16{bits16[i]}) */
    float *f16_to_float;    /* to_float(f16{bits16[i]}) */
    uint32_t *pack_bf16;    /* pack_bf16x2(in[i], in[count - 1 - i]) */
    uint32_t *pack_f16;     /* pack_f16x2(in[i], in[count - 1 - i]) */
    float *exp2;            /* exp2_fast(in[i]) */
    float *atomic_sums;     /* PA_PROBE_ATOMIC_SLOTS: slot i % 16 += (float)(i % 7) */
    int64_t count;
} PaProbeConvertParams;

/* ---- probe_tile_{bf16,f16}: the tile layer's operations (csrc/tile/) on 64 x 64 tiles of the
 * kernel's dtype, two warps of 32 rows each (two 16-row blocks: the fragments they share).
 * Launch: 64 threads, 1 CTA, 3 * 64 * 64 * 2 bytes of dynamic smem. Matrices are row-major. */
typedef struct PaProbeTileParams {
    const uint16_t *a;  /* [64][64] */
    const uint16_t *b;  /* [64][64] */
    float *abt;         /* A B^T (mma_ABt) */
    float *ab;          /* A B (mma_AB, A from shared memory) */
    float *pb;          /* round(A B^T) B (to_a, then mma_AB with A from registers) */
    float *atb;         /* A^T B (mma_AtB) */
    float *row_max;     /* [64]: the max of each row of A B^T (row_max) */
    uint16_t *scaled;   /* [64][64]: round(A B^T / (row + 1)) (store_scaled, store_rows) */
    /* A's rows at or past this are zero-filled by the loader, and those rows of `scaled` are not
     * written (RowLoader and store_rows past n). */
    int32_t rows_valid;
    int32_t _pad0;
} PaProbeTileParams;

/* ---- probe_log2: log2_fast element-wise, over a grid-stride loop. ---- */
typedef struct PaProbeLog2Params {
    const float *in; /* count floats */
    float *out;      /* log2_fast(in[i]) */
    int64_t count;
} PaProbeLog2Params;

#ifdef __cplusplus
}
#endif

#endif /* PA_TEST_PARAMS_H */
