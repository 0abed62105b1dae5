// Backward dK and dV under the vis_end rule on the sm90a path (wgmma, TMA, mbarriers, setmaxnreg):
// what the sm80 dK/dV kernel (bwd_dkv_sm80.cuh) computes, in the same order, warp-specialised like
// the sm90a dQ kernel (bwd_dq_sm90.cuh). One CTA per (row, k tile, kv head) walks the plan's
// k-major list (the non-empty q tiles of its k tile) and, for each q tile, every q head of the kv
// head's GQA group, so dK and dV are complete in the CTA and written once, with no atomics.
//
// Warpgroup 0 produces: one warp of it loads K, V and the k tile's vis_end once, then, per step
// (list entry, q head), that q tile's Q and dO through TMA and its queries' lse_log2 and D into a
// ring of kStages stages. Warpgroups 1..kConsumers consume, 64 keys each, per step, on transposed
// tiles (rows are keys, columns queries):
//
//   S^T  = K Q^T                                  wgmma_ss, both K-major
//   dP^T = V dO^T                                 wgmma_ss, both K-major (same commit group)
//   P^T  = exp2(S^T * scale_log2 - lse_log2[q])   mask first on PARTIAL tiles (bwd_math.cuh)
//   dS^T = P^T * (dP^T - D[q])
//   dV  += P^T dO                                 wgmma_rs, P^T packed to T, dO MN-major
//   dK  += dS^T Q                                 wgmma_rs, dS^T packed to T, Q MN-major
//
// then dK * scale and dV rounded to T, staged through the consumer's own rows of K and V (it alone
// reads them: they are its A operand) and written once; zeros for a CTA with an empty list. A
// stage is released once the last wgmma reading it (dK's, reading Q) has completed.
//
// lse_log2 and D are staged by the producer warp with ordinary loads, next to Q and dO: the
// queries change per step, and each consumer lane needs the values of its 16 accumulator columns,
// which are the same for all 8 row groups of every warp; reading them from the workspace in the
// consumers would put 4 x 16 dependent global loads per lane on each step's critical path after
// the stage is known, while the producer reads 2 x 64 floats per step ahead of use, with one
// arrival per lane on the stage's full barrier publishing them (as vis_end in the forward). A TMA
// box would do the same with two more tensor maps of an fp32 layout the Rust side does not encode.
//
// Steps do not overlap inside a consumer: dK and dV (head_dim / 2 fp32 each), S^T and dP^T (32
// each) and the two operand fragments (16 registers each) are 224 of the 240 registers a
// consumer gets at head dim 128, so the next step's S^T and dP^T would not fit beside them.
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "bwd_dkv_sm90_config.cuh"
#include "bwd_math.cuh"
#include "mask.cuh"
#include "sm90_kit.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct Sm90DkvSmem {
    unsigned char* base;  // 1024-byte aligned

    PA_DEVICE explicit Sm90DkvSmem(unsigned char* dyn) : base(sm90::smem_align_up<1024>(dyn)) {}

    PA_DEVICE unsigned char* k() const { return base + Cfg::kKOffset; }
    PA_DEVICE unsigned char* v() const { return base + Cfg::kVOffset; }
    PA_DEVICE unsigned char* q(int stage) const { return base + Cfg::kStageOffset + stage * Cfg::kStageBytes; }
    PA_DEVICE unsigned char* d_o(int stage) const { return q(stage) + Cfg::kQBytes; }
    PA_DEVICE float* lse_log2(int stage) const {
        return reinterpret_cast<float*>(base + Cfg::kStatsOffset + stage * Cfg::kStatsBytes);
    }
    PA_DEVICE float* delta(int stage) const { return lse_log2(stage) + Cfg::kBlockQ; }
    PA_DEVICE int32_t* vis() const { return reinterpret_cast<int32_t*>(base + Cfg::kVisOffset); }

    PA_DEVICE sm90::Mbarrier* bar(int i) const {
        return reinterpret_cast<sm90::Mbarrier*>(base + Cfg::kBarOffset) + i;
    }
    // K, V and vis_end have landed (32 arrivals: every producer lane stages vis_end; plus K's and
    // V's bytes).
    PA_DEVICE sm90::Mbarrier* kv_full() const { return bar(0); }
    // The stage's Q, dO, lse_log2 and D have landed (32 arrivals, every producer lane staging the
    // stats; plus Q's and dO's bytes).
    PA_DEVICE sm90::Mbarrier* full(int stage) const { return bar(1 + stage); }
    // Every consumer thread is done with the stage (kConsumers * 128 arrivals).
    PA_DEVICE sm90::Mbarrier* empty(int stage) const { return bar(1 + Cfg::kStages + stage); }

    PA_DEVICE void init_barriers() const {
        kv_full()->init(32);
        for (int s = 0; s < Cfg::kStages; ++s) {
            full(s)->init(32);
            empty(s)->init(Cfg::kConsumers * 128);
        }
    }
};

