// The sm90a toolkit: the pieces every sm90a attention kernel (forward fwd_sm90.cuh, dQ
// bwd_dq_sm90.cuh, dK/dV bwd_dkv_sm90.cuh) is built from, in one place so that no kernel reaches
// into another's file:
//
//   Sm90RegSplit        the CTA's warpgroups and the setmaxnreg budgets (producer / consumers)
//   run_warp_roles      the opening: barrier init, the role split, setmaxnreg per role
//   issue_*             the wgmma issues on 128-byte swizzled panels (A B^T K-major, A B MN-major)
//   RingSlot            where entry i of a walk sits in a ring of stages, and its barrier parity
//   Sm90KvRingConfig    the layout of the K/V ring kernels (forward, dQ): q-side tiles loaded once,
//   Sm90KvRingSmem        then kStages stages of K and V with their keys' vis_end, then mbarriers
//   produce_k_stage     the producer's steps on that ring (TMA boxes, vis_end staged by a warp)
//   produce_v_stage
//   store_rows_swizzled the epilogue: a consumer's accumulator, scaled and rounded, through its
//                       own rows of a swizzled tile to global memory with 16-byte stores
//
// The dK/dV kernel has its own layout (K and V once, a Q/dO ring) and uses the register split,
// the roles, the issues, RingSlot and the epilogue.
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"

