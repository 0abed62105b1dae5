// The element-wise steps of the backward on accumulator tiles: probabilities recomputed from raw
// scores and the per-query log-sum-exp, and dS = P * (dP - D). The per-query values come per ROW
// of the tile where rows are queries (dQ) and per COLUMN where the tile is transposed, rows being
// keys (dK/dV).
//
// P = exp2(s * scale_log2 - lse_log2) with lse_log2 = LSE * log2(e), +inf for a query that sees no
// key and for padding queries (the preprocess writes it so): a masked score (-inf) or such a query
// gives exp2(-inf) = 0, never (-inf) - (-inf) = NaN, without a branch here.
#pragma once

#include "../tile/tile.cuh"
#include "acc_rows.cuh"

namespace pa {
namespace attn {

// Two adjacent fp32 values (a lane's two columns of a fragment), read in one 8-byte access.
struct alignas(8) float2v {
    float x, y;
};
PA_DEVICE float2v load_f2(const float* p) { return *reinterpret_cast<const float2v*>(p); }

// Queries are rows: lse_log2[m][h] belongs to rows 16m + g + 8h of the lane (geometry.cuh), on a
// warp's tile::Acc or its rows of a warpgroup's wgmma accumulator (acc_rows.cuh): the sm80 and
// sm90a dQ kernels run this same code, element by element in the same order.
template <class A>
PA_DEVICE void probs_by_rows(A& s, const float (&lse_log2)[AccRows<A>::kM][2], float scale_log2) {
    using R = AccRows<A>;
    PA_UNROLL
    for (int m = 0; m < R::kM; ++m) {
        PA_UNROLL
        for (int n = 0; n < R::kN; ++n) {
            PA_UNROLL
            for (int e = 0; e < 4; ++e) {
                float& x = R::at(s, m, n, e);
                x = exp2_fast(fmaf(x, scale_log2, -lse_log2[m][e >> 1]));
            }
        }
    }
}

// dp <- p * (dp - delta), queries as rows (either accumulator, as probs_by_rows).
template <class A>
PA_DEVICE void dscores_by_rows(A& dp, A& p, const float (&delta)[AccRows<A>::kM][2]) {
    using R = AccRows<A>;
    PA_UNROLL
    for (int m = 0; m < R::kM; ++m) {
        PA_UNROLL
        for (int n = 0; n < R::kN; ++n) {
            PA_UNROLL
            for (int e = 0; e < 4; ++e) {
                float& x = R::at(dp, m, n, e);
                x = R::at(p, m, n, e) * (x - delta[m][e >> 1]);
            }
        }
    }
}

// Queries are columns: column c of the tile reads lse_log2[c] (shared memory). A lane's columns
// are 8n + 2t and 8n + 2t + 1: one 8-byte load per fragment. Either accumulator (acc_rows.cuh):
// the sm80 and sm90a dK/dV kernels run this same code.
template <class A>
PA_DEVICE void probs_by_cols(A& st, const float* lse_log2, float scale_log2) {
    using R = AccRows<A>;
    const tile::LaneCoords lc = tile::lane_coords();
    PA_UNROLL
    for (int n = 0; n < R::kN; ++n) {
        const float2v l = load_f2(lse_log2 + n * 8 + 2 * lc.t);
        PA_UNROLL
        for (int m = 0; m < R::kM; ++m) {
            PA_UNROLL
            for (int e = 0; e < 4; ++e) {
                float& x = R::at(st, m, n, e);
                x = exp2_fast(fmaf(x, scale_log2, -((e & 1) ? l.y : l.x)));
            }
        }
    }
}

// dpt <- pt * (dpt - delta), queries as columns (delta in shared memory; either accumulator).
template <class A>
PA_DEVICE void dscores_by_cols(A& dpt, A& pt, const float* delta) {
    using R = AccRows<A>;
    const tile::LaneCoords lc = tile::lane_coords();
    PA_UNROLL
    for (int n = 0; n < R::kN; ++n) {
        const float2v d = load_f2(delta + n * 8 + 2 * lc.t);
        PA_UNROLL
        for (int m = 0; m < R::kM; ++m) {
            PA_UNROLL
            for (int e = 0; e < 4; ++e) {
                float& x = R::at(dpt, m, n, e);
                x = R::at(pt, m, n, e) * (x - ((e & 1) ? d.y : d.x));
            }
        }
    }
}

}  // namespace attn
}  // namespace pa
