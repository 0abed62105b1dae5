// PTX semantics of the warp collectives, computed once all 32 lanes have deposited their
// operands in the warp's staging area (sync.cpp). Section names refer to the PTX ISA (version 8.x
// and later, "Parallel Synchronization and Communication Instructions" and "Warp Level Matrix
// Multiply-Accumulate Instructions").
#include <string.h>

#include <string>

#include "runtime.h"

namespace pa {
namespace emu {

namespace {

// PTX ISA, "shfl.sync": with c = 0x1f (width 32, what __shfl_*_sync(0xffffffff, ...) emit),
// segmask = 0 and maxLane = 31:
//   .bfly: j = lane ^ b;           the source is lane j when j <= 31, otherwise the lane itself
//   .idx:  j = b[4:0];             always in range
void compute_shfl(Warp *w) {
    const bool bfly = w->variant == static_cast<int>(ShflMode::Xor);
    for (uint32_t lane = 0; lane < 32; lane++) {
        uint32_t j;
        if (bfly) {
            j = lane ^ static_cast<uint32_t>(w->b[lane]);
            if (j > 31) j = lane;
        } else {
            j = static_cast<uint32_t>(w->b[lane]) & 31u;
        }
        w->out[lane][0] = w->value[j];
    }
}

uint16_t load_b16(const unsigned char *row, uint32_t col) {
    uint16_t v;
    memcpy(&v, row + 2 * col, 2);
    return v;
}

// PTX ISA, "ldmatrix": .m8n8 with .x1/.x2/.x4 loads 1/2/4 matrices of 8x8 b16 elements. Lanes
// 8i..8i+7 supply the (16-byte aligned, shared) addresses of rows 0..7 of matrix i; addresses of
// lanes beyond 8*count are ignored. Destination register i of lane l holds two elements of
// matrix i ("fragment layout for ldmatrix"): row l/4, columns 2*(l%4) and 2*(l%4)+1, the lower
// column in the lower 16 bits. With .trans the matrix is transposed on the way: register i holds
// M[2*(l%4)][l/4] (low half) and M[2*(l%4)+1][l/4] (high half).
std::string compute_ldmatrix(Launch *L, Warp *w) {
    const int count = w->variant & 7;
    const bool trans = (w->variant & 8) != 0;
    for (int lane = 0; lane < 8 * count; lane++) {
        const unsigned char *p = w->addr[lane];
        const uintptr_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(L->smem);
        const bool inside = p >= L->smem && L->smem_bytes >= 16 && off <= L->smem_bytes - 16;
        if (!inside || off % 16 != 0) {
            return "CTA (" + std::to_string(L->cta[0]) + "," + std::to_string(L->cta[1]) + "," +
                   std::to_string(L->cta[2]) + ") warp " +
                   std::to_string(&*w - &(*L->warps)[0]) + ": " + op_name(w->op, w->variant) +
                   " at " + site_str(w->site) + ": lane " + std::to_string(lane) +
                   " supplies a row address that is not a 16-byte aligned row inside the CTA's " +
                   std::to_string(L->smem_bytes) + " bytes of dynamic shared memory (offset " +
                   std::to_string(static_cast<long long>(off)) + ")";
        }
    }
    for (int m = 0; m < count; m++) {
        const unsigned char *const *rows = &w->addr[8 * m];
        for (uint32_t lane = 0; lane < 32; lane++) {
            const uint32_t g = lane / 4, q = lane % 4;
            uint16_t lo, hi;
            if (!trans) {
                lo = load_b16(rows[g], 2 * q);
                hi = load_b16(rows[g], 2 * q + 1);
            } else {
                lo = load_b16(rows[2 * q], g);
                hi = load_b16(rows[2 * q + 1], g);
            }
            w->out[lane][m] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
        }
    }
    return std::string();
}

double decode(uint16_t bits, MmaKind kind) {
    if (kind == MmaKind::Bf16) return static_cast<double>(to_float(bf16{bits}));
    return static_cast<double>(to_float(f16{bits}));
}

// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" (.f16/.bf16 inputs,
// .f32 accumulators). With groupID = lane >> 2 and tig = lane % 4:
//   A (16x16, .row), 4 regs of 2 elements {a0..a7}: element ai sits at
//       row = groupID (+8 for a2,a3,a6,a7), col = 2*tig + (i & 1) (+8 for a4..a7)
//     so reg0 = A[g][2t..2t+1], reg1 = A[g+8][2t..], reg2 = A[g][2t+8..], reg3 = A[g+8][2t+8..]
//   B (16x8, .col), 2 regs {b0..b3}: bi at row (k) = 2*tig + (i & 1) (+8 for b2,b3), col (n) = g
//     so reg0 = B[2t..2t+1][g], reg1 = B[2t+8..2t+9][g]
//   C/D (16x8 f32) {c0..c3}: ci at row = g (+8 for c2,c3), col = 2*tig + (i & 1)
// The lower element of each packed pair is in the lower 16 bits.
//
// Arithmetic: every product of two bf16 (8-bit significands) or two f16 (11-bit) values is exact
// in f64, and the 16 products plus c are summed in f64, then rounded once to f32 (round to
// nearest even). That is the exactly rounded result whenever the f64 sum is exact (exponent
// spread under ~30 bits, i.e. all realistic data); the hardware's internal order and rounding
// differ from that by at most the bound derived in tests/gpu/emu_fidelity.rs.
void compute_mma(Warp *w) {
    const MmaKind kind = static_cast<MmaKind>(w->variant);
    double A[16][16], B[16][8], C[16][8];
    for (uint32_t lane = 0; lane < 32; lane++) {
        const uint32_t g = lane >> 2, t = lane & 3;
        const uint32_t *a = w->a_frag[lane];
        const uint32_t arow[4] = {g, g + 8, g, g + 8};
        const uint32_t acol[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
        for (int r = 0; r < 4; r++) {
            A[arow[r]][acol[r]] = decode(static_cast<uint16_t>(a[r] & 0xffff), kind);
            A[arow[r]][acol[r] + 1] = decode(static_cast<uint16_t>(a[r] >> 16), kind);
        }
        const uint32_t *b = w->b_frag[lane];
        for (int r = 0; r < 2; r++) {
            const uint32_t k = 2 * t + 8 * r;
            B[k][g] = decode(static_cast<uint16_t>(b[r] & 0xffff), kind);
            B[k + 1][g] = decode(static_cast<uint16_t>(b[r] >> 16), kind);
        }
        const float *c = w->c_frag[lane];
        C[g][2 * t] = c[0];
        C[g][2 * t + 1] = c[1];
        C[g + 8][2 * t] = c[2];
        C[g + 8][2 * t + 1] = c[3];
    }
    // k outside n: each D[m][n] is still C + p0 + p1 + ... + p15 in that order (the same bits),
    // and the eight independent sums of a row vectorize and stay in registers once unrolled.
    float D[16][8];
    for (int m = 0; m < 16; m++) {
        double acc[8];
        for (int n = 0; n < 8; n++) acc[n] = C[m][n];
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
            const double a = A[m][k];
#pragma GCC unroll 8
            for (int n = 0; n < 8; n++) acc[n] += a * B[k][n];
        }
        for (int n = 0; n < 8; n++) D[m][n] = static_cast<float>(acc[n]);
    }
    for (uint32_t lane = 0; lane < 32; lane++) {
        const uint32_t g = lane >> 2, t = lane & 3;
        float *d = w->d_frag[lane];
        d[0] = D[g][2 * t];
        d[1] = D[g][2 * t + 1];
        d[2] = D[g + 8][2 * t];
        d[3] = D[g + 8][2 * t + 1];
    }
}

}  // namespace

std::string compute_collective(Launch *L, Warp *w) {
    switch (w->op) {
        case Op::Shfl: compute_shfl(w); return std::string();
        case Op::Ldmatrix: return compute_ldmatrix(L, w);
        case Op::Mma: compute_mma(w); return std::string();
        default: return "internal: collective without an operation";
    }
}

}  // namespace emu
}  // namespace pa
