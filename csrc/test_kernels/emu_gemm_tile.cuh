// emu_gemm_tile: the sample tensor-core tile kernel of the emulator's tests. One CTA of 4 warps
// computes a 64x64x64 bf16 GEMM tile the way the attention kernels do: cp.async the two operand
// tiles into shared memory (two commit groups), ldmatrix them into mma fragments (plain or .trans
// depending on the operands' layouts), mma.m16n8k16 with f32 accumulators, then a row softmax of
// the accumulators with quad shuffles and exp2_fast. Each warp owns rows [16w, 16w + 16).
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct EmuGemmTile : KernelSpec<PaEmuGemmTileParams, 128> {
    static constexpr const char *kFamily = "emu_test";
    PA_DEVICE static void run(const PaEmuGemmTileParams &p) {
        const uint32_t t = pa::thread_idx_x();
        const uint32_t lane = pa::lane_id();
        const uint32_t m0 = pa::warp_id() * 16;
        uint16_t* sa = pa::dyn_smem<uint16_t>();  // 64x64 bf16, row stride 64 elements
        uint16_t* sb = sa + 64 * 64;

        // 512 chunks of 16 bytes per operand, 4 per thread; one group per operand.
        for (uint32_t i = 0; i < 4; i++) {
            const uint32_t c = t + 128 * i;
            pa::cp_async_16(sa + c * 8, p.a + c * 8);
        }
        pa::cp_async_commit();
        for (uint32_t i = 0; i < 4; i++) {
            const uint32_t c = t + 128 * i;
            pa::cp_async_16(sb + c * 8, p.b + c * 8);
        }
        pa::cp_async_commit();
        pa::cp_async_wait<0>();
        pa::sync_threads();

        // ldmatrix addressing: lane supplies row r8 of matrix i8.
        const uint32_t i8 = lane / 8, r8 = lane % 8;
        float acc[8][4];
        for (int j = 0; j < 8; j++)
            for (int e = 0; e < 4; e++) acc[j][e] = 0.0f;

        for (uint32_t kk = 0; kk < 4; kk++) {
            uint32_t a[4];
            if (!p.a_kmajor) {
                // A[m][k]: matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
                const uint16_t* row = sa + (m0 + (i8 & 1) * 8 + r8) * 64 + kk * 16 + (i8 >> 1) * 8;
                pa::ldmatrix_x4(a[0], a[1], a[2], a[3], row);
            } else {
                // A stored [k][m]: the same four matrices, each read transposed
                const uint16_t* row = sa + (kk * 16 + (i8 >> 1) * 8 + r8) * 64 + m0 + (i8 & 1) * 8;
                pa::ldmatrix_x4_trans(a[0], a[1], a[2], a[3], row);
            }
            for (uint32_t jj = 0; jj < 4; jj++) {
                // two n-tiles (2jj, 2jj+1) of 8 columns: matrices (n-tile, k 0-7 | k 8-15)
                uint32_t b[4];
                const uint32_t n = jj * 16 + (i8 >> 1) * 8;
                const uint32_t k = kk * 16 + (i8 & 1) * 8;
                if (!p.b_kmajor) {
                    pa::ldmatrix_x4(b[0], b[1], b[2], b[3], sb + (n + r8) * 64 + k);
                } else {
                    pa::ldmatrix_x4_trans(b[0], b[1], b[2], b[3], sb + (k + r8) * 64 + n);
                }
                pa::mma_m16n8k16_bf16(acc[2 * jj], a, b, acc[2 * jj]);
                pa::mma_m16n8k16_bf16(acc[2 * jj + 1], a, b + 2, acc[2 * jj + 1]);
            }
        }

        // C fragment: lane holds rows g and g + 8, columns 8j + 2q and 8j + 2q + 1.
        const uint32_t g = lane >> 2, q = lane & 3;
        for (int h = 0; h < 2; h++) {
            const uint32_t m = m0 + g + 8 * h;
            for (int j = 0; j < 8; j++) {
                p.c[m * 64 + 8 * j + 2 * q] = acc[j][2 * h];
                p.c[m * 64 + 8 * j + 2 * q + 1] = acc[j][2 * h + 1];
            }
            // row softmax of c * scale: the row is spread over the 4 lanes of a quad
            float mx = acc[0][2 * h];
            for (int j = 0; j < 8; j++) mx = fmaxf(mx, fmaxf(acc[j][2 * h], acc[j][2 * h + 1]));
            mx = fmaxf(mx, pa::shfl_xor(mx, 1));
            mx = fmaxf(mx, pa::shfl_xor(mx, 2));
            const float k2 = p.scale * 1.4426950408889634f;  // exp(x) = exp2(x * log2 e)
            float e[16];
            float sum = 0.0f;
            for (int j = 0; j < 8; j++) {
                e[2 * j] = pa::exp2_fast((acc[j][2 * h] - mx) * k2);
                e[2 * j + 1] = pa::exp2_fast((acc[j][2 * h + 1] - mx) * k2);
                sum += e[2 * j] + e[2 * j + 1];
            }
            sum += pa::shfl_xor(sum, 1);
            sum += pa::shfl_xor(sum, 2);
            const float inv = 1.0f / sum;
            for (int j = 0; j < 8; j++) {
                p.p[m * 64 + 8 * j + 2 * q] = e[2 * j] * inv;
                p.p[m * 64 + 8 * j + 2 * q + 1] = e[2 * j + 1] * inv;
            }
        }
    }
};

}  // namespace kernels
}  // namespace pa
