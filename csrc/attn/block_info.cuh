// Which work one CTA of an attention kernel does, decoded from its block index and a block list.
// One helper for every kernel that walks a list: the forward and dQ (q-major: a q tile and its k
// tiles, per q head) and dK/dV (k-major: a k tile and its q tiles, per kv head).
//
// The grid is one-dimensional: x = rank * heads + head. `rank` indexes the list's heaviest-first
// order of (row, tile) slots, so the hardware, which starts CTAs in increasing x, starts the tiles
// with the most partners first, all heads of one slot together (heads that share a kv head sit
// next to each other, which also helps L2 reuse of K and V under GQA).
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

struct TileWork {
    int row;
    int tile;        // index of the tile along the list's major axis
    int head;        // q head (q-major lists) or kv head (k-major lists)
    int list_begin;  // the slot's entries: [list_begin, list_end)
    int list_end;
};

PA_DEVICE TileWork tile_work(const PaBlockList& list, int heads) {
    TileWork w;
    const int bid = (int)block_idx_x();
    const int rank = bid / heads;
    w.head = bid - rank * heads;
    const int slot = list.order[rank];
    w.row = slot / list.tiles;
    w.tile = slot - w.row * list.tiles;
    w.list_begin = list.offsets[slot];
    w.list_end = list.offsets[slot + 1];
    return w;
}

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
