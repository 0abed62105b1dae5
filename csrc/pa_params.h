/* Kernel parameter structs: the single declaration shared by CUDA, the host (emulator) build and
 * Rust. src/ffi/params.rs is generated from this file by bindgen (tools/regen-bindings) and
 * committed; CI runs the generator with --check and fails when the two disagree.
 *
 * Rules that keep the mirror exact on every side:
 *  - C only (no C++), fixed-width integer types, no bitfields, no enums with implicit sizes;
 *  - pointers are plain C pointers: device addresses on the GPU, host addresses in the emulator;
 *  - each kernel takes exactly one of these structs by value.
 */
#ifndef PA_PARAMS_H
#define PA_PARAMS_H

#include <stdint.h>

#include "pa_tma.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Block-list encoding shared by the plan (Rust) and the kernels. A kernel walking a list sees
 * each tile as an entry `tile << PA_TILE_INDEX_SHIFT | partial`: PARTIAL flag in bit 0 (0 = FULL:
 * no per-element mask needed). */
#define PA_TILE_PARTIAL_BIT 1
#define PA_TILE_INDEX_SHIFT 1

/* pa_fill_u32: out[i] = value for i in [0, count). Used to poison outputs before a test launch
 * so that an element a kernel failed to write is detected. */
typedef struct PaFillParams {
    uint32_t *out;
    int64_t count;
    uint32_t value;
    uint32_t _pad0;
} PaFillParams;

/* Element strides of one [rows, n, heads, head_dim] tensor view whose last dimension is
 * contiguous (stride 1). Strided views let a trainer pass slices of one fused QKV buffer. */
typedef struct PaStrides {
    int64_t row;
    int64_t token;
    int64_t head;
} PaStrides;

/* One [rows, n, heads, head_dim] tensor view: element (0, 0, 0, 0) and the strides, in elements
 * of the kernel's dtype. Kernels that only read it cast `ptr` to const. */
typedef struct PaView {
    void *ptr;
    PaStrides stride;
} PaView;

/* What every attention kernel (forward, dQ, dK/dV) shares: Q, K and V, the mask and the head
 * geometry of one call. Query head h reads kv head h / kv_group. Scores are scale * q.k;
 * scale_log2 = scale * log2(e) feeds exp2. */
typedef struct PaAttnQkv {
    PaView q;
    PaView k;
    PaView v;
    /* [rows, n]: query i sees key j iff j <= i && i < vis_end[j] */
    const int32_t *vis_end;
    int32_t n;
    int32_t q_heads;
    int32_t kv_group;
    float scale;
    float scale_log2;
    uint32_t _pad0;
} PaAttnQkv;

/* One run of a block list: consecutive tiles of one class. A slot's list (its non-empty tiles,
 * ascending) is cut into runs; the tiles at positions begin .. end of the list (begin: the
 * previous run's end, 0 for the slot's first run) are the entries `base + (i << PA_TILE_INDEX_SHIFT)`
 * for position i, i.e. base = (first tile - begin) << PA_TILE_INDEX_SHIFT | partial. So a kernel
 * walking positions in order needs one run at a time, and a slot's length is its last run's end
 * (mask::BlockMask, src/mask/runs.rs). */
typedef struct PaTileRun {
    int32_t base;
    /* positions of the slot's list through this run */
    int32_t end;
} PaTileRun;

/* One direction of a plan's block lists at one tile shape (mask::BlockMask): q-major (the k
 * tiles of each q tile: forward, dQ) or k-major (the q tiles of each k tile: dK/dV). Slot
 * s = row * tiles + tile owns the runs runs[offsets[s] .. offsets[s + 1]] (ascending tiles);
 * `order` lists every slot once, the ones with the most tiles first: the launch order. */
typedef struct PaBlockList {
    const int32_t *offsets;
    const PaTileRun *runs;
    const int32_t *order;
    /* tiles per row along the list's major axis */
    int32_t tiles;
    int32_t _pad0;
} PaBlockList;

/* pa_attn_fwd_*: O and LSE of masked attention for every (row, q head, token).
 * Grid: x = rank * q_heads + head, one CTA per (slot of q_major.order, q head); block and dynamic
 * shared memory as the kernel's registry entry says (threads, smem_bytes). */
typedef struct PaAttnFwdParams {
    PaAttnQkv qkv;
    /* q-major lists at the kernel's tile shape */
    PaBlockList q_major;
    /* like q; written, dtype of the kernel */
    PaView o;
    /* [rows, q_heads, n], natural log; -inf for a query that sees no key. */
    float *lse;
} PaAttnFwdParams;

