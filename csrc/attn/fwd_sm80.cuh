// Forward attention under the vis_end rule on the sm80 path (mma.sync, every card from sm_80),
// FlashAttention-2 style: one CTA per (row, q tile, q head) walks only the non-empty k tiles of
// its q tile (the plan's q-major block list), skips per-element masking on FULL tiles, keeps an
// online softmax in fp32 and writes O (input dtype) and LSE (fp32, natural log). K and V stream
// through a ring of kStages shared-memory stages filled by cp.async, kStages - 1 tiles ahead.
//
// Pipeline: the cp.async ring of sm80_ring.cuh, one step per list entry (K and V together; Q rides
// with the first).
#pragma once

#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"
#include "block_info.cuh"
#include "config.cuh"
#include "mask.cuh"
#include "sm80_ring.cuh"
#include "softmax.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct FwdSm80 : TiledKernelSpec<PaAttnFwdParams, Cfg> {
    using Spec = TiledKernelSpec<PaAttnFwdParams, Cfg>;
    using typename Spec::T;
    using Spec::kHeadDim, Spec::kBlockQ, Spec::kBlockK, Spec::kWarps, Spec::kStages, Spec::kThreads;
    using QTile = typename Cfg::QTile;
    using KvTile = typename Cfg::KvTile;
    static constexpr const char* kFamily = "attn_fwd";
    static constexpr int kRows = Cfg::kRowsPerWarp;  // query rows per warp
    // A warp computes all its 16-row blocks at once, so that each K and V fragment it loads serves
    // every block. O and S of a lane take (kRows / 16) * (head_dim + block_k) / 2 fp32 registers:
    // past 160 (e.g. 32 rows per warp at head dim 128: 192) ptxas runs out of the 255 and spills.
    static constexpr int kAccFloats = (kRows / 16) * (Cfg::kHeadDim + kBlockK) / 2;
    static_assert(kAccFloats <= 160, "a tile configuration whose accumulators leave too few registers");
    // Q (reused to stage O at the end), then kStages K tiles, kStages V tiles, and the k tiles'
    // vis_end (kStages x kBlockK int32) for the partial mask.
    static constexpr int kSmemBytes = QTile::kBytes + 2 * kStages * KvTile::kBytes + kStages * kBlockK * 4;
    static_assert(kBlockK <= Cfg::kThreads, "one thread per key stages vis_end");

    PA_DEVICE static void run(const PaAttnFwdParams& p) {
        const PaAttnQkv& a = p.qkv;
        const TileWork w = tile_work(p.q_major, a.q_heads);
        const int q0 = w.tile * kBlockQ;
        const int kv_head = w.head / a.kv_group;

        T* smem = dyn_smem<T>();
        const QTile sQ{smem};
        T* k_stages = smem + QTile::kElems;
        T* v_stages = k_stages + kStages * KvTile::kElems;
        int32_t* vis_stages = reinterpret_cast<int32_t*>(v_stages + kStages * KvTile::kElems);
        const auto stage_k = [&](int s) { return KvTile{k_stages + s * KvTile::kElems}; };
        const auto stage_v = [&](int s) { return KvTile{v_stages + s * KvTile::kElems}; };

        const tile::RowLoader<KvTile, Cfg::kThreads> kv_loader;
        // Head pointers and vis_end are recomputed where used (a few integer ops per tile) rather
        // than held through the main loop: at 32 rows per warp and head dim 128 the accumulators
        // leave no registers to spare.
        ListCursor ahead(w);  // the loads' walk, kStages - 1 entries ahead of the compute's
        const auto load_kv = [&](int i, int s) {
            const int key0 = entry_tile(ahead.entry(p.q_major, i)) * kBlockK;
            kv_loader.load(stage_k(s), head_ptr<const T>(a.k, w.row, kv_head), a.k.stride.token, key0, a.n);
            kv_loader.load(stage_v(s), head_ptr<const T>(a.v, w.row, kv_head), a.v.stride.token, key0, a.n);
            load_tile_vis_end_async<kBlockK>(vis_stages + s * kBlockK, a.vis_end + (int64_t)w.row * a.n, key0,
                                             a.n);
        };

        // Prologue: Q and the first kStages - 1 k tiles, a commit group each (Q with the first).
        if (w.count > 0) {
            tile::RowLoader<QTile, Cfg::kThreads>().load(sQ, head_ptr<const T>(a.q, w.row, w.head), a.q.stride.token,
                                                         q0, a.n);
        }
        CpAsyncRing<kStages> ring;
        ring.prologue(w.count, load_kv);

        tile::Acc<kRows, kHeadDim> o;
        o.zero();
        OnlineSoftmax<kRows / 16> softmax;
        softmax.init();
        const int row0 = (int)warp_id() * kRows;  // the warp's first row in the q tile

        ListCursor walk(w);
        for (int i = 0; i < w.count; ++i) {
            ring.wait_and_refill(i, w.count, load_kv);
            const int stage = ring.stage;
            const int entry = walk.entry(p.q_major, i);
            tile::Acc<kRows, kBlockK> s;
            s.zero();
            tile::mma_ABt(s, sQ, row0, stage_k(stage), 0);
            if (entry_partial(entry)) {
                const int32_t* tile_vis_end = vis_stages + stage * kBlockK;  // zero past the row
                apply_partial_mask(s, q0 + row0, entry_tile(entry) * kBlockK, a.n,
                                   [&](int c) { return tile_vis_end[c]; });
            }
            softmax.update(s, o, a.scale_log2);
            tile::AFrag<T, kRows, kBlockK> pf;
            tile::to_a(pf, s);
            tile::mma_AB(o, pf, stage_v(stage), 0);
            ring.advance();
        }

        // The Q tile stages O: every copy has landed and every warp is past its last ldmatrix.
        ring.drain();
        float inv_l[kRows / 16][2];
        float lse[kRows / 16][2];
        softmax.finish(inv_l, lse, a.scale, a.scale_log2);
        tile::store_scaled(sQ, row0, o, inv_l);
        write_lse(p, w, q0 + row0, lse);
        sync_threads();
        tile::store_rows<QTile, Cfg::kThreads>(head_ptr<T>(p.o, w.row, w.head), p.o.stride.token, sQ, q0,
                                               a.n);
    }

    // One lane per quad writes its rows' LSE; queries beyond n are not written.
    template <int kM>
    PA_DEVICE static void write_lse(const PaAttnFwdParams& p, const TileWork& w, int query0,
                                    const float (&lse)[kM][2]) {
        const tile::LaneCoords lc = tile::lane_coords();
        if (lc.t != 0) return;
        float* out = p.lse + ((int64_t)w.row * p.qkv.q_heads + w.head) * p.qkv.n;
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                const int i = query0 + 16 * b + tile::c_row(lc.g, 2 * h);
                if (i < p.qkv.n) out[i] = lse[b][h];
            }
        }
    }
};

}  // namespace attn
}  // namespace pa
