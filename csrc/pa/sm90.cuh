// pa::sm90: the Hopper vocabulary for kernel authors, identical on both paths (built on
// device_sm90.cuh / host_sm90.cuh). Everything here needs compute capability 9.0 on the device
// (wgmma and setmaxnreg: the sm_90a SASS); on older cards the primitives trap.
//
// ============================== shared memory for TMA + wgmma ===============================
// Addresses. Swizzles act on bits of the *shared-window address* (pa::sm90::smem_addr), not on a
// pointer's offset from the buffer. CUDA promises only 128-byte alignment of dynamic shared
// memory, and the emulator places it at 128 mod 1024 under one schedule, so align swizzled tiles
// at run time: ask for 1 KiB more and use smem_align_up<1024>(pa::dyn_smem<unsigned char>()).
//
// Swizzle modes (PTX ISA, "Tensor ... Swizzling Modes"; the same XOR for TMA and wgmma). Within
// each aligned repeat, address bits [4, 4+b) (the 16-byte chunk index) are XORed with bits
// [7, 7+b) (the 128-byte line index):
//   Swizzle::B128: b = 3, rows of 128 bytes, pattern repeats every 1024 bytes (8 rows)
//   Swizzle::B64:  b = 2, rows of  64 bytes, repeats every 512 bytes
//   Swizzle::B32:  b = 1, rows of  32 bytes, repeats every 256 bytes
//   Swizzle::None: no XOR
// A swizzled tile must start at a multiple of its repeat (TMA destinations are checked for it by
// the emulator; wgmma descriptors here always carry base offset 0, which assumes it).
//
// TMA box in shared memory. cp.async.bulk.tensor writes the box densely, dimension 0 fastest:
// element (i0, i1, ...) at byte (((i4*b3 + i3)*b2 + i2)*b1 + i1) * (b0*elem) + i0*elem, then
// applies the swizzle of its tensor map. For a 2-D box of R rows of 64 bf16 (128 bytes) with
// SWIZZLE_128B: row r sits at tile + 128*r with its 16-byte chunk c moved to chunk c ^ (r % 8).
// Out-of-bounds elements (negative coordinates or past the tensor's extent) are written as zeros
// and still count in the transaction bytes: every load completes exactly box_bytes on the mbarrier
// (= prod(box) * elem). The emulator supports swizzled boxes whose inner extent is exactly the
// swizzle row (128/64/32 bytes) and unswizzled boxes whose inner extent is a multiple of 16.
//
// wgmma operands in shared memory (PTX ISA, "Shared Memory Matrix Layout", "Strides", "Matrix
// Descriptor Format"). A is M x K (M = 64), B is N x K, K = 16 per instruction, 16-bit elements.
// make_smem_desc(start, swizzle, lbo, sbo) describes where element (r, k) of the operand lives
// (r = row in M or N); W = swizzle row bytes (16 for None), and the address is then swizzled:
//   K-major (imm-trans 0: the 16 k of a row are contiguous; Q and K of attention):
//     None:     start + (r/8)*SBO + (k/8)*LBO + (r%8)*16 + (k%8)*2     (8x16-byte core matrices)
//     swizzled: start + (r/8)*SBO + (r%8)*W + k*2       (LBO unused: the ISA assumes 1; pass 16)
//   MN-major (imm-trans 1: rows r contiguous for a fixed k; V of attention as the B of P*V):
//     None:     start + (r/8)*SBO + (k/8)*LBO + (k%8)*16 + (r%8)*2
//     swizzled: start + (r/(W/2))*LBO + (k/8)*SBO + (k%8)*W + (r%(W/2))*2
// So, with one TMA box of R rows x 64 16-bit elements (128 bytes, SWIZZLE_128B) per 64 columns:
//   Q (64 x d, A, K-major), K tile (n x d, B, K-major): k-step j (columns 16j..16j+15) uses
//     make_smem_desc(tile + (j/4)*box_bytes + (j%4)*32, Swizzle::B128, 16, 1024)
//     (SBO = 8 rows x 128 B; the 32-byte step inside a row works because the swizzle is taken
//     from the address bits).
//   V tile (n_keys x d, B = V of O += P V, N = d, K = keys, MN-major): k-step j (keys 16j..)
//     make_smem_desc(tile + j*16*128, Swizzle::B128, box_bytes, 1024)
//     (LBO = from d columns 0..63 to 64..127, i.e. the next box; SBO = 8 keys x 128 B).
//
// wgmma register fragments (PTX ISA, "Register Fragments" of wgmma .m64nNk16). Thread t of the
// warpgroup (t = thread_linear() % 128, warp w = t / 32, g = (t % 32) / 4, q = t % 4):
//   accumulator register i (0 <= i < N/2): row 16w + g + 8*((i/2) % 2), column 8*(i/4) + 2q + i%2
//   A fragment register r (0..3, two 16-bit elements, the lower column in the low half):
//     row 16w + g + 8*(r % 2), columns 2q + 8*(r/2) and +1
// so an accumulator's columns 16kb..16kb+15 are exactly an A fragment (frag_a_from_acc): S = QK^T
// feeds P V without shared memory.
//
// ================================== the asynchronous rules ==================================
// mbarrier (PTX ISA, "mbarrier"): init(count) once by one thread, then fence_mbarrier_init() and
// a barrier before anyone else uses it. A phase completes when `count` arrivals happened and the
// transaction count is back to 0; wait(parity) returns once the phase with that parity completed
// (phase k has parity k % 2; a fresh barrier counts as having completed phase -1, parity 1).
// Flip the parity after each completed phase. The producer of a TMA stage calls
// arrive_expect_tx(box_bytes) (or expect_tx + arrive) and issues the loads; consumers wait.
// Named barriers: named_barrier_sync / _arrive(id, threads) with ids 1..15 (0 is
// sync_threads'), counts a multiple of 32, whole warps; e.g. two consumer warpgroups taking turns.
// wgmma: wgmma_fence() before the first wgmma and after any access to its accumulators or
// A fragment; issue; wgmma_commit(); wgmma_wait<n>() before touching the accumulators or
// A fragments again. Shared memory written by ordinary stores and read by wgmma (or written by
// TMA and read by ordinary loads in the other direction) needs fence_proxy_async_smem() in the
// writing threads before the barrier that publishes it.
#pragma once

