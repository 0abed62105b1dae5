// Per-element masking of a PARTIAL tile (FULL tiles skip this entirely).
//
// In the accumulator layout (csrc/tile/geometry.cuh) a lane (g, t) holds, in fragment (m, n),
// keys 8n + 2t + {0, 1} of query rows 16m + g (elements 0, 1) and 16m + g + 8 (elements 2, 3).
#pragma once

#include "../tile/tile.cuh"
#include "acc_rows.cuh"

namespace pa {
namespace attn {

// The rule `j <= i && i < vis_end[j]` on a warp's score tile (a tile::Acc, or its rows of a
// warpgroup's wgmma accumulator: acc_rows.cuh) whose rows are queries query0.. and columns keys
// key0..; `end_of(c)` gives vis_end of the tile's key c (column c, key key0 + c), and must give 0
// for keys beyond the row, which are then invisible, as are queries beyond it (i >= n). Masked
// scores become -inf. Kernels pass either the k tile's vis_end staged in shared memory with K and
// V (the forwards: no global load in the masked path) or a guarded read of the row's.
template <class S, class EndOf>
PA_DEVICE void apply_partial_mask(S& s, int query0, int key0, int n, const EndOf& end_of) {
    using R = AccRows<S>;
    const tile::LaneCoords lc = tile::lane_coords();
    PA_UNROLL
    for (int nb = 0; nb < R::kN; ++nb) {
        PA_UNROLL
        for (int c = 0; c < 2; ++c) {
            const int jj = nb * 8 + tile::c_col(lc.t, c);
            const int j = key0 + jj;
            const int end = end_of(jj);
            PA_UNROLL
            for (int m = 0; m < R::kM; ++m) {
                PA_UNROLL
                for (int h = 0; h < 2; ++h) {
                    const int i = query0 + 16 * m + tile::c_row(lc.g, 2 * h);
                    const bool seen = j <= i && i < end && i < n;
                    if (!seen) R::at(s, m, nb, 2 * h + c) = -__builtin_huge_valf();
                }
            }
        }
    }
}

// Copies vis_end of keys [key0, key0 + kKeys) into shared memory, one 4-byte cp.async per key
// by the first kKeys threads (a row's vis_end starts at any 4-byte boundary, so 16-byte copies
// would be misaligned), zero-filled past the row end (n).
template <int kKeys>
PA_DEVICE void load_tile_vis_end_async(int32_t* dst, const int32_t* row_vis_end, int key0, int n) {
    const int c = (int)thread_idx_x();
    if (c < kKeys) {
        const bool valid = key0 + c < n;
        cp_async_4_zfill(dst + c, valid ? row_vis_end + key0 + c : row_vis_end, valid);
    }
}

// The same rule on a transposed score tile (dK/dV: rows are keys key0.., columns are queries
// query0..; a tile::Acc or a warp's rows of a wgmma accumulator, acc_rows.cuh): the lane's keys
// are its rows, so it asks `end_of(j)` once per key j it holds; end_of must give 0 for keys at or
// beyond n (the sm80 kernel guards a global read, the sm90a one reads its staged vis_end, zero
// past the row).
template <class S, class EndOf>
PA_DEVICE void apply_partial_mask_keys_by_queries(S& st, int key0, int query0, int n, const EndOf& end_of) {
    using R = AccRows<S>;
    const tile::LaneCoords lc = tile::lane_coords();
    PA_UNROLL
    for (int m = 0; m < R::kM; ++m) {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            const int j = key0 + 16 * m + tile::c_row(lc.g, 2 * h);
            const int end = end_of(j);
            PA_UNROLL
            for (int nb = 0; nb < R::kN; ++nb) {
                PA_UNROLL
                for (int c = 0; c < 2; ++c) {
                    const int i = query0 + nb * 8 + tile::c_col(lc.t, c);
                    const bool seen = j <= i && i < end && i < n;
                    if (!seen) R::at(st, m, nb, 2 * h + c) = -__builtin_huge_valf();
                }
            }
        }
    }
}

}  // namespace attn
}  // namespace pa