namespace pa {
namespace attn {

// ---- warpgroups and registers ----

// One producer warpgroup (one warp of it issues every load) and kConsumers consumer warpgroups.
// setmaxnreg moves registers from the producer to the consumers: the block starts with
// 65536 / kThreads per thread (the launch bounds say one CTA per SM), the producer drops to
// kProducerRegs and the consumers take what that frees, in multiples of 8, at most 256.
template <int kConsumers_>
struct Sm90RegSplit {
    static constexpr int kConsumers = kConsumers_;
    static constexpr int kThreads = 128 * (kConsumers + 1);
    static constexpr int kWarps = kThreads / 32;
    static constexpr int kProducerRegs = 24;
    static constexpr int kConsumerRegs = ((65536 / 128 - kProducerRegs) / kConsumers) / 8 * 8 > 256
                                             ? 256
                                             : ((65536 / 128 - kProducerRegs) / kConsumers) / 8 * 8;
    static_assert((kProducerRegs + kConsumers * kConsumerRegs) * 128 <= 65536, "the register file");
};

// The opening every sm90a kernel shares: thread 0 initialises the layout's mbarriers, then the
// CTA splits by warpgroup. Warpgroup 0 gives registers back and its warp 0 runs
// `Kernel::produce`; the others take them and run `Kernel::consume`. setmaxnreg sits in one branch
// per role so that ptxas, with this inlined into the kernel, knows each side's register budget.
template <class Kernel, int kProducerRegs, int kConsumerRegs, class Params, class Work, class Smem>
PA_DEVICE void run_warp_roles(const Params& p, const Work& w, const Smem& sm) {
    if (thread_linear() == 0) {
        sm.init_barriers();
        sm90::fence_mbarrier_init();
    }
    sync_threads();
    if (warp_id() < 4) {
        sm90::setmaxnreg_dec<kProducerRegs>();
        if (warp_id() == 0) Kernel::produce(p, w, sm);
    } else {
        sm90::setmaxnreg_inc<kConsumerRegs>();
        Kernel::consume(p, w, sm);
    }
}

// ---- wgmma issues ----

// acc = A B^T for one consumer: A its 64 rows of a tile (`a`: the warpgroup's first row of panel
// 0; panels `a_panel_bytes` apart), B an N-row tile (`b`, panels `b_panel_bytes` apart), head_dim
// / 16 chained k-steps, both operands K-major in 128-byte swizzled panels. Step j reads columns
// 16j..16j+15: panel j / 4, 32 bytes per step into each row (the swizzle is taken from the address
// bits, so the offset composes with it). The forward's S = Q K^T, the dQ kernel's dP = dO V^T, the
// dK/dV kernel's S^T = K Q^T and dP^T = V dO^T.
template <typename T, int kHeadDim, int N>
PA_DEVICE void issue_abt_panels(sm90::WgAcc<N>& acc, const unsigned char* a, int a_panel_bytes, const unsigned char* b,
                                int b_panel_bytes) {
    PA_UNROLL
    for (int j = 0; j < kHeadDim / 16; ++j) {
        const uint64_t da = sm90::make_smem_desc(a + (j / 4) * a_panel_bytes + (j % 4) * 32, sm90::Swizzle::B128, 16, 1024);
        const uint64_t db = sm90::make_smem_desc(b + (j / 4) * b_panel_bytes + (j % 4) * 32, sm90::Swizzle::B128, 16, 1024);
        sm90::wgmma_ss<N, T, sm90::Major::K, sm90::Major::K>(acc, da, db, j > 0);
    }
}

// acc += A B with A from registers (one fragment per 16 rows of B: P or dS by keys, P^T or dS^T
// by queries) and B a kK-row tile (`b`) read MN-major: step kb reads B's rows 16kb..16kb+15,
// i.e. rows 16kb.. of every panel (LBO: from one panel of 64 head columns to the next,
// `b_panel_bytes`; SBO: 8 rows of 128 bytes). Rows in ascending order, one k-step each.
template <typename T, int N, int kK>
PA_DEVICE void issue_ab_mn_panels(sm90::WgAcc<N>& acc, const sm90::WgFragA (&a)[kK / 16], const unsigned char* b,
                                  int b_panel_bytes) {
    PA_UNROLL
    for (int kb = 0; kb < kK / 16; ++kb) {
        const uint64_t db = sm90::make_smem_desc(b + kb * 16 * 128, sm90::Swizzle::B128, b_panel_bytes, 1024);
        sm90::wgmma_rs<N, T, sm90::Major::MN>(acc, a[kb], db, true);
    }
}

// issue_abt_panels with B a k tile of a K/V ring (block_k rows).
template <class Cfg>
PA_DEVICE void issue_abt(sm90::WgAcc<Cfg::kBlockK>& acc, const unsigned char* a, int a_panel_bytes,
                         const unsigned char* b) {
    issue_abt_panels<typename Cfg::T, Cfg::kHeadDim, Cfg::kBlockK>(acc, a, a_panel_bytes, b, Cfg::kKvPanelBytes);
}

// issue_ab_mn_panels with B a k tile of a K/V ring (`b`: V, or the dQ kernel's K).
template <class Cfg>
PA_DEVICE void issue_ab_mn(sm90::WgAcc<Cfg::kHeadDim>& acc, const sm90::WgFragA (&a)[Cfg::kBlockK / 16],
                           const unsigned char* b) {
    issue_ab_mn_panels<typename Cfg::T, Cfg::kHeadDim, Cfg::kBlockK>(acc, a, b, Cfg::kKvPanelBytes);
}

// ---- rings ----

// Entry i of a walk sits in ring stage i % kStages; the stage's barriers complete one phase per
// round i / kStages, so the consumers wait for parity round & 1 and the producer, refilling, for
// the release of the round before (parity (round & 1) ^ 1: round 0 passes, a fresh barrier
// counting as having completed phase -1).
struct RingSlot {
    int stage;
    uint32_t parity;
};

template <int kStages>
PA_DEVICE RingSlot ring_slot(int i) {
    return RingSlot{i % kStages, static_cast<uint32_t>((i / kStages) & 1)};
}

// The layout of a K/V ring kernel: element type, head dim, queries per q tile (block_q, 64 per
// consumer warpgroup), keys per k tile (block_k), stages, and kQTiles q-side tiles loaded once
// (the forward: Q; the dQ kernel: Q and dO).
//
// Shared memory, from a 1024-byte aligned base (SWIZZLE_128B tiles must start at a multiple of the
// pattern's repeat; dynamic shared memory is only 128-byte aligned, hence the extra 1 KiB):
//   q-side   kQTiles tiles of kPanels panels of block_q rows x 128 bytes (64 columns of the head
//            dim each; one TMA box per panel; row r of panel p holds columns 64p..64p+63 of query
//            r, its 16-byte chunks XOR-swizzled with r % 8). Tile 0 (Q) is reused by each
//            consumer, for its own 64 rows, to stage the output.
//   K, V     kStages stages each of kPanels panels of block_k rows x 128 bytes, laid out alike.
//   vis_end  kStages x block_k int32: vis_end of the keys of the stage's k tile (0 past n), for the
//            per-element mask of PARTIAL tiles.
//   mbarriers  q_full, then per stage full_k, full_v, empty_k, empty_v (8 bytes each).
template <typename T_, int kHeadDim_, int kBlockQ_, int kBlockK_, int kStages_, int kQTiles_>
struct Sm90KvRingConfig : Sm90RegSplit<kBlockQ_ / 64> {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = kBlockQ_;
    static constexpr int kBlockK = kBlockK_;
    static constexpr int kStages = kStages_;
    static constexpr int kQTiles = kQTiles_;

