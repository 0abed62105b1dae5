// probe_ldmatrix: all six ldmatrix forms over one set of per-lane row addresses into shared
// memory, every destination register written out.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeLdmatrix : KernelSpec<PaProbeLdmatrixParams, 64> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeLdmatrixParams &p) {
        const uint32_t t = pa::thread_idx_x();
        uint16_t* smem = pa::dyn_smem<uint16_t>();
        for (uint32_t i = t; i < PA_PROBE_LDMATRIX_ROWS * 8; i += pa::block_dim_x()) smem[i] = p.rows[i];
        pa::sync_threads();
        const uint16_t* row = smem + 8 * p.row_of_lane[t];
        uint32_t r[PA_PROBE_LDMATRIX_REGS];
        pa::ldmatrix_x1(r[0], row);
        pa::ldmatrix_x2(r[1], r[2], row);
        pa::ldmatrix_x4(r[3], r[4], r[5], r[6], row);
        pa::ldmatrix_x1_trans(r[7], row);
        pa::ldmatrix_x2_trans(r[8], r[9], row);
        pa::ldmatrix_x4_trans(r[10], r[11], r[12], r[13], row);
        for (int i = 0; i < PA_PROBE_LDMATRIX_REGS; i++) p.out[t * PA_PROBE_LDMATRIX_REGS + i] = r[i];
    }
};

}  // namespace kernels
}  // namespace pa
