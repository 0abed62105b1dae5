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

#ifdef __cplusplus
}
#endif

#endif /* PA_PARAMS_H */