    // 128-byte panels: 64 columns of the head dim, one TMA box and one swizzle row each.
    static constexpr int kPanels = kHeadDim / 64;
    static constexpr int kQPanelBytes = kBlockQ * 128;
    static constexpr int kKvPanelBytes = kBlockK * 128;
    static constexpr int kQBytes = kPanels * kQPanelBytes;    // one q-side tile
    static constexpr int kKvBytes = kPanels * kKvPanelBytes;  // one K or V tile

    // Offsets from the aligned base.
    static constexpr int kQOffset = 0;
    static constexpr int kKOffset = kQOffset + kQTiles * kQBytes;
    static constexpr int kVOffset = kKOffset + kStages * kKvBytes;
    static constexpr int kVisOffset = kVOffset + kStages * kKvBytes;
    static constexpr int kBarOffset = kVisOffset + kStages * kBlockK * 4;
    static constexpr int kBarriers = 1 + 4 * kStages;
    static constexpr int kSmemBytes = 1024 + kBarOffset + 8 * kBarriers;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128 (whole 128-byte panels)");
    static_assert(kBlockQ % 64 == 0, "64 query rows per consumer warpgroup");
    static_assert(kBlockK % 32 == 0 && kBlockK <= 256,
                  "wgmma N (S = Q K^T) is the k tile, at most 256; the producer warp stages vis_end, "
                  "block_k / 32 keys per lane");
    static_assert(kStages >= 2, "at least double-buffered K/V");
    static_assert(kQBytes % 1024 == 0 && kKOffset % 1024 == 0 && kKvBytes % 1024 == 0,
                  "swizzled tiles at 1024-byte multiples");
    static_assert(kBarOffset % 8 == 0, "mbarriers are 8-byte aligned");
    static_assert(kSmemBytes <= 227 * 1024, "the sm_90 limit of dynamic shared memory per CTA");
};

// Where a K/V ring kernel's tiles and mbarriers are (Cfg: an Sm90KvRingConfig).
template <class Cfg>
struct Sm90KvRingSmem {
    unsigned char* base;  // 1024-byte aligned

    PA_DEVICE explicit Sm90KvRingSmem(unsigned char* dyn) : base(sm90::smem_align_up<1024>(dyn)) {}

    // q-side tile t (0: Q).
    PA_DEVICE unsigned char* q(int t = 0) const { return base + Cfg::kQOffset + t * Cfg::kQBytes; }
    PA_DEVICE unsigned char* k(int stage) const { return base + Cfg::kKOffset + stage * Cfg::kKvBytes; }
    PA_DEVICE unsigned char* v(int stage) const { return base + Cfg::kVOffset + stage * Cfg::kKvBytes; }
    PA_DEVICE int32_t* vis(int stage) const {
        return reinterpret_cast<int32_t*>(base + Cfg::kVisOffset) + stage * Cfg::kBlockK;
    }

    PA_DEVICE sm90::Mbarrier* bar(int i) const {
        return reinterpret_cast<sm90::Mbarrier*>(base + Cfg::kBarOffset) + i;
    }
    // The q-side tiles have landed (one arrival, the producer's, plus their bytes).
    PA_DEVICE sm90::Mbarrier* q_full() const { return bar(0); }
    // The stage's K tile and its vis_end have landed (32 arrivals: every producer lane stages
    // vis_end; plus K's bytes).
    PA_DEVICE sm90::Mbarrier* full_k(int stage) const { return bar(1 + stage); }
    // The stage's V tile has landed (one arrival plus V's bytes).
    PA_DEVICE sm90::Mbarrier* full_v(int stage) const { return bar(1 + Cfg::kStages + stage); }
    // Every consumer thread is done with the stage's K tile and vis_end / with its V tile:
    // kConsumers * 128 arrivals each.
    PA_DEVICE sm90::Mbarrier* empty_k(int stage) const { return bar(1 + 2 * Cfg::kStages + stage); }
    PA_DEVICE sm90::Mbarrier* empty_v(int stage) const { return bar(1 + 3 * Cfg::kStages + stage); }

