// Tile configuration of the sm90a dQ kernel (bwd_dq_sm90.cuh): element type, head dim, block_q of
// 64 query rows per consumer warpgroup, block_k, K/V stages. A K/V ring kernel of the sm90a
// toolkit (sm90_kit.cuh: Sm90KvRingConfig has the layout, the forward's) with two q-side tiles
// loaded once: Q (in whose rows each consumer stages its 64 rows of dQ at the end) and dO.
//
// Shared memory, from a 1024-byte aligned base:
//   Q, dO    kPanels panels of block_q rows x 128 bytes each.
//   K, V     kStages stages each, with vis_end: kStages x block_k int32.
//   mbarriers  q_full (Q and dO together), then per stage full_k, full_v, empty_k, empty_v.
#pragma once

#include "sm90_kit.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_>
struct Sm90DqTileConfig : Sm90KvRingConfig<T_, kHeadDim_, kBlockQ_, kBlockK_, kStages_, 2> {
    using Ring = Sm90KvRingConfig<T_, kHeadDim_, kBlockQ_, kBlockK_, kStages_, 2>;
    static constexpr int kDoOffset = Ring::kQOffset + Ring::kQBytes;
};

}  // namespace attn
}  // namespace pa
