/* Kernel parameter structs: the single declaration shared by CUDA, the host (emulator) build and
 * Rust. src/ffi/params.rs is generated from this file by bindgen and committed; the drift test
 * (`cargo test --features regen-bindings`) fails when the two disagree.
 *
 * Rules that keep the mirror exact on every side:
 *  - C only (no C++), fixed-width integer types, no bitfields, no enums with implicit sizes;
 *  - pointers are plain C pointers: device addresses on the GPU, host addresses in the emulator;
 *  - each kernel takes exactly one of these structs by value.
 */
#ifndef PA_PARAMS_H
#define PA_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Block-list entry encoding shared by the plan (Rust) and the kernels: tile index in the upper
 * bits, PARTIAL flag in bit 0 (0 = FULL: no per-element mask needed). */
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

/* Forward attention tiles (csrc/attn/traits.cuh): one CTA of PA_FWD_THREADS threads (4 warps,
 * 16 query rows each) per PA_FWD_BLOCK_Q queries, walking k tiles of PA_FWD_BLOCK_K keys. The
 * plan's BlockMask for the forward is built with exactly this tile shape. */
#define PA_FWD_BLOCK_Q 64
#define PA_FWD_BLOCK_K 64
#define PA_FWD_THREADS 128

/* Element strides of one [rows, n, heads, head_dim] tensor view whose last dimension is
 * contiguous (stride 1). Strided views let a trainer pass slices of one fused QKV buffer. */
typedef struct PaStrides {
    int64_t row;
    int64_t token;
    int64_t head;
} PaStrides;

/* pa_attn_fwd_{bf16,f16}_d{64,128}: O and LSE of masked attention for every (row, q head,
 * token). Grid: x = rank * q_heads + head over rows * q_tiles * q_heads CTAs, where rank indexes
 * heaviest_first (slot = row * q_tiles + q tile, heaviest first); block PA_FWD_THREADS. Dynamic
 * shared memory: (PA_FWD_BLOCK_Q + 4 * PA_FWD_BLOCK_K) * head_dim * 2 bytes (Q, then K and V
 * double-buffered). q/k/v/o point at element 0 of their views, in the kernel's dtype. */
typedef struct PaAttnFwdParams {
    const void *q;
    const void *k;
    const void *v;
    void *o;
    /* [rows, q_heads, n], natural log; -inf for a query that sees no key. */
    float *lse;
    /* [rows, n] */
    const int32_t *vis_end;
    /* q-major block lists of the plan (tile PA_FWD_BLOCK_Q x PA_FWD_BLOCK_K). */
    const int32_t *q_offsets;
    const int32_t *q_entries;
    const int32_t *heaviest_first;
    PaStrides q_stride;
    PaStrides k_stride;
    PaStrides v_stride;
    PaStrides o_stride;
    int32_t rows;
    int32_t n;
    int32_t q_heads;
    /* q_heads / kv_heads: query head h reads kv head h / kv_group. */
    int32_t kv_group;
    int32_t q_tiles;
    /* softmax scale (scores are scale * q.k) and scale * log2(e), for exp2. */
    float scale;
    float scale_log2;
    uint32_t _pad0;
} PaAttnFwdParams;

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
