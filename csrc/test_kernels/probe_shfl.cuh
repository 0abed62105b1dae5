// probe_shfl: every warp-shuffle case the kernels use, one output word per case per thread, so the
// emulator's shfl can be compared with its PTX definition (tests/emulator/primitives.rs) and with a GPU
// bit for bit (tests/gpu/emu_fidelity.rs).
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeShfl : KernelSpec<PaProbeShflParams, 1024> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeShflParams &p) {
        const uint32_t t = pa::block_idx_x() * pa::block_dim_x() + pa::thread_idx_x();
        const uint32_t v = p.values[t];
        const int src = p.src_lanes[t];
        uint32_t* out = p.out + (size_t)t * PA_PROBE_SHFL_CASES;
        // xor with every mask shape: single bits, all bits, none, a mixed one
        out[0] = pa::shfl_xor(v, 1);
        out[1] = pa::shfl_xor(v, 2);
        out[2] = pa::shfl_xor(v, 4);
        out[3] = pa::shfl_xor(v, 8);
        out[4] = pa::shfl_xor(v, 16);
        out[5] = pa::shfl_xor(v, 31);
        out[6] = pa::shfl_xor(v, 0);
        out[7] = pa::shfl_xor(v, 7);
        // float overloads move the bits untouched
        const float f = pa::u32_as_f32(v);
        out[8] = pa::f32_as_u32(pa::shfl_xor(f, 1));
        out[9] = pa::f32_as_u32(pa::shfl_xor(f, 16));
        // idx: per-lane source (any int: only its low 5 bits count), float, broadcast, rotate, -1
        out[10] = pa::shfl_idx(v, src);
        out[11] = pa::f32_as_u32(pa::shfl_idx(f, src ^ 5));
        out[12] = pa::shfl_idx(v, 0);
        out[13] = pa::shfl_idx(v, (int)pa::lane_id() + 1);
        out[14] = pa::shfl_idx(v, -1);
        // a butterfly sum over the warp (the softmax reduction pattern), on small exact integers
        float s = (float)(v & 0xff);
        for (int m = 16; m >= 1; m >>= 1) s += pa::shfl_xor(s, m);
        out[15] = pa::f32_as_u32(s);
    }
};

}  // namespace kernels
}  // namespace pa
