// Forward attention under the vis_end rule on the sm90a path (wgmma, TMA, mbarriers, setmaxnreg):
// the same outputs and arithmetic as the sm80 forward (fwd_sm80.cuh), warp-specialised.
//
// One CTA per (row, q tile, q head), heaviest q tiles first (tile_work), walking only the k tiles
// its q-major list names: FULL tiles without the per-element mask, PARTIAL tiles with it, EMPTY
// tiles never loaded. Warpgroup 0 produces: one warp of it loads Q once and then, for every list
// entry, the K tile (with the keys' vis_end, staged by its 32 lanes) and the V tile through TMA into
// a ring of kStages stages (the K/V ring of the sm90a toolkit, sm90_kit.cuh), full/empty mbarriers
// per stage and per operand.
// Warpgroups 1..kConsumers consume, 64 query rows each: S = Q K^T (wgmma, both operands in shared
// memory), the online softmax in fp32 on the accumulator (softmax.cuh, the sm80 path's arithmetic
// in the same order), O += P V (wgmma, P from registers).
//
// Overlap. Inside a consumer, the GEMMs of list entry i are S_i and P_{i-1} V_{i-1}, issued
// together: the softmax of S_i runs while P_{i-1} V_{i-1} is still on the tensor cores, and O is
// rescaled for S_i's new max only after that product completed (so O meets the same sequence of
// rescales and additions as on the sm80 path). Across consumers, the GEMM issues take turns
// (named barriers 1..kConsumers, round robin): while one warpgroup runs its softmax the next one's
// GEMMs occupy the tensor cores. The producer issues K_i before V_{i-1}, the order the consumers
// need them in.
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "fwd_sm90_config.cuh"
#include "mask.cuh"
#include "sm90_kit.cuh"
#include "softmax.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct FwdSm90 : TiledKernelSpec<PaAttnFwdSm90Params, Cfg, PA_ARCH_SM90A> {
    using Spec = TiledKernelSpec<PaAttnFwdSm90Params, Cfg, PA_ARCH_SM90A>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kWarps, Spec::kStages, Spec::kThreads;
    using Smem = Sm90KvRingSmem<Cfg>;
    static constexpr const char* kFamily = "attn_fwd";
    static constexpr int kSmemBytes = Cfg::kSmemBytes;
    static constexpr int kConsumers = Cfg::kConsumers;
    // Named barriers: consumer c's turn to issue GEMMs (its own 128 threads wait, the previous
    // consumer's 128 arrive), and its epilogue (its 128 threads).
    static constexpr uint32_t kTurnBarrier = 1;
    static constexpr uint32_t kEpilogueBarrier = 1 + kConsumers;

    PA_DEVICE static void run(const PaAttnFwdSm90Params& p) {
        const TileWork w = tile_work(p.base.q_major, p.base.qkv.q_heads);
        const Smem sm(dyn_smem<unsigned char>());
        run_warp_roles<FwdSm90, Cfg::kProducerRegs, Cfg::kConsumerRegs>(p, w, sm);
    }

    // ---- producer (one warp) ----
    PA_DEVICE static void produce(const PaAttnFwdSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int count = w.count;
        if (count == 0) return;  // the consumers write O = 0, LSE = -inf without loading anything
        const bool leader = lane_id() == 0;
        const int32_t kv_head = w.head / a.kv_group;
        const int32_t q0 = w.tile * kBlockQ;
        if (leader) {
            sm90::tma_prefetch_map(&p.k_map);
            sm90::tma_prefetch_map(&p.v_map);
            sm.q_full()->arrive_expect_tx(Cfg::kQBytes);
            PA_UNROLL
            for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
                sm90::tma_load_4d(sm.q() + pnl * Cfg::kQPanelBytes, &p.q_map, sm.q_full(), 64 * pnl, w.head, q0,
                                  w.row);
            }
        }
        const int32_t* row_vis_end = a.vis_end + (int64_t)w.row * a.n;
        ListCursor walk(w);
        int32_t prev_key0 = 0;  // entry i - 1's first key
        for (int i = 0; i <= count; ++i) {
            // K_i and its keys' vis_end, once every consumer is done with the stage's last tile.
            int32_t key0 = 0;
            if (i < count) {
                key0 = entry_tile(walk.entry(p.base.q_major, i)) * kBlockK;
                produce_k_stage<Cfg>(sm, &p.k_map, i, key0, kv_head, w.row, row_vis_end, a.n, leader);
            }
            // V_{i-1}: the consumers need it after S_i.
            if (i > 0 && leader) produce_v_stage<Cfg>(sm, &p.v_map, i - 1, prev_key0, kv_head, w.row);
            prev_key0 = key0;
        }
        // No wait for the consumers' last releases: without clusters nothing else writes this CTA's
        // shared memory, and the CTA lives until its consumers finish.
    }

    // ---- consumers ----
    // The GEMM issues of the consumers take turns in round robin: consumer wg waits for its turn
    // before issuing and hands the turn on after.
    PA_DEVICE static void wait_turn(int wg) { sm90::named_barrier_sync(kTurnBarrier + wg, 256); }
    PA_DEVICE static void pass_turn(int wg) {
        sm90::named_barrier_arrive(kTurnBarrier + (wg + 1 == kConsumers ? 0 : wg + 1), 256);
    }

    // S = Q K^T for consumer `wg` (its 64 query rows) against the stage's K tile.
    PA_DEVICE static void issue_s(sm90::WgAcc<kBlockK>& s, const Smem& sm, int wg, int stage) {
        issue_abt<Cfg>(s, sm.q() + wg * 64 * 128, Cfg::kQPanelBytes, sm.k(stage));
    }

    // O += P V with P from registers (one A fragment per 16 keys) and V as an MN-major B.
    PA_DEVICE static void issue_pv(sm90::WgAcc<kHeadDim>& o, const sm90::WgFragA (&pf)[kBlockK / 16], const Smem& sm,
                                   int stage) {
        issue_ab_mn<Cfg>(o, pf, sm.v(stage));
    }

    PA_DEVICE static void consume(const PaAttnFwdSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int wg = (int)(warp_id() / 4) - 1;
        const int rows0 = w.tile * kBlockQ + 64 * wg;            // the warpgroup's first query
        const int warp_rows0 = rows0 + 16 * (int)(warp_id() % 4);  // the warp's first query
        const int count = w.count;

        sm90::WgAcc<kHeadDim> o;
        PA_UNROLL
        for (int i = 0; i < kHeadDim / 2; ++i) o[i] = 0.f;
        sm90::WgAcc<kBlockK> s;
        sm90::WgFragA pf[kBlockK / 16];
        OnlineSoftmax<1> softmax;
        softmax.init();
        float alpha[1][2];

        // S_i (waited on) masked if PARTIAL, turned into probabilities; K_i's stage released.
        ListCursor walk(w);
        const auto softmax_tile = [&](int i) {
            const RingSlot sl = ring_slot<kStages>(i);
            const int entry = walk.entry(p.base.q_major, i);
            if (entry_partial(entry)) {
                const int32_t* tile_vis_end = sm.vis(sl.stage);  // zero past the row
                apply_partial_mask(s, warp_rows0, entry_tile(entry) * kBlockK, a.n,
                                   [&](int c) { return tile_vis_end[c]; });
            }
            softmax.scores(s, alpha, a.scale_log2);
            sm.empty_k(sl.stage)->arrive();
        };
        // P_{i} as the A fragments of its P V (after P_{i-1} V_{i-1} completed).
        const auto to_p = [&]() {
            PA_UNROLL
            for (int kb = 0; kb < kBlockK / 16; ++kb) sm90::frag_a_from_acc<T>(pf[kb], s, kb);
        };
        // P_{i-1} V_{i-1} has completed: its registers are ours again, its V stage is released.
        const auto pv_done = [&](int i) {
            sm90::fence_operands(o);
            PA_UNROLL
            for (int kb = 0; kb < kBlockK / 16; ++kb) sm90::fence_operands(pf[kb]);
            sm.empty_v(ring_slot<kStages>(i - 1).stage)->arrive();
        };

        if (count > 0) {
            sm.q_full()->wait(0);
            if (wg == kConsumers - 1) pass_turn(wg);  // consumer 0 issues first
            // Entry 0: S_0 alone.
            {
                const RingSlot sl = ring_slot<kStages>(0);
                wait_turn(wg);
                sm.full_k(sl.stage)->wait(sl.parity);
                sm90::wgmma_fence();
                issue_s(s, sm, wg, sl.stage);
                sm90::wgmma_commit();
                pass_turn(wg);
                sm90::wgmma_wait<0>();
                sm90::fence_operands(s);
                softmax_tile(0);  // O is still 0: no rescale
                to_p();
            }
            // Entries 1..count-1: S_i and P_{i-1} V_{i-1}.
            for (int i = 1; i < count; ++i) {
                const RingSlot sk = ring_slot<kStages>(i);
                const RingSlot sv = ring_slot<kStages>(i - 1);
                wait_turn(wg);
                sm.full_k(sk.stage)->wait(sk.parity);
                sm90::wgmma_fence();
                issue_s(s, sm, wg, sk.stage);
                sm90::wgmma_commit();
                sm.full_v(sv.stage)->wait(sv.parity);
                sm90::wgmma_fence();  // ptxas otherwise injects one (C7519) for the A fragments
                issue_pv(o, pf, sm, sv.stage);
                sm90::wgmma_commit();
                pass_turn(wg);
                sm90::wgmma_wait<1>();  // S_i (the older group) is done; P V may still run
                sm90::fence_operands(s);
                softmax_tile(i);
                sm90::wgmma_wait<0>();
                pv_done(i);
                OnlineSoftmax<1>::rescale(o, alpha);
                to_p();
            }
            // The last P V; the last consumer's last turn is handed to nobody.
            {
                const RingSlot sv = ring_slot<kStages>(count - 1);
                wait_turn(wg);
                sm.full_v(sv.stage)->wait(sv.parity);
                sm90::wgmma_fence();
                issue_pv(o, pf, sm, sv.stage);
                sm90::wgmma_commit();
                if (wg != kConsumers - 1) pass_turn(wg);
                sm90::wgmma_wait<0>();
                pv_done(count);
            }
        }

        float inv_l[1][2];
        float lse[1][2];
        softmax.finish(inv_l, lse, a.scale, a.scale_log2);
        store_o(p, w, sm, o, inv_l, wg, rows0);
        write_lse(p, w, warp_rows0, lse);
    }

    // O = acc / l rounded to T, staged in the warpgroup's own 64 rows of the Q tile.
    PA_DEVICE static void store_o(const PaAttnFwdSm90Params& p, const TileWork& w, const Smem& sm,
                                  sm90::WgAcc<kHeadDim>& o, const float (&inv_l)[1][2], int wg, int rows0) {
        const PaAttnFwdParams& b = p.base;
        store_rows_swizzled<T, kHeadDim, Cfg::kQPanelBytes>(head_ptr<T>(b.o, w.row, w.head), b.o.stride.token,
                                                            b.qkv.n, sm.q() + wg * 64 * 128, o, inv_l[0], rows0,
                                                            kEpilogueBarrier + wg);
    }

    // One lane per quad writes its two rows' LSE; queries beyond n are not written.
    PA_DEVICE static void write_lse(const PaAttnFwdSm90Params& p, const TileWork& w, int warp_rows0,
                                    const float (&lse)[1][2]) {
        const tile::LaneCoords lc = tile::lane_coords();
        if (lc.t != 0) return;
        const PaAttnFwdParams& b = p.base;
        float* out = b.lse + ((int64_t)w.row * b.qkv.q_heads + w.head) * b.qkv.n;
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            const int i = warp_rows0 + lc.g + 8 * h;
            if (i < b.qkv.n) out[i] = lse[0][h];
        }
    }
};

}  // namespace attn
}  // namespace pa
