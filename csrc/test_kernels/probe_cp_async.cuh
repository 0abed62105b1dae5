// probe_cp_async: each thread queues one 16-byte copy (or zero-fill) per stage — in the last
// stage as four 4-byte copies — one commit group per stage, then completes them one
// cp.async.wait_group at a time; after each wait and a barrier the stage is read back through
// another thread (a permutation), so a copy completed too late or by the wrong wait shows up.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeCpAsync : KernelSpec<PaProbeCpAsyncParams, 128> {
    static constexpr const char *kFamily = "probe";
    PA_DEVICE static void run(const PaProbeCpAsyncParams &p) {
        const uint32_t t = pa::thread_idx_x();
        uint32_t* smem = pa::dyn_smem<uint32_t>();  // 3 stages x 128 chunks x 4 words
        for (int s = 0; s < 3; s++) {
            const uint32_t chunk = s * 128 + t;
            if (s < 2) {
                pa::cp_async_16_zfill(smem + chunk * 4, p.src + chunk * 4, p.valid[chunk] != 0);
            } else {
                for (int w = 0; w < 4; w++) {
                    pa::cp_async_4_zfill(smem + chunk * 4 + w, p.src + chunk * 4 + w, p.valid[chunk] != 0);
                }
            }
            pa::cp_async_commit();
        }
        const uint32_t reader = (t * 5 + 3) % 128;  // the chunk this thread reads back
        pa::cp_async_wait<2>();
        pa::sync_threads();
        for (int w = 0; w < 4; w++) p.out[(0 * 128 + reader) * 4 + w] = smem[(0 * 128 + reader) * 4 + w];
        pa::cp_async_wait<1>();
        pa::sync_threads();
        for (int w = 0; w < 4; w++) p.out[(1 * 128 + reader) * 4 + w] = smem[(1 * 128 + reader) * 4 + w];
        pa::cp_async_wait<0>();
        pa::sync_threads();
        for (int w = 0; w < 4; w++) p.out[(2 * 128 + reader) * 4 + w] = smem[(2 * 128 + reader) * 4 + w];
    }
};

}  // namespace kernels
}  // namespace pa
