// Where the sm90a forward's tiles and mbarriers are in shared memory (the layout is described in
// fwd_sm90_config.cuh), the position of a list entry in the K/V ring, and the wgmma descriptors of
// its operands (csrc/pa/sm90.cuh derives them).
#pragma once

#include "../pa/kernel.cuh"
#include "fwd_sm90_config.cuh"

namespace pa {
namespace attn {

template <class Cfg>
struct Sm90FwdSmem {
    unsigned char* base;  // 1024-byte aligned

    PA_DEVICE explicit Sm90FwdSmem(unsigned char* dyn) : base(sm90::smem_align_up<1024>(dyn)) {}

    PA_DEVICE unsigned char* q() const { return base + Cfg::kQOffset; }
    PA_DEVICE unsigned char* k(int stage) const { return base + Cfg::kKOffset + stage * Cfg::kKvBytes; }
    PA_DEVICE unsigned char* v(int stage) const { return base + Cfg::kVOffset + stage * Cfg::kKvBytes; }
    PA_DEVICE int32_t* vis(int stage) const {
        return reinterpret_cast<int32_t*>(base + Cfg::kVisOffset) + stage * Cfg::kBlockK;
    }

    PA_DEVICE sm90::Mbarrier* bar(int i) const {
        return reinterpret_cast<sm90::Mbarrier*>(base + Cfg::kBarOffset) + i;
    }
    // Q has landed (one arrival, the producer's, plus Q's bytes).
    PA_DEVICE sm90::Mbarrier* q_full() const { return bar(0); }
    // The stage's K tile and its vis_end have landed (32 arrivals: every producer lane stages
    // vis_end; plus K's bytes).
    PA_DEVICE sm90::Mbarrier* full_k(int stage) const { return bar(1 + stage); }
    // The stage's V tile has landed (one arrival plus V's bytes).
    PA_DEVICE sm90::Mbarrier* full_v(int stage) const { return bar(1 + Cfg::kStages + stage); }
    // Every consumer thread is done with the stage's K tile and vis_end (S computed and masked) /
    // with its V tile (P V computed): kConsumers * 128 arrivals each.
    PA_DEVICE sm90::Mbarrier* empty_k(int stage) const { return bar(1 + 2 * Cfg::kStages + stage); }
    PA_DEVICE sm90::Mbarrier* empty_v(int stage) const { return bar(1 + 3 * Cfg::kStages + stage); }

    // Run by one thread before the block splits into roles (then fence_mbarrier_init and a
    // barrier publish them).
    PA_DEVICE void init_barriers() const {
        q_full()->init(1);
        for (int s = 0; s < Cfg::kStages; ++s) {
            full_k(s)->init(32);
            full_v(s)->init(1);
            empty_k(s)->init(Cfg::kConsumers * 128);
            empty_v(s)->init(Cfg::kConsumers * 128);
        }
    }

    // S = Q K^T for consumer `wg` (its 64 query rows) against the stage's K tile: head_dim / 16
    // chained k-steps, both operands K-major in 128-byte swizzled panels. Step j reads columns
    // 16j..16j+15: panel j / 4, 32 bytes per step into each row (the swizzle is taken from the
    // address bits, so the offset composes with it).
    PA_DEVICE void issue_s(sm90::WgAcc<Cfg::kBlockK>& s, int wg, int stage) const {
        PA_UNROLL
        for (int j = 0; j < Cfg::kHeadDim / 16; ++j) {
            const uint64_t da = sm90::make_smem_desc(
                q() + (j / 4) * Cfg::kQPanelBytes + wg * 64 * 128 + (j % 4) * 32, sm90::Swizzle::B128, 16, 1024);
            const uint64_t db = sm90::make_smem_desc(k(stage) + (j / 4) * Cfg::kKvPanelBytes + (j % 4) * 32,
                                                     sm90::Swizzle::B128, 16, 1024);
            sm90::wgmma_ss<Cfg::kBlockK, typename Cfg::T, sm90::Major::K, sm90::Major::K>(s, da, db, j > 0);
        }
    }

    // O += P V with P from registers (one A fragment per 16 keys) and V as an MN-major B: step kb
    // reads keys 16kb..16kb+15, i.e. rows 16kb.. of every panel (LBO: from one panel of 64 head
    // columns to the next; SBO: 8 keys of 128 bytes).
    PA_DEVICE void issue_pv(sm90::WgAcc<Cfg::kHeadDim>& o, const sm90::WgFragA (&p)[Cfg::kBlockK / 16],
                            int stage) const {
        PA_UNROLL
        for (int kb = 0; kb < Cfg::kBlockK / 16; ++kb) {
            const uint64_t db =
                sm90::make_smem_desc(v(stage) + kb * 16 * 128, sm90::Swizzle::B128, Cfg::kKvPanelBytes, 1024);
            sm90::wgmma_rs<Cfg::kHeadDim, typename Cfg::T, sm90::Major::MN>(o, p[kb], db, true);
        }
    }
};

// Entry i of a CTA's list sits in ring stage i % kStages; the stage's barriers complete one phase
// per round i / kStages, so the consumers wait for parity round & 1 and the producer, refilling,
// for the release of the round before (parity (round & 1) ^ 1: round 0 passes, a fresh barrier
// counting as having completed phase -1).
struct RingSlot {
    int stage;
    uint32_t parity;
};

template <int kStages>
PA_DEVICE RingSlot ring_slot(int i) {
    return RingSlot{i % kStages, static_cast<uint32_t>((i / kStages) & 1)};
}

}  // namespace attn
}  // namespace pa
