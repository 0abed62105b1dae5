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

// The A operands of k step ks for the kR / 16 row blocks starting at row0 of a [m][k] tile.
template <int kR, class TA>
PA_DEVICE void load_a_rows(uint32_t (&af)[kR / 16][4], const TA& a, uint32_t lane_base, int row0, int ks) {
    PA_UNROLL
    for (int m = 0; m < kR / 16; ++m) {
        ldmatrix_x4(af[m][0], af[m][1], af[m][2], af[m][3], a.block(lane_base, row0 + 16 * m, 2 * ks));
    }
}

// c[m][2np] += af[m] * bf[0..1] and c[m][2np + 1] += af[m] * bf[2..3] for every row block m: one
// loaded B pair (two n8 fragments) serves all of the warp's row blocks.
template <typename T, int kR, int kC, class AF>
PA_DEVICE void mma_pair(Acc<kR, kC>& c, const AF& af, const uint32_t (&bf)[4], int np) {
    PA_UNROLL
    for (int m = 0; m < kR / 16; ++m) {
        MmaOp<T>::run(c.f[m][2 * np], af[m], bf, c.f[m][2 * np]);
        MmaOp<T>::run(c.f[m][2 * np + 1], af[m], bf + 2, c.f[m][2 * np + 1]);
    }
}

// How B is stored: [n][k] (B^T row-major: plain ldmatrix under kPairs) or [k][n] (row-major:
// ldmatrix.trans under kRows16).
enum class BLayout { kNK, kKN };

template <BLayout kL>
PA_DEVICE constexpr LdsmPattern b_pattern() {
    return kL == BLayout::kNK ? LdsmPattern::kPairs : LdsmPattern::kRows16;
}

// The B operands of n8 fragments 2np and 2np + 1 at k step ks (in bf[0..1] and bf[2..3]), from a
// tile whose rows start at row0.
template <BLayout kL, class TB>
PA_DEVICE void load_b_pair(uint32_t (&bf)[4], const TB& b, uint32_t lane_base, int row0, int ks, int np) {
    if constexpr (kL == BLayout::kNK) {
        ldmatrix_x4(bf[0], bf[1], bf[2], bf[3], b.block(lane_base, row0 + 16 * np, 2 * ks));
    } else {
        ldmatrix_x4_trans(bf[0], bf[1], bf[2], bf[3], b.block(lane_base, row0 + 16 * ks, 2 * np));
    }
}

// C[i][j] += sum_k A[a_row0 + i][k] * B(k, j) with A [m][k] in shared memory and B as kL says,
// over all of A's columns.
template <BLayout kL, int kR, int kC, class TA, class TB>
PA_DEVICE void mma_smem(Acc<kR, kC>& c, const TA& a, int a_row0, const TB& b, int b_row0) {
    const uint32_t a_lane = TA::lane_base(LdsmPattern::kRows16);
    const uint32_t b_lane = TB::lane_base(b_pattern<kL>());
    PA_UNROLL
    for (int ks = 0; ks < TA::kCols / 16; ++ks) {
        uint32_t af[kR / 16][4];
        load_a_rows<kR>(af, a, a_lane, a_row0, ks);
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];
            load_b_pair<kL>(bf, b, b_lane, b_row0, ks, np);
            mma_pair<typename TA::T>(c, af, bf, np);
        }
    }
}

// C[i][j] += sum_k A[a_row0 + i][k] * B[b_row0 + j][k] over all of A's and B's columns.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_ABt(Acc<kR, kC>& c, const TA& a, int a_row0, const TB& b, int b_row0) {
    static_assert(TA::kCols == TB::kCols, "A and B share the k extent");
    mma_smem<BLayout::kNK>(c, a, a_row0, b, b_row0);
}

// C[i][j] += sum_k A[a_row0 + i][k] * B[b_row0 + k][j], A in shared memory, over all of A's
// columns and B's columns.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_AB(Acc<kR, kC>& c, const TA& a, int a_row0, const TB& b, int b_row0) {
    static_assert(TB::kCols == kC, "C spans B's columns");
    mma_smem<BLayout::kKN>(c, a, a_row0, b, b_row0);
}

// C[i][j] += sum_k A[i][k] * B[b_row0 + k][j], A in registers, over all of B's columns.
template <int kR, int kC, typename T, int kK, class TB>
PA_DEVICE void mma_AB(Acc<kR, kC>& c, const AFrag<T, kR, kK>& a, const TB& b, int b_row0) {
    static_assert(TB::kCols == kC, "C spans B's columns");
    const uint32_t b_lane = TB::lane_base(b_pattern<BLayout::kKN>());
    PA_UNROLL
    for (int ks = 0; ks < kK / 16; ++ks) {
        PA_UNROLL
        for (int np = 0; np < kC / 16; ++np) {
            uint32_t bf[4];
            load_b_pair<BLayout::kKN>(bf, b, b_lane, b_row0, ks, np);
            PA_UNROLL
            for (int m = 0; m < kR / 16; ++m) {
                MmaOp<T>::run(c.f[m][2 * np], a.r[m][ks], bf, c.f[m][2 * np]);
                MmaOp<T>::run(c.f[m][2 * np + 1], a.r[m][ks], bf + 2, c.f[m][2 * np + 1]);
            }
        }
    }
}

// C[i][j] += sum_k A[k][a_col0 + i] * B[k][j] over all rows of A and B (A^T B): A's transposed
// blocks come from ldmatrix.trans under the kPairs pattern. a_col0 is a multiple of 16.
template <int kR, int kC, class TA, class TB>
PA_DEVICE void mma_AtB(Acc<kR, kC>& c, const TA& a, int a_col0, const TB& b) {
    static_assert(TA::kRows == TB::kRows, "A and B share the k extent (their rows)");
    static_assert(TB::kCols == kC, "C spans B's columns");
    const uint32_t a_lane = TA::lane_base(LdsmPattern::kPairs);
    const uint32_t b_lane = TB::lane_base(b_pattern<BLayout::kKN>());
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
            load_b_pair<BLayout::kKN>(bf, b, b_lane, 0, ks, np);
            mma_pair<typename TA::T>(c, af, bf, np);
        }
    }
}

}  // namespace tile
}  // namespace pa
