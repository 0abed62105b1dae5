// probe_sm90_pipeline: the skeleton of a warp-specialised Hopper attention forward, without the
// softmax: one producer thread loads Q once and K/V tiles through a two-stage ring (TMA,
// SWIZZLE_128B, full/empty mbarriers); one consumer warpgroup computes S = Q K^T (wgmma, A and B
// from shared memory, both K-major) and O += bf16(S) V (P from registers, V as an N-major B).
// Also a reference for kernel authors: the descriptors below are the ones sm90.cuh documents.
#include "../pa/kernel.cuh"

namespace {

using pa::sm90::Major;
using pa::sm90::Mbarrier;
using pa::sm90::Swizzle;

constexpr uint32_t kTile = 64 * 64 * 2;  // one 64 x 64 bf16 box: 64 rows of 128 bytes

}  // namespace

namespace pa {
namespace kernels {

struct ProbeSm90Pipeline : KernelSpec<PaProbeSm90PipelineParams, 256, 2> {
    static constexpr const char *kFamily = "probe";
    static constexpr int kArch = PA_ARCH_SM90A;
    PA_DEVICE static void run(const PaProbeSm90PipelineParams &p) {
        const uint32_t t = pa::thread_linear();
        unsigned char* base = pa::sm90::smem_align_up<1024>(pa::dyn_smem<unsigned char>());
        // Q, then K and V of each stage, each a 1024-byte aligned 64 x 64 bf16 box.
        unsigned char* q = base;
        auto k_stage = [&](uint32_t s) { return base + kTile * (1 + 2 * s); };
        auto v_stage = [&](uint32_t s) { return base + kTile * (2 + 2 * s); };
        Mbarrier* bars = reinterpret_cast<Mbarrier*>(base + kTile * (1 + 2 * PA_PROBE_PIPE_STAGES));
        Mbarrier* q_full = &bars[0];
        Mbarrier* full = &bars[1];                         // [stages], count 1 (+ tx)
        Mbarrier* empty = &bars[1 + PA_PROBE_PIPE_STAGES]; // [stages], count 128 (the consumers)

        if (t == 0) {
            q_full->init(1);
            for (int s = 0; s < PA_PROBE_PIPE_STAGES; s++) {
                full[s].init(1);
                empty[s].init(128);
            }
            pa::sm90::fence_mbarrier_init();
        }
        pa::sync_threads();

        if (t < 128) {
            // Producer warpgroup: gives registers away; one thread issues every load. With the
            // launch bounds (256 threads, 2 CTAs) each thread starts with 128 registers: the 104 the
            // producers release are the 104 the consumers take.
            pa::sm90::setmaxnreg_dec<24>();
            if (t == 0) {
                pa::sm90::tma_prefetch_map(&p.k_map);
                pa::sm90::tma_prefetch_map(&p.v_map);
                q_full->arrive_expect_tx(kTile);
                pa::sm90::tma_load_2d(q, &p.q_map, q_full, 0, 0);
                for (uint32_t tile = 0; tile < p.tiles; tile++) {
                    const uint32_t s = tile % PA_PROBE_PIPE_STAGES, round = tile / PA_PROBE_PIPE_STAGES;
                    empty[s].wait((round & 1) ^ 1);  // round 0 passes: phase -1 counts as complete
                    full[s].arrive_expect_tx(2 * kTile);
                    pa::sm90::tma_load_2d(k_stage(s), &p.k_map, &full[s], 0, static_cast<int32_t>(64 * tile));
                    pa::sm90::tma_load_2d(v_stage(s), &p.v_map, &full[s], 0, static_cast<int32_t>(64 * tile));
                }
            }
            return;
        }

        // Consumer warpgroup.
        pa::sm90::setmaxnreg_inc<232>();
        pa::sm90::WgAcc<64> s_acc, o_acc;
        pa::sm90::WgFragA pf[4];
        q_full->wait(0);
        for (uint32_t tile = 0; tile < p.tiles; tile++) {
            const uint32_t s = tile % PA_PROBE_PIPE_STAGES, round = tile / PA_PROBE_PIPE_STAGES;
            full[s].wait(round & 1);
            // S = Q K^T: k-step j reads columns 16j..16j+15, 32 bytes into each 128-byte row.
            pa::sm90::wgmma_fence();
            PA_UNROLL
            for (int j = 0; j < 4; j++) {
                const uint64_t da = pa::sm90::make_smem_desc(q + 32 * j, Swizzle::B128, 16, 1024);
                const uint64_t db = pa::sm90::make_smem_desc(k_stage(s) + 32 * j, Swizzle::B128, 16, 1024);
                pa::sm90::wgmma_ss<64, pa::bf16, Major::K, Major::K>(s_acc, da, db, j > 0);
            }
            pa::sm90::wgmma_commit();
            pa::sm90::wgmma_wait<0>();
            pa::sm90::fence_operands(s_acc);
            PA_UNROLL
            for (int kb = 0; kb < 4; kb++) pa::sm90::frag_a_from_acc<pa::bf16>(pf[kb], s_acc, kb);
            // O += P V: V is [key][d], so as B (K = keys, N = d) it is N-major; k-step kb reads keys
            // 16kb..16kb+15, i.e. rows 16kb.. of the tile (2048 bytes further per step).
            pa::sm90::wgmma_fence();
            PA_UNROLL
            for (int kb = 0; kb < 4; kb++) {
                const uint64_t db = pa::sm90::make_smem_desc(v_stage(s) + 2048 * kb, Swizzle::B128, kTile, 1024);
                pa::sm90::wgmma_rs<64, pa::bf16, Major::MN>(o_acc, pf[kb], db, tile > 0 || kb > 0);
            }
            pa::sm90::wgmma_commit();
            pa::sm90::wgmma_wait<0>();
            pa::sm90::fence_operands(o_acc);
            empty[s].arrive();  // the stage's last reader is done: the producer may refill it
        }
        pa::sm90::named_barrier_sync(1, 128);
        PA_UNROLL
        for (int i = 0; i < 32; i++) {
            const uint32_t r = pa::sm90::acc_row(i), c = pa::sm90::acc_col(i);
            p.s[r * 64 + c] = s_acc[i];
            p.o[r * 64 + c] = o_acc[i];
        }
    }
};

}  // namespace kernels
}  // namespace pa
