// mbarrier objects (PTX ISA, "Parallel Synchronization and Communication Instructions:
// mbarrier": "Contents of the mbarrier object", "Phase of the mbarrier object", "Tracking
// asynchronous operations by the mbarrier object", "mbarrier.init", "mbarrier.arrive",
// "mbarrier.expect_tx", "mbarrier.test_wait / mbarrier.try_wait", "mbarrier.inval").
//
// Semantics. init(count) sets the expected arrival count, the current phase to 0, the pending
// count to `count` and the tx-count to 0. arrive(n) lowers the pending count by n; expect_tx(b)
// raises the tx-count by b; a TMA landing lowers it by its bytes (complete-tx). The current phase
// completes when the pending count is 0 and the tx-count is 0: the phase advances, the pending
// count is reset to the expected count and the tx-count to 0. try_wait.parity(p) is true when
// the phase with parity p that the thread means has completed.
//
// Which phase a parity means. The ISA only allows a parity naming the current phase or the one
// just before it. The emulator remembers, per thread and barrier, the last phase L the thread
// saw complete (initially none; a fresh barrier counts as having completed phase -1, parity 1),
// and resolves a wait with parity p to the next phase after L with parity p. Nets:
//   - p equal to the parity of L: the thread did not flip its parity (p now names phase L + 2,
//     two phases away from the L + 1 it needs): error, although the hardware would answer true;
//   - the phase meant completed two or more phases ago (the thread fell behind): error;
//   - a sleeper that wakes after its phase and the next one completed (it could miss its phase).
// Other nets: more arrivals than pending in a phase (over-arrival); more transaction bytes
// completed than expected once all arrivals are in (tx underflow); use before init or after
// inval; init or inval of an mbarrier in use; an ordinary store over a live mbarrier's 8 bytes
// (they hold a signature); counts outside [1, 2^20 - 1]; tx-count outside +-(2^20 - 1).
// A failed try_wait puts the thread to sleep until the barrier changes: a scheduling point.
#include <string.h>

#include <string>

#include "sm90.h"

