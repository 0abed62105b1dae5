// probe_sm90_sync: mbarrier and named-barrier semantics whose outcome does not depend on timing,
// one CTA of 256 threads (8 warps). Per thread, out[8 * t + w]:
//   w 0: try_wait(parity 0) before any arrival               -> 0 (phase 0 open)
//   w 1: try_wait(parity 1) before any arrival               -> 1 (phase -1 counts as complete)
//   w 2: 1 after all 256 threads arrived and waited on phase 0
//   w 3: consumers (warps 1..7): sum over PA_PROBE_SYNC_ROUNDS rounds of a two-slot ring fed by
//        thread 0 through full/empty mbarriers: (in[32 r + lane] + r) * (r + 1); others 0
//   w 4: warps 6..7: sum of the 64 words warps 4..5 published with bar.arrive 3, 128; others 0
//   w 5: warps 0..3: 1 after lane 0 of each arrived 32 times at once on a count-128 mbarrier;
//        warps 4..7: 2
//   w 6: phase 1 of the first barrier (all arrive again, wait parity 1) -> 1
//   w 7: the thread's id (a guard that every thread finished)
#include "../pa/kernel.cuh"

namespace {
using pa::sm90::Mbarrier;
}

namespace pa {
namespace kernels {

struct ProbeSm90Sync : KernelSpec<PaProbeSm90SyncParams, 256, 1> {
    static constexpr const char *kFamily = "probe";
    static constexpr int kArch = PA_ARCH_SM90A;
    PA_DEVICE static void run(const PaProbeSm90SyncParams &p) {
        const uint32_t t = pa::thread_linear(), warp = pa::warp_id(), lane = pa::lane_id();
        unsigned char* smem = pa::dyn_smem<unsigned char>();
        Mbarrier* all = reinterpret_cast<Mbarrier*>(smem);        // count 256
        Mbarrier* full = reinterpret_cast<Mbarrier*>(smem + 8);   // [2], count 1
        Mbarrier* empty = reinterpret_cast<Mbarrier*>(smem + 24); // [2], count 224
        Mbarrier* grouped = reinterpret_cast<Mbarrier*>(smem + 40);  // count 128
        uint32_t* ring = reinterpret_cast<uint32_t*>(smem + 64);     // [2][32]
        uint32_t* board = reinterpret_cast<uint32_t*>(smem + 512);   // [64]
        uint32_t* out = p.out + 8 * t;

        if (t == 0) {
            all->init(256);
            full[0].init(1);
            full[1].init(1);
            empty[0].init(224);
            empty[1].init(224);
            grouped->init(128);
            pa::sm90::fence_mbarrier_init();
        }
        pa::sync_threads();
        out[0] = all->try_wait(0) ? 1u : 0u;
        out[1] = all->try_wait(1) ? 1u : 0u;
        pa::sync_threads();
        all->arrive();
        all->wait(0);
        out[2] = 1;

        // Two-slot ring: thread 0 produces, warps 1..7 consume.
        uint32_t sum = 0;
        if (t == 0) {
            for (uint32_t r = 0; r < PA_PROBE_SYNC_ROUNDS; r++) {
                const uint32_t s = r % 2;
                empty[s].wait(((r / 2) & 1) ^ 1);
                for (uint32_t i = 0; i < 32; i++) ring[32 * s + i] = p.in[32 * r + i] + r;
                full[s].arrive();
            }
        } else if (warp >= 1) {
            for (uint32_t r = 0; r < PA_PROBE_SYNC_ROUNDS; r++) {
                const uint32_t s = r % 2;
                full[s].wait((r / 2) & 1);
                sum += ring[32 * s + lane] * (r + 1);
                empty[s].arrive();
            }
        }
        out[3] = sum;
        pa::sync_threads();

        // Named barriers: separate ids per half, then a producer/consumer handoff on id 3.
        if (warp < 4)
            pa::sm90::named_barrier_sync(1, 128);
        else
            pa::sm90::named_barrier_sync(2, 128);
        uint32_t seen = 0;
        if (warp == 4 || warp == 5) {
            board[t - 128] = p.in[PA_PROBE_SYNC_ROUNDS * 32 + t] ^ 0x5a5a5a5au;
            pa::sm90::named_barrier_arrive(3, 128);
        } else if (warp >= 6) {
            pa::sm90::named_barrier_sync(3, 128);
            for (uint32_t i = 0; i < 64; i++) seen += board[i];
        }
        out[4] = seen;

        // Arrivals with a count.
        if (warp < 4) {
            if (lane == 0) grouped->arrive(32);
            grouped->wait(0);
            out[5] = 1;
        } else {
            out[5] = 2;
        }

        all->arrive();
        all->wait(1);
        out[6] = 1;
        out[7] = t;
        pa::sync_threads();
        if (t == 0) all->inval();
    }
};

}  // namespace kernels
}  // namespace pa
