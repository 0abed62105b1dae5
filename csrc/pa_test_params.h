/* Parameter structs of the test and probe kernels (csrc/test_kernels/emu_*.cu, probe_*.cu): kernels
 * that exist to test the SIMT emulator and the intrinsics layer, not part of the library's API.
 * Same rules as pa_params.h (C only, fixed-width integers, plain pointers). Mirrored in Rust by
 * src/ffi/emu.rs (generated from pa_emu.h, which includes this file).
 */
#ifndef PA_TEST_PARAMS_H
#define PA_TEST_PARAMS_H

#include <stdint.h>

#include "pa_tma.h"

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

/* ==== Hopper (sm_90) probes: csrc/test_kernels/probe_sm90_*.cu, emu_planted_sm90.cuh ==== */

/* ---- probe_sm90_sync: mbarrier phases and arrival counts, a two-slot producer/consumer ring
 * over mbarriers, named barriers (sync, arrive, separate ids). Launch: 1 CTA of 256 threads,
 * 1024 bytes of dynamic smem. */
#define PA_PROBE_SYNC_ROUNDS 6
#define PA_PROBE_SYNC_WORDS 8 /* outputs per thread */
typedef struct PaProbeSm90SyncParams {
    const uint32_t *in; /* PA_PROBE_SYNC_ROUNDS * 32 words (the producer's data) + 256 */
    uint32_t *out;      /* PA_PROBE_SYNC_WORDS per thread */
} PaProbeSm90SyncParams;

/* ---- probe_sm90_tma: one TMA box per CTA (coordinates from `coords`), completed on an
 * mbarrier and copied back raw (swizzled, zero-filled). Launch: `count` CTAs of 128 threads,
 * box_bytes + 1024 + 128 bytes of dynamic smem. */
typedef struct PaProbeSm90TmaParams {
    PaTensorMap map;
    const int32_t *coords; /* count x PA_TMA_MAX_RANK, innermost first */
    uint32_t *out;         /* count x box_bytes / 4 words */
    uint32_t box_bytes;
    uint32_t rank;
    uint32_t count;
    uint32_t _pad0;
} PaProbeSm90TmaParams;

/* ---- probe_sm90_wgmma: per CTA one warpgroup runs `ksteps` chained wgmma.m64nNk16 on operands
 * copied verbatim from a shared-memory image, with descriptors given by the test (start
 * addresses relative to the image, which the kernel places 1024-byte aligned). N is 16, 64, 128
 * or 256. Launch: one CTA of 128 threads per case, PA_PROBE_WGMMA_SMEM bytes of smem. */
#define PA_PROBE_WGMMA_MAX_K 4
#define PA_PROBE_WGMMA_MAX_IMAGE 45056 /* the whole smem stays under the 48 KiB default */
#define PA_PROBE_WGMMA_SMEM (PA_PROBE_WGMMA_MAX_IMAGE + 1024)
typedef struct PaProbeWgmmaCase {
    uint32_t n;
    uint32_t f16;         /* 0 bf16, 1 f16 */
    uint32_t a_regs;      /* 1: A from registers (a_frags) */
    uint32_t trans_a;     /* imm-trans-a (0 when A is in registers) */
    uint32_t trans_b;     /* imm-trans-b */
    uint32_t ksteps;      /* 1..PA_PROBE_WGMMA_MAX_K */
    uint32_t scale_d;     /* scale-d of the first wgmma; later ones accumulate */
    uint32_t image_bytes; /* a multiple of 16, at most PA_PROBE_WGMMA_MAX_IMAGE */
    uint64_t image_offset; /* of this case's image in `images`, a multiple of 16 */
    uint64_t desc_a[PA_PROBE_WGMMA_MAX_K];
    uint64_t desc_b[PA_PROBE_WGMMA_MAX_K];
} PaProbeWgmmaCase;
typedef struct PaProbeSm90WgmmaParams {
    const PaProbeWgmmaCase *cases; /* one per CTA */
    const uint8_t *images;
    const uint32_t *a_frags; /* per case: PA_PROBE_WGMMA_MAX_K x 128 threads x 4 words */
    const float *c;          /* per case: [64][256] (columns < n used) */
    float *d;                /* per case: [64][256] */
} PaProbeSm90WgmmaParams;

