// The grid runner of the SIMT emulator.
//
// A launch runs its CTAs one after another (in the schedule's order). A CTA's threads are fibers
// on reusable stacks; a thread runs until its next sync point (block barrier, warp collective) or
// its exit, so work between two sync points is atomic and its interleaving is the schedule's:
//
// - ascending and random: in rounds; in each round every runnable thread (in ascending order, or
//   a fresh seeded shuffle per round) runs to its next sync point. The warps of a CTA thus move
//   in lockstep from collective to collective.
// - descending: warp by warp (last warp first, last lane first); a warp runs until none of its
//   threads can (all at a barrier or exited) before the next warp starts, i.e. each warp runs as
//   far ahead of the others as a GPU may let it. This exposes a write into shared memory that
//   another warp still reads in an earlier phase, which lockstep rounds hide.
//
// cp.async copies land at their wait_group (ascending), at their issue (descending) or either,
// by a seeded coin per copy (random); see CopyTiming. A kernel whose output differs between
// schedules has a race. Sync points and their checks are in sync.cpp.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <vector>

#include "runtime.h"

namespace pa {
namespace emu {

__thread const ThreadView *tl_view = nullptr;
__thread Launch *tl_launch = nullptr;

namespace {

constexpr size_t kDefaultStack = 256 * 1024;
constexpr uint32_t kMaxThreads = 1024;
constexpr uint32_t kMaxSmem = 232448;  // 227 KiB: the largest opt-in dynamic smem (sm_90)
constexpr size_t kSmemGuard = 256;     // guard bytes on each side of the CTA's shared memory
constexpr size_t kSmemAlign = 128;

// Threads (with their stacks) and warps of this OS thread, reused across launches.
struct Pool {
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    size_t stack_size = 0;
    ~Pool() {
        for (Thread &t : threads) stack_free(&t.stack);
    }
};
thread_local Pool tl_pool;

unsigned char guard_byte(size_t i) { return static_cast<unsigned char>(0xc3 ^ (i * 7)); }

// Uninitialised shared memory reads differently under each schedule, so a kernel that reads
// smem it never wrote shows up as a schedule difference. 0xff: NaN in f32/bf16/f16.
unsigned char poison_byte(uint32_t schedule, uint64_t *rng) {
    switch (schedule) {
        case PA_EMU_SCHEDULE_ASCENDING: return 0xff;
        case PA_EMU_SCHEDULE_DESCENDING: return 0x7f;
        default: return static_cast<unsigned char>(next_random(rng) | 1);
    }
}

void fiber_main(void *arg) {
    Thread *t = static_cast<Thread *>(arg);
    Launch *L = tl_launch;
    L->entry(L->params);
    // Copies never waited for still land (the GPU completes them too).
    complete_copies(t, UINT32_MAX);
    t->state = State::Done;
    L->done++;
    Warp &w = (*L->warps)[t->view.warp];
    if (w.arrived > 0) {
        record_error(L, where(L, t) + " exited while " + std::to_string(w.arrived) +
                            " lanes of its warp wait at " + op_name(w.op, w.variant) + " (" +
                            site_str(w.site) + "): divergent collective");
    } else if (L->barrier_arrived > 0 && L->barrier_arrived + L->done == L->nthreads) {
        record_error(L, where(L, t) + " exited while " + std::to_string(L->barrier_arrived) +
                            " threads wait at the barrier at " + site_str(L->barrier_site) +
                            ": every thread of the CTA must reach it");
    }
    sm90_thread_exit(L, t);
    fiber_switch(&t->ctx, &L->scheduler);
    abort();  // a finished fiber is never resumed
}

void fill_order(Launch *L, std::vector<uint32_t> *order, uint32_t n) {
    order->resize(n);
    for (uint32_t i = 0; i < n; i++) (*order)[i] = i;
    if (L->schedule == PA_EMU_SCHEDULE_DESCENDING) {
        std::reverse(order->begin(), order->end());
    } else if (L->schedule == PA_EMU_SCHEDULE_RANDOM) {
        for (uint32_t i = n; i > 1; i--) {
            uint32_t j = static_cast<uint32_t>(next_random(&L->rng) % i);
            std::swap((*order)[i - 1], (*order)[j]);
        }
    }
}

std::string describe_stuck(const Launch *L) {
    std::string s = "no thread can make progress:";
    int shown = 0;
    for (const Thread &t : *L->threads) {
        if (t.state == State::Done || shown >= 8) continue;
        std::string what = sm90_describe(L, &t);
        if (what.empty())
            what = (t.state == State::AtBarrier ? " at barrier " : " at collective ") + site_str(t.site);
        s += " thread " + std::to_string(t.view.linear) + what + ";";
        shown++;
    }
    return s;
}

bool check_stack(Launch *L, Thread *t);

// Runs thread t from where it stopped to its next sync point (or its exit).
void run_thread(Launch *L, Thread *t) {
    L->current = t;
    tl_view = &t->view;
    L->switches++;
    fiber_switch(&L->scheduler, &t->ctx);
    L->current = nullptr;
    // The stack canary is checked when the thread exits (and, for a launch that gets stuck, of
    // every thread: check_stacks), not after every switch: reading it there cost a cache and TLB
    // miss per switch, a fifth of the emulated suites' time. An overflow that stops short of the
    // guard page below the stack stays written in the canary until then; one that goes further
    // faults at once, as before.
    if (t->state == State::Done) check_stack(L, t);
}

// Records a stack overflow of thread t if its canary is damaged; returns whether it was.
bool check_stack(Launch *L, Thread *t) {
    if (stack_canary_intact(t->stack)) return false;
    record_error(L, where(L, t) + " overflowed its " + std::to_string(t->stack.size) +
                        "-byte stack (raise PaEmuLaunch::stack_bytes)");
    return true;
}

// check_stack of every thread of the CTA, up to the first overflow.
bool check_stacks(Launch *L) {
    for (Thread &t : *L->threads) {
        if (check_stack(L, &t)) return true;
    }
    return false;
}

void run_cta(Launch *L, std::vector<uint32_t> *order) {
    std::vector<Thread> &threads = *L->threads;
    std::vector<Warp> &warps = *L->warps;
    const unsigned char poison = poison_byte(L->schedule, &L->rng);
    memset(L->smem, poison, L->smem_bytes);
    for (size_t i = 0; i < kSmemGuard; i++) {
        L->smem[-static_cast<ptrdiff_t>(kSmemGuard) + static_cast<ptrdiff_t>(i)] = guard_byte(i);
        L->smem[L->smem_bytes + i] = guard_byte(i);
    }
    for (Warp &w : warps) {
        w.arrived = 0;
        w.op = Op::None;
    }
    for (uint32_t i = 0; i < L->nthreads; i++) {
        Thread &t = threads[i];
        ThreadView &v = t.view;
        v.linear = i;
        v.tid[0] = i % L->block[0];
        v.tid[1] = (i / L->block[0]) % L->block[1];
        v.tid[2] = i / (L->block[0] * L->block[1]);
        v.lane = i % 32;
        v.warp = i / 32;
        for (int d = 0; d < 3; d++) {
            v.bid[d] = L->cta[d];
            v.bdim[d] = L->block[d];
            v.gdim[d] = L->grid[d];
        }
        v.smem = L->smem;
        t.state = State::Runnable;
        t.site = Site{nullptr, 0};
        t.copies.clear();
        t.committed_groups = 0;
        stack_arm_canary(t.stack);
        fiber_prepare(&t.ctx, t.stack.base, t.stack.size, &fiber_main, &t);
    }
    L->barrier_arrived = 0;
    L->done = 0;
    sm90_cta_begin(L);

    const bool warp_by_warp = L->schedule == PA_EMU_SCHEDULE_DESCENDING;
    const uint32_t nwarps = (L->nthreads + 31) / 32;
    while (L->done < L->nthreads && !L->failed) {
        bool progressed = false;
        if (warp_by_warp) {
            for (uint32_t i = 0; i < L->nthreads; i++) threads[i].deferred = false;
            for (uint32_t w = nwarps; w-- > 0 && !L->failed;) {
                const uint32_t first = w * 32;
                const uint32_t end = std::min(first + 32, L->nthreads);
                bool ran = true;
                while (ran && !L->failed) {
                    ran = false;
                    for (uint32_t idx = end; idx-- > first;) {
                        if (threads[idx].state != State::Runnable || threads[idx].deferred) continue;
                        ran = progressed = true;
                        run_thread(L, &threads[idx]);
                        if (L->failed) break;
                    }
                }
            }
        } else {
            fill_order(L, order, L->nthreads);
            for (uint32_t idx : *order) {
                if (threads[idx].state != State::Runnable) continue;
                progressed = true;
                run_thread(L, &threads[idx]);
                if (L->failed) break;
            }
        }
        if (!progressed && !L->failed && !sm90_unstick(L) && !check_stacks(L))
            record_error(L, describe_stuck(L));
    }
    if (!L->failed) sm90_cta_end(L);
    if (L->failed) return;
    for (size_t i = 0; i < kSmemGuard; i++) {
        if (L->smem[-static_cast<ptrdiff_t>(kSmemGuard) + static_cast<ptrdiff_t>(i)] != guard_byte(i)) {
            record_error(L, "CTA (" + std::to_string(L->cta[0]) + "," + std::to_string(L->cta[1]) +
                                "," + std::to_string(L->cta[2]) + ") wrote " +
                                std::to_string(kSmemGuard - i) +
                                " bytes before the start of its dynamic shared memory");
            return;
        }
    }
    for (size_t i = kSmemGuard; i-- > 0;) {
        if (L->smem[L->smem_bytes + i] != guard_byte(i)) {
            record_error(L, "CTA (" + std::to_string(L->cta[0]) + "," + std::to_string(L->cta[1]) +
                                "," + std::to_string(L->cta[2]) + ") wrote at byte " +
                                std::to_string(L->smem_bytes + i) + " of its " +
                                std::to_string(L->smem_bytes) +
                                "-byte dynamic shared memory (past the end)");
            return;
        }
    }
}

int launch_error(PaEmuReport *report, const std::string &msg) {
    snprintf(report->detail, sizeof report->detail, "%s", msg.c_str());
    return PA_EMU_LAUNCH_ERROR;
}

}  // namespace

uint64_t next_random(uint64_t *state) {
    // splitmix64: a full-period, well-mixed sequence from any seed.
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void record_error(Launch *L, const std::string &msg) {
    if (!L->failed) {
        L->failed = true;
        L->error = msg;
    }
}

std::string site_str(Site s) {
    if (!s.file) return "?";
    const char *base = strrchr(s.file, '/');
    return std::string(base ? base + 1 : s.file) + ":" + std::to_string(s.line);
}

bool same_site(Site x, Site y) {
    return x.line == y.line && (x.file == y.file || (x.file && y.file && strcmp(x.file, y.file) == 0));
}

std::string where(const Launch *L, const Thread *t) {
    const ThreadView &v = t->view;
    return "CTA (" + std::to_string(L->cta[0]) + "," + std::to_string(L->cta[1]) + "," +
           std::to_string(L->cta[2]) + ") thread " + std::to_string(v.linear) + " (warp " +
           std::to_string(v.warp) + " lane " + std::to_string(v.lane) + ")";
}

void yield_to_scheduler(Thread *t) { fiber_switch(&t->ctx, &tl_launch->scheduler); }

void fail_thread(const std::string &msg) {
    Launch *L = tl_launch;
    Thread *t = L->current;
    record_error(L, msg);
    t->state = State::Failed;
    fiber_switch(&t->ctx, &L->scheduler);
    abort();  // a failed fiber is never resumed
}

}  // namespace emu

void trap_thread() {
    emu::Launch *L = emu::tl_launch;
    emu::fail_thread(emu::where(L, L->current) +
                     " trapped: this kernel has no code for the path it was launched on");
}

namespace emu {

int run_grid(const char *kernel, const PaEmuLaunch *launch, const void *params,
             void (*entry)(const void *), uint32_t max_threads, PaEmuReport *report) {
    if (!report) return PA_EMU_LAUNCH_ERROR;
    memset(report, 0, sizeof *report);
    if (!launch || !params) return launch_error(report, "null launch or params pointer");
    if (tl_launch) return launch_error(report, "an emulated launch is already running on this thread");
    for (int d = 0; d < 3; d++) {
        if (launch->grid[d] == 0 || launch->block[d] == 0)
            return launch_error(report, "grid and block dimensions must be positive");
    }
    if (launch->grid[1] > 65535 || launch->grid[2] > 65535 || launch->grid[0] > 0x7fffffffu)
        return launch_error(report, "grid exceeds the CUDA limits (2^31-1, 65535, 65535)");
    const uint64_t nthreads64 =
        static_cast<uint64_t>(launch->block[0]) * launch->block[1] * launch->block[2];
    if (nthreads64 > kMaxThreads || launch->block[2] > 64)
        return launch_error(report, "block of " + std::to_string(nthreads64) +
                                        " threads exceeds CUDA's 1024 (or block.z > 64)");
    if (max_threads && nthreads64 > max_threads)
        return launch_error(report, "block of " + std::to_string(nthreads64) +
                                        " threads exceeds the kernel's launch bounds (" +
                                        std::to_string(max_threads) + ")");
    if (launch->smem_bytes > kMaxSmem)
        return launch_error(report, std::to_string(launch->smem_bytes) +
                                        " bytes of dynamic shared memory exceed the 227 KiB limit");
    if (launch->schedule > PA_EMU_SCHEDULE_RANDOM)
        return launch_error(report, "unknown schedule " + std::to_string(launch->schedule));
    if (launch->approx > PA_EMU_APPROX_WORST_DOWN)
        return launch_error(report, "unknown approx mode " + std::to_string(launch->approx));

    const uint32_t nthreads = static_cast<uint32_t>(nthreads64);
    size_t stack = launch->stack_bytes ? launch->stack_bytes : kDefaultStack;
    if (stack < 16 * 1024) stack = 16 * 1024;

    Pool &pool = tl_pool;
    if (pool.stack_size != stack) {
        for (Thread &t : pool.threads) stack_free(&t.stack);
        pool.threads.clear();
        pool.stack_size = stack;
    }
    if (pool.threads.size() < nthreads) {
        size_t old = pool.threads.size();
        // Threads own their stacks: move them out before the vector reallocates.
        std::vector<Thread> grown(nthreads);
        for (size_t i = 0; i < old; i++) {
            grown[i].stack = pool.threads[i].stack;
            grown[i].copies.swap(pool.threads[i].copies);
        }
        pool.threads.swap(grown);
        for (size_t i = old; i < nthreads; i++) {
            if (!stack_alloc(&pool.threads[i].stack, stack)) {
                pool.threads.resize(i);
                return launch_error(report, "could not map a fiber stack");
            }
            pool.threads[i].copies.reserve(64);
        }
    }
    const uint32_t nwarps = (nthreads + 31) / 32;
    if (pool.warps.size() < nwarps) pool.warps.resize(nwarps);
    for (uint32_t w = 0; w < nwarps; w++)
        pool.warps[w].lanes = std::min<uint32_t>(32, nthreads - w * 32);

    // Shared memory with guard bytes on both sides, 128-byte aligned.
    const size_t smem_total = kSmemGuard + launch->smem_bytes + kSmemGuard;
    unsigned char *smem_alloc = static_cast<unsigned char *>(
        aligned_alloc(kSmemAlign, (smem_total + kSmemAlign - 1) / kSmemAlign * kSmemAlign));
    if (!smem_alloc) return launch_error(report, "could not allocate shared memory");

    Launch L;
    L.kernel = kernel;
    L.params = params;
    L.entry = entry;
    L.schedule = launch->schedule;
    L.rng = launch->seed ^ 0x5ca1ab1e0ddba11ull;
    L.approx = launch->approx;
    L.approx_seed = launch->approx_seed;
    L.copy_timing = launch->schedule == PA_EMU_SCHEDULE_ASCENDING    ? CopyTiming::AtWait
                    : launch->schedule == PA_EMU_SCHEDULE_DESCENDING ? CopyTiming::AtIssue
                                                                     : CopyTiming::Coin;
    for (int d = 0; d < 3; d++) {
        L.block[d] = launch->block[d];
        L.grid[d] = launch->grid[d];
    }
    L.nthreads = nthreads;
    L.threads = &pool.threads;
    L.warps = &pool.warps;
    L.smem = smem_alloc + kSmemGuard;
    L.smem_bytes = launch->smem_bytes;

    tl_launch = &L;
    const uint64_t nctas = static_cast<uint64_t>(L.grid[0]) * L.grid[1] * L.grid[2];
    std::vector<uint32_t> order;
    std::vector<uint32_t> cta_order;
    if (nctas <= 0xffffffffull) {
        fill_order(&L, &cta_order, static_cast<uint32_t>(nctas));
    }
    for (uint64_t i = 0; i < nctas && !L.failed; i++) {
        const uint64_t c = cta_order.empty() ? i : cta_order[i];
        L.cta[0] = static_cast<uint32_t>(c % L.grid[0]);
        L.cta[1] = static_cast<uint32_t>((c / L.grid[0]) % L.grid[1]);
        L.cta[2] = static_cast<uint32_t>(c / (static_cast<uint64_t>(L.grid[0]) * L.grid[1]));
        run_cta(&L, &order);
        report->ctas++;
    }
    tl_launch = nullptr;
    tl_view = nullptr;
    free(smem_alloc);

    report->barriers = L.barriers;
    report->collectives = L.collectives;
    report->fiber_switches = L.switches;
    if (L.failed) {
        snprintf(report->detail, sizeof report->detail, "%s", L.error.c_str());
        return PA_EMU_KERNEL_ERROR;
    }
    return PA_EMU_OK;
}

}  // namespace emu
}  // namespace pa
