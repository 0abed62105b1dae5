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

/* One direction of a plan's block lists at one tile shape (mask::BlockMask): q-major (the k
 * tiles of each q tile: forward, dQ) or k-major (the q tiles of each k tile: dK/dV). Slot
 * s = row * tiles + tile lists its entries in entries[offsets[s] .. offsets[s + 1]] (ascending
 * tile index, each `tile << PA_TILE_INDEX_SHIFT | partial`); `order` lists every slot once, the
 * ones with the most entries first: the launch order. */
typedef struct PaBlockList {
    const int32_t *offsets;
    const int32_t *entries;
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
