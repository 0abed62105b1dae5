// Tile configuration of a kernel whose warps own KEY rows (the dK/dV backward): the same template
// parameters as TileConfig (element type, head dim, block_q, block_k, warps, stages), but each warp
// owns block_k / warps consecutive keys of the CTA's k tile, and the q tiles stream through the
// shared-memory stages. The plan's block lists are still at (block_q, block_k).
#pragma once

#include "config.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kWarps_, int kStages_>
struct KeyTileConfig : Sm80TileParams<T_, kHeadDim_, kBlockQ_, kBlockK_, kWarps_, kStages_> {
    static constexpr int kRowsPerWarp = kBlockK_ / kWarps_;  // keys per warp

    static_assert(kRowsPerWarp % 16 == 0 && kRowsPerWarp * kWarps_ == kBlockK_,
                  "each warp owns whole 16-row mma blocks of the k tile");
    static_assert(kBlockQ_ % 16 == 0, "P^T dO consumes queries 16 at a time");
};

}  // namespace attn
}  // namespace pa