template <class Cfg>
struct BwdDkvSm90 : TiledKernelSpec<PaAttnBwdDkvSm90Params, Cfg, PA_ARCH_SM90A> {
    using Spec = TiledKernelSpec<PaAttnBwdDkvSm90Params, Cfg, PA_ARCH_SM90A>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kStages;
    using Smem = Sm90DkvSmem<Cfg>;
    static constexpr const char* kFamily = "attn_bwd_dkv";
    static constexpr int kSmemBytes = Cfg::kSmemBytes;
    static constexpr int kConsumers = Cfg::kConsumers;
    // Named barrier of consumer c's epilogue (its 128 threads).
    static constexpr uint32_t kEpilogueBarrier = 1;

    PA_DEVICE static void run(const PaAttnBwdDkvSm90Params& p) {
        const PaAttnQkv& a = p.base.qkv;
        const TileWork w = tile_work(p.base.k_major, a.q_heads / a.kv_group);
        const Smem sm(dyn_smem<unsigned char>());
        run_warp_roles<BwdDkvSm90, Cfg::kProducerRegs, Cfg::kConsumerRegs>(p, w, sm);
    }

    // ---- producer (one warp) ----
    PA_DEVICE static void produce(const PaAttnBwdDkvSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int steps = w.count * a.kv_group;
        if (steps == 0) return;  // the consumers write dK = dV = 0 without loading anything
        const bool leader = lane_id() == 0;
        const int lane = (int)lane_id();
        const int32_t key0 = w.tile * kBlockK;

        // K, V and the keys' vis_end, once.
        const int32_t* row_vis_end = a.vis_end + (int64_t)w.row * a.n;
        PA_UNROLL
        for (int r = 0; r < kBlockK / 32; ++r) {
            const int c = 32 * r + lane;
            sm.vis()[c] = key0 + c < a.n ? row_vis_end[key0 + c] : 0;
        }
        if (leader) {
            sm90::tma_prefetch_map(&p.q_map);
            sm90::tma_prefetch_map(&p.d_o_map);
            sm.kv_full()->arrive_expect_tx(2 * Cfg::kKvBytes);
            PA_UNROLL
            for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
                sm90::tma_load_4d(sm.k() + pnl * Cfg::kKvPanelBytes, &p.k_map, sm.kv_full(), 64 * pnl, w.head, key0,
                                  w.row);
                sm90::tma_load_4d(sm.v() + pnl * Cfg::kKvPanelBytes, &p.v_map, sm.kv_full(), 64 * pnl, w.head, key0,
                                  w.row);
            }
        } else {
            sm.kv_full()->arrive();
        }

