// The two accumulators attention kernels keep scores and outputs in, seen through one accessor so
// that the softmax and the mask are written once: a warp's mma.sync tile (tile::Acc<kR, kC>, the
// sm80 path) and a warpgroup's wgmma accumulator (sm90::WgAcc<N>, 64 x N, of which warp w of the
// warpgroup holds rows 16w..16w+15: csrc/pa/sm90.cuh).
//
// Both layouts give lane (g, t) = (lane / 4, lane % 4), in each 16-row block m and 8-column block
// n of its warp's rows, element e at row 16m + g + 8(e / 2), column 8n + 2t + e % 2: for tile::Acc
// that is f[m][n][e] (csrc/tile/geometry.cuh), for WgAcc register 4n + e (a warp holds one
// 16-row block). So the row a lane's element belongs to, and the quad that shares a row, are the
// same in both, and code written on AccRows<A>::at computes the same thing on either.
#pragma once

#include "../tile/tile.cuh"

namespace pa {
namespace attn {

template <class A>
struct AccRows;

template <int kR, int kC>
struct AccRows<tile::Acc<kR, kC>> {
    static constexpr int kM = kR / 16;  // 16-row blocks of the warp
    static constexpr int kN = kC / 8;   // 8-column blocks
    PA_DEVICE static float& at(tile::Acc<kR, kC>& a, int m, int n, int e) { return a.f[m][n][e]; }
};

template <int N>
struct AccRows<sm90::WgAcc<N>> {
    static constexpr int kM = 1;
    static constexpr int kN = N / 8;
    PA_DEVICE static float& at(sm90::WgAcc<N>& a, int, int n, int e) { return a[4 * n + e]; }
};

}  // namespace attn
}  // namespace pa
