// Named barriers (PTX ISA, "Parallel Synchronization and Communication Instructions: bar,
// barrier"): bar.sync a, b and bar.arrive a, b with a thread count b. Both are the .aligned
// forms: every thread of a participating warp executes the same instruction, so b counts whole
// warps (b is a multiple of 32). bar.sync waits until b threads arrived at barrier a in the
// current phase; bar.arrive counts without waiting. When b threads arrived the phase completes:
// the waiters resume and the barrier is reset.
//
// Emulation: threads arrive one by one; the phase completes when `b` threads arrived, and then
// every warp that took part must have arrived with all of its lanes (warp granularity). Id 0 is
// left to sync_threads (__syncthreads is barrier 0 with all threads). Nets: every arrival of a
// phase must give the same count; the lanes of a warp must arrive at the same call site; a lane
// must not exit while its warp-mates have arrived in an unfinished phase; a CTA must not end
// with a barrier part-way through a phase; the count must be a positive multiple of 32 that the
// block can reach; a thread waiting at a phase nobody completes is reported as a deadlock.
#include <string>

#include "sm90.h"

namespace pa {
namespace emu {
namespace sm90 {

namespace {

[[noreturn]] void fail_named(Launch *L, Thread *t, uint32_t id, bool sync, Site site,
                             const std::string &why) {
    fail_thread(where(L, t) + ": " + (sync ? "bar.sync " : "bar.arrive ") + std::to_string(id) +
                " at " + site_str(site) + ": " + why);
}

}  // namespace

void named_barrier(uint32_t id, uint32_t threads, bool sync, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    check_no_pending_collective(L, t, sync ? "bar.sync" : "bar.arrive", site);
    if (id == 0 || id > 15) {
        fail_named(L, t, id, sync, site,
                   "named barrier ids are 1..15 here (0 is sync_threads', the hardware has 16)");
    }
    const uint32_t block_warps = (L->nthreads + 31) / 32;
    if (threads == 0 || threads % 32 != 0 || threads > block_warps * 32) {
        fail_named(L, t, id, sync, site,
                   "thread count " + std::to_string(threads) +
                       " must be a positive multiple of 32 (warps take part whole) and at most "
                       "the block's " + std::to_string(block_warps * 32));
    }
    NamedBarrier &b = L->sm90.named[id];
    const uint32_t warp = t->view.warp, lane = t->view.lane;
    if (b.arrived == 0) {
        b.expected = threads;
        b.first_site = site;
        b.first_thread = t->view.linear;
    } else if (b.expected != threads) {
        fail_named(L, t, id, sync, site,
                   "count " + std::to_string(threads) + " while thread " +
                       std::to_string(b.first_thread) + " arrived in the same phase with count " +
                       std::to_string(b.expected) + " at " + site_str(b.first_site) +
                       ": mismatched counts for one barrier");
    }
    if (b.lane_mask[warp] == 0) {
        b.warp_site[warp] = site;
    } else if (!same_site(b.warp_site[warp], site)) {
        fail_named(L, t, id, sync, site,
                   "other lanes of warp " + std::to_string(warp) + " arrived at " +
                       site_str(b.warp_site[warp]) +
                       ": a warp executes bar.sync/bar.arrive as one (.aligned)");
    }
    b.lane_mask[warp] |= 1u << lane;
    b.arrived++;
    L->sm90.epoch++;
    if (b.arrived == b.expected) {
        for (uint32_t w = 0; w < block_warps; w++) {
            if (b.lane_mask[w] == 0) continue;
            const uint32_t lanes = (*L->warps)[w].lanes;
            const uint32_t full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
            if (b.lane_mask[w] != full) {
                fail_named(L, t, id, sync, site,
                           "the phase reached its count of " + std::to_string(b.expected) +
                               " with only some lanes of warp " + std::to_string(w) +
                               " (mask " + std::to_string(b.lane_mask[w]) +
                               "): warps take part whole (.aligned)");
            }
        }
        for (uint32_t i = 0; i < L->nthreads; i++) {
            Thread &o = (*L->threads)[i];
            if (o.state == State::AtNamedBarrier && o.sm90.named_id == id) o.state = State::Runnable;
        }
        b = NamedBarrier{};
        return;
    }
    if (sync) {
        t->sm90.named_id = id;
        t->site = site;
        t->state = State::AtNamedBarrier;
        yield_to_scheduler(t);
    }
}

}  // namespace sm90
}  // namespace emu
}  // namespace pa
