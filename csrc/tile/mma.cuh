// Warp-level tile products on mma.m16n8k16 (fp32 accumulation), operands loaded with ldmatrix
// from swizzled shared-memory tiles (smem.cuh) or taken from register tiles (reg.cuh). Each warp
// computes its own rows; the names say which operand is transposed, as in the math:
//
//   mma_ABt  C += A B^T   A [m][k], B [n][k] row-major      S = Q K^T, dP = dO V^T
//   mma_AB   C += A B     A [m][k] registers or smem,       O += P V, dQ += dS K
//                         B [k][n] row-major
//   mma_AtB  C += A^T B   A [k][m], B [k][n] row-major      dV += P^T dO, dK += dS^T Q
//
// Every product walks k in ascending 16-wide steps for each output fragment, so a result does
// not depend on how a kernel interleaves fragments.
#pragma once

#include "reg.cuh"
#include "smem.cuh"

namespace pa {
namespace tile {

// C[i][j] += sum_k A[a_row0 + i][k] * B[b_row0 + j][k] over all of A's and B's columns.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_ABt(Acc<kR, kC>& c, const TA& a, int a_row0, const TB& b, int b_row0) {
    using T = typename TA::T;
    static_assert(TA::kCols == TB::kCols, "A and B share the k extent");
    const uint32_t a_lane = TA::lane_base(LdsmPattern::kRows16);
    const uint32_t b_lane = TB::lane_base(LdsmPattern::kPairs);
    PA_UNROLL
    for (int ks = 0; ks < TA::kCols / 16; ++ks) {
        uint32_t af[kR / 16][4];
        PA_UNROLL
        for (int m = 0; m < kR / 16; ++m) {
            ldmatrix_x4(af[m][0], af[m][1], af[m][2], af[m][3], a.block(a_lane, a_row0 + 16 * m, 2 * ks));
        }
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];  // n8 fragment 2np in bf[0..1], 2np + 1 in bf[2..3]
            ldmatrix_x4(bf[0], bf[1], bf[2], bf[3], b.block(b_lane, b_row0 + 16 * np, 2 * ks));
            PA_UNROLL
            for (int m = 0; m < kR / 16; ++m) {
                MmaOp<T>::run(c.f[m][2 * np], af[m], bf, c.f[m][2 * np]);
                MmaOp<T>::run(c.f[m][2 * np + 1], af[m], bf + 2, c.f[m][2 * np + 1]);
            }
        }
    }
}

// C[i][j] += sum_k A[i][k] * B[b_row0 + k][j], A in registers, over all of B's columns.
template <int kR, int kC, typename T, int kK, class TB>
PA_DEVICE void mma_AB(Acc<kR, kC>& c, const AFrag<T, kR, kK>& a, const TB& b, int b_row0) {
    static_assert(TB::kCols == kC, "C spans B's columns");
    const uint32_t b_lane = TB::lane_base(LdsmPattern::kRows16);
    PA_UNROLL
    for (int ks = 0; ks < kK / 16; ++ks) {
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];  // .trans: n8 fragment 2np in bf[0..1], 2np + 1 in bf[2..3]
            ldmatrix_x4_trans(bf[0], bf[1], bf[2], bf[3], b.block(b_lane, b_row0 + 16 * ks, 2 * np));
            PA_UNROLL
            for (int m = 0; m < kR / 16; ++m) {
                MmaOp<T>::run(c.f[m][2 * np], a.r[m][ks], bf, c.f[m][2 * np]);
                MmaOp<T>::run(c.f[m][2 * np + 1], a.r[m][ks], bf + 2, c.f[m][2 * np + 1]);
            }
        }
    }
}

// C[i][j] += sum_k A[a_row0 + i][k] * B[b_row0 + k][j], A in shared memory, over all of A's
// columns and B's columns.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_AB(Acc<kR, kC>& c, const TA& a, int a_row0, const TB& b, int b_row0) {
    using T = typename TA::T;
    static_assert(TB::kCols == kC, "C spans B's columns");
    const uint32_t a_lane = TA::lane_base(LdsmPattern::kRows16);
    const uint32_t b_lane = TB::lane_base(LdsmPattern::kRows16);
    PA_UNROLL
    for (int ks = 0; ks < TA::kCols / 16; ++ks) {
        uint32_t af[kR / 16][4];
        PA_UNROLL
        for (int m = 0; m < kR / 16; ++m) {
            ldmatrix_x4(af[m][0], af[m][1], af[m][2], af[m][3], a.block(a_lane, a_row0 + 16 * m, 2 * ks));
        }
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];
            ldmatrix_x4_trans(bf[0], bf[1], bf[2], bf[3], b.block(b_lane, b_row0 + 16 * ks, 2 * np));
            PA_UNROLL
            for (int m = 0; m < kR / 16; ++m) {
                MmaOp<T>::run(c.f[m][2 * np], af[m], bf, c.f[m][2 * np]);
                MmaOp<T>::run(c.f[m][2 * np + 1], af[m], bf + 2, c.f[m][2 * np + 1]);
            }
        }
    }
}

// C[i][j] += sum_k A[k][a_col0 + i] * B[k][j] over all rows of A and B (A^T B): A's transposed
// blocks come from ldmatrix.trans under the kPairs pattern, B's from ldmatrix.trans under kRows16.
// a_col0 is a multiple of 16.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_AtB(Acc<kR, kC>& c, const TA& a, int a_col0, const TB& b) {
    using T = typename TA::T;
    static_assert(TA::kRows == TB::kRows, "A and B share the k extent (their rows)");
    static_assert(TB::kCols == kC, "C spans B's columns");
    const uint32_t a_lane = TA::lane_base(LdsmPattern::kPairs);
    const uint32_t b_lane = TB::lane_base(LdsmPattern::kRows16);
    PA_UNROLL
    for (int ks = 0; ks < TA::kRows / 16; ++ks) {
        uint32_t af[kR / 16][4];
        PA_UNROLL
        for (int m = 0; m < kR / 16; ++m) {
            ldmatrix_x4_trans(af[m][0], af[m][1], af[m][2], af[m][3],
                              a.block(a_lane, 16 * ks, (a_col0 + 16 * m) / 8));
        }
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];
            ldmatrix_x4_trans(bf[0], bf[1], bf[2], bf[3], b.block(b_lane, 16 * ks, 2 * np));
            PA_UNROLL
            for (int m = 0; m < kR / 16; ++m) {
                MmaOp<T>::run(c.f[m][2 * np], af[m], bf, c.f[m][2 * np]);
                MmaOp<T>::run(c.f[m][2 * np + 1], af[m], bf + 2, c.f[m][2 * np + 1]);
            }
        }
    }
}

}  // namespace tile
}  // namespace pa
