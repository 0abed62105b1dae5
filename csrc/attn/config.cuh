// Tile configuration of an attention kernel, as template parameters: element type, head dim,
// queries per q tile (block_q), keys per k tile (block_k), warps, and K/V pipeline stages. Each
// warp owns block_q / warps consecutive query rows (whole 16-row mma blocks). The plan builds its
// block lists at (block_q, block_k); the registry row reports all of these to Rust, which takes
// the tile shape, threads and shared memory from there.
#pragma once

#include "../tile/tile.cuh"

namespace pa {
namespace attn {

// What the tile configurations of the sm80 path share: the template parameters, the thread count
// and the shared-memory tile types.
template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kWarps_, int kStages_>
struct Sm80TileParams {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kWarps = kWarps_;
    static constexpr int kStages = kStages_;
    static constexpr int kThreads = kWarps * 32;

    // Shared tiles: one q tile, one k tile of K or V.
    using QTile = tile::Smem<T, kBlockQ, kHeadDim>;
    using KvTile = tile::Smem<T, kBlockK, kHeadDim>;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kStages >= 2, "at least double-buffered streaming of the other side's tiles");
};

// Warps own QUERY rows (the forward, dQ).
template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kWarps_, int kStages_>
struct TileConfig : Sm80TileParams<T_, kHeadDim_, kBlockQ_, kBlockK_, kWarps_, kStages_> {
    static constexpr int kRowsPerWarp = kBlockQ_ / kWarps_;

    static_assert(kRowsPerWarp % 16 == 0 && kRowsPerWarp * kWarps_ == kBlockQ_,
                  "each warp owns whole 16-row mma blocks of the q tile");
    static_assert(kBlockK_ % 16 == 0, "P V consumes keys 16 at a time");
};

}  // namespace attn
}  // namespace pa