    // Run by one thread before the block splits into roles (then fence_mbarrier_init and a
    // barrier publish them).
    PA_DEVICE void init_barriers() const {
        q_full()->init(1);
        for (int s = 0; s < Cfg::kStages; ++s) {
            full_k(s)->init(32);
            full_v(s)->init(1);
            empty_k(s)->init(Cfg::kConsumers * 128);
            empty_v(s)->init(Cfg::kConsumers * 128);
        }
    }
};

// ---- producer steps on a K/V ring (one warp; `leader` is its lane 0) ----

// Entry i's K tile (keys key0..) and its keys' vis_end into ring stage i % kStages, once every
// consumer released the stage's previous tile: the warp's 32 lanes stage vis_end (0 past n) and
// each lane's arrive on full_k releases its stores to the consumers' wait; the leader also
// expects K's bytes and issues the TMA boxes, one per 64-column panel.
template <class Cfg, class Smem>
PA_DEVICE void produce_k_stage(const Smem& sm, const PaTensorMap* k_map, int i, int32_t key0, int32_t kv_head,
                               int32_t row, const int32_t* row_vis_end, int32_t n, bool leader) {
    const RingSlot sl = ring_slot<Cfg::kStages>(i);
    sm.empty_k(sl.stage)->wait(sl.parity ^ 1u);
    int32_t* vis = sm.vis(sl.stage);
    PA_UNROLL
    for (int r = 0; r < Cfg::kBlockK / 32; ++r) {
        const int c = 32 * r + (int)lane_id();
        vis[c] = key0 + c < n ? row_vis_end[key0 + c] : 0;
    }
    if (leader) {
        sm.full_k(sl.stage)->arrive_expect_tx(Cfg::kKvBytes);
        PA_UNROLL
        for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
            sm90::tma_load_4d(sm.k(sl.stage) + pnl * Cfg::kKvPanelBytes, k_map, sm.full_k(sl.stage), 64 * pnl,
                              kv_head, key0, row);
        }
    } else {
        sm.full_k(sl.stage)->arrive();
    }
}

// Entry i's V tile into its stage, once the consumers released the stage's previous V (leader only).
template <class Cfg, class Smem>
PA_DEVICE void produce_v_stage(const Smem& sm, const PaTensorMap* v_map, int i, int32_t key0, int32_t kv_head,
                               int32_t row) {
    const RingSlot sl = ring_slot<Cfg::kStages>(i);
    sm.empty_v(sl.stage)->wait(sl.parity ^ 1u);
    sm.full_v(sl.stage)->arrive_expect_tx(Cfg::kKvBytes);
    PA_UNROLL
    for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
        sm90::tma_load_4d(sm.v(sl.stage) + pnl * Cfg::kKvPanelBytes, v_map, sm.full_v(sl.stage), 64 * pnl,
                          kv_head, key0, row);
    }
}

// ---- epilogue ----

// A consumer's 64 x head_dim accumulator times a per-row factor (row h of the lane: row_scale[h]),
// rounded to T, to rows rows0.. of one head of a strided view: staged in `tile` (the warpgroup's
// own 64 rows of a tile whose panels are kPanelBytes apart, same swizzle, so the 4-byte stores of a
// warp hit 32 distinct banks), then written with 16-byte stores, rows at or beyond n skipped.
// `barrier`: a named barrier of the warpgroup's 128 threads alone. Every wgmma reading `tile`
// must have completed (its wait_group) before the call.
template <typename T, int kHeadDim, int kPanelBytes>
PA_DEVICE void store_rows_swizzled(T* head, int64_t token_stride, int32_t n, unsigned char* tile,
                                   const sm90::WgAcc<kHeadDim>& acc, const float (&row_scale)[2], int rows0,
                                   uint32_t barrier) {
    // Order the async proxy's accesses of these bytes (wgmma reads, TMA writes) before this
    // thread's ordinary stores.
    sm90::fence_proxy_async_smem();
    const tile::LaneCoords lc = tile::lane_coords();
    PA_UNROLL
    for (int h = 0; h < 2; ++h) {
        const int r = 16 * (int)(warp_id() % 4) + lc.g + 8 * h;
        PA_UNROLL
        for (int c = 0; c < kHeadDim / 8; ++c) {
            const uint32_t packed = pack2<T>(acc[4 * c + 2 * h] * row_scale[h], acc[4 * c + 2 * h + 1] * row_scale[h]);
            const int at = (c / 8) * kPanelBytes + r * 128 + (((c % 8) ^ (r % 8)) << 4) + 4 * lc.t;
            *reinterpret_cast<uint32_t*>(tile + at) = packed;
        }
    }
    sm90::named_barrier_sync(barrier, 128);
    constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
    const int t = (int)(thread_linear() % 128);
    PA_UNROLL
    for (int it = 0; it < 64 * kChunks / 128; ++it) {
        const int idx = t + 128 * it;
        const int r = idx / kChunks;
        const int ch = idx % kChunks;
        if (rows0 + r < n) {
            const int at = (ch / 8) * kPanelBytes + r * 128 + (((ch % 8) ^ (r % 8)) << 4);
            *reinterpret_cast<u32x4*>(head + (int64_t)(rows0 + r) * token_stride + ch * 8) =
                *reinterpret_cast<const u32x4*>(tile + at);
        }
    }
}

}  // namespace attn
}  // namespace pa
