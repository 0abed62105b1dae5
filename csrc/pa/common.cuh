// Generic helpers built on the path-specific primitives of device.cuh / host.cuh; identical on
// both paths.
#pragma once

namespace pa {

// Element type tag -> its packing and its mma.
template <typename T>
struct MmaOp;

template <>
struct MmaOp<bf16> {
    PA_DEVICE static void run(float d[4], const uint32_t a[4], const uint32_t b[2],
                              const float c[4] PA_SITE_PARAM) {
        mma_m16n8k16_bf16(d, a, b, c PA_SITE_ARG);
    }
};

template <>
struct MmaOp<f16> {
    PA_DEVICE static void run(float d[4], const uint32_t a[4], const uint32_t b[2],
                              const float c[4] PA_SITE_PARAM) {
        mma_m16n8k16_f16(d, a, b, c PA_SITE_ARG);
    }
};

template <typename T>
PA_DEVICE uint32_t pack2(float lo, float hi);
template <>
PA_DEVICE uint32_t pack2<bf16>(float lo, float hi) {
    return pack_bf16x2(lo, hi);
}
template <>
PA_DEVICE uint32_t pack2<f16>(float lo, float hi) {
    return pack_f16x2(lo, hi);
}

// Float to T (bf16 or f16), rounded to nearest even.
template <typename T>
PA_DEVICE T from_float(float x);
template <>
PA_DEVICE bf16 from_float<bf16>(float x) {
    return to_bf16(x);
}
template <>
PA_DEVICE f16 from_float<f16>(float x) {
    return to_f16(x);
}

template <typename T>
PA_DEVICE constexpr T min(T a, T b) {
    return b < a ? b : a;
}
template <typename T>
PA_DEVICE constexpr T max(T a, T b) {
    return a < b ? b : a;
}

}  // namespace pa