#include <stdint.h>

#include "../pa_tma.h"

namespace pa {
namespace sm90 {

// ---- swizzle ----
// Descriptor encoding of the swizzle (bits 62-63 of a matrix descriptor).
enum class Swizzle : uint32_t { None = 0, B128 = 1, B64 = 2, B32 = 3 };
// Operand major-ness, as the imm-trans operands of wgmma encode it.
enum class Major : int { K = 0, MN = 1 };

PA_DEVICE constexpr uint32_t swizzle_row_bytes(Swizzle s) {
    return s == Swizzle::B128 ? 128u : s == Swizzle::B64 ? 64u : s == Swizzle::B32 ? 32u : 16u;
}
// Alignment a swizzled tile needs (its pattern repeat); 128 (TMA's minimum) without swizzle.
PA_DEVICE constexpr uint32_t swizzle_repeat_bytes(Swizzle s) {
    return s == Swizzle::B128 ? 1024u : s == Swizzle::B64 ? 512u : s == Swizzle::B32 ? 256u : 128u;
}
// Where the byte at shared address `addr` of an unswizzled layout goes.
PA_DEVICE constexpr uint32_t swizzle_addr(uint32_t addr, Swizzle s) {
    const uint32_t bits = s == Swizzle::B128 ? 7u : s == Swizzle::B64 ? 3u : s == Swizzle::B32 ? 1u : 0u;
    return addr ^ (((addr >> 7) & bits) << 4);
}
// The TMA swizzle (PA_TMA_SWIZZLE_*) that writes what a descriptor with `s` reads.
PA_DEVICE constexpr uint32_t tma_swizzle_of(Swizzle s) {
    return s == Swizzle::B128 ? PA_TMA_SWIZZLE_128B
           : s == Swizzle::B64 ? PA_TMA_SWIZZLE_64B
           : s == Swizzle::B32 ? PA_TMA_SWIZZLE_32B
                               : PA_TMA_SWIZZLE_NONE;
}

// Rounds a shared-memory pointer up to a multiple of Align in the shared window.
template <uint32_t Align, typename T>
PA_DEVICE T* smem_align_up(T* p) {
    static_assert((Align & (Align - 1)) == 0, "alignment must be a power of two");
    const uint32_t a = smem_addr(p);
    const uint32_t pad = (Align - (a & (Align - 1))) & (Align - 1);
    return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(p) + pad);
}

// ---- matrix descriptors (PTX ISA, "Matrix Descriptor Format") ----
// bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4, 32-45 stride-dimension
// byte offset >> 4, 49-51 base offset (0 here), 62-63 swizzle. lbo and sbo in bytes (multiples
// of 16 below 2^18); see the layouts above for what they mean per major-ness and swizzle.
PA_DEVICE uint64_t make_smem_desc(const void* start, Swizzle sw, uint32_t lbo_bytes,
                                  uint32_t sbo_bytes PA_SITE_PARAM) {
    return encode_smem_desc(smem_addr(start), lbo_bytes, sbo_bytes, static_cast<uint32_t>(sw)
                                                                        PA_SITE_ARG);
}

// ---- mbarrier ----
// An mbarrier object in shared memory (8 bytes, 8-byte aligned), e.g.
//     Mbarrier* full = reinterpret_cast<Mbarrier*>(smem + offset);
struct alignas(8) Mbarrier {
    uint64_t opaque;

