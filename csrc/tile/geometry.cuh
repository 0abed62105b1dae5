// Where each element of an mma.m16n8k16 operand lives (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"), and which row address each lane gives ldmatrix. Every
// other tile file takes its layouts from here; nothing else spells them.
//
// A lane is (g, t) = (lane / 4, lane % 4):
// - C/D, 16 x 8 fp32, 4 registers: element e sits at row g + 8 * (e / 2), column 2t + (e % 2).
// - A, 16 x 16 16-bit, 4 registers of 2 elements: register r holds row g + 8 * (r % 2), columns
//   2t + 8 * (r / 2) + {0, 1}.
// - B, 16 x 8 (k x n) 16-bit, 2 registers: register r holds rows (k) 2t + 8r + {0, 1} of column g.
// So the C layout of two adjacent n8 fragments is the A layout of one k16 step: an accumulator
// turns into an A operand by packing, without moving data between lanes.
//
// ldmatrix.x4 loads four 8 x 8 matrices; lanes 8i .. 8i + 7 give the row addresses of matrix i,
// and register i of lane (g, t) receives row g, elements 2t, 2t + 1 of matrix i (with .trans:
// column g, elements 2t, 2t + 1, i.e. the matrix transposed). Two lane patterns cover every
// operand the attention kernels load from a row-major 16-bit tile (16 rows, two 8-column chunks):
// - kRows16: lane l gives row l % 16 of chunk l / 16. Matrices: (rows 0-7, chunk 0),
//   (rows 8-15, chunk 0), (rows 0-7, chunk 1), (rows 8-15, chunk 1). Plain, that is an A operand
//   (rows = m, chunks = k); with .trans, the B operands of two n8 fragments of a [k][n] tile.
// - kPairs: lane l gives row 8 * (l / 16) + l % 8 of chunk (l / 8) % 2. Matrices: (rows 0-7,
//   chunk 0), (rows 0-7, chunk 1), (rows 8-15, chunk 0), (rows 8-15, chunk 1). Plain, the B
//   operands of two n8 fragments of an [n][k] tile; with .trans, an A operand of a [k][m] tile.
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace tile {

// The lane's (g, t) in the fragment layouts.
struct LaneCoords {
    int g;
    int t;
};

PA_DEVICE LaneCoords lane_coords() {
    const int lane = (int)lane_id();
    return LaneCoords{lane >> 2, lane & 3};
}

// Row and column of C/D element e of lane (g, t) within its 16 x 8 fragment.
PA_DEVICE constexpr int c_row(int g, int e) { return g + 8 * (e >> 1); }
PA_DEVICE constexpr int c_col(int t, int e) { return 2 * t + (e & 1); }

// The two ldmatrix.x4 lane patterns above.
enum class LdsmPattern { kRows16, kPairs };

// Row (0..15) and chunk (0 or 1) whose address lane `lane` gives under `pattern`.
PA_DEVICE constexpr int ldsm_row(LdsmPattern pattern, int lane) {
    return pattern == LdsmPattern::kRows16 ? (lane & 15) : (((lane >> 4) << 3) | (lane & 7));
}
PA_DEVICE constexpr int ldsm_chunk(LdsmPattern pattern, int lane) {
    return pattern == LdsmPattern::kRows16 ? (lane >> 4) : ((lane >> 3) & 1);
}

}  // namespace tile
}  // namespace pa
