// Internal state of one emulated launch (see scheduler.cpp for how it runs, warp_ops.cpp for the
// PTX semantics of the collectives).
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "../pa/host.cuh"
#include "fiber.h"
#include "sm90_state.h"

namespace pa {
namespace emu {

enum class State : uint8_t {
    Runnable,
    AtBarrier,
    AtCollective,
    AtNamedBarrier,  // bar.sync id, n (sm90_state.h)
    AtWarpgroup,     // a warpgroup-wide instruction (wgmma.*, setmaxnreg)
    AtMbarrier,      // asleep in mbarrier.try_wait until the barrier changes
    Done,
    Failed
};

// The collectives a warp can be gathered at.
enum class Op : uint8_t { None, Shfl, Ldmatrix, Mma };

const char *op_name(Op op, int variant);

// When a cp.async lands. On a GPU, any time between its issue and the wait_group that completes
// its group; the schedules take the two extremes (and a coin per copy), so a kernel that reads
// the destination before its wait, or overwrites a buffer another thread still reads, gets
// schedule-dependent results.
enum class CopyTiming : uint8_t { AtWait, AtIssue, Coin };

// A cp.async queued by one thread (CopyTiming::AtWait, or the coin said so): performed when a
// wait_group completes its group.
struct PendingCopy {
    unsigned char *dst;
    const unsigned char *src;
    uint32_t group;
    uint32_t bytes;  // 4, 8 or 16
    bool valid;
};

struct Thread {
    ThreadView view{};
    FiberContext ctx{};
    Stack stack{};
    State state = State::Runnable;
    Site site{nullptr, 0};  // the sync point it waits at
    std::vector<PendingCopy> copies;
    uint32_t committed_groups = 0;
    Sm90Thread sm90;
    // Descending schedule: sits out the rest of the current sweep (its arrival completed an
    // mbarrier phase, and the threads that phase releases go first: mbarrier.cpp).
    bool deferred = false;
};

// Staging area of one warp's collective: every lane deposits its operands, the last one to arrive
// triggers the computation, and each lane picks its result up when it resumes.
struct Warp {
    uint32_t lanes = 0;    // threads in this warp (32 unless the block size is not a multiple)
    uint32_t arrived = 0;  // lanes waiting at the current collective
    Op op = Op::None;
    int variant = 0;  // shfl mode / ldmatrix count (+8 if .trans) / mma kind
    Site site{nullptr, 0};
    uint32_t first_lane = 0;
    // operands
    uint32_t value[32];
    int32_t b[32];
    const unsigned char *addr[32];
    uint32_t a_frag[32][4];
    uint32_t b_frag[32][2];
    float c_frag[32][4];
    // results
    uint32_t out[32][4];
    float d_frag[32][4];
};

struct Launch {
    const char *kernel = "";
    const void *params = nullptr;
    void (*entry)(const void *) = nullptr;
    uint32_t schedule = 0;
    uint64_t rng = 0;
    CopyTiming copy_timing = CopyTiming::AtWait;
    uint32_t approx = PA_EMU_APPROX_EXACT;  // exp2_fast / log2_fast model (approx.cpp)
    uint64_t approx_seed = 0;

    uint32_t block[3] = {1, 1, 1};
    uint32_t grid[3] = {1, 1, 1};
    uint32_t nthreads = 0;
    uint32_t cta[3] = {0, 0, 0};

    std::vector<Thread> *threads = nullptr;
    std::vector<Warp> *warps = nullptr;
    Thread *current = nullptr;
    FiberContext scheduler{};

    unsigned char *smem = nullptr;  // the CTA's dynamic shared memory
    uint32_t smem_bytes = 0;

    // barrier bookkeeping of the current CTA
    uint32_t barrier_arrived = 0;
    Site barrier_site{nullptr, 0};
    uint32_t barrier_first = 0;
    uint32_t done = 0;

    Sm90Cta sm90;  // mbarriers, named barriers, TMA, warpgroups of the current CTA

    bool failed = false;
    std::string error;

    uint64_t barriers = 0;
    uint64_t collectives = 0;
    uint64_t switches = 0;
};

// The launch running on this OS thread.
extern __thread Launch *tl_launch;

// Records the first error of the launch (later ones are consequences).
void record_error(Launch *L, const std::string &msg);
// From a fiber: records the error and leaves the fiber for good.
[[noreturn]] void fail_thread(const std::string &msg);
// From a fiber: gives control back to the scheduler until it resumes this thread.
void yield_to_scheduler(Thread *t);

std::string where(const Launch *L, const Thread *t);
std::string site_str(Site s);
bool same_site(Site x, Site y);

// Computes the warp's collective into its result arrays (warp_ops.cpp). Returns an empty string
// or the description of a rule the operands broke (e.g. an address outside shared memory).
std::string compute_collective(Launch *L, Warp *w);

// Lands one cp.async (its bytes, or as many zeros when its source is not valid).
void perform_copy(const PendingCopy &c);
// Performs (and drops) a thread's queued copies of groups below `limit`.
void complete_copies(Thread *t, uint32_t limit);

uint64_t next_random(uint64_t *state);

// Hooks of the Hopper features (sm90_cta.cpp), called by the scheduler.
void sm90_cta_begin(Launch *L);   // before a CTA's threads start
void sm90_thread_exit(Launch *L, Thread *t);  // a thread returned from the kernel
// Nothing can run: lands copies in flight, or wakes try_wait sleepers once per stall without
// progress in between. False when that changes nothing (a deadlock).
bool sm90_unstick(Launch *L);
// What a thread blocked in a Hopper state waits for (empty for the other states).
std::string sm90_describe(const Launch *L, const Thread *t);
void sm90_cta_end(Launch *L);     // after the CTA's threads finished

}  // namespace emu
}  // namespace pa
