// Accumulator tiles out of registers: rounded to 16 bits into a swizzled shared tile (each lane
// writes its two adjacent columns as one 4-byte word), from where whole 16-byte rows go to global
// memory.
#pragma once

#include "reg.cuh"
#include "smem.cuh"

namespace pa {
namespace tile {

// dst rows row0 + i (row0 % 16 == 0), columns j of c, each row multiplied by its lane's
// row_scale[m][h] (rows 16m + g + 8h) before rounding to T.
template <int kR, int kC, class TD>
PA_DEVICE void store_scaled(const TD& dst, int row0, const Acc<kR, kC>& c,
                            const float (&row_scale)[kR / 16][2]) {
    using T = typename TD::T;
    static_assert(TD::kCols == kC, "c spans dst's columns");
    const LaneCoords lc = lane_coords();
    PA_UNROLL
    for (int m = 0; m < kR / 16; ++m) {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + 16 * m + lc.g + 8 * h;
            PA_UNROLL
            for (int n = 0; n < kC / 8; ++n) {
                const uint32_t packed =
                    pack2<T>(c.f[m][n][2 * h] * row_scale[m][h], c.f[m][n][2 * h + 1] * row_scale[m][h]);
                *reinterpret_cast<uint32_t*>(dst.ptr + TD::offset(r, n) + 2 * lc.t) = packed;
            }
        }
    }
}

// Rows [first, first + Tile::kRows) of a tile to one head of a strided view in 16-byte stores,
// kThreads threads sharing the work; rows at or beyond n are not written.
template <class Tile, int kThreads>
PA_DEVICE void store_rows(typename Tile::T* head, int64_t token_stride, const Tile& tile, int first, int n) {
    static_assert((Tile::kRows * Tile::kChunks) % kThreads == 0, "copies split evenly over the threads");
    constexpr int kPerThread = Tile::kRows * Tile::kChunks / kThreads;
    PA_UNROLL
    for (int it = 0; it < kPerThread; ++it) {
        const int c = (int)thread_idx_x() + it * kThreads;
        const int r = c / Tile::kChunks;
        const int chunk = c % Tile::kChunks;
        if (first + r < n) {
            *reinterpret_cast<u32x4*>(head + (int64_t)(first + r) * token_stride + chunk * 8) =
                *reinterpret_cast<const u32x4*>(tile.ptr + Tile::offset(r, chunk));
        }
    }
}

}  // namespace tile
}  // namespace pa
