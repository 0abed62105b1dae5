// Per-CTA and per-thread state of the Hopper features of the emulator: mbarriers, named
// barriers, TMA copies in flight, warpgroups and their wgmma queues. Owned by Launch / Thread
// (runtime.h); the code is in mbarrier.cpp, named_barrier.cpp, tma.cpp, warpgroup.cpp,
// wgmma.cpp and sm90_cta.cpp.
#pragma once

#include <stdint.h>

#include <vector>

#include "../pa/host.cuh"
#include "../pa_tma.h"

namespace pa {
namespace emu {

// One mbarrier object (PTX ISA, "mbarrier": "Contents of the mbarrier object"): its state lives
// here, keyed by its offset in the CTA's shared memory; its 8 bytes hold a signature.
struct MbarState {
    uint32_t offset = 0;
    bool valid = false;       // initialized and not invalidated
    uint32_t generation = 0;  // bumped by every init: per-thread wait tracking restarts
    uint32_t expected = 0;    // arrivals per phase (init count)
    int64_t pending = 0;      // arrivals still missing in the current phase
    int64_t tx = 0;           // transaction count of the current phase (may dip below 0)
    int64_t phase = 0;        // current phase; phases 0 .. phase-1 have completed
    uint32_t waiters = 0;     // threads asleep in try_wait on it
    uint32_t inflight = 0;    // TMA copies issued on it that have not landed
    Site init_site{nullptr, 0};
};

// The last phase of one mbarrier a thread saw complete through try_wait.
struct WaitTrack {
    uint32_t offset;
    uint32_t generation;
    int64_t resolved;  // -2: none yet (the virtual phase before phase -1)
};

// One of the 16 named barriers (PTX ISA, "bar, barrier"); id 0 is sync_threads'.
struct NamedBarrier {
    uint32_t expected = 0;  // thread count of the current phase (0: idle)
    uint32_t arrived = 0;
    Site first_site{nullptr, 0};
    uint32_t first_thread = 0;
    uint32_t lane_mask[32] = {};  // lanes of each warp that arrived in this phase
    Site warp_site[32] = {};
};

// A TMA load issued and not landed yet.
struct PendingTma {
    uint32_t dst_offset;  // in the CTA's shared memory
    PaTensorMapEmu map;
    int32_t coords[PA_TMA_MAX_RANK];
    uint32_t bar_offset;
    uint32_t bar_generation;
    uint32_t bytes;
    Site site;
    uint32_t thread;
};

// A shared-memory wgmma operand decoded from its matrix descriptor.
struct SmemOperand {
    uint32_t start = 0;   // shared-window address
    uint32_t lbo = 0;     // bytes
    uint32_t sbo = 0;     // bytes
    uint32_t swizzle = 0; // descriptor encoding: 0 none, 1 128B, 2 64B, 3 32B
    int major = 0;        // 0 K-major, 1 MN-major
};

// One wgmma.mma_async of a warpgroup: everything needed to compute it later.
struct WgmmaOp {
    int n = 0;
    int dtype = 0;
    bool a_regs = false;
    SmemOperand a, b;
    uint32_t scale_d = 0;
    uint32_t group = 0;
    Site site{nullptr, 0};
    float *d[128];
    uint32_t a_frag[128][4];
};

// Warpgroup-wide instructions being gathered (all 128 threads must arrive).
enum class WgGatherOp : uint8_t { None, Fence, Commit, Wait, SetMaxNRegInc, SetMaxNRegDec, Mma };

struct WarpgroupState {
    // gathering
    uint32_t arrived = 0;
    WgGatherOp op = WgGatherOp::None;
    int arg = 0;  // wait count / setmaxnreg value / packed wgmma shape
    Site site{nullptr, 0};
    uint32_t first_thread = 0;
    // per-thread operands of a gathered wgmma
    uint64_t desc_a[128];
    uint64_t desc_b[128];
    uint32_t scale_d[128];
    uint32_t a_frag[128][4];
    float *d[128];
    void *d_track[128];
    void *a_track[128];
    // wgmma groups (PTX ISA, "wgmma.commit_group", "wgmma.wait_group")
    uint32_t fences = 0;      // wgmma.fence executed
    uint32_t committed = 0;   // groups committed
    uint32_t completed = 0;   // groups 0 .. completed-1 are complete
    int64_t last_group = -1;  // group of the newest wgmma
    std::vector<WgmmaOp> queue;  // issued, not computed yet (in issue order)
};

struct Sm90Cta {
    uint32_t smem_base = 0;  // shared-window address of dynamic shared memory byte 0
    // The async proxy's view of dynamic shared memory (PTX ISA, "Proxies"): what wgmma operand
    // reads may see. TMA writes land in it and in shared memory; fence.proxy.async copies shared
    // memory into it; ordinary stores reach only shared memory. Materialised on first use (until
    // then it is the launch's poison byte everywhere, as shared memory was at the CTA's start).
    std::vector<unsigned char> async_view;
    bool async_view_live = false;
    unsigned char async_view_fill = 0;
    std::vector<MbarState> mbars;
    NamedBarrier named[16];
    std::vector<PendingTma> tmas;
    std::vector<WarpgroupState> wgs;
    uint64_t epoch = 0;               // bumped by every state change of the features here
    uint64_t unstick_token = ~0ull;   // progress token at the last spurious wake-up
};

struct Sm90Thread {
    std::vector<WaitTrack> waits;
    uint32_t wait_offset = 0;  // mbarrier it sleeps on (State::AtMbarrier)
    int64_t wait_phase = 0;    // the phase it waits for
    uint32_t wait_parity = 0;
    uint32_t named_id = 0;     // named barrier it waits at (State::AtNamedBarrier)
};

}  // namespace emu
}  // namespace pa
