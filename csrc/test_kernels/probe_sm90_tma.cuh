// probe_sm90_tma: per CTA one TMA tiled load of the map's box at coords[blockIdx.x] (any rank,
// in or out of bounds), completed on an mbarrier with expect-tx, then the destination copied back
// to global memory byte for byte: the test sees the swizzle and the zero fill as they land.
#include "../pa/kernel.cuh"

namespace pa {
namespace kernels {

struct ProbeSm90Tma : KernelSpec<PaProbeSm90TmaParams, 128, 1> {
    static constexpr const char *kFamily = "probe";
    static constexpr int kArch = PA_ARCH_SM90A;
    PA_DEVICE static void run(const PaProbeSm90TmaParams &p) {
        const uint32_t t = pa::thread_linear();
        unsigned char* raw = pa::dyn_smem<unsigned char>();
        pa::sm90::Mbarrier* bar = reinterpret_cast<pa::sm90::Mbarrier*>(raw);
        unsigned char* tile = pa::sm90::smem_align_up<1024>(raw + 128);
        const int32_t* c = p.coords + PA_TMA_MAX_RANK * pa::block_idx_x();
        if (t == 0) {
            bar->init(1);
            pa::sm90::fence_mbarrier_init();
        }
        pa::sync_threads();
        if (t == 0) {
            pa::sm90::tma_prefetch_map(&p.map);
            bar->arrive_expect_tx(p.box_bytes);
            switch (p.rank) {
                case 1: pa::sm90::tma_load_1d(tile, &p.map, bar, c[0]); break;
                case 2: pa::sm90::tma_load_2d(tile, &p.map, bar, c[0], c[1]); break;
                case 3: pa::sm90::tma_load_3d(tile, &p.map, bar, c[0], c[1], c[2]); break;
                case 4: pa::sm90::tma_load_4d(tile, &p.map, bar, c[0], c[1], c[2], c[3]); break;
                default: pa::sm90::tma_load_5d(tile, &p.map, bar, c[0], c[1], c[2], c[3], c[4]); break;
            }
        }
        bar->wait(0);
        const uint32_t* words = reinterpret_cast<const uint32_t*>(tile);
        uint32_t* out = p.out + static_cast<size_t>(pa::block_idx_x()) * (p.box_bytes / 4);
        for (uint32_t i = t; i < p.box_bytes / 4; i += pa::block_dim_x()) out[i] = words[i];
    }
};

}  // namespace kernels
}  // namespace pa
