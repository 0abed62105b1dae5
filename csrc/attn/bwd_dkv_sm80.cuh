// Backward dK and dV under the vis_end rule on the sm80 path (mma.sync, every card from sm_80).
//
// One CTA per (row, k tile, kv head) walks the plan's k-major list: the non-empty q tiles of its k
// tile, and for each of them every q head that reads this kv head (GQA: the group's heads one
// after the other, so dK and dV are complete in the CTA, with no expanded buffer, no atomics and
// no reduction pass). Each warp owns kRows consecutive keys and computes, per (q tile, q head),
// on transposed tiles (rows are keys, columns queries):
//
//   S^T  = K Q^T                                   mma_ABt
//   P^T  = exp2(S^T * scale_log2 - lse_log2[q])    per column (bwd_math.cuh)
//   dV  += P^T dO                                  mma_AB, A = P^T rounded to T
//   dP^T = V dO^T                                  mma_ABt
//   dS^T = P^T * (dP^T - D[q])                     per column
//   dK  += dS^T Q                                  mma_AB, A = dS^T rounded to T
//
// dK and dV stay in fp32 registers for the whole walk and are written once at the end (dK times
// scale), zeros for a key that nobody sees (its list is empty). FULL tiles skip the per-element
// mask; PARTIAL ones apply the rule.
//
// Pipeline: K and V are loaded once; each (q tile, q head) step brings Q, dO and the q tile's
// lse_log2 and D through the cp.async ring of sm80_ring.cuh (kStages stages, kStages - 1 steps
// ahead, one commit group per step; K and V ride with the first).
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "bwd_config.cuh"
#include "bwd_math.cuh"
#include "mask.cuh"
#include "sm80_ring.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct BwdDkvSm80 : TiledKernelSpec<PaAttnBwdDkvParams, Cfg> {
    using Spec = TiledKernelSpec<PaAttnBwdDkvParams, Cfg>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kWarps, Spec::kStages, Spec::kThreads;
    using QTile = typename Cfg::QTile;
    using KvTile = typename Cfg::KvTile;
    static constexpr const char* kFamily = "attn_bwd_dkv";
    static constexpr int kRows = Cfg::kRowsPerWarp;  // keys per warp
    // Queries per inner step: the whole q tile, unless the dK and dV accumulators plus the S^T and
    // dP^T tiles of a whole q tile would pass 192 fp32 registers per lane; then 32 at a time
    // (each K and V fragment is then loaded once per 32 queries instead of once per q tile).
    static constexpr int kAccFloats = 2 * kRows * kHeadDim / 32;
    static constexpr int kQStep = kAccFloats + 2 * kRows * kBlockQ / 32 >= 192 ? 32 : kBlockQ;
    static_assert(kBlockQ % kQStep == 0, "whole steps per q tile");
    // One stage: Q, dO, then the q tile's lse_log2 and D (fp32).
    static constexpr int kStatsBytes = kBlockQ * 4;
    static constexpr int kStageBytes = 2 * QTile::kBytes + 2 * kStatsBytes;
    static constexpr int kSmemBytes = 2 * KvTile::kBytes + kStages * kStageBytes;
    static_assert(kThreads >= kBlockQ / 2, "one thread per 16-byte chunk of lse_log2 and D");

    PA_DEVICE static void run(const PaAttnBwdDkvParams& p) {
        const PaAttnQkv& a = p.qkv;
        const int kv_heads = a.q_heads / a.kv_group;
        const TileWork w = tile_work(p.k_major, kv_heads);
        const int key0 = w.tile * kBlockK;
        const int steps = w.count * a.kv_group;

        unsigned char* smem = dyn_smem<unsigned char>();
        const KvTile sK{reinterpret_cast<T*>(smem)};
        const KvTile sV{reinterpret_cast<T*>(smem + KvTile::kBytes)};
        unsigned char* stages = smem + 2 * KvTile::kBytes;
        const auto stage_q = [&](int s) { return QTile{reinterpret_cast<T*>(stages + s * kStageBytes)}; };
        const auto stage_do = [&](int s) {
            return QTile{reinterpret_cast<T*>(stages + s * kStageBytes + QTile::kBytes)};
        };
        const auto stage_lse = [&](int s) {
            return reinterpret_cast<float*>(stages + s * kStageBytes + 2 * QTile::kBytes);
        };
        const auto stage_delta = [&](int s) {
            return reinterpret_cast<float*>(stages + s * kStageBytes + 2 * QTile::kBytes + kStatsBytes);
        };

        const tile::RowLoader<QTile, kThreads> q_loader;
        // Step i is (list entry i / group, q head kv_head * group + i % group).
        ListCursor ahead(w);  // the loads' walk, kStages - 1 steps ahead of the compute's
        const auto load_step = [&](int i, int s) {
            const int q_head = w.head * a.kv_group + i % a.kv_group;
            const int q0 = entry_tile(ahead.entry(p.k_major, i / a.kv_group)) * kBlockQ;
            q_loader.load(stage_q(s), head_ptr<const T>(a.q, w.row, q_head), a.q.stride.token, q0, a.n);
            q_loader.load(stage_do(s), head_ptr<const T>(p.d_o, w.row, q_head), p.d_o.stride.token, q0, a.n);
            // The workspace is padded to whole q tiles: no bounds check, 16-byte copies.
            const int tid = (int)thread_idx_x();
            const int64_t at = ((int64_t)w.row * a.q_heads + q_head) * p.stats.n_pad + q0;
            if (tid < kBlockQ / 4) {
                cp_async_16(stage_lse(s) + 4 * tid, p.stats.lse_log2 + at + 4 * tid);
            } else if (tid < kBlockQ / 2) {
                const int c = tid - kBlockQ / 4;
                cp_async_16(stage_delta(s) + 4 * c, p.stats.delta + at + 4 * c);
            }
        };

        // Prologue: K and V (skipped when no query sees this k tile: dK = dV = 0), then the first
        // kStages - 1 steps, a commit group each (K and V with the first).
        if (steps > 0) {
            const tile::RowLoader<KvTile, kThreads> kv_loader;
            kv_loader.load(sK, head_ptr<const T>(a.k, w.row, w.head), a.k.stride.token, key0, a.n);
            kv_loader.load(sV, head_ptr<const T>(a.v, w.row, w.head), a.v.stride.token, key0, a.n);
        }
        CpAsyncRing<kStages> ring;
        ring.prologue(steps, load_step);

        tile::Acc<kRows, kHeadDim> dk;
        tile::Acc<kRows, kHeadDim> dv;
        dk.zero();
        dv.zero();
        const int row0 = (int)warp_id() * kRows;  // the warp's first key in the k tile

        ListCursor walk(w);
        for (int i = 0; i < steps; ++i) {
            ring.wait_and_refill(i, steps, load_step);
            const int stage = ring.stage;
            const int entry = walk.entry(p.k_major, i / a.kv_group);
            const int q0 = entry_tile(entry) * kBlockQ;
            const QTile sQ = stage_q(stage);
            const QTile sdO = stage_do(stage);
            // Not unrolled: overlapping two steps would only add live registers.
#pragma unroll 1
            for (int qs = 0; qs < kBlockQ; qs += kQStep) {
                tile::Acc<kRows, kQStep> st;
                st.zero();
                tile::mma_ABt(st, sK, row0, sQ, qs);
                if (entry_partial(entry)) {
                    const int32_t* row_vis_end = a.vis_end + (int64_t)w.row * a.n;
                    apply_partial_mask_keys_by_queries(st, key0 + row0, q0 + qs, a.n,
                                                       [&](int j) { return j < a.n ? row_vis_end[j] : 0; });
                }
                probs_by_cols(st, stage_lse(stage) + qs, a.scale_log2);
                tile::AFrag<T, kRows, kQStep> af;
                tile::to_a(af, st);
                tile::mma_AB(dv, af, sdO, qs);

                tile::Acc<kRows, kQStep> dpt;
                dpt.zero();
                tile::mma_ABt(dpt, sV, row0, sdO, qs);
                dscores_by_cols(dpt, st, stage_delta(stage) + qs);
                tile::to_a(af, dpt);
                tile::mma_AB(dk, af, sQ, qs);
            }
            ring.advance();
        }

        // K and V stage dK and dV: every copy has landed and every warp is past its last ldmatrix.
        ring.drain();
        float dk_scale[kRows / 16][2];
        float one[kRows / 16][2];
        PA_UNROLL
        for (int m = 0; m < kRows / 16; ++m) {
            dk_scale[m][0] = dk_scale[m][1] = a.scale;
            one[m][0] = one[m][1] = 1.f;
        }
        tile::store_scaled(sK, row0, dk, dk_scale);
        tile::store_scaled(sV, row0, dv, one);
        sync_threads();
        tile::store_rows<KvTile, kThreads>(head_ptr<T>(p.dk, w.row, w.head), p.dk.stride.token, sK, key0, a.n);
        tile::store_rows<KvTile, kThreads>(head_ptr<T>(p.dv, w.row, w.head), p.dv.stride.token, sV, key0, a.n);
    }
};

}  // namespace attn
}  // namespace pa
