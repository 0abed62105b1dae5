// Internal helpers shared by the emulator's Hopper files (mbarrier.cpp, named_barrier.cpp,
// tma.cpp, warpgroup.cpp, wgmma.cpp, sm90_cta.cpp).
#pragma once

#include <stdint.h>

#include <string>

#include "../pa/host_sm90.cuh"
#include "runtime.h"

namespace pa {
namespace emu {

inline Thread *sm90_me() { return tl_launch->current; }

// Offset of p in the CTA's dynamic shared memory, or -1 when p is outside it.
int64_t smem_offset(const Launch *L, const void *p);
// Whether [off, off + bytes) lies inside the CTA's dynamic shared memory.
bool smem_range_ok(const Launch *L, int64_t off, uint64_t bytes);
// Shared-window address <-> offset in dynamic shared memory.
inline uint32_t shared_addr_of(const Launch *L, uint32_t off) { return L->sm90.smem_base + off; }

// Fails the calling thread when a lane of its warp waits at a warp collective: the Hopper sync
// points are not warp collectives, but a lane cannot reach one while its warp gathers.
void check_no_pending_collective(Launch *L, Thread *t, const char *what, Site site);

// Everything that counts as progress for deadlock detection.
uint64_t progress_token(const Launch *L);

// ---- mbarrier (mbarrier.cpp) ----
MbarState *find_mbar(Launch *L, uint32_t offset);
// The live mbarrier at `bar`, or fails the calling thread (bad address, never initialized,
// invalidated, its bytes overwritten). `op` names the instruction in the message.
MbarState *mbar_live(Launch *L, Thread *t, const void *bar, const char *op, Site site);
std::string mbar_name(const MbarState &m);
// A complete-tx of `bytes` (a TMA landed). Returns an error description, or "".
std::string mbar_complete_tx(Launch *L, MbarState *m, uint32_t bytes);

// The async proxy's view of the CTA's dynamic shared memory (Sm90Cta::async_view), materialised.
unsigned char *async_view(Launch *L);

// ---- TMA (tma.cpp) ----
// Lands (and removes) the queued copies completing on the mbarrier at `bar_offset`, or all of
// them (bar_offset = UINT32_MAX), in issue order. Returns the first error, or "".
std::string land_tmas(Launch *L, uint32_t bar_offset);

// ---- wgmma (wgmma.cpp) ----
// Decodes a matrix descriptor. `which` ("A" / "B") names the operand in errors.
std::string decode_smem_desc(uint64_t desc, int major, const char *which, SmemOperand *out);
// Checks every element address of the operands of op against shared memory.
std::string check_wgmma_operands(const Launch *L, const WgmmaOp &op);
// Checks that every shared-memory operand element of op is what the async proxy sees (ordinary
// stores published by fence.proxy.async, or TMA writes). Returns an error description, or "".
std::string check_async_visible(Launch *L, const WgmmaOp &op);
// Computes op: reads A and B (shared memory at this moment) and C, writes D.
void compute_wgmma(const Launch *L, const WgmmaOp &op);

}  // namespace emu
}  // namespace pa
