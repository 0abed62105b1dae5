// Tile configuration of the sm90a forward (fwd_sm90.cuh): element type, head dim, queries per q
// tile (block_q, 64 per consumer warpgroup), keys per k tile (block_k) and K/V pipeline stages, as
// template parameters; the registry row reports them to Rust.
//
// The forward is a K/V ring kernel of the sm90a toolkit (sm90_kit.cuh: Sm90KvRingConfig has the
// shared-memory layout) with one q-side tile, Q, which each consumer also uses for its own 64 rows
// to stage O. Threads: warpgroup 0 produces, warpgroups 1..kConsumers consume (Sm90RegSplit).
#pragma once

#include "sm90_kit.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_>
struct Sm90TileConfig : Sm90KvRingConfig<T_, kHeadDim_, kBlockQ_, kBlockK_, kStages_, 1> {
    using Ring = Sm90KvRingConfig<T_, kHeadDim_, kBlockQ_, kBlockK_, kStages_, 1>;
    static_assert(Ring::kConsumers == 2 || Ring::kConsumers == 3, "two or three consumer warpgroups of 64 query rows");
};

}  // namespace attn
}  // namespace pa
