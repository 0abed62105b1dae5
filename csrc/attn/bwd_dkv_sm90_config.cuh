// Tile configuration and shared-memory layout of the sm90a dK/dV kernel (bwd_dkv_sm90.cuh):
// element type, head dim, queries per ring stage (block_q: the N of S^T = K Q^T and the K of
// dV += P^T dO), keys per CTA (block_k: 64 per consumer warpgroup, the M of wgmma.m64nNk16) and
// ring stages. The plan's block lists are at (block_q, block_k), as for the sm80 dK/dV kernel.
//
// Threads: warpgroup 0 is the producer (one warp of it issues every load), warpgroups
// 1..kConsumers each own 64 keys; setmaxnreg moves registers to the consumers (Sm90RegSplit of the
// sm90a toolkit, sm90_kit.cuh).
//
// Shared memory, from a 1024-byte aligned base (SWIZZLE_128B tiles at multiples of 1024 bytes):
//   K, V      kPanels panels of block_k rows x 128 bytes each, loaded once; each consumer stages
//             its 64 rows of dK (in K's rows) and dV (in V's) at the end.
//   stages    kStages x (Q, dO: kPanels panels of block_q rows x 128 bytes each), the stage's q
//             tile of one q head.
//   stats     kStages x (lse_log2, D: block_q fp32 each) of the stage's queries.
//   vis_end   block_k int32: vis_end of the CTA's keys (0 past n), for the PARTIAL tiles' mask.
//   mbarriers kv_full (K, V and vis_end), then per stage full (Q, dO, stats) and empty.
#pragma once

#include "sm90_kit.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_>
struct Sm90DkvTileConfig : Sm90RegSplit<kBlockK_ / 64> {
    using Regs = Sm90RegSplit<kBlockK_ / 64>;
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kStages = kStages_;

    static constexpr int kPanels = kHeadDim / 64;
    static constexpr int kQPanelBytes = kBlockQ * 128;
    static constexpr int kKvPanelBytes = kBlockK * 128;
    static constexpr int kQBytes = kPanels * kQPanelBytes;  // one Q or dO tile
    static constexpr int kKvBytes = kPanels * kKvPanelBytes;  // the K or the V tile

    static constexpr int kKOffset = 0;
    static constexpr int kVOffset = kKOffset + kKvBytes;
    static constexpr int kStageOffset = kVOffset + kKvBytes;
    static constexpr int kStageBytes = 2 * kQBytes;  // Q, then dO
    static constexpr int kStatsOffset = kStageOffset + kStages * kStageBytes;
    static constexpr int kStatsBytes = 2 * kBlockQ * 4;  // lse_log2, then D
    static constexpr int kVisOffset = kStatsOffset + kStages * kStatsBytes;
    static constexpr int kBarOffset = kVisOffset + kBlockK * 4;
    static constexpr int kBarriers = 1 + 2 * kStages;
    static constexpr int kSmemBytes = 1024 + kBarOffset + 8 * kBarriers;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128 (whole 128-byte panels)");
    static_assert(kBlockK % 64 == 0 && (Regs::kConsumers == 1 || Regs::kConsumers == 2), "one or two consumers of 64 keys");
    static_assert(kBlockQ % 32 == 0 && kBlockQ <= 256, "wgmma N (S^T = K Q^T) is the q tile; 32 queries per lane step");
    static_assert(kStages >= 2, "at least double-buffered Q/dO");
    static_assert(kStageOffset % 1024 == 0 && kQBytes % 1024 == 0, "swizzled tiles at 1024-byte multiples");
    static_assert(kBarOffset % 8 == 0, "mbarriers are 8-byte aligned");
    static_assert(kSmemBytes <= 227 * 1024, "the sm_90 limit of dynamic shared memory per CTA");
};

}  // namespace attn
}  // namespace pa