/* pa_attn_fwd_sm90_*: the same outputs as PaAttnFwdParams on the sm90a path (wgmma, TMA), whose
 * loads of Q, K and V go through tensor maps. Each map describes one view as a rank-4 tensor
 * (head_dim, heads, n, rows), innermost first, strides in bytes, in boxes of 64 elements (128
 * bytes, SWIZZLE_128B) x 1 head x block rows (block_q for Q, block_k for K and V) x 1 row; tokens
 * past n read as zeros. A map holds the view's address, so it is encoded per call
 * (prefix_attn::sm90::TensorMapDesc, on the host: no device work). Every sm90a parameter struct
 * holds its sm80 twin's as `base`, then the maps. Grid, block and shared memory as
 * PaAttnFwdParams. */
typedef struct PaAttnFwdSm90Params {
    PaAttnFwdParams base;
    /* PaAttnFwdParams is 200 bytes; the maps start at 256 (64-byte aligned) */
    int64_t _pad0[7];
    /* the maps of base.qkv.q, base.qkv.k and base.qkv.v (64-byte aligned, as
     * cp.async.bulk.tensor needs) */
    PaTensorMap q_map;
    PaTensorMap k_map;
    PaTensorMap v_map;
} PaAttnFwdSm90Params;

/* ---- backward ----
 * A backward call runs three kernels on one stream: the preprocess (pa_attn_bwd_pre_*), then
 * dK/dV (pa_attn_bwd_dkv_*), then dQ (pa_attn_bwd_dq_*). The preprocess fills a workspace of two
 * fp32 arrays [rows, q_heads, n_pad] (n_pad: n rounded up to a multiple of every backward q tile,
 * so whole q tiles are read with 16-byte copies and no bounds checks) that the other two read. */

/* The per-query statistics the dK/dV and dQ kernels read (written by the preprocess). */
typedef struct PaAttnBwdStats {
    /* LSE * log2(e) of each query; +inf where the query sees no key (LSE = -inf) and for the
     * padding i >= n, so that exp2(s * scale_log2 - lse_log2) is 0 there, never NaN. */
    const float *lse_log2;
    /* D = rowsum(dO * O) of each query; 0 for i >= n. */
    const float *delta;
    /* elements between consecutive (row, head) runs of both arrays; a multiple of 4 */
    int32_t n_pad;
    int32_t _pad0;
} PaAttnBwdStats;

/* pa_attn_bwd_pre_*: for every (row, q head, token i < n_pad), delta = rowsum(dO * O) in fp32
 * (0 for i >= n) and lse_log2 as PaAttnBwdStats says.
 * Grid: x = (row * q_heads + head) * (n_pad / PA_BWD_PRE_TOKENS) + token block; block as the
 * registry entry says; no shared memory. */
#define PA_BWD_PRE_TOKENS 64
typedef struct PaAttnBwdPreParams {
    /* O (forward output) and dO, both [rows, n, q_heads, head_dim] views of the kernel's dtype */
    PaView o;
    PaView d_o;
    /* [rows, q_heads, n] natural log, as the forward wrote it */
    const float *lse;
    /* written: [rows, q_heads, n_pad] each */
    float *lse_log2;
    float *delta;
    int32_t n;
    int32_t n_pad;
    int32_t q_heads;
    int32_t _pad0;
} PaAttnBwdPreParams;

/* pa_attn_bwd_dkv_*: dK = scale * sum over the group's q heads of dS^T Q and dV = sum of P^T dO
 * for every (row, key, kv head), written once (zeros for a key nobody sees).
 * Grid: x = rank * kv_heads + kv head, one CTA per (slot of k_major.order, kv head). */
typedef struct PaAttnBwdDkvParams {
    PaAttnQkv qkv;
    /* k-major lists at the kernel's tile shape */
    PaBlockList k_major;
    /* like q; read */
    PaView d_o;
    /* like k; written */
    PaView dk;
    PaView dv;
    PaAttnBwdStats stats;
} PaAttnBwdDkvParams;

/* pa_attn_bwd_dq_*: dQ = scale * dS K for every (row, query, q head), written once (zeros for a
 * query that sees no key); P and dS are recomputed from the q-major lists, so no atomics and the
 * result does not depend on the schedule.
 * Grid: x = rank * q_heads + head, one CTA per (slot of q_major.order, q head). */
typedef struct PaAttnBwdDqParams {
    PaAttnQkv qkv;
    /* q-major lists at the kernel's tile shape */
    PaBlockList q_major;
    /* like q; read */
    PaView d_o;
    /* like q; written */
    PaView dq;
    PaAttnBwdStats stats;
} PaAttnBwdDqParams;

/* pa_attn_bwd_dq_sm90_* (compute capability 9.0): what pa_attn_bwd_dq_* computes, with Q, dO, K
 * and V loaded by TMA through these maps (built like PaAttnFwdSm90Params' maps: boxes of 64
 * head-dim elements x block_q or block_k tokens, SWIZZLE_128B). lse_log2 and D are read from
 * `base.stats` by ordinary loads. Grid as pa_attn_bwd_dq_*. */
