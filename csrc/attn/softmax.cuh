// Online softmax in fp32 over the rows a lane holds: rows g and g + 8 of each of its warp's kM
// 16-row blocks ([m][h], csrc/tile/geometry.cuh), in an mma.sync tile (sm80 path) or a wgmma
// accumulator (sm90a path, kM = 1); both are read through AccRows (acc_rows.cuh), so the two paths
// do the same arithmetic in the same order.
//
// Scores are kept raw (q.k); the running max m is raw too, and probabilities are
// exp2(s * scale_log2 - b) with b = fl(m * scale_log2), the exponent base, and scale_log2 =
// scale * log2(e), folded into one FMA. A row that has seen no visible key yet has m = -inf: the
// base then uses 0 instead of m, so masked scores give exp2(-inf) = 0 and the rescale factor of
// the (zero) accumulator is 0, never (-inf) - (-inf) = NaN. The row sum l is kept per lane and
// reduced over the quad once, at the end.
//
// Rounding (docs/forward.md derives the bounds from it). Every product that meets an add is
// either an explicit fmaf or a mul_rn, so nvcc cannot contract it differently from the host
// build. The rescale factor is exp2(b_old - b_new): both bases are the floats the probabilities
// were computed with, so it is exactly 1 (exp2(0)) while the max stays, and the terms of earlier
// tiles end up relative to the final base without an extra rounding per tile. (Contracting
// m_old * scale_log2 - b_new, as nvcc did, adds the rounding error of b, up to 2^-24 |b|, at every
// k tile.) The LSE is m * scale + ln 2 * (log2 l - r) with r = m * scale_log2 - b, which is exact
// with one FMA: the rounding of the base cancels, and m * scale is carried as hi + lo (lo exact
// with one FMA), so the only error of size |LSE| is the final add's rounding.
#pragma once

#include "../tile/tile.cuh"
#include "acc_rows.cuh"

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

    // Turns the scores `s` (a tile::Acc or an sm90::WgAcc: acc_rows.cuh) into unnormalised
    // probabilities in place, moves each row's max and sum to the new max, and gives the factor
    // alpha by which the row's O accumulator must be rescaled (rescale below) before this tile's
    // P V is added to it. All 32 lanes must call it (quad shuffles).
    template <class S>
    PA_DEVICE void scores(S& s, float (&alpha)[kM][2], float scale_log2) {
        using R = AccRows<S>;
        static_assert(R::kM == kM, "the scores hold this softmax's rows");
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                float mx = m[b][h];
                PA_UNROLL
                for (int n = 0; n < R::kN; ++n) {
                    mx = fmaxf(mx, fmaxf(R::at(s, b, n, 2 * h), R::at(s, b, n, 2 * h + 1)));
                }
                mx = tile::quad_max(mx);
                const float base = mx == -__builtin_huge_valf() ? 0.f : mul_rn(mx, scale_log2);
                // The previous base (the same float, recomputed), or -inf before the first key.
                const float a = exp2_fast(mul_rn(m[b][h], scale_log2) - base);
                m[b][h] = mx;
                float sum = 0.f;
                PA_UNROLL
                for (int n = 0; n < R::kN; ++n) {
                    PA_UNROLL
                    for (int c = 0; c < 2; ++c) {
                        float& x = R::at(s, b, n, 2 * h + c);
                        const float pr = exp2_fast(fmaf(x, scale_log2, -base));
                        x = pr;
                        sum += pr;
                    }
                }
                l[b][h] = fmaf(l[b][h], a, sum);
                alpha[b][h] = a;
            }
        }
    }

    // Multiplies each row of the O accumulator by its alpha from scores().
    template <class A>
    PA_DEVICE static void rescale(A& acc, const float (&alpha)[kM][2]) {
        using R = AccRows<A>;
        static_assert(R::kM == kM, "the accumulator holds this softmax's rows");
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                PA_UNROLL
                for (int n = 0; n < R::kN; ++n) {
                    R::at(acc, b, n, 2 * h) *= alpha[b][h];
                    R::at(acc, b, n, 2 * h + 1) *= alpha[b][h];
                }
            }
        }
    }

    // scores() and rescale() at once: the sm80 forward, whose P V follows right away.
    template <class S, class A>
    PA_DEVICE void update(S& s, A& acc, float scale_log2) {
        float alpha[kM][2];
        scores(s, alpha, scale_log2);
        rescale(acc, alpha);
    }

    // Quad-reduces l; returns 1 / l for each row (0 for a row that saw no key) and writes the
    // natural-log LSE (m * scale + ln l relative to m, or -inf).
    PA_DEVICE void finish(float (&inv_l)[kM][2], float (&lse)[kM][2], float scale, float scale_log2) {
        constexpr float kLn2 = 0.693147180559945309f;
        PA_UNROLL
        for (int b = 0; b < kM; ++b) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                const float sum = tile::quad_sum(l[b][h]);
                const bool any = sum > 0.f;
                inv_l[b][h] = any ? 1.f / sum : 0.f;
                // log2 l = e + log2 f with l = 2^e f, f in [1, 2): exact split, and lg2.approx's
                // error on (0.5, 2) is 2^-22 absolute, whatever the size of log2 l.
                const uint32_t bits = f32_as_u32(sum);
                const float e = static_cast<float>(static_cast<int>(bits >> 23) - 127);
                const float f = u32_as_f32((bits & 0x007fffffu) | 0x3f800000u);
                const float log2_l = e + log2_fast(f);
                const float mm = m[b][h];
                const float r = fmaf(mm, scale_log2, -mul_rn(mm, scale_log2));  // m sl2 - b
                const float hi = mul_rn(mm, scale);
                const float lo = fmaf(mm, scale, -hi);  // m scale - hi
                lse[b][h] = any ? hi + fmaf(log2_l - r, kLn2, lo) : -__builtin_huge_valf();
            }
        }
    }
};

}  // namespace attn
}  // namespace pa
