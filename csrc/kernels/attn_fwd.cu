// Forward attention under the vis_end rule, FlashAttention-2 style: one CTA per (row, q tile,
// q head); it walks only the non-empty k tiles of its q tile (the plan's q-major block list),
// skips per-element masking on FULL tiles, keeps an online softmax in fp32 and writes O (input
// dtype) and LSE (fp32, natural log). Tensor cores via mma.m16n8k16 fed by ldmatrix; K and V are
// double-buffered with cp.async so the next tile loads while this one is computed.
#include "../pa/kernel.cuh"
#include "../attn/block_info.cuh"
#include "../attn/mask.cuh"
#include "../attn/smem_layout.cuh"
#include "../attn/softmax.cuh"
#include "../attn/traits.cuh"

namespace pa {
namespace attn {

// S (this warp's 16 queries x kBlockK keys) = Q K^T, raw scores.
template <class Tr>
PA_DEVICE void qk_scores(float (&s)[Tr::kSTiles][4], const typename Tr::T* sQ, const typename Tr::T* sK,
                         int warp, int lane) {
    PA_UNROLL
    for (int nt = 0; nt < Tr::kSTiles; ++nt) {
        PA_UNROLL
        for (int c = 0; c < 4; ++c) s[nt][c] = 0.f;
    }
    PA_UNROLL
    for (int ks = 0; ks < Tr::kQkSteps; ++ks) {
        // A: lanes 0-15 give rows 0-15 at chunk 2ks, lanes 16-31 the same rows at chunk 2ks + 1.
        uint32_t a[4];
        ldmatrix_x4(a[0], a[1], a[2], a[3],
                    sQ + swizzled<Tr::kChunks>(warp * 16 + (lane & 15), 2 * ks + (lane >> 4)));
        PA_UNROLL
        for (int np = 0; np < Tr::kSTiles / 2; ++np) {
            // B for two n8 fragments (keys np*16 + 0..7 and + 8..15): the matrices are
            // (keys 0-7, chunk 2ks), (keys 0-7, chunk 2ks+1), (keys 8-15, 2ks), (keys 8-15, 2ks+1).
            uint32_t b[4];
            const int key = np * 16 + ((lane >> 4) << 3) + (lane & 7);
            ldmatrix_x4(b[0], b[1], b[2], b[3], sK + swizzled<Tr::kChunks>(key, 2 * ks + ((lane >> 3) & 1)));
            MmaOp<typename Tr::T>::run(s[2 * np], a, b, s[2 * np]);
            MmaOp<typename Tr::T>::run(s[2 * np + 1], a, b + 2, s[2 * np + 1]);
        }
    }
}

// acc += P V, P taken straight from the S accumulators (the m16n8 C layout of two adjacent n8
// fragments is the m16k16 A layout), rounded to the input dtype.
template <class Tr>
PA_DEVICE void pv_accumulate(float (&acc)[Tr::kOTiles][4], const float (&s)[Tr::kSTiles][4],
                             const typename Tr::T* sV, int lane) {
    using T = typename Tr::T;
    PA_UNROLL
    for (int kk = 0; kk < Tr::kPvSteps; ++kk) {
        uint32_t a[4];
        a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        PA_UNROLL
        for (int dp = 0; dp < Tr::kOTiles / 2; ++dp) {
            // V is [key][d]; B wants (k = key, n = d) column-wise, hence the transposing load.
            // Matrices: (keys 0-7, chunk 2dp), (keys 8-15, 2dp), (keys 0-7, 2dp+1), (keys 8-15, 2dp+1).
            uint32_t b[4];
            ldmatrix_x4_trans(b[0], b[1], b[2], b[3],
                              sV + swizzled<Tr::kChunks>(kk * 16 + (lane & 15), 2 * dp + (lane >> 4)));
            MmaOp<T>::run(acc[2 * dp], a, b, acc[2 * dp]);
            MmaOp<T>::run(acc[2 * dp + 1], a, b + 2, acc[2 * dp + 1]);
        }
    }
}

// Normalised O of this warp's rows into the (now free) Q tile, then 16-byte rows to global; LSE
// by one thread per quad. Queries beyond n are not written.
template <class Tr>
PA_DEVICE void write_outputs(const PaAttnFwdParams& p, const FwdBlockInfo& b, typename Tr::T* sO,
                             const float (&acc)[Tr::kOTiles][4], const float (&inv_l)[2],
                             const float (&lse)[2], int warp, int lane) {
    using T = typename Tr::T;
    const int g = lane >> 2;
    const int t = lane & 3;
    PA_UNROLL
    for (int h = 0; h < 2; ++h) {
        const int r = warp * 16 + g + 8 * h;
        PA_UNROLL
        for (int dt = 0; dt < Tr::kOTiles; ++dt) {
            const uint32_t packed = pack2<T>(acc[dt][2 * h] * inv_l[h], acc[dt][2 * h + 1] * inv_l[h]);
            *reinterpret_cast<uint32_t*>(sO + swizzled<Tr::kChunks>(r, dt) + 2 * t) = packed;
        }
        const int i = b.q0 + r;
        if (t == 0 && i < p.n) {
            p.lse[((int64_t)b.row * p.q_heads + b.head) * p.n + i] = lse[h];
        }
    }
    sync_threads();
    T* o = static_cast<T*>(p.o) + (int64_t)b.row * p.o_stride.row + (int64_t)b.head * p.o_stride.head;
    constexpr int kPerThread = Tr::kBlockQ * Tr::kChunks / Tr::kThreads;
    PA_UNROLL
    for (int it = 0; it < kPerThread; ++it) {
        const int c = (int)thread_idx_x() + it * Tr::kThreads;
        const int r = c / Tr::kChunks;
        const int chunk = c % Tr::kChunks;
        const int i = b.q0 + r;
        if (i < p.n) {
            *reinterpret_cast<u32x4*>(o + (int64_t)i * p.o_stride.token + chunk * 8) =
                *reinterpret_cast<const u32x4*>(sO + swizzled<Tr::kChunks>(r, chunk));
        }
    }
}

template <class Tr>
PA_DEVICE void attn_fwd(const PaAttnFwdParams& p) {
    using T = typename Tr::T;
    const int warp = (int)warp_id();
    const int lane = (int)lane_id();
    const FwdBlockInfo b = fwd_block_info(p, Tr::kBlockQ);

    const T* q = head_base<T>(p.q, p.q_stride, b.row, b.head);
    const T* k = head_base<T>(p.k, p.k_stride, b.row, b.kv_head);
    const T* v = head_base<T>(p.v, p.v_stride, b.row, b.kv_head);
    const int32_t* vis_end = p.vis_end + (int64_t)b.row * p.n;

    T* sQ = dyn_smem<T>();
    T* sK = sQ + Tr::kQElems;           // two buffers of kKvElems
    T* sV = sK + 2 * Tr::kKvElems;      // two buffers of kKvElems

    // Prologue: Q and the first K/V tile in one group.
    if (b.list_begin < b.list_end) {
        load_tile_async<Tr, Tr::kBlockQ>(sQ, q, p.q_stride.token, b.q0, p.n);
        const int k0 = (p.q_entries[b.list_begin] >> PA_TILE_INDEX_SHIFT) * Tr::kBlockK;
        load_tile_async<Tr, Tr::kBlockK>(sK, k, p.k_stride.token, k0, p.n);
        load_tile_async<Tr, Tr::kBlockK>(sV, v, p.v_stride.token, k0, p.n);
    }
    cp_async_commit();

    float acc[Tr::kOTiles][4];
    PA_UNROLL
    for (int dt = 0; dt < Tr::kOTiles; ++dt) {
        PA_UNROLL
        for (int c = 0; c < 4; ++c) acc[dt][c] = 0.f;
    }
    OnlineSoftmax softmax;
    softmax.init();
    const int query0 = b.q0 + warp * 16 + (lane >> 2);

    for (int e = b.list_begin; e < b.list_end; ++e) {
        const int buf = (e - b.list_begin) & 1;
        // Tile e has landed for every thread, and every warp is done with tile e - 1, whose
        // buffers the next copies overwrite.
        cp_async_wait<0>();
        sync_threads();
        if (e + 1 < b.list_end) {
            const int k1 = (p.q_entries[e + 1] >> PA_TILE_INDEX_SHIFT) * Tr::kBlockK;
            load_tile_async<Tr, Tr::kBlockK>(sK + (buf ^ 1) * Tr::kKvElems, k, p.k_stride.token, k1, p.n);
            load_tile_async<Tr, Tr::kBlockK>(sV + (buf ^ 1) * Tr::kKvElems, v, p.v_stride.token, k1, p.n);
        }
        cp_async_commit();

        const int entry = p.q_entries[e];
        const int key0 = (entry >> PA_TILE_INDEX_SHIFT) * Tr::kBlockK;
        float s[Tr::kSTiles][4];
        qk_scores<Tr>(s, sQ, sK + buf * Tr::kKvElems, warp, lane);
        if (entry & PA_TILE_PARTIAL_BIT) {
            apply_partial_mask<Tr::kSTiles>(s, query0, key0, vis_end, p.n);
        }
        softmax.update<Tr::kSTiles, Tr::kOTiles>(s, acc, p.scale_log2);
        pv_accumulate<Tr>(acc, s, sV + buf * Tr::kKvElems, lane);
    }

    float inv_l[2];
    float lse[2];
    softmax.finish(inv_l, lse, p.scale);
    // The Q tile is reused to stage O: all copies done and every warp past its last ldmatrix.
    cp_async_wait<0>();
    sync_threads();
    write_outputs<Tr>(p, b, sQ, acc, inv_l, lse, warp, lane);
}

}  // namespace attn
}  // namespace pa

// One kernel per (dtype, head dim). Head dim 256 fits the same code (kChunks = 32) once its
// shared memory (Q 32 KiB + K/V 128 KiB) is reduced or split; not instantiated yet.
#define PA_ATTN_FWD_KERNEL(name, T, D)                                   \
    PA_KERNEL_BOUNDS(name, PaAttnFwdParams, PA_FWD_THREADS, 1) {          \
        pa::attn::attn_fwd<pa::attn::FwdTraits<T, D>>(p);                \
    }

PA_ATTN_FWD_KERNEL(pa_attn_fwd_bf16_d64, pa::bf16, 64)
PA_ATTN_FWD_KERNEL(pa_attn_fwd_bf16_d128, pa::bf16, 128)
PA_ATTN_FWD_KERNEL(pa_attn_fwd_f16_d64, pa::f16, 64)
PA_ATTN_FWD_KERNEL(pa_attn_fwd_f16_d128, pa::f16, 128)
