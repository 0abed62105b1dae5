// pa_swiglu_{bf16,f16}: the SwiGLU activation between an MLP's up and down GEMMs,
// out = silu(gate) * up, element-wise over [tokens, ffn].
//
// Purely bandwidth-bound (3 memory accesses per 5 flops and an exp), so the kernel only has to
// stream: each thread step loads 16 bytes of gate and of up (8 elements), computes in fp32 and
// stores 16 bytes; consecutive threads take consecutive vectors of a row, so every warp access
// is one contiguous 512-byte span. A grid-stride loop lets the host cap the grid.
#include "../pa/kernel.cuh"

namespace pa_swiglu {

constexpr float kLog2e = 1.4426950408889634f;
// Threads per CTA (the registry reports it; Rust launches with it).
constexpr uint32_t kThreads = 256;

// silu(g) * u in fp32. exp(-g) overflows to +inf for g below about -88, and g / inf = -0: the
// limit, with no NaN.
PA_DEVICE float swiglu(float g, float u) {
    return g / (1.0f + pa::exp2_fast(-g * kLog2e)) * u;
}

// Two packed 16-bit elements of type T to floats.
template <typename T>
PA_DEVICE float lo(uint32_t w) {
    return pa::to_float(T{static_cast<uint16_t>(w & 0xffffu)});
}
template <typename T>
PA_DEVICE float hi(uint32_t w) {
    return pa::to_float(T{static_cast<uint16_t>(w >> 16)});
}

template <typename T>
PA_DEVICE uint32_t pair(uint32_t g, uint32_t u) {
    return pa::pack2<T>(swiglu(lo<T>(g), lo<T>(u)), swiglu(hi<T>(g), hi<T>(u)));
}

template <typename T>
PA_DEVICE void run(const PaSwigluParams &p) {
    const int64_t step = (int64_t)pa::grid_dim_x() * kThreads;
    for (int64_t v = (int64_t)pa::block_idx_x() * kThreads + pa::thread_idx_x(); v < p.vectors;
         v += step) {
        const int64_t t = v / p.row_vectors;
        const int64_t c = (v - t * p.row_vectors) * 8;
        const pa::u32x4 g = *reinterpret_cast<const pa::u32x4 *>(
            static_cast<const T *>(p.gate) + t * p.gate_stride + c);
        const pa::u32x4 u = *reinterpret_cast<const pa::u32x4 *>(
            static_cast<const T *>(p.up) + t * p.up_stride + c);
        pa::u32x4 o;
        o.x = pair<T>(g.x, u.x);
        o.y = pair<T>(g.y, u.y);
        o.z = pair<T>(g.z, u.z);
        o.w = pair<T>(g.w, u.w);
        *reinterpret_cast<pa::u32x4 *>(static_cast<T *>(p.out) + t * p.out_stride + c) = o;
    }
}

template <typename T>
struct Swiglu : pa::KernelSpec<PaSwigluParams, kThreads> {
    static constexpr const char *kFamily = "swiglu";
    static constexpr int kDtype = pa::DtypeCode<T>::value;
    PA_DEVICE static void run(const PaSwigluParams &p) { pa_swiglu::run<T>(p); }
};

}  // namespace pa_swiglu
