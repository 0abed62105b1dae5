// Tile configuration of a kernel whose warps own KEY rows (the dK/dV backward): the same template
// parameters as TileConfig (element type, head dim, block_q, block_k, warps, stages), but each warp
// owns block_k / warps consecutive keys of the CTA's k tile, and the q tiles stream through the
// shared-memory stages. The plan's block lists are still at (block_q, block_k).
#pragma once

#include "../tile/tile.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kWarps_, int kStages_>
struct KeyTileConfig {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kWarps = kWarps_;
    static constexpr int kStages = kStages_;
    static constexpr int kThreads = kWarps * 32;
    static constexpr int kRowsPerWarp = kBlockK / kWarps;  // keys per warp

    using QTile = tile::Smem<T, kBlockQ, kHeadDim>;
    using KvTile = tile::Smem<T, kBlockK, kHeadDim>;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kRowsPerWarp % 16 == 0 && kRowsPerWarp * kWarps == kBlockK,
                  "each warp owns whole 16-row mma blocks of the k tile");
    static_assert(kBlockQ % 16 == 0, "P^T dO consumes queries 16 at a time");
    static_assert(kStages >= 2, "at least double-buffered Q/dO");
};

}  // namespace attn
}  // namespace pa
