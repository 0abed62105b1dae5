// probe_tile_{bf16,f16}: every operation of the tile layer (csrc/tile/) once, on 64 x 64 tiles
// with two warps of 32 rows (so the fragments two 16-row blocks share are exercised): the row
// loader with its zero-fill, mma_ABt, mma_AB from shared memory and from registers (to_a), mma_AtB,
// row_max, store_scaled and store_rows with its row limit. Compared with f64 references on the
// emulator (tests/emulator/tile_ops.rs) and with the emulator on a GPU (the fidelity test).
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
    static constexpr int kSmemBytes = 3 * Tile::kBytes;  // A, B, the scaled output

    // Each lane's accumulator elements to their [row][col] places in a row-major 64-wide matrix
    // (one row pointer per row the lane holds; columns are constant offsets from it).
    template <int kR, int kC>
    PA_DEVICE static void write(float *out, int row0, const tile::Acc<kR, kC> &c) {
        const tile::LaneCoords lc = tile::lane_coords();
        PA_UNROLL
        for (int m = 0; m < kR / 16; ++m) {
            PA_UNROLL
            for (int h = 0; h < 2; ++h) {
                float *row = out + (row0 + 16 * m + tile::c_row(lc.g, 2 * h)) * 64 + tile::c_col(lc.t, 0);
                PA_UNROLL
                for (int n = 0; n < kC / 8; ++n) {
                    row[8 * n] = c.f[m][n][2 * h];
                    row[8 * n + 1] = c.f[m][n][2 * h + 1];
                }
            }
        }
    }

    PA_DEVICE static void run(const PaProbeTileParams &p) {
        T *smem = dyn_smem<T>();
        const Tile sA{smem};
        const Tile sB{smem + Tile::kElems};
        const Tile sOut{smem + 2 * Tile::kElems};
        const tile::RowLoader<Tile, 64> loader;
        loader.load(sA, reinterpret_cast<const T *>(p.a), 64, 0, p.rows_valid);
        loader.load(sB, reinterpret_cast<const T *>(p.b), 64, 0, 64);
        cp_async_commit();
        cp_async_wait<0>();
        sync_threads();

        // A B^T, and everything derived from it while it is live (one 32 x 64 accumulator).
        const int row0 = (int)warp_id() * kRows;
        const tile::LaneCoords lc = tile::lane_coords();
        tile::AFrag<T, kRows, 64> pf;
        {
            tile::Acc<kRows, 64> c;
            c.zero();
            tile::mma_ABt(c, sA, row0, sB, 0);
            write(p.abt, row0, c);

            float mx[kRows / 16][2];
            float scale[kRows / 16][2];
            PA_UNROLL
            for (int m = 0; m < kRows / 16; ++m) {
                PA_UNROLL
                for (int h = 0; h < 2; ++h) {
                    mx[m][h] = -__builtin_huge_valf();
                    scale[m][h] = 1.f / (float)(row0 + 16 * m + lc.g + 8 * h + 1);
                }
            }
            tile::row_max(mx, c);
            if (lc.t == 0) {
                PA_UNROLL
                for (int m = 0; m < kRows / 16; ++m) {
                    p.row_max[row0 + 16 * m + lc.g] = mx[m][0];
                    p.row_max[row0 + 16 * m + lc.g + 8] = mx[m][1];
                }
            }
            // A B^T / (row + 1), rounded, into its own tile (stored to global at the end).
            tile::store_scaled(sOut, row0, c, scale);
            tile::to_a(pf, c);
        }
        sync_threads();

        tile::Acc<kRows, 64> d;
        d.zero();
        tile::mma_AB(d, pf, sB, 0);
        write(p.pb, row0, d);
        // Barriers between the products keep the compiler from overlapping them (they are
        // independent), which would hold several accumulators at once and spill.
        sync_threads();

        d.zero();
        tile::mma_AB(d, sA, row0, sB, 0);
        write(p.ab, row0, d);
        sync_threads();

        d.zero();
        tile::mma_AtB(d, sA, row0, sB);
        write(p.atb, row0, d);

        sync_threads();
        tile::store_rows<Tile, 64>(reinterpret_cast<T *>(p.scaled), 64, sOut, 0, p.rows_valid);
    }
};

}  // namespace kernels
}  // namespace pa
