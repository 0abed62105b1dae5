// Lifecycle of the Hopper features within a CTA: reset at its start, checks at each thread's
// exit and at its end, stall handling (copies in flight, sleeping try_waits, deadlocks) and the
// descriptions of blocked threads. Also the shared-memory helpers the other files use.
#include <string.h>

#include <string>

#include "sm90.h"

namespace pa {
namespace emu {

int64_t smem_offset(const Launch *L, const void *p) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    if (c < L->smem || c >= L->smem + L->smem_bytes) return -1;
    return c - L->smem;
}

bool smem_range_ok(const Launch *L, int64_t off, uint64_t bytes) {
    return off >= 0 && bytes <= L->smem_bytes && static_cast<uint64_t>(off) <= L->smem_bytes - bytes;
}

void check_no_pending_collective(Launch *L, Thread *t, const char *what, Site site) {
    const Warp &w = (*L->warps)[t->view.warp];
    if (w.arrived > 0) {
        fail_thread(where(L, t) + " reaches " + what + " at " + site_str(site) + " while " +
                    std::to_string(w.arrived) + " lanes of its warp wait at " + op_name(w.op, w.variant) +
                    " at " + site_str(w.site) + ": divergent collective");
    }
}

uint64_t progress_token(const Launch *L) {
    return L->sm90.epoch + L->barriers + L->collectives + L->done;
}

unsigned char *async_view(Launch *L) {
    Sm90Cta &s = L->sm90;
    if (!s.async_view_live) {
        s.async_view.assign(L->smem_bytes, s.async_view_fill);
        s.async_view_live = true;
    }
    return s.async_view.data();
}

namespace sm90 {
void fence_proxy_async() {
    Launch *L = tl_launch;
    if (L->smem_bytes > 0) memcpy(async_view(L), L->smem, L->smem_bytes);
}

uint32_t smem_addr(const void *p) {
    Launch *L = tl_launch;
    const int64_t off = smem_offset(L, p);
    if (off < 0 && static_cast<const unsigned char *>(p) != L->smem + L->smem_bytes) {
        fail_thread(where(L, sm90_me()) + ": smem_addr of a pointer outside the CTA's dynamic shared memory");
    }
    return shared_addr_of(L, static_cast<uint32_t>(static_cast<const unsigned char *>(p) - L->smem));
}

uint64_t make_smem_desc(uint32_t start_addr, uint32_t lbo, uint32_t sbo, uint32_t swizzle, Site site) {
    const uint32_t v[3] = {start_addr, lbo, sbo};
    const char *names[3] = {"start address", "leading byte offset", "stride byte offset"};
    for (int i = 0; i < 3; i++) {
        if (v[i] % 16 != 0 || v[i] >= (1u << 18)) {
            Launch *L = tl_launch;
            fail_thread(where(L, sm90_me()) + ": make_smem_desc at " + site_str(site) + ": the " +
                        names[i] + " " + std::to_string(v[i]) +
                        " is not a multiple of 16 below 2^18 (the descriptor keeps bits 4..17)");
        }
    }
    return static_cast<uint64_t>(start_addr >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
           (static_cast<uint64_t>(sbo >> 4) << 32) | (static_cast<uint64_t>(swizzle & 3u) << 62);
}
}  // namespace sm90

void sm90_cta_begin(Launch *L) {
    Sm90Cta &s = L->sm90;
    // Dynamic shared memory at a 128-byte aligned shared address: aligned to 1 KiB under the
    // ascending schedule, 128 mod 1024 under the descending one, a seeded multiple of 128 under
    // the random one (without advancing the schedule's random stream).
    uint64_t r = L->rng;
    s.smem_base = L->schedule == PA_EMU_SCHEDULE_ASCENDING    ? 0u
                  : L->schedule == PA_EMU_SCHEDULE_DESCENDING ? 128u
                                                              : static_cast<uint32_t>(next_random(&r) % 8) * 128u;
    s.async_view_live = false;
    s.async_view_fill = L->smem_bytes > 0 ? L->smem[0] : 0;  // run_cta filled it with poison
    s.mbars.clear();
    for (NamedBarrier &b : s.named) b = NamedBarrier{};
    s.tmas.clear();
    const uint32_t nwg = (L->nthreads + 127) / 128;
    s.wgs.resize(nwg);
    for (WarpgroupState &w : s.wgs) {
        w.arrived = 0;
        w.op = WgGatherOp::None;
        w.fences = w.committed = w.completed = 0;
        w.last_group = -1;
        w.queue.clear();
    }
    s.epoch = 0;
    s.unstick_token = ~0ull;
    for (uint32_t i = 0; i < L->nthreads; i++) (*L->threads)[i].sm90.waits.clear();
}

void sm90_thread_exit(Launch *L, Thread *t) {
    L->sm90.epoch++;
    const uint32_t wgi = t->view.warp / 4;
    if (wgi < L->sm90.wgs.size()) {
        const WarpgroupState &wg = L->sm90.wgs[wgi];
        if (wg.arrived > 0) {
            record_error(L, where(L, t) + " exited while " + std::to_string(wg.arrived) +
                                " threads of warpgroup " + std::to_string(wgi) +
                                " wait at a warpgroup instruction at " + site_str(wg.site) +
                                ": warps " + std::to_string(4 * wgi) + ".." +
                                std::to_string(4 * wgi + 3) +
                                " execute it together (is the warpgroup aligned to a warp index "
                                "that is a multiple of 4?)");
            return;
        }
        if (wg.last_group >= static_cast<int64_t>(wg.completed)) {
            record_error(L, where(L, t) + " exited with wgmma group " + std::to_string(wg.last_group) +
                                " in flight (its warpgroup completed " + std::to_string(wg.completed) +
                                " groups): commit and wait before the accumulators go away");
            return;
        }
    }
    const uint32_t bit = 1u << t->view.lane;
    for (uint32_t id = 1; id < 16; id++) {
        const NamedBarrier &b = L->sm90.named[id];
        const uint32_t mask = b.lane_mask[t->view.warp];
        if (mask != 0 && (mask & bit) == 0) {
            record_error(L, where(L, t) + " exited while other lanes of its warp arrived at named barrier " +
                                std::to_string(id) + " at " + site_str(b.warp_site[t->view.warp]) +
                                ": a warp executes bar.sync/bar.arrive as one (.aligned)");
            return;
        }
    }
}

bool sm90_unstick(Launch *L) {
    Sm90Cta &s = L->sm90;
    if (!s.tmas.empty()) {
        // Copies in flight always land eventually.
        const std::string err = land_tmas(L, UINT32_MAX);
        if (!err.empty()) record_error(L, err);
        return true;
    }
    bool sleepers = false;
    for (uint32_t i = 0; i < L->nthreads && !sleepers; i++) sleepers = (*L->threads)[i].state == State::AtMbarrier;
    if (!sleepers) return false;
    const uint64_t token = progress_token(L);
    if (token == s.unstick_token) return false;  // woken once already, nothing moved since
    s.unstick_token = token;
    // A try_wait may time out: wake every sleeper with `false`, once per stall.
    for (uint32_t i = 0; i < L->nthreads; i++) {
        Thread &o = (*L->threads)[i];
        if (o.state == State::AtMbarrier) o.state = State::Runnable;
    }
    for (MbarState &m : s.mbars) m.waiters = 0;
    return true;
}

std::string sm90_describe(const Launch *L, const Thread *t) {
    switch (t->state) {
        case State::AtMbarrier: {
            const uint32_t off = t->sm90.wait_offset;
            for (const MbarState &m : L->sm90.mbars) {
                if (m.offset != off) continue;
                return " waits on " + mbar_name(m) + " for phase " + std::to_string(t->sm90.wait_phase) +
                       " (parity " + std::to_string(t->sm90.wait_parity) + ") at " + site_str(t->site) +
                       "; the barrier is in phase " + std::to_string(m.phase) + " with " +
                       std::to_string(m.pending) + " of " + std::to_string(m.expected) +
                       " arrivals pending and tx-count " + std::to_string(m.tx);
            }
            return " waits on an mbarrier at shared offset " + std::to_string(off) + " at " + site_str(t->site);
        }
        case State::AtNamedBarrier: {
            const NamedBarrier &b = L->sm90.named[t->sm90.named_id];
            return " waits at named barrier " + std::to_string(t->sm90.named_id) + " at " + site_str(t->site) +
                   " (" + std::to_string(b.arrived) + " of " + std::to_string(b.expected) + " threads arrived)";
        }
        case State::AtWarpgroup: {
            const WarpgroupState &wg = L->sm90.wgs[t->view.warp / 4];
            return " waits at a warpgroup instruction at " + site_str(t->site) + " (" +
                   std::to_string(wg.arrived) + " of the 128 threads of warpgroup " +
                   std::to_string(t->view.warp / 4) + " arrived)";
        }
        default: return std::string();
    }
}

void sm90_cta_end(Launch *L) {
    Sm90Cta &s = L->sm90;
    if (!s.tmas.empty()) {
        const std::string err = land_tmas(L, UINT32_MAX);
        if (!err.empty()) {
            record_error(L, err);
            return;
        }
    }
    for (uint32_t id = 1; id < 16; id++) {
        const NamedBarrier &b = s.named[id];
        if (b.arrived > 0) {
            record_error(L, "CTA (" + std::to_string(L->cta[0]) + "," + std::to_string(L->cta[1]) + "," +
                                std::to_string(L->cta[2]) + ") ended with named barrier " + std::to_string(id) +
                                " half-arrived: " + std::to_string(b.arrived) + " of " +
                                std::to_string(b.expected) + " threads (first at " +
                                site_str(b.first_site) + ")");
            return;
        }
    }
}

}  // namespace emu
}  // namespace pa
