// Sync points of the SIMT emulator, called from inside the fibers (emulated threads): the block
// barrier, arrival at warp collectives, and cp.async queueing. This is where the nets a GPU does
// not give are: every lane of a warp must reach the same collective call site, every thread of a
// CTA the same barrier, and addresses must lie in the right memory with the right alignment.
#include <string.h>

#include <string>

#include "runtime.h"

namespace pa {
namespace emu {

const char *op_name(Op op, int variant) {
    switch (op) {
        case Op::Shfl: return variant == static_cast<int>(ShflMode::Xor) ? "shfl_xor" : "shfl_idx";
        case Op::Ldmatrix: {
            static const char *names[] = {"ldmatrix_x?", "ldmatrix_x1", "ldmatrix_x2", "ldmatrix_x?",
                                          "ldmatrix_x4"};
            static const char *tnames[] = {"ldmatrix_x?_trans", "ldmatrix_x1_trans",
                                           "ldmatrix_x2_trans", "ldmatrix_x?_trans",
                                           "ldmatrix_x4_trans"};
            const int n = variant & 7;
            return (variant & 8) ? tnames[n <= 4 ? n : 0] : names[n <= 4 ? n : 0];
        }
        case Op::Mma:
            return variant == static_cast<int>(MmaKind::Bf16) ? "mma_m16n8k16_bf16"
                                                              : "mma_m16n8k16_f16";
        default: return "nothing";
    }
}

namespace {

Thread *me() { return tl_launch->current; }

// Registers the calling lane at a collective, after checking it is the one its warp is
// gathering at. Returns the warp whose staging area the lane fills before finish_arrival.
Warp *arrive(Op op, int variant, Site site) {
    Launch *L = tl_launch;
    Thread *t = me();
    Warp *w = &(*L->warps)[t->view.warp];
    if (w->lanes != 32) {
        fail_thread(where(L, t) + " calls " + op_name(op, variant) + " (" + site_str(site) +
                    ") in a warp of only " + std::to_string(w->lanes) +
                    " threads: full-mask collectives need 32 (make the block a multiple of 32)");
    }
    if (w->arrived == 0) {
        const uint32_t first = t->view.warp * 32;
        for (uint32_t i = 0; i < 32; i++) {
            const Thread &o = (*L->threads)[first + i];
            if (o.state == State::Done) {
                fail_thread(where(L, t) + " calls " + op_name(op, variant) + " (" +
                            site_str(site) + ") but lane " + std::to_string(i) +
                            " of its warp has exited: divergent collective");
            }
            if (o.state == State::AtBarrier || o.state == State::AtNamedBarrier ||
                o.state == State::AtWarpgroup) {
                const char *at = o.state == State::AtBarrier        ? "the barrier"
                                 : o.state == State::AtNamedBarrier ? "a named barrier"
                                                                    : "a warpgroup instruction";
                fail_thread(where(L, t) + " calls " + op_name(op, variant) + " (" +
                            site_str(site) + ") while lane " + std::to_string(i) +
                            " of its warp waits at " + at + " at " + site_str(o.site) +
                            ": divergent collective");
            }
        }
        w->op = op;
        w->variant = variant;
        w->site = site;
        w->first_lane = t->view.lane;
    } else if (w->op != op || w->variant != variant || !same_site(w->site, site)) {
        fail_thread(where(L, t) + " calls " + op_name(op, variant) + " at " + site_str(site) +
                    " while lane " + std::to_string(w->first_lane) + " of its warp waits at " +
                    op_name(w->op, w->variant) + " at " + site_str(w->site) +
                    ": divergent collective (all 32 lanes must reach the same call)");
    }
    t->site = site;
    return w;
}

// Waits until all 32 lanes arrived; the last one computes the collective for the warp.
void finish_arrival(Warp *w) {
    Launch *L = tl_launch;
    Thread *t = me();
    t->state = State::AtCollective;
    w->arrived++;
    if (w->arrived == 32) {
        std::string err = compute_collective(L, w);
        if (!err.empty()) fail_thread(err);
        const uint32_t first = t->view.warp * 32;
        for (uint32_t i = 0; i < 32; i++) (*L->threads)[first + i].state = State::Runnable;
        w->arrived = 0;
        L->collectives++;
    }
    yield_to_scheduler(t);
}

bool in_smem(const Launch *L, const void *p, size_t bytes) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    return c >= L->smem && bytes <= L->smem_bytes &&
           static_cast<size_t>(c - L->smem) <= L->smem_bytes - bytes;
}

}  // namespace

void barrier(Site site) {
    Launch *L = tl_launch;
    Thread *t = me();
    Warp &w = (*L->warps)[t->view.warp];
    if (w.arrived > 0) {
        fail_thread(where(L, t) + " reached the barrier at " + site_str(site) + " while " +
                    std::to_string(w.arrived) + " lanes of its warp wait at " +
                    op_name(w.op, w.variant) + " at " + site_str(w.site) +
                    ": divergent collective");
    }
    if (L->barrier_arrived == 0) {
        L->barrier_site = site;
        L->barrier_first = t->view.linear;
    } else if (!same_site(L->barrier_site, site)) {
        fail_thread(where(L, t) + " waits at the barrier at " + site_str(site) + " while thread " +
                    std::to_string(L->barrier_first) + " waits at the barrier at " +
                    site_str(L->barrier_site) +
                    ": barriers in divergent code (every thread must reach the same one)");
    }
    t->state = State::AtBarrier;
    t->site = site;
    L->barrier_arrived++;
    if (L->barrier_arrived + L->done == L->nthreads) {
        if (L->done > 0) {
            fail_thread(std::to_string(L->done) + " threads of CTA (" + std::to_string(L->cta[0]) +
                        "," + std::to_string(L->cta[1]) + "," + std::to_string(L->cta[2]) +
                        ") exited without reaching the barrier at " + site_str(site) +
                        " that the other threads wait at");
        }
        for (uint32_t i = 0; i < L->nthreads; i++) (*L->threads)[i].state = State::Runnable;
        L->barrier_arrived = 0;
        L->barriers++;
    }
    yield_to_scheduler(t);
}

uint32_t shfl(uint32_t v, int32_t b, ShflMode mode, Site site) {
    Warp *w = arrive(Op::Shfl, static_cast<int>(mode), site);
    const uint32_t lane = me()->view.lane;
    w->value[lane] = v;
    w->b[lane] = b;
    finish_arrival(w);
    return w->out[lane][0];
}

void ldmatrix(uint32_t *regs, int count, bool trans, const void *row_addr, Site site) {
    Warp *w = arrive(Op::Ldmatrix, count | (trans ? 8 : 0), site);
    const uint32_t lane = me()->view.lane;
    w->addr[lane] = static_cast<const unsigned char *>(row_addr);
    finish_arrival(w);
    for (int i = 0; i < count; i++) regs[i] = w->out[lane][i];
}

void mma(MmaKind kind, float *d, const uint32_t *a, const uint32_t *b, const float *c, Site site) {
    Warp *w = arrive(Op::Mma, static_cast<int>(kind), site);
    const uint32_t lane = me()->view.lane;
    memcpy(w->a_frag[lane], a, sizeof w->a_frag[lane]);
    memcpy(w->b_frag[lane], b, sizeof w->b_frag[lane]);
    memcpy(w->c_frag[lane], c, sizeof w->c_frag[lane]);  // before d is written: d may alias c
    finish_arrival(w);
    memcpy(d, w->d_frag[lane], sizeof w->d_frag[lane]);
}

void cp_async(void *smem_dst, const void *gmem_src, bool valid, uint32_t bytes, Site site) {
    Launch *L = tl_launch;
    Thread *t = me();
    const uintptr_t dst = reinterpret_cast<uintptr_t>(smem_dst);
    const uintptr_t src = reinterpret_cast<uintptr_t>(gmem_src);
    // Built only when a check fails: this runs for every cp.async of every thread.
    const auto what = [bytes] { return "cp_async_" + std::to_string(bytes); };
    if (!in_smem(L, smem_dst, bytes) || dst % bytes != 0) {
        fail_thread(where(L, t) + ": " + what() + " at " + site_str(site) + " targets an address that is not a " +
                    std::to_string(bytes) + "-byte aligned slot inside the CTA's " +
                    std::to_string(L->smem_bytes) + " bytes of dynamic shared memory (offset " +
                    std::to_string(static_cast<long long>(dst - reinterpret_cast<uintptr_t>(L->smem))) + ")");
    }
    if (valid && (src % bytes != 0 || src == 0)) {
        fail_thread(where(L, t) + ": " + what() + " at " + site_str(site) +
                    " reads from a global address that is not " + std::to_string(bytes) + "-byte aligned");
    }
    if (valid && in_smem(L, gmem_src, 1)) {
        fail_thread(where(L, t) + ": " + what() + " at " + site_str(site) +
                    " reads from shared memory; its source must be global memory");
    }
    const PendingCopy copy{static_cast<unsigned char *>(smem_dst),
                           static_cast<const unsigned char *>(gmem_src), t->committed_groups, bytes, valid};
    const bool now = L->copy_timing == CopyTiming::AtIssue ||
                     (L->copy_timing == CopyTiming::Coin && (next_random(&L->rng) & 1u));
    if (now)
        perform_copy(copy);
    else
        t->copies.push_back(copy);
}

void cp_async_commit() { me()->committed_groups++; }

void cp_async_wait(int n, Site) {
    Thread *t = me();
    const uint32_t keep = static_cast<uint32_t>(n);
    const uint32_t limit = t->committed_groups > keep ? t->committed_groups - keep : 0;
    complete_copies(t, limit);
}

void perform_copy(const PendingCopy &c) {
    if (c.valid)
        memcpy(c.dst, c.src, c.bytes);
    else
        memset(c.dst, 0, c.bytes);
}

void complete_copies(Thread *t, uint32_t limit) {
    size_t kept = 0;
    for (size_t i = 0; i < t->copies.size(); i++) {
        const PendingCopy &c = t->copies[i];
        if (c.group < limit) {
            perform_copy(c);
        } else {
            t->copies[kept++] = c;
        }
    }
    t->copies.resize(kept);
}

}  // namespace emu
}  // namespace pa
