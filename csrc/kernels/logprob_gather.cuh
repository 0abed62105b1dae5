// pa_logprob_gather_{bf16,f16,f32} and pa_segment_sum_f32: per-token log-probs of the scored
// tokens of a batch (LogProbMap) straight from the model's logits, and their per-completion sums.
//
// Gather: ONE CTA PER MAP ENTRY. A row is a whole vocabulary (up to ~256k elements, 0.5 MiB in
// bf16) and is read exactly once, so the work per entry is large and purely bandwidth-bound:
// 256 threads stream it with coalesced loads (about 1k elements each at 256k). One warp per entry
// would leave 8k serial elements per lane and, when a batch has few scored tokens, too few warps
// to fill the GPU; a CTA per entry keeps every SM busy for any entry count (the grid is the entry
// count) and costs only one cross-warp step in shared memory at the end.
//
// Every thread keeps an online (max m, sum s of exp(x - m)) over its strided share of the row in
// fp32; the partial states are merged with a fixed butterfly (shfl_xor) in each warp, then by warp
// 0 over the warps' states. Each merge is symmetric (a + b on both sides of an exchange), so all
// lanes hold the same bits and the result does not depend on the order threads run in.
//
// Segment sum: one warp per completion, lanes strided over its entries, then a butterfly: again a
// fixed order, no float atomics, so sums are deterministic (bit-identical across schedules and
// runs).
#include "../pa/kernel.cuh"

// A named namespace, not an anonymous one: every kernel is compiled in one translation unit
// (csrc/kernels.cu), where file-local helpers of different kernels would collide.
namespace pa_logprob {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Threads per gather CTA (the registry reports it; Rust launches with it).
constexpr uint32_t kGatherThreads = 256;
constexpr uint32_t kGatherWarps = kGatherThreads / 32;
// Warps (segments) per segment-sum CTA.
constexpr uint32_t kSumWarps = 4;

PA_DEVICE float neg_inf() { return pa::u32_as_f32(0xff800000u); }

// Online log-sum-exp state: the row's values seen so far have max m and sum s of exp(x - m).
struct Lse {
    float m;
    float s;
};

// Adds one value. -inf (a masked vocabulary entry) adds nothing; NaN propagates through s.
PA_DEVICE void lse_add(Lse &a, float x) {
    if (x > a.m) {
        // Rescale the old sum to the new max; exp2(-inf) = 0 covers the empty state.
        a.s = a.s * pa::exp2_fast((a.m - x) * kLog2e) + 1.0f;
        a.m = x;
    } else if (x > neg_inf() || x != x) {
        a.s += pa::exp2_fast((x - a.m) * kLog2e);
    }
}

// Merges two states. Symmetric in its arguments bit for bit (max and + commute), so both lanes
// of a butterfly exchange compute the same state.
PA_DEVICE Lse lse_merge(Lse a, Lse b) {
    const float m = pa::max(a.m, b.m);
    if (!(m > neg_inf())) {
        // Both empty (or -inf max): nothing to rescale; keeps NaN out of (-inf) - (-inf).
        return Lse{m, a.s + b.s};
    }
    return Lse{m, a.s * pa::exp2_fast((a.m - m) * kLog2e) + b.s * pa::exp2_fast((b.m - m) * kLog2e)};
}

// Butterfly over the 32 lanes of a warp: every lane ends with the warp's state.
PA_DEVICE Lse lse_warp_reduce(Lse a) {
    PA_UNROLL
    for (int mask = 16; mask >= 1; mask >>= 1) {
        const float m = pa::shfl_xor(a.m, mask);
        const float s = pa::shfl_xor(a.s, mask);
        a = lse_merge(a, Lse{m, s});
    }
    return a;
}

template <typename T>
PA_DEVICE float load_float(const T *p) {
    return pa::to_float(*p);
}
template <>
PA_DEVICE float load_float<float>(const float *p) {
    return *p;
}

template <typename T>
PA_DEVICE void logprob_gather(const PaLogProbGatherParams &p) {
    const uint32_t e = pa::block_idx_x();
    const uint32_t tid = pa::thread_idx_x();
    const T *row = static_cast<const T *>(p.logits) + (int64_t)p.logit_rows[e] * p.row_stride;

    Lse state{neg_inf(), 0.0f};
    for (int32_t j = (int32_t)tid; j < p.vocab; j += (int32_t)kGatherThreads) {
        lse_add(state, load_float<T>(row + j));
    }
    state = lse_warp_reduce(state);

    // Cross-warp: each warp's state (identical in all its lanes) through shared memory, merged
    // by warp 0 in the same butterfly order.
    Lse *partial = pa::dyn_smem<Lse>();
    if (pa::lane_id() == 0) {
        partial[pa::warp_id()] = state;
    }
    pa::sync_threads();
    if (pa::warp_id() == 0) {
        const uint32_t lane = pa::lane_id();
        Lse mine = lane < kGatherWarps ? partial[lane] : Lse{neg_inf(), 0.0f};
        mine = lse_warp_reduce(mine);
        if (lane == 0) {
            const float target = load_float<T>(row + p.targets[e]);
            // log_softmax = (x_t - m) - ln(s): the difference first, exact when x_t is the max.
            p.per_token[e] = (target - mine.m) - pa::log2_fast(mine.s) * kLn2;
        }
    }
}

template <typename T>
struct Gather : pa::KernelSpec<PaLogProbGatherParams, kGatherThreads> {
    static constexpr const char *kFamily = "logprob_gather";
    static constexpr int kDtype = pa::DtypeCode<T>::value;
    // The warps' partial states, merged by warp 0.
    static constexpr int kSmemBytes = kGatherWarps * (int)sizeof(Lse);
    PA_DEVICE static void run(const PaLogProbGatherParams &p) { logprob_gather<T>(p); }
};

struct SegmentSum : pa::KernelSpec<PaSegmentSumParams, kSumWarps * 32> {
    static constexpr const char *kFamily = "segment_sum";
    PA_DEVICE static void run(const PaSegmentSumParams &p) {
        const uint32_t seg = pa::block_idx_x() * kSumWarps + pa::warp_id();
        // A whole warp leaves together (seg is uniform across its lanes): no partial collectives.
        if (seg >= (uint32_t)p.segments) {
            return;
        }
        const int32_t begin = p.offsets[seg];
        const int32_t end = p.offsets[seg + 1];
        float s = 0.0f;
        for (int32_t i = begin + (int32_t)pa::lane_id(); i < end; i += 32) {
            s += p.values[i];
        }
        PA_UNROLL
        for (int mask = 16; mask >= 1; mask >>= 1) {
            s += pa::shfl_xor(s, mask);
        }
        if (pa::lane_id() == 0) {
            p.sums[seg] = s;
        }
    }
};

}  // namespace pa_logprob
