// emu_planted_sm90: one deliberate bug per mode (PA_SM90_PLANTED_* in pa_test_params.h) in the
// Hopper features, so tests/emulator/sm90_nets.rs can prove each net of the emulator catches its kind
// of bug. PA_SM90_PLANTED_CORRECT is the bug-free control (TMA + mbarrier + wgmma).
//
// Shared memory: mbarriers at 0, 8, 16; a 512-byte TMA stage (8 x 16 u32) at 1024; a 64 x 16
// bf16 A operand at 2048 (no swizzle, K-major: SBO 128, LBO 1024) and a 16 x 16 B operand at
// 4096 (SBO 128, LBO 256); the stage is also read as a 16 x 16 bf16 B with the same layout.
#include "../pa/kernel.cuh"

namespace {

using pa::sm90::Major;
using pa::sm90::Mbarrier;
using pa::sm90::Swizzle;

constexpr uint32_t kStage = 1024, kA = 2048, kB = 4096;

PA_DEVICE uint64_t desc_a(unsigned char* smem) {
    return pa::sm90::make_smem_desc(smem + kA, Swizzle::None, 1024, 128);
}
PA_DEVICE uint64_t desc_b(unsigned char* at) { return pa::sm90::make_smem_desc(at, Swizzle::None, 256, 128); }

// A = 1.0 everywhere, B = 0: ordinary stores, published to the tensor cores (unless `publish` is
// false: the bug of NO_PROXY_FENCE).
PA_DEVICE void fill_operands(unsigned char* smem, bool publish = true) {
    uint32_t* a = reinterpret_cast<uint32_t*>(smem + kA);
    uint32_t* b = reinterpret_cast<uint32_t*>(smem + kB);
    for (uint32_t i = pa::thread_linear(); i < 512; i += pa::block_dim_x()) a[i] = 0x3f803f80u;
    for (uint32_t i = pa::thread_linear(); i < 128; i += pa::block_dim_x()) b[i] = 0;
    if (publish) pa::sm90::fence_proxy_async_smem();
    pa::sync_threads();
}

PA_DEVICE void store_acc(uint32_t* out, const pa::sm90::WgAcc<16>& acc) {
    for (int i = 0; i < 8; i++) out[i] = pa::f32_as_u32(acc[i]);
}

}  // namespace

