// Row reductions of an accumulator tile. In the C layout the four lanes of a quad (same g) hold
// the same two rows of each row block (g and g + 8), so a row's max or sum is a per-lane
// reduction over its fragments followed by two shuffles inside the quad.
#pragma once

#include "reg.cuh"

namespace pa {
namespace tile {

PA_DEVICE float quad_max(float x) {
    x = fmaxf(x, shfl_xor(x, 1));
    return fmaxf(x, shfl_xor(x, 2));
}

PA_DEVICE float quad_sum(float x) {
    x += shfl_xor(x, 1);
    return x + shfl_xor(x, 2);
}

// Per-lane row values of a tile with kM row blocks: [m][h] is row 16m + g + 8h of the tile.
template <int kM>
using RowVals = float[kM][2];

// mx[m][h] = max(mx[m][h], every element of that row in c), reduced over the quad.
template <int kR, int kC>
PA_DEVICE void row_max(float (&mx)[kR / 16][2], const Acc<kR, kC>& c) {
    PA_UNROLL
    for (int m = 0; m < kR / 16; ++m) {
        PA_UNROLL
        for (int h = 0; h < 2; ++h) {
            float x = mx[m][h];
            PA_UNROLL
            for (int n = 0; n < kC / 8; ++n) x = fmaxf(x, fmaxf(c.f[m][n][2 * h], c.f[m][n][2 * h + 1]));
            mx[m][h] = quad_max(x);
        }
    }
}

}  // namespace tile
}  // namespace pa