        // Step i: list entry i / group, q head head * group + i % group (the sm80
        // kernel's order), in ring stage i % kStages once every consumer released its previous use.
        const PaAttnBwdStats& st = p.base.stats;
        ListCursor walk(w);
        for (int i = 0; i < steps; ++i) {
            const int32_t q_head = w.head * a.kv_group + i % a.kv_group;
            const int32_t q0 = entry_tile(walk.entry(p.base.k_major, i / a.kv_group)) * kBlockQ;
            const RingSlot sl = ring_slot<kStages>(i);
            sm.empty(sl.stage)->wait(sl.parity ^ 1u);
            // The workspace is padded to whole q tiles: no bounds check.
            const int64_t at = ((int64_t)w.row * a.q_heads + q_head) * st.n_pad + q0;
            PA_UNROLL
            for (int r = 0; r < kBlockQ / 32; ++r) {
                const int c = 32 * r + lane;
                sm.lse_log2(sl.stage)[c] = st.lse_log2[at + c];
                sm.delta(sl.stage)[c] = st.delta[at + c];
            }
            if (leader) {
                sm.full(sl.stage)->arrive_expect_tx(2 * Cfg::kQBytes);
                PA_UNROLL
                for (int pnl = 0; pnl < Cfg::kPanels; ++pnl) {
                    sm90::tma_load_4d(sm.q(sl.stage) + pnl * Cfg::kQPanelBytes, &p.q_map, sm.full(sl.stage),
                                      64 * pnl, q_head, q0, w.row);
                    sm90::tma_load_4d(sm.d_o(sl.stage) + pnl * Cfg::kQPanelBytes, &p.d_o_map, sm.full(sl.stage),
                                      64 * pnl, q_head, q0, w.row);
                }
            } else {
                sm.full(sl.stage)->arrive();
            }
        }
        // No wait for the consumers' last releases: without clusters nothing else writes this CTA's
        // shared memory, and the CTA lives until its consumers finish.
    }

    // ---- consumers ----
    PA_DEVICE static void consume(const PaAttnBwdDkvSm90Params& p, const TileWork& w, const Smem& sm) {
        const PaAttnQkv& a = p.base.qkv;
        const int wg = (int)(warp_id() / 4) - 1;
        const int key0 = w.tile * kBlockK;
        const int keys0 = key0 + 64 * wg;                        // the warpgroup's first key
        const int warp_keys0 = keys0 + 16 * (int)(warp_id() % 4);  // the warp's first key
        const int steps = w.count * a.kv_group;
        // The warpgroup's 64 rows of K and V: its A operand, and where it stages dK and dV.
        unsigned char* const k_rows = sm.k() + wg * 64 * 128;
        unsigned char* const v_rows = sm.v() + wg * 64 * 128;

        sm90::WgAcc<kHeadDim> dk;
        sm90::WgAcc<kHeadDim> dv;
        PA_UNROLL
        for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;

        if (steps > 0) sm.kv_full()->wait(0);
        ListCursor walk(w);
        for (int i = 0; i < steps; ++i) {
            const RingSlot sl = ring_slot<kStages>(i);
            const int entry = walk.entry(p.base.k_major, i / a.kv_group);
            sm90::WgAcc<kBlockQ> st;
            sm90::WgAcc<kBlockQ> dpt;
            sm.full(sl.stage)->wait(sl.parity);
            sm90::wgmma_fence();
            issue_abt_panels<T, kHeadDim, kBlockQ>(st, k_rows, Cfg::kKvPanelBytes, sm.q(sl.stage), Cfg::kQPanelBytes);
            issue_abt_panels<T, kHeadDim, kBlockQ>(dpt, v_rows, Cfg::kKvPanelBytes, sm.d_o(sl.stage),
                                                   Cfg::kQPanelBytes);
            sm90::wgmma_commit();
            sm90::wgmma_wait<0>();
            sm90::fence_operands(st, dpt);

            if (entry_partial(entry)) {
                const int32_t* tile_vis_end = sm.vis();  // zero past the row
                apply_partial_mask_keys_by_queries(st, warp_keys0, entry_tile(entry) * kBlockQ, a.n,
                                                   [&](int j) { return tile_vis_end[j - key0]; });
            }
            probs_by_cols(st, sm.lse_log2(sl.stage), a.scale_log2);
            dscores_by_cols(dpt, st, sm.delta(sl.stage));
            sm90::WgFragA pt[kBlockQ / 16];
            sm90::WgFragA dst[kBlockQ / 16];
            PA_UNROLL
            for (int kb = 0; kb < kBlockQ / 16; ++kb) {
                sm90::frag_a_from_acc<T>(pt[kb], st, kb);
                sm90::frag_a_from_acc<T>(dst[kb], dpt, kb);
            }

            sm90::wgmma_fence();
            issue_ab_mn_panels<T, kHeadDim, kBlockQ>(dv, pt, sm.d_o(sl.stage), Cfg::kQPanelBytes);
            issue_ab_mn_panels<T, kHeadDim, kBlockQ>(dk, dst, sm.q(sl.stage), Cfg::kQPanelBytes);
            sm90::wgmma_commit();
            sm90::wgmma_wait<0>();
            sm90::fence_operands(dk, dv);
            PA_UNROLL
            for (int kb = 0; kb < kBlockQ / 16; ++kb) sm90::fence_operands(pt[kb], dst[kb]);
            sm.empty(sl.stage)->arrive();  // dK's wgmma, the last reader of Q and dO, completed
        }

        // Staged in the consumer's own rows of K and V, whose panels are block_k rows apart.
        const float dk_scale[2] = {a.scale, a.scale};
        const float one[2] = {1.f, 1.f};
        store_rows_swizzled<T, kHeadDim, Cfg::kKvPanelBytes>(head_ptr<T>(p.base.dk, w.row, w.head),
                                                             p.base.dk.stride.token, a.n, k_rows, dk, dk_scale, keys0,
                                                             kEpilogueBarrier + wg);
        store_rows_swizzled<T, kHeadDim, Cfg::kKvPanelBytes>(head_ptr<T>(p.base.dv, w.row, w.head),
                                                             p.base.dv.stride.token, a.n, v_rows, dv, one, keys0,
                                                             kEpilogueBarrier + wg);
    }
};

}  // namespace attn
}  // namespace pa
