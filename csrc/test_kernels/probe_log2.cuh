// probe_log2: log2_fast (lg2.approx.ftz.f32 on the device) element-wise over a grid-stride loop,
// so the GPU fidelity test can hold the device's result against the emulator's model of it.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeLog2 : KernelSpec<PaProbeLog2Params, 1024> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeLog2Params &p) {
        const int64_t stride = (int64_t)pa::block_dim_x() * pa::grid_dim_x();
        for (int64_t i = (int64_t)pa::block_idx_x() * pa::block_dim_x() + pa::thread_idx_x();
             i < p.count; i += stride) {
            p.out[i] = pa::log2_fast(p.in[i]);
        }
    }
};

}  // namespace kernels
}  // namespace pa
