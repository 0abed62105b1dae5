// Tile configuration and shared-memory layout of the sm90a dQ kernel (bwd_dq_sm90.cuh): the
// forward's (fwd_sm90_config.cuh: element type, head dim, block_q of 64 query rows per consumer
// warpgroup, block_k, K/V stages, threads, setmaxnreg budgets, 128-byte panels) with one more
// q-side tile, dO, loaded once next to Q. The names Sm90FwdSmem (fwd_sm90_smem.cuh) reads are the
// forward configuration's, so the ring, its barriers and the GEMM issues are shared.
//
// Shared memory, from a 1024-byte aligned base:
//   Q, dO    kPanels panels of block_q rows x 128 bytes each (as the forward's Q); each consumer
//            stages its 64 rows of dQ in Q's rows at the end.
//   K, V     kStages stages each, as the forward's.
//   vis_end  kStages x block_k int32, as the forward's.
//   mbarriers  q_full (Q and dO together), then per stage full_k, full_v, empty_k, empty_v.
#pragma once

#include "fwd_sm90_config.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_>
struct Sm90DqTileConfig {
    using Fwd = Sm90TileConfig<T_, kHeadDim_, kBlockQ_, kBlockK_, kStages_>;
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kStages = kStages_;
    static constexpr int kConsumers = Fwd::kConsumers;
    static constexpr int kThreads = Fwd::kThreads;
    static constexpr int kWarps = Fwd::kWarps;
    static constexpr int kProducerRegs = Fwd::kProducerRegs;
    static constexpr int kConsumerRegs = Fwd::kConsumerRegs;
    static constexpr int kPanels = Fwd::kPanels;
    static constexpr int kQPanelBytes = Fwd::kQPanelBytes;
    static constexpr int kKvPanelBytes = Fwd::kKvPanelBytes;
    static constexpr int kQBytes = Fwd::kQBytes;
    static constexpr int kKvBytes = Fwd::kKvBytes;

    static constexpr int kQOffset = 0;
    static constexpr int kDoOffset = kQOffset + kQBytes;
    static constexpr int kKOffset = kDoOffset + kQBytes;
    static constexpr int kVOffset = kKOffset + kStages * kKvBytes;
    static constexpr int kVisOffset = kVOffset + kStages * kKvBytes;
    static constexpr int kBarOffset = kVisOffset + kStages * kBlockK * 4;
    static constexpr int kBarriers = 1 + 4 * kStages;
    static constexpr int kSmemBytes = 1024 + kBarOffset + 8 * kBarriers;

    static_assert(kBlockK <= 256, "wgmma N (S = Q K^T, dP = dO V^T) is the k tile");
    static_assert(kDoOffset % 1024 == 0 && kKOffset % 1024 == 0, "swizzled tiles at 1024-byte multiples");
    static_assert(kBarOffset % 8 == 0, "mbarriers are 8-byte aligned");
    static_assert(kSmemBytes <= 227 * 1024, "the sm_90 limit of dynamic shared memory per CTA");
};

}  // namespace attn
}  // namespace pa
