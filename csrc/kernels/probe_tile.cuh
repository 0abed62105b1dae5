// probe_tile_{bf16,f16}: every operation of the tile layer (csrc/tile/) once, on 64 x 64 tiles
// with two warps of 32 rows (so the fragments two 16-row blocks share are exercised): the row
// loader with its zero-fill, mma_ABt, mma_AB from shared memory and from registers (to_a), mma_AtB,
// row_max, store_scaled and store_rows with its row limit. Compared with f64 references on the
// emulator (tests/emu_tile_ops.rs) and with the emulator on a GPU (the fidelity test).
#include "../pa/kernel.cuh"
#include "../tile/tile.cuh"

namespace pa {
namespace kernels {

template <typename T>
struct ProbeTile : KernelSpec<PaProbeTileParams, 64> {
    static constexpr const char *kFamily = "probe_tile";
    static constexpr int kDtype = DtypeCode<T>::value;
    using Tile = tile::Smem<T, 64, 64>;
    static constexpr int kRows = 32;  // per warp
    static constexpr int kSmemBytes = 2 * Tile::kBytes;

    // Each lane's accumulator elements to their [row][col] places in a row-major 64-wide matrix.
    template <int kR, int kC>
    PA_DEVICE static void write(float *out, int row0, const tile::Acc<kR, kC> &c) {
        const tile::LaneCoords lc = tile::lane_coords();
        PA_UNROLL
        for (int m = 0; m < kR / 16; ++m) {
            PA_UNROLL
            for (int n = 0; n < kC / 8; ++n) {
                PA_UNROLL
                for (int e = 0; e < 4; ++e) {
                    out[(row0 + 16 * m + tile::c_row(lc.g, e)) * 64 + 8 * n + tile::c_col(lc.t, e)] = c.f[m][n][e];
                }
            }
        }
    }

    PA_DEVICE static void run(const PaProbeTileParams &p) {
        T *smem = dyn_smem<T>();
        const Tile sA{smem};
        const Tile sB{smem + Tile::kElems};
        const tile::RowLoader<Tile, 64> loader;
        loader.load(sA, reinterpret_cast<const T *>(p.a), 64, 0, p.rows_valid);
        loader.load(sB, reinterpret_cast<const T *>(p.b), 64, 0, 64);
        cp_async_commit();
        cp_async_wait<0>();
        sync_threads();

        const int row0 = (int)warp_id() * kRows;
        tile::Acc<kRows, 64> c;
        c.zero();
        tile::mma_ABt(c, sA, row0, sB, 0);
        write(p.abt, row0, c);

        float mx[kRows / 16][2];
        PA_UNROLL
        for (int m = 0; m < kRows / 16; ++m) mx[m][0] = mx[m][1] = -__builtin_huge_valf();
        tile::row_max(mx, c);
        const tile::LaneCoords lc = tile::lane_coords();
        if (lc.t == 0) {
            PA_UNROLL
            for (int m = 0; m < kRows / 16; ++m) {
                p.row_max[row0 + 16 * m + lc.g] = mx[m][0];
                p.row_max[row0 + 16 * m + lc.g + 8] = mx[m][1];
            }
        }

        tile::AFrag<T, kRows, 64> pf;
        tile::to_a(pf, c);
        tile::Acc<kRows, 64> d;
        d.zero();
        tile::mma_AB(d, pf, sB, 0);
        write(p.pb, row0, d);

        d.zero();
        tile::mma_AB(d, sA, row0, sB, 0);
        write(p.ab, row0, d);

        d.zero();
        tile::mma_AtB(d, sA, row0, sB);
        write(p.atb, row0, d);

        // A B^T / (row + 1) through a shared tile (B's, free once every warp is past its reads).
        float scale[kRows / 16][2];
        PA_UNROLL
        for (int m = 0; m < kRows / 16; ++m) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) scale[m][h] = 1.f / (float)(row0 + 16 * m + lc.g + 8 * h + 1);
        }
        sync_threads();
        tile::store_scaled(sB, row0, c, scale);
        sync_threads();
        tile::store_rows<Tile, 64>(reinterpret_cast<T *>(p.scaled), 64, sB, 0, p.rows_valid);
    }
};

}  // namespace kernels
}  // namespace pa