    PA_DEVICE void init(uint32_t count PA_SITE_PARAM) { mbar_init(this, count PA_SITE_ARG); }
    // `count` arrivals at once (sm_90: mbarrier.arrive with a count operand).
    PA_DEVICE void arrive(uint32_t count = 1 PA_SITE_PARAM) { mbar_arrive(this, count PA_SITE_ARG); }
    // Expect `bytes` more transaction bytes in the current phase, then arrive once.
    PA_DEVICE void arrive_expect_tx(uint32_t bytes PA_SITE_PARAM) {
        mbar_arrive_expect_tx(this, bytes PA_SITE_ARG);
    }
    PA_DEVICE void expect_tx(uint32_t bytes PA_SITE_PARAM) { mbar_expect_tx(this, bytes PA_SITE_ARG); }
    // One test of the phase with parity `parity`; true once it completed.
    PA_DEVICE bool try_wait(uint32_t parity PA_SITE_PARAM) {
        return mbar_try_wait(this, parity PA_SITE_ARG);
    }
    // Blocks until the phase with parity `parity` completed.
    PA_DEVICE void wait(uint32_t parity PA_SITE_PARAM) {
        while (!mbar_try_wait(this, parity PA_SITE_ARG)) {
        }
    }
    PA_DEVICE void inval(PA_SITE_ONLY) { mbar_inval(this PA_SITE_ARG); }
};

// ---- wgmma ----
template <typename T>
struct WgDtype;
template <>
struct WgDtype<bf16> {
    static constexpr int value = 0;
};
template <>
struct WgDtype<f16> {
    static constexpr int value = 1;
};

// d (+)= A * B, m64nNk16, f32 accumulation, A and B from shared memory (descriptors).
// accumulate = false: d = A*B (scale-d 0). Asynchronous: commit and wait before reading d.
template <int N, typename T, Major MajorA, Major MajorB>
PA_DEVICE void wgmma_ss(WgAcc<N>& d, uint64_t desc_a, uint64_t desc_b, bool accumulate PA_SITE_PARAM) {
    wgmma_ss_raw<N, WgDtype<T>::value, static_cast<int>(MajorA), static_cast<int>(MajorB)>(
        d, desc_a, desc_b, accumulate PA_SITE_ARG);
}
// The same with A from registers (always K-major there).
template <int N, typename T, Major MajorB>
PA_DEVICE void wgmma_rs(WgAcc<N>& d, const WgFragA& a, uint64_t desc_b, bool accumulate PA_SITE_PARAM) {
    wgmma_rs_raw<N, WgDtype<T>::value, static_cast<int>(MajorB)>(d, a, desc_b, accumulate PA_SITE_ARG);
}

// ---- register fragment positions (see the layout above) ----
PA_DEVICE uint32_t warpgroup_thread() { return thread_linear() & 127u; }
PA_DEVICE uint32_t acc_row(int i) {
    const uint32_t t = warpgroup_thread();
    return 16u * (t >> 5) + ((t & 31u) >> 2) + 8u * ((static_cast<uint32_t>(i) >> 1) & 1u);
}
PA_DEVICE uint32_t acc_col(int i) {
    const uint32_t t = warpgroup_thread();
    return 8u * (static_cast<uint32_t>(i) >> 2) + 2u * (t & 3u) + (static_cast<uint32_t>(i) & 1u);
}
// Offset of accumulator register i from register 0's element in a row-major matrix with `ld`
// elements per row: a compile-time constant in unrolled loops, so one base pointer per thread
// (matrix + acc_row(0) * ld + acc_col(0)) addresses every element.
PA_DEVICE constexpr uint32_t acc_offset(int i, uint32_t ld) {
    return 8u * ((static_cast<uint32_t>(i) >> 1) & 1u) * ld + 8u * (static_cast<uint32_t>(i) >> 2) +
           (static_cast<uint32_t>(i) & 1u);
}
PA_DEVICE uint32_t frag_a_row(int r) {
    const uint32_t t = warpgroup_thread();
    return 16u * (t >> 5) + ((t & 31u) >> 2) + 8u * (static_cast<uint32_t>(r) & 1u);
}
// Column of the low element of A fragment register r (the high element is the next column).
PA_DEVICE uint32_t frag_a_col(int r) {
    const uint32_t t = warpgroup_thread();
    return 2u * (t & 3u) + 8u * (static_cast<uint32_t>(r) >> 1);
}

// Columns 16kb..16kb+15 of an accumulator, rounded to T, as the A fragment of the next wgmma.
template <typename T, int N>
PA_DEVICE void frag_a_from_acc(WgFragA& a, const WgAcc<N>& s, int kb) {
    PA_UNROLL
    for (int r = 0; r < 4; r++) a[r] = pack2<T>(s[8 * kb + 2 * r], s[8 * kb + 2 * r + 1]);
}

}  // namespace sm90
}  // namespace pa
