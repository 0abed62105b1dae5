// Tile configuration of the forward kernel, one instantiation per (dtype, head dim).
//
// Why 64 x 64 with 4 warps for both head dims: each warp owns 16 query rows (one m16 mma row
// block), so a 64-query tile is exactly 4 warps; 64 keys per k tile keep S at 8 n8 fragments per
// warp. Registers stay well under the 255 limit at d = 128 (O accumulator 64 floats, S 32 floats,
// Q fragments reloaded from shared memory per k step instead of pinned in registers) and the CPU
// emulator runs 128 threads per CTA. The tile must equal the plan's forward BlockMask tile
// (PA_FWD_BLOCK_Q x PA_FWD_BLOCK_K, shared with Rust through pa_params.h).
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

template <typename T_, int kHeadDim_>
struct FwdTraits {
    using T = T_;
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlockQ = PA_FWD_BLOCK_Q;
    static constexpr int kBlockK = PA_FWD_BLOCK_K;
    static constexpr int kThreads = PA_FWD_THREADS;
    static constexpr int kWarps = kThreads / 32;
    static constexpr int kRowsPerWarp = 16;  // one m16 block of the mma
    static constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks in one row of head_dim elements
    static constexpr int kSTiles = kBlockK / 8;   // n8 fragments of S = Q K^T per warp
    static constexpr int kOTiles = kHeadDim / 8;  // n8 fragments of the O accumulator per warp
    static constexpr int kQkSteps = kHeadDim / 16;  // k16 steps of Q K^T
    static constexpr int kPvSteps = kBlockK / 16;   // k16 steps of P V
    static constexpr int kQElems = kBlockQ * kHeadDim;
    static constexpr int kKvElems = kBlockK * kHeadDim;
    // Q, then K[2], then V[2] (double buffers). Must match forward_smem_bytes() in Rust.
    static constexpr int kSmemBytes = (kQElems + 4 * kKvElems) * 2;

    static_assert(sizeof(T) == 2, "16-bit element types only");
    static_assert(kWarps * kRowsPerWarp == kBlockQ, "each warp owns 16 query rows");
    static_assert(kHeadDim % 64 == 0 && kHeadDim <= 256, "the swizzle needs >= 8 chunks per row");
    static_assert(kBlockK % 16 == 0, "P V consumes keys 16 at a time");
    static_assert((kBlockQ * kChunks) % kThreads == 0 && (kBlockK * kChunks) % kThreads == 0,
                  "tile copies split evenly over the threads");
};

}  // namespace attn
}  // namespace pa
