// Backward dQ under the vis_end rule on the sm90a path (wgmma, TMA, mbarriers, setmaxnreg): what
// the sm80 dQ kernel (bwd_dq_sm80.cuh) computes, in the same order, warp-specialised like the
// sm90a forward (fwd_sm90.cuh), deterministic: one CTA per (row, q tile, q head) walks the plan's
// q-major list, every dQ element is summed by one warpgroup in ascending key order and written
// once, with no atomics.
//
// Warpgroup 0 produces: one warp of it loads Q and dO of the q tile once, then, for every list
// entry, the V tile and the K tile (with its keys' vis_end, as the forward) through TMA into the
// K/V ring of the sm90a toolkit, the forward's (sm90_kit.cuh: produce_k_stage, produce_v_stage).
// Warpgroups 1..kConsumers consume, 64 query rows each, per entry:
//
//   S   = Q K^T                                  wgmma_ss, both K-major
//   dP  = dO V^T                                 wgmma_ss, both K-major (same commit group)
//   P   = exp2(S * scale_log2 - lse_log2[q])     mask first on PARTIAL tiles (bwd_math.cuh)
//   dS  = P * (dP - D[q])
//   dQ += dS K                                   wgmma_rs, dS packed to T from registers, K MN-major
//
// then dQ * scale rounded to T, staged through Q's rows and written once. V's stage is released
// once dP has completed (its wait), K's once dQ's wgmma reading it has completed (the mask's
// vis_end rides with K). lse_log2 and D (two floats per lane, read once per CTA) come from the
// workspace by ordinary loads, as in the sm80 kernel: a TMA box would need two more tensor maps
// and a stage of shared memory to deliver 2 x 128 floats, and each consumer lane needs only its
// two rows' values in registers.
//
// Inside a consumer the entries do not overlap: S_{i+1} and dP_{i+1} (128 fp32 registers) beside
// dQ (head_dim / 2) and dS_i's fragments (block_k / 4) would exceed the 240 registers a consumer
// gets at head dim 128. The two consumers' work interleaves on the tensor cores without turns
// (their order is a tuning question for a device).
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "bwd_dq_sm90_config.cuh"
#include "bwd_math.cuh"
#include "mask.cuh"
#include "sm90_kit.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct Sm90DqSmem : Sm90KvRingSmem<Cfg> {
    PA_DEVICE explicit Sm90DqSmem(unsigned char* dyn) : Sm90KvRingSmem<Cfg>(dyn) {}
    PA_DEVICE unsigned char* d_o() const { return this->base + Cfg::kDoOffset; }
};

template <class Cfg>
struct BwdDqSm90 : TiledKernelSpec<PaAttnBwdDqSm90Params, Cfg, PA_ARCH_SM90A> {
    using Spec = TiledKernelSpec<PaAttnBwdDqSm90Params, Cfg, PA_ARCH_SM90A>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kStages;
    using Smem = Sm90DqSmem<Cfg>;
    static constexpr const char* kFamily = "attn_bwd_dq";
    static constexpr int kSmemBytes = Cfg::kSmemBytes;
    static constexpr int kConsumers = Cfg::kConsumers;
    // Named barrier of consumer c's epilogue (its 128 threads).
    static constexpr uint32_t kEpilogueBarrier = 1;

    PA_DEVICE static void run(const PaAttnBwdDqSm90Params& p) {
        const TileWork w = tile_work(p.base.q_major, p.base.qkv.q_heads);
        const Smem sm(dyn_smem<unsigned char>());
        run_warp_roles<BwdDqSm90, Cfg::kProducerRegs, Cfg::kConsumerRegs>(p, w, sm);
    }