namespace pa {
namespace kernels {

struct EmuPlantedSm90 : KernelSpec<PaEmuPlantedSm90Params, 256, 1> {
    static constexpr const char *kFamily = "emu_test";
    static constexpr int kArch = PA_ARCH_SM90A;
    PA_DEVICE static void run(const PaEmuPlantedSm90Params &p) {
        const uint32_t t = pa::thread_linear(), warp = pa::warp_id(), lane = pa::lane_id();
        unsigned char* smem = pa::dyn_smem<unsigned char>();
        Mbarrier* bar = reinterpret_cast<Mbarrier*>(smem);
        const uint32_t* stage = reinterpret_cast<const uint32_t*>(smem + kStage);
        const int mode = p.mode;
        switch (mode) {
            case PA_SM90_PLANTED_CORRECT:
            case PA_SM90_PLANTED_TX_UNDERFLOW:
            case PA_SM90_PLANTED_TMA_READ_EARLY:
            case PA_SM90_PLANTED_TMA_MISALIGNED: {
                if (t == 0) {
                    bar[0].init(1);
                    pa::sm90::fence_mbarrier_init();
                }
                pa::sync_threads();
                if (t == 0) {
                    // The bug of TX_UNDERFLOW: half of the box's 512 bytes expected.
                    bar[0].arrive_expect_tx(mode == PA_SM90_PLANTED_TX_UNDERFLOW ? 256 : 512);
                    unsigned char* dst = smem + kStage + (mode == PA_SM90_PLANTED_TMA_MISALIGNED ? 64 : 0);
                    pa::sm90::tma_load_2d(dst, &p.map, &bar[0], 8, 16);
                }
                // The bug of TMA_READ_EARLY: the stage read before the mbarrier says it landed.
                const uint32_t early = mode == PA_SM90_PLANTED_TMA_READ_EARLY ? stage[t % 128] : 0u;
                bar[0].wait(0);
                p.out[t] = stage[t % 128] ^ early;
                if (mode == PA_SM90_PLANTED_CORRECT) {
                    fill_operands(smem);
                    if (warp < 4) {
                        pa::sm90::WgAcc<16> acc;
                        pa::sm90::wgmma_fence();
                        pa::sm90::wgmma_ss<16, pa::bf16, Major::K, Major::K>(acc, desc_a(smem),
                                                                            desc_b(smem + kStage), false);
                        pa::sm90::wgmma_commit();
                        pa::sm90::wgmma_wait<0>();
                        store_acc(p.out + 256 + 8 * t, acc);
                    }
                }
                break;
            }
            case PA_SM90_PLANTED_OVER_ARRIVE:
                if (t == 0) {
                    bar[0].init(1);
                    bar[0].arrive_expect_tx(1024);  // the phase stays open until 1024 bytes land
                    bar[0].arrive();                // the bug: a second arrival for a count of 1
                }
                break;
            case PA_SM90_PLANTED_STALE_PARITY:
                if (t == 0) {
                    bar[0].init(256);
                    pa::sm90::fence_mbarrier_init();
                }
                pa::sync_threads();
                bar[0].arrive();
                bar[0].wait(0);
                bar[0].arrive();
                bar[0].wait(0);  // the bug: phase 1 has parity 1
                break;
            case PA_SM90_PLANTED_BEFORE_INIT:
                if (t == 0) bar[0].init(256);  // the bug: no barrier publishes the init
                bar[0].arrive();
                bar[0].wait(0);
                break;
            case PA_SM90_PLANTED_INIT_IN_USE:
                if (t == 0) {
                    bar[0].init(2);
                    bar[0].arrive();
                    bar[0].init(2);  // the bug: one of two arrivals of phase 0 is in
                }
                break;
            case PA_SM90_PLANTED_DEADLOCK:
                if (t == 0) {
                    bar[0].init(2);
                    pa::sm90::fence_mbarrier_init();
                }
                pa::sync_threads();
                if (t == 0) bar[0].arrive();  // the bug: the count says 2
                bar[0].wait(0);
                break;
            case PA_SM90_PLANTED_OVERWRITTEN:
                if (t == 0) {
                    bar[0].init(256);
                    pa::sm90::fence_mbarrier_init();
                }
                pa::sync_threads();
                if (t == 5) reinterpret_cast<uint32_t*>(smem)[1] = 7u;  // the bug
                pa::sync_threads();
                bar[0].arrive();
                bar[0].wait(0);
                break;
            case PA_SM90_PLANTED_NAMED_COUNTS:
                if (warp < 2)
                    pa::sm90::named_barrier_sync(1, 128);
                else if (warp < 4)
                    pa::sm90::named_barrier_sync(1, 96);  // the bug
                break;
            case PA_SM90_PLANTED_NAMED_HALF:
                if (warp == 0) pa::sm90::named_barrier_arrive(2, 64);  // nobody completes the phase
                break;
            case PA_SM90_PLANTED_NAMED_PARTIAL_WARP:
                if ((warp == 0 && lane < 16) || warp == 1) pa::sm90::named_barrier_sync(3, 64);
                break;
            case PA_SM90_PLANTED_ACC_BEFORE_WAIT:
            case PA_SM90_PLANTED_NO_FENCE:
            case PA_SM90_PLANTED_NONUNIFORM_DESC:
            case PA_SM90_PLANTED_BAD_DESC:
            case PA_SM90_PLANTED_NO_PROXY_FENCE:
                fill_operands(smem, mode != PA_SM90_PLANTED_NO_PROXY_FENCE);
                if (warp < 4) {
                    pa::sm90::WgAcc<16> acc;
                    for (int i = 0; i < 8; i++) acc[i] = 1.0f;
                    pa::sm90::wgmma_fence();
                    if (mode == PA_SM90_PLANTED_NO_FENCE) acc[0] = 2.0f;  // the bug: after the fence
                    uint64_t da = desc_a(smem), db = desc_b(smem + kB);
                    if (mode == PA_SM90_PLANTED_NONUNIFORM_DESC && warp == 1) db = desc_b(smem + kB + 16);
                    if (mode == PA_SM90_PLANTED_BAD_DESC) da |= 1ull << 49;  // matrix base offset 1
                    pa::sm90::wgmma_ss<16, pa::bf16, Major::K, Major::K>(acc, da, db, true);
                    pa::sm90::wgmma_commit();
                    if (mode == PA_SM90_PLANTED_ACC_BEFORE_WAIT) p.out[t] = pa::f32_as_u32(acc[0]);  // the bug
                    pa::sm90::wgmma_wait<0>();
                    store_acc(p.out + 256 + 8 * t, acc);
                }
                break;
            case PA_SM90_PLANTED_MISALIGNED_WARPGROUP:
                fill_operands(smem);
                if (warp == 0) return;  // a producer warp leaves
                if (warp <= 4) {        // the bug: warps 1..4 are not a warpgroup
                    pa::sm90::WgAcc<16> acc;
                    pa::sm90::wgmma_fence();
                    pa::sm90::wgmma_ss<16, pa::bf16, Major::K, Major::K>(acc, desc_a(smem), desc_b(smem + kB), false);
                    pa::sm90::wgmma_commit();
                    pa::sm90::wgmma_wait<0>();
                    store_acc(p.out + 256 + 8 * t, acc);
                }
                break;
            case PA_SM90_PLANTED_SETMAXNREG:
                if (warp < 4) {
                    if (warp < 2)
                        pa::sm90::setmaxnreg_inc<240>();
                    else
                        pa::sm90::setmaxnreg_inc<232>();  // the bug
                }
                break;
            case PA_SM90_PLANTED_EARLY_RELEASE: {
                // A one-stage ring: warp 0's thread 0 produces two boxes into the stage, warpgroup 1
                // consumes them with wgmma (the stage as B).
                Mbarrier* full = &bar[1];
                Mbarrier* empty = &bar[2];
                if (t == 0) {
                    full->init(1);
                    empty->init(128);
                    pa::sm90::fence_mbarrier_init();
                }
                fill_operands(smem);
                if (warp < 4) {
                    if (t == 0) {
                        for (uint32_t r = 0; r < 2; r++) {
                            empty->wait((r & 1) ^ 1);
                            full->arrive_expect_tx(512);
                            pa::sm90::tma_load_2d(smem + kStage, &p.map, full, 8, static_cast<int32_t>(16 + 16 * r));
                        }
                    }
                    break;
                }
                for (uint32_t r = 0; r < 2; r++) {
                    pa::sm90::WgAcc<16> acc;
                    if (r == 0) full->wait(0);
                    pa::sm90::wgmma_fence();
                    pa::sm90::wgmma_ss<16, pa::bf16, Major::K, Major::K>(acc, desc_a(smem), desc_b(smem + kStage), false);
                    pa::sm90::wgmma_commit();
                    if (r == 0) {
                        empty->arrive();  // the bug: the wgmma reading the stage may still be running
                        full->wait(1);    // waits for the next box, which the producer may now load
                    }
                    pa::sm90::wgmma_wait<0>();
                    store_acc(p.out + 256 + 8 * (t - 128) + 1024 * r, acc);
                    if (r == 1) empty->arrive();
                }
                break;
            }
            default:
                break;
        }
    }
};

}  // namespace kernels
}  // namespace pa
