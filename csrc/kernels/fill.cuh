// pa_fill_u32: writes one 32-bit pattern over a buffer. Tests poison every output with it before
// a launch, so an element that a kernel forgot to write shows up as the pattern.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct FillU32 : KernelSpec<PaFillParams, 1024> {
    static constexpr const char *kFamily = "fill";
    PA_DEVICE static void run(const PaFillParams &p) {
        const int64_t stride = (int64_t)pa::block_dim_x() * pa::grid_dim_x();
        for (int64_t i = (int64_t)pa::block_idx_x() * pa::block_dim_x() + pa::thread_idx_x();
             i < p.count; i += stride) {
            p.out[i] = p.value;
        }
    }
};

}  // namespace kernels
}  // namespace pa