    // ---- producer (one warp) ----
    PA_DEVICE static void produce(const PaAttnBwdDqSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int count = w.count;
        if (count == 0) return;  // the consumers write dQ = 0 without loading anything
        const bool leader = lane_id() == 0;
        const int32_t kv_head = w.head / a.kv_group;
        const int32_t q0 = w.tile * kBlockQ;
        if (leader) {
            sm90::tma_prefetch_map(&p.k_map);
            sm90::tma_prefetch_map(&p.v_map);
            sm.q_full()->arrive_expect_tx(2 * Cfg::kQBytes);
            PA_UNROLL
            for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
                sm90::tma_load_4d(sm.q() + pnl * Cfg::kQPanelBytes, &p.q_map, sm.q_full(), 64 * pnl, w.head, q0,
                                  w.row);
                sm90::tma_load_4d(sm.d_o() + pnl * Cfg::kQPanelBytes, &p.d_o_map, sm.q_full(), 64 * pnl, w.head,
                                  q0, w.row);
            }
        }
        const int32_t* row_vis_end = a.vis_end + (int64_t)w.row * a.n;
        // V_i then K_i: the consumers need both for S_i and dP_i, but release V's stage earlier
        // (after dP) than K's (after dQ), so V_i's refill must not queue behind K_i's wait.
        ListCursor walk(w);
        for (int i = 0; i < count; ++i) {
            const int32_t key0 = entry_tile(walk.entry(p.base.q_major, i)) * kBlockK;
            if (leader) produce_v_stage<Cfg>(sm, &p.v_map, i, key0, kv_head, w.row);
            produce_k_stage<Cfg>(sm, &p.k_map, i, key0, kv_head, w.row, row_vis_end, a.n, leader);
        }
        // No wait for the consumers' last releases: without clusters nothing else writes this CTA's
        // shared memory, and the CTA lives until its consumers finish.
    }

    // ---- consumers ----
    PA_DEVICE static void consume(const PaAttnBwdDqSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int wg = (int)(warp_id() / 4) - 1;
        const int rows0 = w.tile * kBlockQ + 64 * wg;            // the warpgroup's first query
        const int warp_rows0 = rows0 + 16 * (int)(warp_id() % 4);  // the warp's first query
        const int count = w.count;

        // The lane's two queries' lse_log2 and D (rows g and g + 8 of its warp); the workspace is
        // padded to whole q tiles.
        float lse_log2[1][2];
        float delta[1][2];
        {
            const tile::LaneCoords lc = tile::lane_coords();
            const PaAttnBwdStats& st = p.base.stats;
            const int64_t at = ((int64_t)w.row * a.q_heads + w.head) * st.n_pad + warp_rows0;
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                const int r = tile::c_row(lc.g, 2 * h);
                lse_log2[0][h] = st.lse_log2[at + r];
                delta[0][h] = st.delta[at + r];
            }
        }

        sm90::WgAcc<kHeadDim> dq;
        PA_UNROLL
        for (int i = 0; i < kHeadDim / 2; ++i) dq[i] = 0.f;

        if (count > 0) sm.q_full()->wait(0);
        ListCursor walk(w);
        for (int i = 0; i < count; ++i) {
            const RingSlot sl = ring_slot<kStages>(i);
            const int entry = walk.entry(p.base.q_major, i);
            sm90::WgAcc<kBlockK> s;
            sm90::WgAcc<kBlockK> dp;
            sm.full_k(sl.stage)->wait(sl.parity);
            sm.full_v(sl.stage)->wait(sl.parity);
            sm90::wgmma_fence();
            issue_abt<Cfg>(s, sm.q() + wg * 64 * 128, Cfg::kQPanelBytes, sm.k(sl.stage));
            issue_abt<Cfg>(dp, sm.d_o() + wg * 64 * 128, Cfg::kQPanelBytes, sm.v(sl.stage));
            sm90::wgmma_commit();
            sm90::wgmma_wait<0>();
            sm90::fence_operands(s, dp);
            sm.empty_v(sl.stage)->arrive();  // dP has completed: V is read by nothing else

            if (entry_partial(entry)) {
                const int32_t* tile_vis_end = sm.vis(sl.stage);  // zero past the row
                apply_partial_mask(s, warp_rows0, entry_tile(entry) * kBlockK, a.n,
                                   [&](int c) { return tile_vis_end[c]; });
            }
            probs_by_rows(s, lse_log2, a.scale_log2);
            dscores_by_rows(dp, s, delta);
            sm90::WgFragA ds[kBlockK / 16];
            PA_UNROLL
            for (int kb = 0; kb < kBlockK / 16; ++kb) sm90::frag_a_from_acc<T>(ds[kb], dp, kb);

            sm90::wgmma_fence();
            issue_ab_mn<Cfg>(dq, ds, sm.k(sl.stage));
            sm90::wgmma_commit();
            sm90::wgmma_wait<0>();
            sm90::fence_operands(dq);
            PA_UNROLL
            for (int kb = 0; kb < kBlockK / 16; ++kb) sm90::fence_operands(ds[kb]);
            sm.empty_k(sl.stage)->arrive();  // dQ's wgmma, the last reader of K and vis_end, completed
        }

        const float scale[2] = {a.scale, a.scale};
        store_rows_swizzled<T, kHeadDim, Cfg::kQPanelBytes>(head_ptr<T>(p.base.dq, w.row, w.head),
                                                            p.base.dq.stride.token, a.n, sm.q() + wg * 64 * 128, dq,
                                                            scale, rows0, kEpilogueBarrier + wg);
    }
};

}  // namespace attn
}  // namespace pa
