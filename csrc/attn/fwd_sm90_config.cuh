// Tile configuration and shared-memory layout of the sm90a forward (fwd_sm90.cuh): element type,
// head dim, queries per q tile (block_q, 64 per consumer warpgroup), keys per k tile (block_k) and
// K/V pipeline stages, as template parameters; the registry row reports them to Rust.
//
// Threads: warpgroup 0 is the producer (one warp of it issues every load), warpgroups 1..kConsumers
// each own 64 query rows (the M of wgmma.m64nNk16). setmaxnreg moves registers from the producer to
// the consumers: the block starts with 65536 / kThreads per thread (the launch bounds say one CTA
// per SM), the producer drops to kProducerRegs and the consumers take what that frees.
//
// Shared memory, from a 1024-byte aligned base (SWIZZLE_128B tiles must start at a multiple of the
// pattern's repeat; dynamic shared memory is only 128-byte aligned, hence the extra 1 KiB):
//   Q        kPanels panels of block_q rows x 128 bytes (64 columns of the head dim each; one TMA box
//            per panel; row r of panel p holds columns 64p..64p+63 of query r, its 16-byte chunks
//            XOR-swizzled with r % 8). Reused by each consumer, for its own 64 rows, to stage O.
//   K, V     kStages stages each of kPanels panels of block_k rows x 128 bytes, laid out like Q.
//   vis_end  kStages x block_k int32: vis_end of the keys of the stage's k tile (0 past n), for the
//            per-element mask of PARTIAL tiles.
//   mbarriers  q_full, then per stage full_k, full_v, empty_k, empty_v (8 bytes each).
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_>
struct Sm90TileConfig {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kStages = kStages_;

    static constexpr int kConsumers = kBlockQ / 64;
    static constexpr int kThreads = 128 * (kConsumers + 1);
    static constexpr int kWarps = kThreads / 32;

    // Registers per thread after setmaxnreg: 65536 in all, in multiples of 8 per thread.
    static constexpr int kProducerRegs = 24;
    static constexpr int kConsumerRegs = ((65536 / 128 - kProducerRegs) / kConsumers) / 8 * 8 > 256
                                             ? 256
                                             : ((65536 / 128 - kProducerRegs) / kConsumers) / 8 * 8;

    // 128-byte panels: 64 columns of the head dim, one TMA box and one swizzle row each.
    static constexpr int kPanels = kHeadDim / 64;
    static constexpr int kQPanelBytes = kBlockQ * 128;
    static constexpr int kKvPanelBytes = kBlockK * 128;
    static constexpr int kQBytes = kPanels * kQPanelBytes;
    static constexpr int kKvBytes = kPanels * kKvPanelBytes;  // one K or V tile

    // Offsets from the aligned base.
    static constexpr int kQOffset = 0;
    static constexpr int kKOffset = kQOffset + kQBytes;
    static constexpr int kVOffset = kKOffset + kStages * kKvBytes;
    static constexpr int kVisOffset = kVOffset + kStages * kKvBytes;
    static constexpr int kBarOffset = kVisOffset + kStages * kBlockK * 4;
    static constexpr int kBarriers = 1 + 4 * kStages;
    static constexpr int kSmemBytes = 1024 + kBarOffset + 8 * kBarriers;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128 (whole 128-byte panels)");
    static_assert(kBlockQ % 64 == 0 && (kConsumers == 2 || kConsumers == 3),
                  "two or three consumer warpgroups of 64 query rows");
    static_assert(kBlockK % 16 == 0 && kBlockK <= 256, "wgmma N (S = Q K^T) is the k tile: 16..256");
    static_assert(kBlockK % 32 == 0, "the producer warp stages vis_end, block_k / 32 keys per lane");
    static_assert(kStages >= 2, "at least double-buffered K/V");
    static_assert(kKOffset % 1024 == 0 && kKvBytes % 1024 == 0, "swizzled tiles at 1024-byte multiples");
    static_assert(kBarOffset % 8 == 0, "mbarriers are 8-byte aligned");
    static_assert((kProducerRegs + kConsumers * kConsumerRegs) * 128 <= 65536, "the register file");
    static_assert(kSmemBytes <= 227 * 1024, "the sm_90 limit of dynamic shared memory per CTA");
};

}  // namespace attn
}  // namespace pa
