// Online softmax in fp32 for the two query rows a thread holds (g and g + 8 of its warp's 16).
//
// Scores are kept raw (q.k); the running max m is raw too, and probabilities are
// exp2(s * scale_log2 - m * scale_log2) with scale_log2 = scale * log2(e) folded into one FMA.
// A row that has seen no visible key yet has m = -inf: the exponent base then uses 0 instead of
// m, so masked scores give exp2(-inf) = 0 and the rescale factor of the (zero) accumulator is 0,
// never (-inf) - (-inf) = NaN. The row sum l is kept per thread and reduced over the quad once,
// at the end.
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

struct OnlineSoftmax {
    float m[2];
    float l[2];

    PA_DEVICE void init() {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            m[h] = -__builtin_huge_valf();
            l[h] = 0.f;
        }
    }

    // Turns the scores `s` into unnormalised probabilities (in place) and rescales the O
    // accumulator for the new running max. All 32 lanes must call it (quad shuffles).
    template <int kSTiles, int kOTiles>
    PA_DEVICE void update(float (&s)[kSTiles][4], float (&acc)[kOTiles][4], float scale_log2) {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            float mx = m[h];
            PA_UNROLL
            for (int nt = 0; nt < kSTiles; ++nt) {
                mx = fmaxf(mx, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
            }
            // The four threads of a quad hold the same two rows.
            mx = fmaxf(mx, shfl_xor(mx, 1));
            mx = fmaxf(mx, shfl_xor(mx, 2));
            const float base = mx == -__builtin_huge_valf() ? 0.f : mx * scale_log2;
            const float alpha = exp2_fast(m[h] * scale_log2 - base);
            m[h] = mx;
            float sum = 0.f;
            PA_UNROLL
            for (int nt = 0; nt < kSTiles; ++nt) {
                PA_UNROLL
                for (int c = 0; c < 2; ++c) {
                    const float pr = exp2_fast(fmaf(s[nt][2 * h + c], scale_log2, -base));
                    s[nt][2 * h + c] = pr;
                    sum += pr;
                }
            }
            l[h] = l[h] * alpha + sum;
            PA_UNROLL
            for (int dt = 0; dt < kOTiles; ++dt) {
                acc[dt][2 * h] *= alpha;
                acc[dt][2 * h + 1] *= alpha;
            }
        }
    }

    // Quad-reduces l; returns 1 / l for each row (0 for a row that saw no key) and writes the
    // natural-log LSE (m * scale + ln l, or -inf).
    PA_DEVICE void finish(float (&inv_l)[2], float (&lse)[2], float scale) {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            float sum = l[h];
            sum += shfl_xor(sum, 1);
            sum += shfl_xor(sum, 2);
            const bool any = sum > 0.f;
            inv_l[h] = any ? 1.f / sum : 0.f;
            lse[h] = any ? m[h] * scale + logf(sum) : -__builtin_huge_valf();
        }
    }
};

}  // namespace attn
}  // namespace pa
