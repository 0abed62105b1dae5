// Per-element masking of a PARTIAL tile (FULL tiles skip this entirely).
//
// Accumulator layout of one warp's S (16 queries x kBlockK keys, m16n8 fragments): thread
// (g = lane / 4, t = lane % 4) holds, in fragment nt, keys nt * 8 + 2t + {0, 1} for query rows g
// (elements 0, 1) and g + 8 (elements 2, 3).
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

// The rule `j <= i && i < vis_end[j]`, with queries and keys beyond the row (i or j >= n, the
// zero-filled tail of a ragged tile) invisible. Masked scores become -inf.
template <int kSTiles>
PA_DEVICE void apply_partial_mask(float (&s)[kSTiles][4], int query0, int key0, const int32_t* vis_end,
                                  int n) {
    const int t = (int)lane_id() & 3;
    PA_UNROLL
    for (int nt = 0; nt < kSTiles; ++nt) {
        PA_UNROLL
        for (int c = 0; c < 2; ++c) {
            const int j = key0 + nt * 8 + 2 * t + c;
            const int end = j < n ? vis_end[j] : 0;
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                const int i = query0 + h * 8;
                const bool seen = j <= i && i < end && i < n;
                if (!seen) s[nt][2 * h + c] = -__builtin_huge_valf();
            }
        }
    }
}

}  // namespace attn
}  // namespace pa