/* ---- probe_sm90_pipeline: the attention forward's skeleton. Warpgroup 0 (setmaxnreg.dec)
 * loads Q once and K/V tiles through a two-stage ring of mbarriers with TMA (SWIZZLE_128B);
 * warpgroup 1 (setmaxnreg.inc) computes S = Q K^T (wgmma, both from shared memory, K-major)
 * and O += bf16(S) V (P from registers, V N-major). Launch: 1 CTA of 256 threads,
 * PA_PROBE_PIPE_SMEM bytes of dynamic smem. */
#define PA_PROBE_PIPE_STAGES 2
#define PA_PROBE_PIPE_SMEM (1024 + 8192 * (1 + 2 * PA_PROBE_PIPE_STAGES) + 128)
typedef struct PaProbeSm90PipelineParams {
    PaTensorMap q_map; /* bf16 [64][64], box 64 x 64, SWIZZLE_128B */
    PaTensorMap k_map; /* bf16 [tiles * 64][64], box 64 x 64, SWIZZLE_128B */
    PaTensorMap v_map; /* the same over V */
    float *s;          /* [64][64]: S of the last tile */
    float *o;          /* [64][64]: sum over tiles of bf16(S_t) V_t */
    uint32_t tiles;
    uint32_t _pad0;
} PaProbeSm90PipelineParams;

/* ---- emu_planted_sm90: one deliberate bug per mode in the Hopper features. ---- */
#define PA_SM90_PLANTED_CORRECT 0            /* TMA + mbarrier + wgmma, no bug */
#define PA_SM90_PLANTED_OVER_ARRIVE 1        /* a second arrival in a phase held open by tx */
#define PA_SM90_PLANTED_TX_UNDERFLOW 2       /* expect_tx of half the box */
#define PA_SM90_PLANTED_STALE_PARITY 3       /* waits the second phase with the first's parity */
#define PA_SM90_PLANTED_BEFORE_INIT 4        /* arrivals without the barrier after init */
#define PA_SM90_PLANTED_INIT_IN_USE 5        /* re-init with an arrival pending */
#define PA_SM90_PLANTED_DEADLOCK 6           /* count 2, one arrival, everyone waits */
#define PA_SM90_PLANTED_OVERWRITTEN 7        /* an ordinary store over a live mbarrier */
#define PA_SM90_PLANTED_NAMED_COUNTS 8       /* one named barrier, counts 128 and 96 */
#define PA_SM90_PLANTED_NAMED_HALF 9         /* bar.arrive that nobody completes */
#define PA_SM90_PLANTED_NAMED_PARTIAL_WARP 10 /* half a warp at a named barrier */
#define PA_SM90_PLANTED_ACC_BEFORE_WAIT 11   /* accumulator read before wgmma.wait_group */
#define PA_SM90_PLANTED_NO_FENCE 12          /* accumulator written, then wgmma without fence */
#define PA_SM90_PLANTED_MISALIGNED_WARPGROUP 13 /* wgmma by warps 1..4 */
#define PA_SM90_PLANTED_NONUNIFORM_DESC 14   /* one warp's B descriptor differs */
#define PA_SM90_PLANTED_BAD_DESC 15          /* a descriptor with a base offset */
#define PA_SM90_PLANTED_SETMAXNREG 16        /* two register counts in one warpgroup */
#define PA_SM90_PLANTED_TMA_READ_EARLY 17    /* reads the TMA box before waiting */
#define PA_SM90_PLANTED_EARLY_RELEASE 18     /* releases a stage before the wgmma reading it completes */
#define PA_SM90_PLANTED_TMA_MISALIGNED 19    /* TMA destination not 128-byte aligned */
#define PA_SM90_PLANTED_NO_PROXY_FENCE 20    /* operands by ordinary stores, wgmma without fence.proxy.async */
#define PA_SM90_PLANTED_MODES 21
/* Launch: 1 CTA of 256 threads, PA_SM90_PLANTED_SMEM bytes of dynamic smem. */
#define PA_SM90_PLANTED_SMEM 16384
typedef struct PaEmuPlantedSm90Params {
    PaTensorMap map;    /* u32 [64][64], box 8 x 16 (512 bytes), no swizzle */
    const uint32_t *in; /* 4096 words (the tensor of `map`) */
    uint32_t *out;      /* 4096 words */
    int32_t mode;
    uint32_t _pad0;
} PaEmuPlantedSm90Params;

#ifdef __cplusplus
}
#endif

#endif /* PA_TEST_PARAMS_H */
