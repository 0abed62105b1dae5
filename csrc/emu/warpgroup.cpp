// Warpgroup-wide instructions (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate
// Instructions": wgmma.fence, wgmma.mma_async, wgmma.commit_group, wgmma.wait_group; and
// "setmaxnreg"). All are .sync.aligned: the four warps of a warpgroup (warps 4k..4k+3) execute
// the same instruction. The emulator gathers all 128 threads at each one, like a collective, and
// checks: the warpgroup exists whole in the block, none of its threads exited, all reach the same
// instruction at the same call site with the same immediates (N, types, transposes, wait count,
// register count), and the wgmma operands that must be uniform (descriptors, scale-d) are.
//
// wgmma groups. A wgmma.mma_async joins the open group; commit_group closes it (an empty group if
// nothing is open); wait_group n completes every committed group but the newest n. A wgmma's
// accumulators and register A fragment belong to it until a wait_group completes its group:
// accessing them earlier is an error the emulator reports (RegTrack, checked at every element
// access of WgAcc / WgFragA). The fence rule: a wgmma.fence must come before the first wgmma and
// between any access of its registers by the thread and the wgmma; a wgmma issued without one is
// an error. Chaining wgmmas on the same accumulators needs no fence (the ISA orders them).
//
// When a wgmma reads its shared-memory operands: on a GPU, any time between its issue and the
// wait that completes it. Ascending computes it at the issue (copies land late under that
// schedule: a missing wait on the producer's mbarrier reads poison), descending at the wait that
// completes it (copies land early: a stage released to the producer before the wait is
// overwritten first), random by a seeded coin per wgmma. Results are written to the accumulators
// then, in issue order.
#include <string>

#include "sm90.h"

