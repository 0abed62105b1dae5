// Shared-memory tiles: [rows][head_dim] of 16-bit elements, stored as 16-byte chunks with the
// chunk index XORed by (row % 8).
//
// Why: ldmatrix reads one 16-byte row per lane, eight lanes (eight consecutive tile rows, same
// logical chunk) per phase. Rows are 128 or 256 bytes long, so unswizzled those eight reads hit
// the same four banks (8-way conflict). With the XOR the eight physical chunks are distinct, i.e.
// all 32 banks. The 16-byte cp.async writes (eight lanes per row covering eight chunks) and the
// 4-byte epilogue writes (eight rows, one chunk) stay conflict-free for the same reason.
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

// Element offset of logical chunk `chunk` of `row` in a swizzled tile of kChunks chunks per row.
template <int kChunks>
PA_DEVICE int swizzled(int row, int chunk) {
    return (row * kChunks + (chunk ^ (row & 7))) * 8;
}

// Asynchronously copies tokens [first, first + kRows) of one head of a view into a swizzled tile.
// Tokens at or beyond n are zero-filled (nothing is read): keys beyond the row then score 0 and,
// more importantly, contribute 0 * V = 0 rather than garbage (which might be NaN) in P V.
template <class Tr, int kRows>
PA_DEVICE void load_tile_async(typename Tr::T* tile, const typename Tr::T* head_base,
                               int64_t token_stride, int first, int n) {
    constexpr int kPerThread = kRows * Tr::kChunks / Tr::kThreads;
    const int tid = (int)thread_idx_x();
    PA_UNROLL
    for (int it = 0; it < kPerThread; ++it) {
        const int c = tid + it * Tr::kThreads;
        const int r = c / Tr::kChunks;
        const int chunk = c % Tr::kChunks;
        const int token = first + r;
        const bool valid = token < n;
        // An invalid lane still passes a valid address (the view's first element).
        const typename Tr::T* src = valid ? head_base + (int64_t)token * token_stride + chunk * 8 : head_base;
        cp_async_16_zfill(tile + swizzled<Tr::kChunks>(r, chunk), src, valid);
    }
}

}  // namespace attn
}  // namespace pa
