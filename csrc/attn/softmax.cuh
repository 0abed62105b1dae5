// Online softmax in fp32 over the rows a lane holds: rows g and g + 8 of each of its warp's kM
// 16-row blocks ([m][h], csrc/tile/geometry.cuh).
//
// Scores are kept raw (q.k); the running max m is raw too, and probabilities are
// exp2(s * scale_log2 - m * scale_log2) with scale_log2 = scale * log2(e) folded into one FMA.
// A row that has seen no visible key yet has m = -inf: the exponent base then uses 0 instead of
// m, so masked scores give exp2(-inf) = 0 and the rescale factor of the (zero) accumulator is 0,
// never (-inf) - (-inf) = NaN. The row sum l is kept per lane and reduced over the quad once,
// at the end.
#pragma once

#include "../tile/tile.cuh"

namespace pa {
namespace attn {

template <int kM>
struct OnlineSoftmax {
    float m[kM][2];
    float l[kM][2];

    PA_DEVICE void init() {
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                m[b][h] = -__builtin_huge_valf();
                l[b][h] = 0.f;
            }
        }
    }

    // Turns the scores `s` into unnormalised probabilities (in place) and rescales the O
    // accumulator for the new running max. All 32 lanes must call it (quad shuffles).
    template <int kC, int kD>
    PA_DEVICE void update(tile::Acc<16 * kM, kC>& s, tile::Acc<16 * kM, kD>& acc, float scale_log2) {
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                float mx = m[b][h];
                PA_UNROLL
                for (int n = 0; n < kC / 8; ++n) {
                    mx = fmaxf(mx, fmaxf(s.f[b][n][2 * h], s.f[b][n][2 * h + 1]));
                }
                mx = tile::quad_max(mx);
                const float base = mx == -__builtin_huge_valf() ? 0.f : mx * scale_log2;
                const float alpha = exp2_fast(m[b][h] * scale_log2 - base);
                m[b][h] = mx;
                float sum = 0.f;
                PA_UNROLL
                for (int n = 0; n < kC / 8; ++n) {
                    PA_UNROLL
                    for (int c = 0; c < 2; ++c) {
                        const float pr = exp2_fast(fmaf(s.f[b][n][2 * h + c], scale_log2, -base));
                        s.f[b][n][2 * h + c] = pr;
                        sum += pr;
                    }
                }
                l[b][h] = l[b][h] * alpha + sum;
                PA_UNROLL
                for (int n = 0; n < kD / 8; ++n) {
                    acc.f[b][n][2 * h] *= alpha;
                    acc.f[b][n][2 * h + 1] *= alpha;
                }
            }
        }
    }

    // Quad-reduces l; returns 1 / l for each row (0 for a row that saw no key) and writes the
    // natural-log LSE (m * scale + ln l, or -inf).
    PA_DEVICE void finish(float (&inv_l)[kM][2], float (&lse)[kM][2], float scale) {
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                const float sum = tile::quad_sum(l[b][h]);
                const bool any = sum > 0.f;
                inv_l[b][h] = any ? 1.f / sum : 0.f;
                lse[b][h] = any ? m[b][h] * scale + logf(sum) : -__builtin_huge_valf();
            }
        }
    }
};

}  // namespace attn
}  // namespace pa
