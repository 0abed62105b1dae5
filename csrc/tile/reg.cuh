// Register tiles: one warp's share of an operand or accumulator, in the mma.m16n8k16 layouts of
// geometry.cuh. Indices are compile-time constants after unrolling, so the arrays stay in
// registers.
#pragma once

#include "geometry.cuh"

namespace pa {
namespace tile {

// kRows x kCols fp32 accumulator (C/D layout): f[m][n][e] is element e of the 16 x 8 fragment in
// row block m, column block n.
template <int kRows_, int kCols_>
struct Acc {
    static constexpr int kRows = kRows_;
    static constexpr int kCols = kCols_;
    static constexpr int kM = kRows / 16;
    static constexpr int kN = kCols / 8;
    static_assert(kRows % 16 == 0 && kCols % 8 == 0, "whole 16 x 8 fragments");
    float f[kM][kN][4];

    PA_DEVICE void zero() {
        PA_UNROLL
        for (int m = 0; m < kM; ++m) {
            PA_UNROLL
            for (int n = 0; n < kN; ++n) {
                PA_UNROLL
                for (int e = 0; e < 4; ++e) f[m][n][e] = 0.f;
            }
        }
    }

    // Multiplies the two rows a lane holds in each row block m (rows g and g + 8: h = 0, 1).
    PA_DEVICE void scale_rows(const float (&s)[kM][2]) {
        PA_UNROLL
        for (int m = 0; m < kM; ++m) {
            PA_UNROLL
            for (int n = 0; n < kN; ++n) {
                PA_UNROLL
                for (int e = 0; e < 4; ++e) f[m][n][e] *= s[m][e >> 1];
            }
        }
    }
};

// kRows x kK 16-bit A operand (A layout, 4 registers of two elements per 16 x 16 block).
template <typename T_, int kRows_, int kK_>
struct AFrag {
    using T = T_;
    static constexpr int kRows = kRows_;
    static constexpr int kK = kK_;
    static constexpr int kM = kRows / 16;
    static constexpr int kKSteps = kK / 16;
    static_assert(kRows % 16 == 0 && kK % 16 == 0, "whole 16 x 16 blocks");
    uint32_t r[kM][kKSteps][4];
};

// An accumulator rounded to T as an A operand of the next product (P = softmax(S) in P V):
// the C layout of n8 fragments 2s and 2s + 1 is the A layout of k step s.
template <typename T, int kRows, int kCols>
PA_DEVICE void to_a(AFrag<T, kRows, kCols>& a, const Acc<kRows, kCols>& c) {
    PA_UNROLL
    for (int m = 0; m < Acc<kRows, kCols>::kM; ++m) {
        PA_UNROLL
        for (int s = 0; s < kCols / 16; ++s) {
            a.r[m][s][0] = pack2<T>(c.f[m][2 * s][0], c.f[m][2 * s][1]);
            a.r[m][s][1] = pack2<T>(c.f[m][2 * s][2], c.f[m][2 * s][3]);
            a.r[m][s][2] = pack2<T>(c.f[m][2 * s + 1][0], c.f[m][2 * s + 1][1]);
            a.r[m][s][3] = pack2<T>(c.f[m][2 * s + 1][2], c.f[m][2 * s + 1][3]);
        }
    }
}

}  // namespace tile
}  // namespace pa
