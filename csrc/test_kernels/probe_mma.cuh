// probe_mma: one mma.m16n8k16 per warp with its A, B and C fragments gathered straight from
// global memory by the PTX ISA fragment layout ("Matrix Fragments for mma.m16n8k16 with floating
// point type"), and D scattered back by it. Compared with a naive matmul on the emulator and,
// within a derived bound, with a GPU.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeMma : KernelSpec<PaProbeMmaParams, 1024> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeMmaParams &p) {
        const uint32_t warp = pa::block_idx_x() * (pa::block_dim_x() / 32) + pa::warp_id();
        if (warp >= p.tiles) return;  // whole warps only: the check is warp-uniform
        const uint32_t lane = pa::lane_id();
        const uint32_t g = lane >> 2, t = lane & 3;
        const uint16_t* A = p.a + (size_t)warp * 256;
        const uint16_t* B = p.b + (size_t)warp * 128;
        const float* C = p.c + (size_t)warp * 128;
        float* D = p.d + (size_t)warp * 128;
        auto pair = [](uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); };
        uint32_t a[4], b[2];
        a[0] = pair(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]);
        a[1] = pair(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]);
        a[2] = pair(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]);
        a[3] = pair(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9]);
        b[0] = pair(B[g * 16 + 2 * t], B[g * 16 + 2 * t + 1]);
        b[1] = pair(B[g * 16 + 2 * t + 8], B[g * 16 + 2 * t + 9]);
        float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t],
                      C[(g + 8) * 8 + 2 * t + 1]};
        if (p.f16)
            pa::MmaOp<pa::f16>::run(c, a, b, c);  // d aliases c, as the contract allows
        else
            pa::MmaOp<pa::bf16>::run(c, a, b, c);
        D[g * 8 + 2 * t] = c[0];
        D[g * 8 + 2 * t + 1] = c[1];
        D[(g + 8) * 8 + 2 * t] = c[2];
        D[(g + 8) * 8 + 2 * t + 1] = c[3];
    }
};

}  // namespace kernels
}  // namespace pa
