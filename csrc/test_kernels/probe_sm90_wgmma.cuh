// probe_sm90_wgmma: one warpgroup per CTA runs the case's chain of wgmma.m64nNk16 (C from global
// by the accumulator fragment layout, `ksteps` wgmmas with the case's descriptors, D back by the
// same layout). The shared-memory image and the descriptors come from the test, which lays the
// operands out by the PTX ISA's canonical layouts on its own: the probe checks the emulator's
// descriptor decoding, swizzles and fragment layouts (and, on a GPU, the hardware's) against it.
#include "../pa/kernel.cuh"

namespace {

using pa::sm90::Major;

template <int N, typename T, int Mode>
PA_DEVICE void run_case(const PaProbeSm90WgmmaParams& p, const PaProbeWgmmaCase& cs, uint32_t base) {
    // Mode: 0..3 = A from shared memory with (trans-a, trans-b) = (Mode / 2, Mode % 2);
    //       4, 5 = A from registers with trans-b = Mode - 4.
    constexpr Major kMajorA = (Mode < 4 && Mode / 2 == 1) ? Major::MN : Major::K;
    constexpr Major kMajorB = ((Mode < 4 ? Mode % 2 : Mode - 4) == 1) ? Major::MN : Major::K;
    const uint32_t cta = pa::block_idx_x(), t = pa::sm90::warpgroup_thread();
    const size_t first = pa::sm90::acc_row(0) * 256 + pa::sm90::acc_col(0);
    const float* c = p.c + static_cast<size_t>(cta) * 64 * 256 + first;
    float* d = p.d + static_cast<size_t>(cta) * 64 * 256 + first;
    pa::sm90::WgAcc<N> acc;
    PA_UNROLL
    for (int i = 0; i < N / 2; i++) acc[i] = c[pa::sm90::acc_offset(i, 256)];
    pa::sm90::WgFragA a[PA_PROBE_WGMMA_MAX_K];
    if (Mode >= 4) {
        const uint32_t* f = p.a_frags + static_cast<size_t>(cta) * PA_PROBE_WGMMA_MAX_K * 128 * 4;
        PA_UNROLL
        for (int k = 0; k < PA_PROBE_WGMMA_MAX_K; k++) {
            PA_UNROLL
            for (int r = 0; r < 4; r++) a[k][r] = f[(k * 128 + t) * 4 + r];
        }
    }
    const uint64_t rel = base >> 4;  // start addresses in the case are relative to the image
    pa::sm90::wgmma_fence();
    PA_UNROLL
    for (int k = 0; k < PA_PROBE_WGMMA_MAX_K; k++) {
        if (static_cast<uint32_t>(k) >= cs.ksteps) break;
        const bool accumulate = k > 0 || cs.scale_d != 0;
        const uint64_t db = cs.desc_b[k] + rel;
        if constexpr (Mode >= 4) {
            pa::sm90::wgmma_rs<N, T, kMajorB>(acc, a[k], db, accumulate);
        } else {
            pa::sm90::wgmma_ss<N, T, kMajorA, kMajorB>(acc, cs.desc_a[k] + rel, db, accumulate);
        }
    }
    pa::sm90::wgmma_commit();
    pa::sm90::wgmma_wait<0>();
    pa::sm90::fence_operands(acc);
    PA_UNROLL
    for (int i = 0; i < N / 2; i++) d[pa::sm90::acc_offset(i, 256)] = acc[i];
}

template <int N, typename T>
PA_DEVICE void dispatch_mode(const PaProbeSm90WgmmaParams& p, const PaProbeWgmmaCase& cs, uint32_t base) {
    const uint32_t mode = cs.a_regs ? 4 + cs.trans_b : 2 * cs.trans_a + cs.trans_b;
    switch (mode) {
        case 0: run_case<N, T, 0>(p, cs, base); break;
        case 1: run_case<N, T, 1>(p, cs, base); break;
        case 2: run_case<N, T, 2>(p, cs, base); break;
        case 3: run_case<N, T, 3>(p, cs, base); break;
        case 4: run_case<N, T, 4>(p, cs, base); break;
        default: run_case<N, T, 5>(p, cs, base); break;
    }
}

template <int N>
PA_DEVICE void dispatch_type(const PaProbeSm90WgmmaParams& p, const PaProbeWgmmaCase& cs, uint32_t base) {
    if (cs.f16)
        dispatch_mode<N, pa::f16>(p, cs, base);
    else
        dispatch_mode<N, pa::bf16>(p, cs, base);
}

}  // namespace

namespace pa {
namespace kernels {

struct ProbeSm90Wgmma : KernelSpec<PaProbeSm90WgmmaParams, 128, 1> {
    static constexpr const char *kFamily = "probe";
    static constexpr int kArch = PA_ARCH_SM90A;
    PA_DEVICE static void run(const PaProbeSm90WgmmaParams &p) {
        const PaProbeWgmmaCase cs = p.cases[pa::block_idx_x()];
        unsigned char* image = pa::sm90::smem_align_up<1024>(pa::dyn_smem<unsigned char>());
        const pa::u32x4* src = reinterpret_cast<const pa::u32x4*>(p.images + cs.image_offset);
        pa::u32x4* dst = reinterpret_cast<pa::u32x4*>(image);
        for (uint32_t i = pa::thread_linear(); i < cs.image_bytes / 16; i += 128) dst[i] = src[i];
        // Ordinary stores, then reads by the tensor cores (async proxy).
        pa::sm90::fence_proxy_async_smem();
        pa::sync_threads();
        const uint32_t base = pa::sm90::smem_addr(image);
        switch (cs.n) {
            case 16: dispatch_type<16>(p, cs, base); break;
            case 64: dispatch_type<64>(p, cs, base); break;
            case 128: dispatch_type<128>(p, cs, base); break;
            default: dispatch_type<256>(p, cs, base); break;
        }
    }
};

}  // namespace kernels
}  // namespace pa
