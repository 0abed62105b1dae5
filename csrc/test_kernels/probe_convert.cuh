// probe_convert: 16-bit conversions (both directions), pair packing, exp2_fast and float atomics,
// element-wise over a grid-stride loop.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeConvert : KernelSpec<PaProbeConvertParams, 1024> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeConvertParams &p) {
        const int64_t stride = (int64_t)pa::block_dim_x() * pa::grid_dim_x();
        for (int64_t i = (int64_t)pa::block_idx_x() * pa::block_dim_x() + pa::thread_idx_x();
             i < p.count; i += stride) {
            const float x = p.in[i];
            const float y = p.in[p.count - 1 - i];
            p.to_bf16[i] = pa::to_bf16(x).bits;
            p.to_f16[i] = pa::to_f16(x).bits;
            p.bf16_to_float[i] = pa::to_float(pa::bf16{p.bits16[i]});
            p.f16_to_float[i] = pa::to_float(pa::f16{p.bits16[i]});
            p.pack_bf16[i] = pa::pack_bf16x2(x, y);
            p.pack_f16[i] = pa::pack2<pa::f16>(x, y);
            p.exp2[i] = pa::exp2_fast(x);
            pa::atomic_add_f32(&p.atomic_sums[i % PA_PROBE_ATOMIC_SLOTS], (float)(i % 7));
        }
    }
};

}  // namespace kernels
}  // namespace pa
