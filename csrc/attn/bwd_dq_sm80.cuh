// Backward dQ under the vis_end rule on the sm80 path, deterministic: one CTA per (row, q tile,
// q head) walks the plan's q-major list like the forward and recomputes what it needs, so every
// element of dQ is summed by one warp in a fixed order and written once, with no atomics:
//
//   S   = Q K^T                                  mma_ABt
//   P   = exp2(S * scale_log2 - lse_log2[q])     per row (bwd_math.cuh)
//   dP  = dO V^T                                 mma_ABt
//   dS  = P * (dP - D[q])                        per row
//   dQ += dS K                                   mma_AB, A = dS rounded to T
//
// and dQ * scale at the end (zeros for a query that sees no key: its lse_log2 is +inf, so P = 0).
// Each warp owns kRows queries; FULL tiles skip the mask, PARTIAL ones apply the rule. K and V
// stream through kStages shared-memory stages exactly as in the forward (the cp.async ring of
// sm80_ring.cuh); Q and dO ride with the first commit group and Q's tile stages dQ at the end.
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "bwd_math.cuh"
#include "config.cuh"
#include "mask.cuh"
#include "sm80_ring.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct BwdDqSm80 : TiledKernelSpec<PaAttnBwdDqParams, Cfg> {
    using Spec = TiledKernelSpec<PaAttnBwdDqParams, Cfg>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kWarps, Spec::kStages, Spec::kThreads;
    using QTile = typename Cfg::QTile;
    using KvTile = typename Cfg::KvTile;
    static constexpr const char* kFamily = "attn_bwd_dq";
    static constexpr int kRows = Cfg::kRowsPerWarp;  // queries per warp
    static_assert(kRows == 16, "one 16-row block per warp: dQ, S and dP of 32 rows would spill");
    // Q (reused to stage dQ), dO, then kStages K tiles and kStages V tiles.
    static constexpr int kSmemBytes = 2 * QTile::kBytes + 2 * kStages * KvTile::kBytes;

    PA_DEVICE static void run(const PaAttnBwdDqParams& p) {
        const PaAttnQkv& a = p.qkv;
        const TileWork w = tile_work(p.q_major, a.q_heads);
        const int q0 = w.tile * kBlockQ;
        const int kv_head = w.head / a.kv_group;

        T* smem = dyn_smem<T>();
        const QTile sQ{smem};
        const QTile sdO{smem + QTile::kElems};
        T* k_stages = smem + 2 * QTile::kElems;
        T* v_stages = k_stages + kStages * KvTile::kElems;
        const auto stage_k = [&](int s) { return KvTile{k_stages + s * KvTile::kElems}; };
        const auto stage_v = [&](int s) { return KvTile{v_stages + s * KvTile::kElems}; };

        const tile::RowLoader<KvTile, kThreads> kv_loader;
        ListCursor ahead(w);  // the loads' walk, kStages - 1 entries ahead of the compute's
        const auto load_kv = [&](int i, int s) {
            const int key0 = entry_tile(ahead.entry(p.q_major, i)) * kBlockK;
            kv_loader.load(stage_k(s), head_ptr<const T>(a.k, w.row, kv_head), a.k.stride.token, key0, a.n);
            kv_loader.load(stage_v(s), head_ptr<const T>(a.v, w.row, kv_head), a.v.stride.token, key0, a.n);
        };

        if (w.count > 0) {
            const tile::RowLoader<QTile, kThreads> q_loader;
            q_loader.load(sQ, head_ptr<const T>(a.q, w.row, w.head), a.q.stride.token, q0, a.n);
            q_loader.load(sdO, head_ptr<const T>(p.d_o, w.row, w.head), p.d_o.stride.token, q0, a.n);
        }
        CpAsyncRing<kStages> ring;
        ring.prologue(w.count, load_kv);

        const int row0 = (int)warp_id() * kRows;  // the warp's first query in the q tile
        // The lane's queries' lse_log2 and D (rows 16m + g + 8h), read once; the workspace is
        // padded to whole q tiles.
        float lse_log2[kRows / 16][2];
        float delta[kRows / 16][2];
        {
            const tile::LaneCoords lc = tile::lane_coords();
            const int64_t at = ((int64_t)w.row * a.q_heads + w.head) * p.stats.n_pad + q0 + row0;
            PA_UNROLL
            for (int m = 0; m < kRows / 16; ++m) {
                PA_UNROLL
                for (int h = 0; h < 2; ++h) {
                    const int r = 16 * m + tile::c_row(lc.g, 2 * h);
                    lse_log2[m][h] = p.stats.lse_log2[at + r];
                    delta[m][h] = p.stats.delta[at + r];
                }
            }
        }

        tile::Acc<kRows, kHeadDim> dq;
        dq.zero();
        ListCursor walk(w);
        for (int i = 0; i < w.count; ++i) {
            ring.wait_and_refill(i, w.count, load_kv);
            const int stage = ring.stage;
            const int entry = walk.entry(p.q_major, i);
            tile::Acc<kRows, kBlockK> s;
            s.zero();
            tile::mma_ABt(s, sQ, row0, stage_k(stage), 0);
            if (entry_partial(entry)) {
                const int key0 = entry_tile(entry) * kBlockK;
                const int32_t* row_vis_end = a.vis_end + (int64_t)w.row * a.n;
                apply_partial_mask(s, q0 + row0, key0, a.n,
                                   [&](int c) { return key0 + c < a.n ? row_vis_end[key0 + c] : 0; });
            }
            probs_by_rows(s, lse_log2, a.scale_log2);
            tile::Acc<kRows, kBlockK> dp;
            dp.zero();
            tile::mma_ABt(dp, sdO, row0, stage_v(stage), 0);
            dscores_by_rows(dp, s, delta);
            tile::AFrag<T, kRows, kBlockK> af;
            tile::to_a(af, dp);
            tile::mma_AB(dq, af, stage_k(stage), 0);
            ring.advance();
        }

        // The Q tile stages dQ: every copy has landed and every warp is past its last ldmatrix.
        ring.drain();
        float dq_scale[kRows / 16][2];
        PA_UNROLL
        for (int m = 0; m < kRows / 16; ++m) dq_scale[m][0] = dq_scale[m][1] = a.scale;
        tile::store_scaled(sQ, row0, dq, dq_scale);
        sync_threads();
        tile::store_rows<QTile, kThreads>(head_ptr<T>(p.dq, w.row, w.head), p.dq.stride.token, sQ, q0, a.n);
    }
};

}  // namespace attn
}  // namespace pa