typedef struct PaAttnBwdDqSm90Params {
    PaAttnBwdDqParams base;
    /* PaAttnBwdDqParams is 248 bytes; the maps start at 256 (64-byte aligned) */
    int64_t _pad0;
    PaTensorMap q_map;
    PaTensorMap d_o_map;
    PaTensorMap k_map;
    PaTensorMap v_map;
} PaAttnBwdDqSm90Params;

/* pa_attn_bwd_dkv_sm90_* (compute capability 9.0): what pa_attn_bwd_dkv_* computes, with K and V
 * (boxes of block_k tokens) and Q and dO (boxes of block_q tokens) loaded by TMA through these
 * maps (built like PaAttnFwdSm90Params' maps: boxes of 64 head-dim elements, SWIZZLE_128B).
 * lse_log2 and D are read from `base.stats` by ordinary loads. Grid as pa_attn_bwd_dkv_*. */
typedef struct PaAttnBwdDkvSm90Params {
    PaAttnBwdDkvParams base;
    /* PaAttnBwdDkvParams is 280 bytes; the maps start at 320 (64-byte aligned) */
    int64_t _pad0[5];
    PaTensorMap q_map;
    PaTensorMap d_o_map;
    PaTensorMap k_map;
    PaTensorMap v_map;
} PaAttnBwdDkvSm90Params;

/* pa_logprob_gather_{bf16,f16,f32}: per map entry e (one CTA each),
 *   per_token[e] = log_softmax(logits[logit_rows[e], 0..vocab])[targets[e]]
 *               = logit[target] - logsumexp(row),
 * with an fp32 online max/sum over the vocab. `logits` points at elements of the kernel's dtype
 * (bf16, f16 or f32); row r starts at element r * row_stride (row_stride >= vocab, padded vocabs
 * allowed). The host checks every target < vocab and every logit row inside the buffer. */
typedef struct PaLogProbGatherParams {
    const void *logits;
    const int32_t *logit_rows; /* [entries] */
    const uint32_t *targets;   /* [entries] */
    float *per_token;          /* [entries] */
    int64_t row_stride;
    int32_t vocab;
    int32_t entries;
} PaLogProbGatherParams;

/* pa_segment_sum_f32: sums[s] = sum of values[offsets[s] .. offsets[s + 1]] (one warp per
 * segment, fixed-order reduction: the result does not depend on the schedule). */
typedef struct PaSegmentSumParams {
    const float *values;    /* [offsets[segments]] */
    const int32_t *offsets; /* [segments + 1], non-decreasing */
    float *sums;            /* [segments] */
    int32_t segments;
    int32_t _pad0;
} PaSegmentSumParams;

/* pa_swiglu_{bf16,f16}: the SwiGLU activation of an MLP, out[t, f] = silu(gate[t, f]) * up[t, f]
 * with silu(g) = g / (1 + exp(-g)), in fp32, rounded once to the kernel's dtype. gate, up and out
 * are row-major [tokens, ffn] views with row strides in elements (gate and up may be the two
 * halves of one fused [tokens, 2 * ffn] GEMM output). Each thread step moves 8 elements (16
 * bytes): ffn and every stride are multiples of 8 and every pointer 16-byte aligned (the host
 * checks). Grid-stride loop over the tokens * ffn / 8 vectors. */
typedef struct PaSwigluParams {
    const void *gate;
    const void *up;
    void *out;
    int64_t gate_stride;
    int64_t up_stride;
    int64_t out_stride;
    /* tokens * ffn / 8 */
    int64_t vectors;
    /* ffn / 8 */
    int32_t row_vectors;
    int32_t _pad0;
} PaSwigluParams;

/* pa_rotary_{bf16,f16}: rotary position embedding in place (src/rotary.rs has the convention).
 * Token t (one CTA each) starts at element t * token_stride of x; its heads 0..heads follow each
 * other, head_dim apart (so the Q and K heads of a fused QKV row are rotated in one launch).
 * Pair (i, i + head_dim / 2) of every head turns by the angle of (positions[t], i), read from
 * the f32 tables cos and sin ([max_positions, head_dim / 2]); inverse = 1 turns by minus that
 * angle (the inverse, which is also the backward). Positions outside the table leave the token
 * untouched (the host checks they are all inside). */
typedef struct PaRotaryParams {
    void *x;
    const int32_t *positions; /* [tokens] */
    const float *cos;
    const float *sin;
    int64_t token_stride;
    int32_t tokens;
    int32_t heads;
    int32_t head_dim;
    int32_t max_positions;
    int32_t inverse;
    int32_t _pad0;
} PaRotaryParams;

#ifdef __cplusplus
}
#endif

#endif /* PA_PARAMS_H */
