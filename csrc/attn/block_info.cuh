// Which work one CTA of an attention kernel does, decoded from its block index and a block list.
// One helper for every kernel that walks a list: the forward and dQ (q-major: a q tile and its k
// tiles, per q head) and dK/dV (k-major: a k tile and its q tiles, per kv head).
//
// The grid is one-dimensional: x = rank * heads + head. `rank` indexes the list's heaviest-first
// order of (row, tile) slots, so the hardware, which starts CTAs in increasing x, starts the tiles
// with the most partners first, all heads of one slot together (heads that share a kv head sit
// next to each other, which also helps L2 reuse of K and V under GQA).
//
// A slot's list is stored as runs of consecutive tiles of one class (PaTileRun, pa_params.h); a
// kernel walks the positions 0 .. count of the list in order and a ListCursor turns each position
// into the entry it names (`tile << PA_TILE_INDEX_SHIFT | partial`): the same tiles in the same
// order as a list of one entry per tile.
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

struct TileWork {
    int row;
    int tile;       // index of the tile along the list's major axis
    int head;       // q head (q-major lists) or kv head (k-major lists)
    int run_begin;  // the slot's first run
    int count;      // tiles in the slot's list: positions 0 .. count
};

PA_DEVICE TileWork tile_work(const PaBlockList& list, int heads) {
    TileWork w;
    const int bid = (int)block_idx_x();
    const int rank = bid / heads;
    w.head = bid - rank * heads;
    const int slot = list.order[rank];
    w.row = slot / list.tiles;
    w.tile = slot - w.row * list.tiles;
    w.run_begin = list.offsets[slot];
    const int run_end = list.offsets[slot + 1];
    // The last run's end is the list's length (runs are never empty).
    w.count = run_end > w.run_begin ? list.runs[run_end - 1].end : 0;
    return w;
}

// A position of a slot's list, moving forward only: entry(list, i) is the entry at position i,
// for positions that never decrease from one call to the next (each walk of a kernel keeps its
// own cursor). One run index per cursor; the run is read from the list (L1) at each call, as the
// per-tile entries were.
struct ListCursor {
    int run;

    PA_DEVICE explicit ListCursor(const TileWork& w) : run(w.run_begin) {}

    PA_DEVICE int entry(const PaBlockList& list, int i) {
        while (i >= list.runs[run].end) ++run;
        return list.runs[run].base + (i << PA_TILE_INDEX_SHIFT);
    }
};

// Element (row, token 0, head, 0) of a strided view.
template <typename T>
PA_DEVICE T* head_ptr(const PaView& v, int row, int head) {
    return static_cast<T*>(v.ptr) + (int64_t)row * v.stride.row + (int64_t)head * v.stride.head;
}

// The k tile (forward, dQ) or q tile (dK/dV) an entry names, and whether it needs the mask.
PA_DEVICE int entry_tile(int entry) { return entry >> PA_TILE_INDEX_SHIFT; }
PA_DEVICE bool entry_partial(int entry) { return (entry & PA_TILE_PARTIAL_BIT) != 0; }

}  // namespace attn
}  // namespace pa
