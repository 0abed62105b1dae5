// Which work one CTA of the forward does, decoded from its block index and the plan.
//
// The grid is one-dimensional: x = rank * q_heads + head. `rank` indexes the plan's heaviest-first
// order of (row, q tile) slots, so the hardware, which starts CTAs in increasing x, starts the
// q tiles with the most k tiles first, all heads of one slot together (heads that share a kv head
// sit next to each other, which also helps L2 reuse of K and V under GQA).
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

struct FwdBlockInfo {
    int row;
    int head;
    int kv_head;
    int q0;          // first query of the tile
    int list_begin;  // q-major block list of this (row, q tile): entries [list_begin, list_end)
    int list_end;
};

PA_DEVICE FwdBlockInfo fwd_block_info(const PaAttnFwdParams& p, int block_q) {
    FwdBlockInfo b;
    const int bid = (int)block_idx_x();
    const int rank = bid / p.q_heads;
    b.head = bid - rank * p.q_heads;
    const int slot = p.heaviest_first[rank];
    b.row = slot / p.q_tiles;
    b.q0 = (slot - b.row * p.q_tiles) * block_q;
    b.kv_head = b.head / p.kv_group;
    b.list_begin = p.q_offsets[slot];
    b.list_end = p.q_offsets[slot + 1];
    return b;
}

// Element 0 of (row, head) in a strided view.
template <typename T>
PA_DEVICE const T* head_base(const void* base, const PaStrides& s, int row, int head) {
    return static_cast<const T*>(base) + (int64_t)row * s.row + (int64_t)head * s.head;
}

}  // namespace attn
}  // namespace pa
