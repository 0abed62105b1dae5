// Backward preprocess: per (row, q head, query) D = rowsum(dO * O) in fp32 and LSE * log2(e), into
// the workspace the dK/dV and dQ kernels read (PaAttnBwdStats), padded to n_pad so that those
// kernels copy whole q tiles without bounds checks.
//
// One CTA per (row, q head, PA_BWD_PRE_TOKENS tokens); each token's head_dim elements are read as
// 16-byte chunks by kChunks consecutive lanes, whose partial sums meet in a fixed shuffle tree, so
// D does not depend on the schedule.
#pragma once

#include "../pa/kernel.cuh"
#include "block_info.cuh"

namespace pa {
namespace attn {

template <typename T, int D>
struct BwdPreprocess : KernelSpec<PaAttnBwdPreParams, 128, 1> {
    static constexpr const char* kFamily = "attn_bwd_pre";
    static constexpr int kDtype = DtypeCode<T>::value;
    static constexpr int kHeadDim = D;
    static constexpr int kChunks = D / 8;  // 16-byte chunks per token
    static constexpr int kTokensPerPass = 128 / kChunks;
    static_assert(D % 64 == 0 && kChunks <= 32 && 32 % kChunks == 0, "a token's chunks sit in one warp");
    static_assert(PA_BWD_PRE_TOKENS % kTokensPerPass == 0, "whole passes per CTA");

    PA_DEVICE static void run(const PaAttnBwdPreParams& p) {
        const int blocks_per_head = p.n_pad / PA_BWD_PRE_TOKENS;
        const int bid = (int)block_idx_x();
        const int row_head = bid / blocks_per_head;  // row * q_heads + head
        const int row = row_head / p.q_heads;
        const int head = row_head - row * p.q_heads;
        const int token0 = (bid - row_head * blocks_per_head) * PA_BWD_PRE_TOKENS;
        const int tid = (int)thread_idx_x();
        const int chunk = tid % kChunks;
        const T* o = head_ptr<const T>(p.o, row, head) + chunk * 8;
        const T* d_o = head_ptr<const T>(p.d_o, row, head) + chunk * 8;
        const int64_t out = (int64_t)row_head * p.n_pad;

        PA_UNROLL
        for (int pass = 0; pass < PA_BWD_PRE_TOKENS / kTokensPerPass; ++pass) {
            const int i = token0 + pass * kTokensPerPass + tid / kChunks;
            float acc = 0.f;
            if (i < p.n) {
                const u32x4 ov = *reinterpret_cast<const u32x4*>(o + (int64_t)i * p.o.stride.token);
                const u32x4 dv = *reinterpret_cast<const u32x4*>(d_o + (int64_t)i * p.d_o.stride.token);
                const T* oe = reinterpret_cast<const T*>(&ov);
                const T* de = reinterpret_cast<const T*>(&dv);
                PA_UNROLL
                for (int e = 0; e < 8; ++e) acc = fmaf(to_float(oe[e]), to_float(de[e]), acc);
            }
            // Every lane takes part (the shuffles are warp collectives), valid token or not.
            PA_UNROLL
            for (int off = 1; off < kChunks; off *= 2) acc += shfl_xor(acc, off);
            if (chunk == 0) {
                float lse_log2 = __builtin_huge_valf();
                if (i < p.n) {
                    const float lse = p.lse[(int64_t)row_head * p.n + i];
                    // -inf (the query sees no key) becomes +inf: exp2(s - lse_log2) = 0.
                    if (lse != -__builtin_huge_valf()) lse_log2 = lse * 1.4426950408889634f;
                }
                p.delta[out + i] = acc;
                p.lse_log2[out + i] = lse_log2;
            }
        }
    }
};

}  // namespace attn
}  // namespace pa