namespace pa {
namespace emu {

namespace {

const char *gather_name(WgGatherOp op) {
    switch (op) {
        case WgGatherOp::Fence: return "wgmma.fence";
        case WgGatherOp::Commit: return "wgmma.commit_group";
        case WgGatherOp::Wait: return "wgmma.wait_group";
        case WgGatherOp::SetMaxNRegInc: return "setmaxnreg.inc";
        case WgGatherOp::SetMaxNRegDec: return "setmaxnreg.dec";
        case WgGatherOp::Mma: return "wgmma.mma_async";
        default: return "nothing";
    }
}

std::string gather_str(WgGatherOp op, int arg) {
    std::string s = gather_name(op);
    if (op == WgGatherOp::Wait || op == WgGatherOp::SetMaxNRegInc || op == WgGatherOp::SetMaxNRegDec)
        s += " " + std::to_string(arg);
    if (op == WgGatherOp::Mma) {
        s += " m64n" + std::to_string(arg & 511) + "k16" + ((arg >> 9) & 1 ? ".f16" : ".bf16") +
             ((arg >> 10) & 1 ? " (A in registers)" : "") + " trans-a " + std::to_string((arg >> 11) & 1) +
             " trans-b " + std::to_string((arg >> 12) & 1);
    }
    return s;
}

WarpgroupState &wg_of(Launch *L, const Thread *t) { return L->sm90.wgs[t->view.warp / 4]; }

WarpgroupState *wg_arrive(Launch *L, Thread *t, WgGatherOp op, int arg, Site site) {
    check_no_pending_collective(L, t, gather_name(op), site);
    const uint32_t wgi = t->view.warp / 4;
    // Built only when a check fails: this runs for every thread of every warpgroup instruction.
    const auto what = [&] { return where(L, t) + ": " + gather_str(op, arg) + " at " + site_str(site); };
    if (L->nthreads < (wgi + 1) * 128) {
        fail_thread(what() + " in warpgroup " + std::to_string(wgi) + ", which has only " +
                    std::to_string(L->nthreads - wgi * 128) +
                    " threads: the four warps " + std::to_string(4 * wgi) + ".." +
                    std::to_string(4 * wgi + 3) +
                    " execute it together (make the block a multiple of 128 threads)");
    }
    WarpgroupState &wg = L->sm90.wgs[wgi];
    if (wg.arrived == 0) {
        for (uint32_t i = wgi * 128; i < wgi * 128 + 128; i++) {
            if ((*L->threads)[i].state == State::Done) {
                fail_thread(what() + " but thread " + std::to_string(i) + " (warp " +
                            std::to_string(i / 32) + ") of warpgroup " + std::to_string(wgi) +
                            " has exited: warps " + std::to_string(4 * wgi) + ".." +
                            std::to_string(4 * wgi + 3) +
                            " execute it together (is the warpgroup aligned to a warp index that "
                            "is a multiple of 4?)");
            }
        }
        wg.op = op;
        wg.arg = arg;
        wg.site = site;
        wg.first_thread = t->view.linear;
    } else if (wg.op != op || wg.arg != arg || !same_site(wg.site, site)) {
        fail_thread(what() + " while thread " + std::to_string(wg.first_thread) + " of warpgroup " +
                    std::to_string(wgi) + " waits at " + gather_str(wg.op, wg.arg) + " at " +
                    site_str(wg.site) +
                    ": divergent warpgroup instruction (.aligned: all 128 threads execute the same one)");
    }
    t->site = site;
    return &wg;
}

// Computes op after checking that the async proxy sees its shared-memory operands.
void compute_visible(Launch *L, const WgmmaOp &op) {
    const std::string e = check_async_visible(L, op);
    if (!e.empty()) {
        fail_thread(where(L, sm90_me()) + ": the wgmma.mma_async issued at " + site_str(op.site) +
                    " reads its operands now: " + e);
    }
    compute_wgmma(L, op);
}

void run_queued(Launch *L, WarpgroupState *wg, uint32_t below_group) {
    size_t kept = 0;
    for (size_t i = 0; i < wg->queue.size(); i++) {
        if (wg->queue[i].group < below_group) {
            compute_visible(L, wg->queue[i]);
        } else {
            if (kept != i) wg->queue[kept] = wg->queue[i];
            kept++;
        }
    }
    wg->queue.resize(kept);
}

// Issues the gathered wgmma (the last of the 128 threads runs this).
void issue_mma(Launch *L, Thread *t, WarpgroupState *wg) {
    const int arg = wg->arg;
    WgmmaOp op;
    op.n = arg & 511;
    op.dtype = (arg >> 9) & 1;
    op.a_regs = ((arg >> 10) & 1) != 0;
    const int trans_a = (arg >> 11) & 1, trans_b = (arg >> 12) & 1;
    op.site = wg->site;
    const uint32_t base = (t->view.warp / 4) * 128;
    const auto what = [&] {
        return "warpgroup " + std::to_string(t->view.warp / 4) + ": " + gather_str(WgGatherOp::Mma, arg) +
               " at " + site_str(wg->site) + ": ";
    };
    for (uint32_t i = 1; i < 128; i++) {
        const char *field = nullptr;
        if (!op.a_regs && wg->desc_a[i] != wg->desc_a[0]) field = "descriptor of A";
        else if (wg->desc_b[i] != wg->desc_b[0]) field = "descriptor of B";
        else if ((wg->scale_d[i] != 0) != (wg->scale_d[0] != 0)) field = "scale-d";
        if (field) {
            fail_thread(what() + "the " + field + " differs between thread " + std::to_string(base) +
                        " and thread " + std::to_string(base + i) +
                        ": it must be the same in the whole warpgroup");
        }
    }
    std::string err;
    if (!op.a_regs) err = decode_smem_desc(wg->desc_a[0], trans_a, "A", &op.a);
    if (err.empty()) err = decode_smem_desc(wg->desc_b[0], trans_b, "B", &op.b);
    op.scale_d = wg->scale_d[0] != 0;
    if (err.empty()) err = check_wgmma_operands(L, op);
    if (!err.empty()) fail_thread(what() + err);
    op.group = wg->committed;
    for (uint32_t i = 0; i < 128; i++) {
        op.d[i] = wg->d[i];
        for (int r = 0; r < 4; r++) op.a_frag[i][r] = wg->a_frag[i][r];
        sm90::RegTrack *d = static_cast<sm90::RegTrack *>(wg->d_track[i]);
        d->pending = op.group + 1;
        d->wgmma_site = op.site;
        if (op.a_regs) {
            sm90::RegTrack *a = static_cast<sm90::RegTrack *>(wg->a_track[i]);
            a->pending = op.group + 1;
            a->wgmma_site = op.site;
        }
    }
    wg->last_group = op.group;
    // Reads at the issue under ascending, at the completing wait under descending, by a coin
    // under random (earlier wgmmas first, so accumulator chains stay in order).
    const bool now = L->copy_timing == CopyTiming::AtWait ||
                     (L->copy_timing == CopyTiming::Coin && (next_random(&L->rng) & 1u));
    if (now) {
        run_queued(L, wg, UINT32_MAX);
        compute_visible(L, op);
    } else {
        wg->queue.push_back(op);
    }
}

// The calling thread is one of the 128; the last one performs the instruction.
void finish(Launch *L, Thread *t, WarpgroupState *wg) {
    t->state = State::AtWarpgroup;
    wg->arrived++;
    if (wg->arrived == 128) {
        switch (wg->op) {
            case WgGatherOp::Fence: wg->fences++; break;
            case WgGatherOp::Commit: wg->committed++; break;
            case WgGatherOp::Wait: {
                const uint32_t keep = static_cast<uint32_t>(wg->arg);
                const uint32_t limit = wg->committed > keep ? wg->committed - keep : 0;
                if (limit > wg->completed) wg->completed = limit;
                run_queued(L, wg, wg->completed);
                break;
            }
            case WgGatherOp::Mma: issue_mma(L, t, wg); break;
            default: break;  // setmaxnreg: register allocation is not modelled
        }
        const uint32_t first = (t->view.warp / 4) * 128;
        for (uint32_t i = first; i < first + 128; i++) (*L->threads)[i].state = State::Runnable;
        wg->arrived = 0;
        wg->op = WgGatherOp::None;
        L->sm90.epoch++;
    }
    yield_to_scheduler(t);
}

}  // namespace

namespace sm90 {

void reg_touch(RegTrack *r, const char *what) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    WarpgroupState &wg = wg_of(L, t);
    if (r->pending) {
        if (r->pending - 1 >= wg.completed) {
            fail_thread(where(L, t) + ": the " + what + " of the wgmma issued at " +
                        site_str(r->wgmma_site) + " is accessed before a wgmma.wait_group covers "
                        "that wgmma (its group " + std::to_string(r->pending - 1) + "; " +
                        std::to_string(wg.completed) + " groups completed): commit it, then wait");
        }
        r->pending = 0;
    }
    r->access_fence = wg.fences;
}

void reg_retire(RegTrack *r, const char *what) {
    if (!r->pending) return;
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    if (r->pending - 1 >= wg_of(L, t).completed) {
        fail_thread(where(L, t) + ": the " + what + " of the wgmma issued at " + site_str(r->wgmma_site) +
                    " goes out of scope before a wgmma.wait_group covers that wgmma");
    }
}

void warpgroup_op(WgOp op, int arg, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    WgGatherOp g = WgGatherOp::None;
    switch (op) {
        case WgOp::Fence: g = WgGatherOp::Fence; break;
        case WgOp::Commit: g = WgGatherOp::Commit; break;
        case WgOp::Wait: g = WgGatherOp::Wait; break;
        case WgOp::SetMaxNRegInc: g = WgGatherOp::SetMaxNRegInc; break;
        case WgOp::SetMaxNRegDec: g = WgGatherOp::SetMaxNRegDec; break;
    }
    if ((g == WgGatherOp::SetMaxNRegInc || g == WgGatherOp::SetMaxNRegDec) &&
        (arg < 24 || arg > 256 || arg % 8 != 0)) {
        fail_thread(where(L, t) + ": setmaxnreg " + std::to_string(arg) + " at " + site_str(site) +
                    ": the count must be a multiple of 8 in [24, 256]");
    }
    WarpgroupState *wg = wg_arrive(L, t, g, arg, site);
    finish(L, t, wg);
}

void wgmma(const WgmmaCall &c, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    const int arg = c.n | (c.dtype << 9) | (c.a_regs << 10) | (c.trans_a << 11) | (c.trans_b << 12);
    WarpgroupState *wg = wg_arrive(L, t, WgGatherOp::Mma, arg, site);
    // Built only when a check fails: this runs for every thread of every warpgroup instruction.
    const auto what = [&] { return where(L, t) + ": " + gather_str(WgGatherOp::Mma, arg) + " at " + site_str(site) + ": "; };
    if (wg->fences == 0) {
        fail_thread(what() + "no wgmma.fence was executed by this warpgroup before its first wgmma");
    }
    if (c.d_track->access_fence == wg->fences) {
        fail_thread(what() + "its accumulator was accessed after the last wgmma.fence: a wgmma.fence "
                           "must separate register accesses from the wgmma that uses the registers");
    }
    if (c.a_regs && c.a_track->access_fence == wg->fences) {
        fail_thread(what() + "its A fragment was written after the last wgmma.fence: a wgmma.fence "
                           "must separate register accesses from the wgmma that uses the registers");
    }
    const uint32_t i = t->view.linear % 128;
    wg->desc_a[i] = c.desc_a;
    wg->desc_b[i] = c.desc_b;
    wg->scale_d[i] = c.scale_d;
    for (int r = 0; r < 4; r++) wg->a_frag[i][r] = c.a_regs ? c.a[r] : 0;
    wg->d[i] = c.d;
    wg->d_track[i] = c.d_track;
    wg->a_track[i] = c.a_track;
    finish(L, t, wg);
}

}  // namespace sm90
}  // namespace emu
}  // namespace pa