namespace pa {
namespace emu {

namespace {

constexpr int64_t kMaxCount = (1 << 20) - 1;  // PTX: arrival counts and tx-count limits

uint64_t signature(const MbarState &m) {
    return 0x6d62617200000000ull ^ (static_cast<uint64_t>(m.generation) << 20) ^ m.offset;
}

bool signature_intact(const Launch *L, const MbarState &m) {
    uint64_t v;
    memcpy(&v, L->smem + m.offset, 8);
    return v == signature(m);
}

std::string phase_state(const MbarState &m) {
    return "phase " + std::to_string(m.phase) + " with " + std::to_string(m.pending) + " of " +
           std::to_string(m.expected) + " arrivals pending and tx-count " + std::to_string(m.tx);
}

[[noreturn]] void fail_op(Launch *L, Thread *t, const char *op, Site site, const std::string &why) {
    fail_thread(where(L, t) + ": mbarrier " + op + " at " + site_str(site) + ": " + why);
}

uint32_t bar_offset(Launch *L, Thread *t, const void *bar, const char *op, Site site) {
    const int64_t off = smem_offset(L, bar);
    if (off < 0 || !smem_range_ok(L, off, 8) || off % 8 != 0) {
        fail_op(L, t, op, site,
                "the address is not an 8-byte aligned slot inside the CTA's " +
                    std::to_string(L->smem_bytes) + " bytes of dynamic shared memory");
    }
    return static_cast<uint32_t>(off);
}

}  // namespace

MbarState *mbar_live(Launch *L, Thread *t, const void *bar, const char *op, Site site) {
    const uint32_t off = bar_offset(L, t, bar, op, site);
    MbarState *m = find_mbar(L, off);
    if (!m) {
        fail_op(L, t, op, site,
                "no mbarrier was initialized at shared offset " + std::to_string(off) +
                    " (mbarrier.init must come first, and be published to the other threads: "
                    "init, fence_mbarrier_init, then a barrier)");
    }
    if (!m->valid) fail_op(L, t, op, site, mbar_name(*m) + " was invalidated (mbarrier.inval)");
    if (!signature_intact(L, *m)) {
        fail_op(L, t, op, site,
                "the 8 bytes of " + mbar_name(*m) +
                    " were overwritten since its init (an ordinary store or a copy over a live "
                    "mbarrier object)");
    }
    return m;
}

namespace {

bool in_use(const MbarState &m) {
    return m.pending != m.expected || m.tx != 0 || m.inflight > 0 || m.waiters > 0;
}

std::string use_state(const MbarState &m) {
    std::string s = phase_state(m);
    if (m.inflight) s += ", " + std::to_string(m.inflight) + " TMA copies in flight";
    if (m.waiters) s += ", " + std::to_string(m.waiters) + " threads waiting";
    return s;
}

void complete_phase(Launch *L, MbarState *m) {
    m->phase++;
    m->pending = m->expected;
    m->tx = 0;
    L->sm90.epoch++;
    if (m->waiters == 0) return;
    for (uint32_t i = 0; i < L->nthreads; i++) {
        Thread &o = (*L->threads)[i];
        if (o.state == State::AtMbarrier && o.sm90.wait_offset == m->offset) o.state = State::Runnable;
    }
    m->waiters = 0;
}

WaitTrack *track_of(Thread *t, const MbarState &m) {
    for (WaitTrack &w : t->sm90.waits) {
        if (w.offset != m.offset) continue;
        if (w.generation != m.generation) {
            w.generation = m.generation;
            w.resolved = -2;
        }
        return &w;
    }
    t->sm90.waits.push_back(WaitTrack{m.offset, m.generation, -2});
    return &t->sm90.waits.back();
}

}  // namespace

MbarState *find_mbar(Launch *L, uint32_t offset) {
    for (MbarState &m : L->sm90.mbars) {
        if (m.offset == offset) return &m;
    }
    return nullptr;
}

std::string mbar_name(const MbarState &m) {
    return "the mbarrier at shared offset " + std::to_string(m.offset) + " (initialized at " +
           site_str(m.init_site) + ")";
}

std::string mbar_complete_tx(Launch *L, MbarState *m, uint32_t bytes) {
    m->tx -= bytes;
    L->sm90.epoch++;
    if (m->tx < -kMaxCount) {
        return "tx-count of " + mbar_name(*m) + " fell below -(2^20 - 1)";
    }
    if (m->pending == 0) {
        if (m->tx < 0) {
            return "tx underflow on " + mbar_name(*m) + ": a TMA completed " +
                   std::to_string(bytes) + " bytes in phase " + std::to_string(m->phase) +
                   " after all arrivals, " + std::to_string(-m->tx) +
                   " more than the phase expected (expect_tx smaller than the boxes it covers)";
        }
        if (m->tx == 0) complete_phase(L, m);
    }
    return std::string();
}

namespace sm90 {

void mbar_init(void *bar, uint32_t count, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    const uint32_t off = bar_offset(L, t, bar, "init", site);
    if (count < 1 || count > kMaxCount) {
        fail_op(L, t, "init", site, "count " + std::to_string(count) + " is outside [1, 2^20 - 1]");
    }
    MbarState *m = find_mbar(L, off);
    if (m && m->valid && in_use(*m)) {
        fail_op(L, t, "init", site,
                "re-initializes " + mbar_name(*m) + " while it is in use (" + use_state(*m) + ")");
    }
    if (!m) {
        L->sm90.mbars.push_back(MbarState{});
        m = &L->sm90.mbars.back();
        m->offset = off;
    }
    m->valid = true;
    m->generation++;
    m->expected = count;
    m->pending = count;
    m->tx = 0;
    m->phase = 0;
    m->waiters = 0;
    m->init_site = site;
    const uint64_t sig = signature(*m);
    memcpy(L->smem + off, &sig, 8);
    L->sm90.epoch++;
}

void mbar_arrive(void *bar, uint32_t count, uint32_t tx_bytes, bool expect_tx, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    const char *op = expect_tx ? "arrive.expect_tx" : "arrive";
    MbarState *m = mbar_live(L, t, bar, op, site);
    if (count < 1 || count > kMaxCount) {
        fail_op(L, t, op, site, "count " + std::to_string(count) + " is outside [1, 2^20 - 1]");
    }
    if (expect_tx) {
        m->tx += tx_bytes;
        if (tx_bytes > kMaxCount || m->tx > kMaxCount) {
            fail_op(L, t, op, site, "the tx-count of " + mbar_name(*m) + " exceeds 2^20 - 1");
        }
    }
    if (m->pending < count) {
        fail_op(L, t, op, site,
                "arrives " + std::to_string(count) + " time(s) on " + mbar_name(*m) + " in " +
                    phase_state(*m) +
                    ": more arrivals than its count in one phase (over-arrival)");
    }
    m->pending -= count;
    L->sm90.epoch++;
    if (m->pending == 0) {
        if (m->tx < 0) {
            fail_op(L, t, op, site,
                    "tx underflow on " + mbar_name(*m) + ": the last arrival of phase " +
                        std::to_string(m->phase) + " finds " + std::to_string(-m->tx) +
                        " more bytes completed than expected");
        }
        if (m->tx == 0) {
            complete_phase(L, m);
            // The descending schedule lets the threads this phase releases run before the thread
            // whose arrival completed it goes on: on a GPU they may (an arrive does not wait), and
            // a consumer's release followed at once by its wgmma.wait_group would otherwise never
            // let a producer refill a stage in between (a refill of a stage whose wgmma is still
            // pending then lands first, a schedule difference).
            if (L->schedule == PA_EMU_SCHEDULE_DESCENDING) {
                t->deferred = true;
                yield_to_scheduler(t);
            }
        }
    }
}

void mbar_expect_tx(void *bar, uint32_t tx_bytes, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    MbarState *m = mbar_live(L, t, bar, "expect_tx", site);
    m->tx += tx_bytes;
    if (tx_bytes > kMaxCount || m->tx > kMaxCount) {
        fail_op(L, t, "expect_tx", site, "the tx-count of " + mbar_name(*m) + " exceeds 2^20 - 1");
    }
    L->sm90.epoch++;
}

bool mbar_try_wait(void *bar, uint32_t parity, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    if (parity > 1) fail_op(L, t, "try_wait.parity", site, "parity " + std::to_string(parity) + " is not 0 or 1");
    const uint32_t off = bar_offset(L, t, bar, "try_wait.parity", site);
    // Copies completing on this barrier that were held back land now that someone waits on it.
    const std::string landed = land_tmas(L, off);
    if (!landed.empty()) fail_thread(where(L, t) + ": " + landed);
    MbarState *m = mbar_live(L, t, bar, "try_wait.parity", site);
    WaitTrack *w = track_of(t, *m);
    const int64_t seen = w->resolved, cur = m->phase;
    const int64_t p = parity;
    if (seen >= -1 && (seen & 1) == p) {
        fail_op(L, t, "try_wait.parity", site,
                "waits with parity " + std::to_string(p) + " on " + mbar_name(*m) +
                    " after it saw phase " + std::to_string(seen) +
                    " (same parity) complete: parity " + std::to_string(p) + " now names phase " +
                    std::to_string(seen + 2) + ", two phases away from phase " +
                    std::to_string(seen + 1) +
                    " it needs (flip the parity after every completed phase)");
    }
    const int64_t want = ((seen + 1) & 1) == p ? seen + 1 : seen + 2;
    if (want < cur - 1) {
        fail_op(L, t, "try_wait.parity", site,
                "waits for phase " + std::to_string(want) + " (parity " + std::to_string(p) +
                    ") of " + mbar_name(*m) + ", which is already in phase " +
                    std::to_string(cur) + ": the thread fell " + std::to_string(cur - 1 - want) +
                    " phase(s) behind, and its parity names a phase two or more away (the ISA "
                    "requires the current or the immediately preceding phase)");
    }
    if (want <= cur - 1) {
        w->resolved = want;
        return true;
    }
    // want == cur: not complete yet. Sleep until the barrier completes a phase (or a stall).
    const uint32_t generation = m->generation;
    t->sm90.wait_offset = off;
    t->sm90.wait_phase = want;
    t->sm90.wait_parity = parity;
    t->site = site;
    m->waiters++;
    t->state = State::AtMbarrier;
    yield_to_scheduler(t);
    m = find_mbar(L, off);
    if (!m || !m->valid || m->generation != generation) {
        fail_op(L, t, "try_wait.parity", site,
                "the mbarrier at shared offset " + std::to_string(off) +
                    " was invalidated or re-initialized while the thread waited on it");
    }
    if (m->phase > want + 1) {
        fail_op(L, t, "try_wait.parity", site,
                "phases " + std::to_string(want) + " and " + std::to_string(want + 1) + " of " +
                    mbar_name(*m) + " both completed before the thread waiting for phase " +
                    std::to_string(want) +
                    " resumed: its parity now names the phase after, so a GPU may let it miss "
                    "its phase (the other side must not run two phases ahead)");
    }
    w = track_of(t, *m);
    if (m->phase > want) {
        w->resolved = want;
        return true;
    }
    return false;  // woken because nothing could progress: a timed-out try_wait
}

void mbar_inval(void *bar, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    MbarState *m = mbar_live(L, t, bar, "inval", site);
    if (in_use(*m)) {
        fail_op(L, t, "inval", site, "invalidates " + mbar_name(*m) + " while it is in use (" + use_state(*m) + ")");
    }
    m->valid = false;
    L->sm90.epoch++;
}

}  // namespace sm90
}  // namespace emu
}  // namespace pa
