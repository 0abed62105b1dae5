// The cp.async ring of the sm80 attention kernels (forward, dQ, dK/dV), written once: a walk of
// `steps` steps streams each step's tiles through kStages shared-memory stages, kStages - 1 steps
// ahead, one commit group per step.
//
//   ring.prologue(steps, load);               // steps 0 .. kStages - 2 (what the caller issued
//                                             // before rides with the first group)
//   for (int i = 0; i < steps; ++i) {
//       ring.wait_and_refill(i, steps, load);  // step i landed; step i + kStages - 1 issued
//       ... compute step i from stage ring.stage ...
//       ring.advance();
//   }
//   ring.drain();                             // every copy landed, every warp past its reads
//
// `load(i, s)` issues step i's copies into stage s; it is called for i = 0, 1, .. in order, each
// at most once. At step i a thread waits until at most kStages - 2 groups are in flight (step i
// has landed), then one barrier both publishes every thread's copies of step i and proves every
// warp done with step i - 1, whose stage the copies of step i + kStages - 1 overwrite right after.
// One barrier per step: a second one (to wait for two operands separately) would buy little with
// the next step already a whole iteration in flight, and would cost the slack between warps that
// hides latency.
#pragma once

#include "../pa/kernel.cuh"

namespace pa {
namespace attn {

template <int kStages>
struct CpAsyncRing {
    static_assert(kStages >= 2, "at least double-buffered");
    int stage = 0;  // the stage the current step's tiles are in

    template <class Load>
    PA_DEVICE void prologue(int steps, Load& load) const {
        PA_UNROLL
        for (int s = 0; s < kStages - 1; ++s) {
            if (s < steps) load(s, s);
            cp_async_commit();
        }
    }

    template <class Load>
    PA_DEVICE void wait_and_refill(int i, int steps, Load& load) const {
        cp_async_wait<kStages - 2>();
        sync_threads();
        const int ahead = i + kStages - 1;
        if (ahead < steps) load(ahead, stage == 0 ? kStages - 1 : stage - 1);
        cp_async_commit();
    }

    PA_DEVICE void advance() { stage = stage + 1 == kStages ? 0 : stage + 1; }

    // Every copy has landed and every warp is past its last read of any stage: the stages may be
    // reused (to stage the outputs).
    PA_DEVICE static void drain() {
        cp_async_wait<0>();
        sync_threads();
    }
};

}  // namespace attn
}  // namespace pa
