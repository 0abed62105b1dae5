// emu_planted: one deliberate bug per mode (PA_EMU_PLANTED_* in pa_test_params.h), so the tests
// can prove that each net of the emulator catches its kind of bug: schedule comparison (races,
// reads before cp.async completes), buffer guards (out-of-bounds writes), collective and barrier
// checks (divergence, exited threads), address checks (ldmatrix outside shared memory), the
// shared-memory guards and cp.async timing (a copy landing at its issue, before a slower warp
// has read the buffer it overwrites). Mode PA_EMU_PLANTED_CORRECT is the bug-free control.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct EmuPlanted : KernelSpec<PaEmuPlantedParams, 1024> {
    static constexpr const char *kFamily = "emu_test";
    PA_DEVICE static void run(const PaEmuPlantedParams &p) {
        const uint32_t t = pa::thread_idx_x();
        const uint32_t n = (uint32_t)p.count;
        uint32_t* smem = pa::dyn_smem<uint32_t>();  // n words
        switch (p.mode) {
            case PA_EMU_PLANTED_CORRECT:
            case PA_EMU_PLANTED_RACE:
                // each thread publishes a word and reads its neighbour's
                smem[t] = p.in[t] * 3u + 1u;
                if (p.mode == PA_EMU_PLANTED_CORRECT) pa::sync_threads();
                p.out[t] = smem[(t + 1) % n];
                break;
            case PA_EMU_PLANTED_OOB_WRITE:
                p.out[t] = p.in[t];
                if (t == n - 1) p.out[n] = 0xbadu;  // one past the end
                break;
            case PA_EMU_PLANTED_DIVERGENT_SHFL: {
                uint32_t v = p.in[t];
                if (pa::lane_id() < 16)
                    v = pa::shfl_xor(v, 1);
                else
                    v = pa::shfl_xor(v, 2);
                p.out[t] = v;
                break;
            }
            case PA_EMU_PLANTED_EXIT_BEFORE_BARRIER:
                if (t == 5) return;
                pa::sync_threads();
                p.out[t] = p.in[t];
                break;
            case PA_EMU_PLANTED_SPLIT_BARRIER:
                if (pa::warp_id() % 2 == 0)
                    pa::sync_threads();
                else
                    pa::sync_threads();
                p.out[t] = p.in[t];
                break;
            case PA_EMU_PLANTED_LDMATRIX_OUTSIDE: {
                smem[t] = p.in[t];
                pa::sync_threads();
                const uint16_t* base = pa::dyn_smem<uint16_t>();
                const uint32_t lane = pa::lane_id();
                const uint16_t* row = base + 8 * (lane % 8);
                if (lane == 3) row = base + 2 * n;  // the first byte past shared memory
                uint32_t r;
                pa::ldmatrix_x1(r, row);
                p.out[t] = r;
                break;
            }
            case PA_EMU_PLANTED_READ_BEFORE_WAIT:
                if (t % 4 == 0) pa::cp_async_16(smem + t, p.in + t);
                pa::cp_async_commit();
                p.out[t] = smem[t];  // the bug: the copy may not have landed yet
                pa::cp_async_wait<0>();
                pa::sync_threads();
                break;
            case PA_EMU_PLANTED_SMEM_OVERRUN:
                smem[t] = p.in[t];
                if (t == 0) smem[n] = 1u;  // one word past the dynamic shared memory
                pa::sync_threads();
                p.out[t] = smem[(t + 1) % n];
                break;
            case PA_EMU_PLANTED_EARLY_OVERWRITE: {
                // A two-stage pipeline through one buffer, as in a double-buffered tile loop.
                // Stage 1: threads t % 4 == 0 copy in[t, t + 4); every thread waits, then a barrier.
                if (t % 4 == 0) pa::cp_async_16(smem + t, p.in + t);
                pa::cp_async_commit();
                pa::cp_async_wait<0>();
                pa::sync_threads();
                uint32_t v = pa::shfl_xor(p.in[t], 1);
                v ^= smem[(t + 32) % n];  // stage 1, from the chunk of the other warp
                // The bug: stage 2 is issued into the same buffer with no barrier after the reads
                // above, so the other warp may still be reading stage 1 when the copy lands (on a
                // GPU: any time between this issue and the wait below).
                if (t % 4 == 0) pa::cp_async_16(smem + t, p.in + (n - 4 - t));
                pa::cp_async_commit();
                v = pa::shfl_xor(v, 2);  // work while the copy is in flight
                pa::cp_async_wait<0>();
                pa::sync_threads();
                p.out[t] = v ^ smem[t];
                break;
            }
            default:
                break;
        }
    }
};

}  // namespace kernels
}  // namespace pa
