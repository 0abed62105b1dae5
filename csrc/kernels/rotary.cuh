// pa_rotary_{bf16,f16}: rotary position embedding in place, one CTA per token.
//
// The angle of every (position, pair) comes from f32 cos/sin tables computed once on the host
// in f64 (src/rotary.rs), so the kernel needs no sin/cos: it gathers the token's position id
// once, then its threads stride over the (head, pair) items of the token. A pair is (i, i + d/2)
// of one head: two 2-byte loads that consecutive threads make at consecutive addresses, so each
// warp reads two contiguous 64-byte spans per step. Every thread writes only its own pair, so
// threads need no synchronisation.
#include "../pa/kernel.cuh"

namespace pa_rotary {

// Threads per CTA (the registry reports it; Rust launches with it).
constexpr uint32_t kThreads = 128;

template <typename T>
PA_DEVICE void run(const PaRotaryParams &p) {
    const int64_t t = pa::block_idx_x();
    const int32_t pos = p.positions[t];
    if (pos < 0 || pos >= p.max_positions) {
        return;  // the host checked every position; never touch memory on a bad one
    }
    const int32_t half = p.head_dim / 2;
    const float *cos_row = p.cos + (int64_t)pos * half;
    const float *sin_row = p.sin + (int64_t)pos * half;
    const float sign = p.inverse ? -1.0f : 1.0f;
    T *token = static_cast<T *>(p.x) + t * p.token_stride;
    for (int32_t e = (int32_t)pa::thread_idx_x(); e < p.heads * half; e += (int32_t)kThreads) {
        const int32_t h = e / half;
        const int32_t i = e - h * half;
        T *head = token + (int64_t)h * p.head_dim;
        const float c = cos_row[i];
        const float s = sign * sin_row[i];
        const float x0 = pa::to_float(head[i]);
        const float x1 = pa::to_float(head[i + half]);
        head[i] = pa::from_float<T>(x0 * c - x1 * s);
        head[i + half] = pa::from_float<T>(x1 * c + x0 * s);
    }
}

template <typename T>
struct Rotary : pa::KernelSpec<PaRotaryParams, kThreads> {
    static constexpr const char *kFamily = "rotary";
    static constexpr int kDtype = pa::DtypeCode<T>::value;
    PA_DEVICE static void run(const PaRotaryParams &p) { pa_rotary::run<T>(p); }
};

}  // namespace pa_rotary
