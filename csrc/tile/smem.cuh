// Shared-memory tiles: kRows x kCols 16-bit elements, row-major by 16-byte chunks, the chunk index
// XORed with row % 8.
//
// Why the XOR: ldmatrix reads one 16-byte row per lane, eight lanes (eight consecutive rows, same
// logical chunk) per phase. Rows are 128 bytes or longer, so unswizzled those eight reads hit the
// same four banks (an 8-way conflict); with the XOR the eight physical chunks are distinct, i.e.
// all 32 banks. The 16-byte cp.async writes (a row's eight chunks by eight lanes) and 4-byte
// accumulator stores (eight rows, one chunk) stay conflict-free for the same reason.
//
// Addresses: rows hold a power of two of chunks, so for a row r0 + r with r0 % 8 == 0 and an even
// chunk c0 plus a lane's chunk bit b, offset(r0 + r, c0 + b) = r0 * kChunks * 8
// + (lane_base ^ (c0 * 8)) with lane_base = r * kChunks * 8 + ((b ^ (r % 8)) * 8) (elements; the
// code works in bytes): a lane computes its base once, and each ldmatrix costs one XOR with a
// constant (the row term folds into the instruction's immediate).
#pragma once

#include "geometry.cuh"

namespace pa {
namespace tile {

template <typename T_, int kRows_, int kCols_>
struct Smem {
    using T = T_;
    static constexpr int kRows = kRows_;
    static constexpr int kCols = kCols_;
    static constexpr int kChunks = kCols / 8;  // 16-byte chunks per row
    static constexpr int kElems = kRows * kCols;
    static constexpr int kBytes = kElems * (int)sizeof(T);
    static_assert(sizeof(T) == 2, "16-bit elements");
    static_assert(kChunks == 8 || kChunks == 16 || kChunks == 32,
                  "8 to 32 chunks per row: the swizzle needs 8, the XOR addressing a power of two");
    static_assert(kRows % 16 == 0, "whole 16-row blocks");

    T* ptr;

    // Element offset of logical chunk `chunk` of `row`.
    PA_DEVICE static constexpr int offset(int row, int chunk) {
        return (row * kChunks + (chunk ^ (row & 7))) * 8;
    }

    // The lane's part of an ldmatrix.x4 address under `pattern`, in bytes (see the header
    // comment). Opaque to the compiler, which would otherwise re-associate the XOR into several
    // instructions per ldmatrix.
    PA_DEVICE static uint32_t lane_base(LdsmPattern pattern) {
        const int lane = (int)lane_id();
        const int r = ldsm_row(pattern, lane);
        return opaque_u32((uint32_t)(r * kChunks * 16 + ((ldsm_chunk(pattern, lane) ^ (r & 7)) << 4)));
    }

    // The lane's ldmatrix.x4 address for the 16 x 16 block at rows row0.. (row0 % 8 == 0) and
    // chunks c0, c0 + 1 (c0 even), given its lane_base.
    PA_DEVICE const T* block(uint32_t lane_base, int row0, int c0) const {
        return reinterpret_cast<const T*>(reinterpret_cast<const unsigned char*>(ptr) + row0 * kChunks * 16 +
                                          (lane_base ^ (uint32_t)(c0 << 4)));
    }
};

// Copies rows [first, first + Tile::kRows) of one head of a strided view into a tile with 16-byte
// cp.async, kThreads threads sharing the work. Rows at or beyond n are zero-filled and nothing is
// read for them: keys beyond the row then score 0 and, more importantly, add 0 * V = 0 rather than
// garbage (maybe NaN) to P V. A thread's place in the tile is computed once, at construction; it
// holds three integers (one loader serves every view of the same tile shape), since the loaders
// live through a kernel's main loop next to its accumulators.
template <class Tile, int kThreads>
struct RowLoader {
    using T = typename Tile::T;
    static_assert(kThreads % Tile::kChunks == 0, "a thread copies one chunk column");
    static constexpr int kRowStep = kThreads / Tile::kChunks;  // rows between a thread's copies
    static_assert(kRowStep % 8 == 0, "a thread's rows share their swizzle");
    static_assert(Tile::kRows % kRowStep == 0, "copies split evenly over the threads");
    static constexpr int kPerThread = Tile::kRows / kRowStep;

    int row;  // the first row this thread copies
    int col;  // its first element in the row (16-byte chunk * 8)
    int dst;  // its element offset in the tile

    PA_DEVICE RowLoader() {
        const int tid = (int)thread_idx_x();
        row = tid / Tile::kChunks;
        const int chunk = tid % Tile::kChunks;
        col = chunk * 8;
        dst = Tile::offset(row, chunk);
    }

    // `head` is element (token 0, this head, 0) of a view whose tokens are token_stride apart.
    PA_DEVICE void load(const Tile& tile, const T* head, int64_t token_stride, int first, int n) const {
        const T* src = head + (int64_t)(first + row) * token_stride + col;
        PA_UNROLL
        for (int it = 0; it < kPerThread; ++it) {
            const bool valid = first + row + it * kRowStep < n;
            // An invalid copy still passes a valid address (the view's first element).
            cp_async_16_zfill(tile.ptr + dst + it * kRowStep * Tile::kChunks * 8,
                              valid ? src + (int64_t)it * kRowStep * token_stride : head, valid);
        }
    }
};

}  // namespace tile
}  // namespace pa
