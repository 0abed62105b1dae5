// Tile configuration of an attention kernel, as template parameters: element type, head dim,
// queries per q tile (block_q), keys per k tile (block_k), warps, and K/V pipeline stages. Each
// warp owns block_q / warps consecutive query rows (whole 16-row mma blocks). The plan builds its
// block lists at (block_q, block_k); the registry row reports all of these to Rust, which takes
// the tile shape, threads and shared memory from there.
#pragma once

#include "../tile/tile.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kWarps_, int kStages_>
struct TileConfig {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kWarps = kWarps_;
    static constexpr int kStages = kStages_;
    static constexpr int kThreads = kWarps * 32;
    static constexpr int kRowsPerWarp = kBlockQ / kWarps;

    // Shared tiles: one q tile, one k tile of K or V.
    using QTile = tile::Smem<T, kBlockQ, kHeadDim>;
    using KvTile = tile::Smem<T, kBlockK, kHeadDim>;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kRowsPerWarp % 16 == 0 && kRowsPerWarp * kWarps == kBlockQ,
                  "each warp owns whole 16-row mma blocks of the q tile");
    static_assert(kBlockK % 16 == 0, "P V consumes keys 16 at a time");
    static_assert(kStages >= 2, "at least double-buffered K/V");
};

}  // namespace attn
}  // namespace pa
