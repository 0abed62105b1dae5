// wgmma.mma_async m64nNk16, f32 accumulation, bf16/f16 inputs (PTX ISA, "Asynchronous Warpgroup
// Level Matrix Multiply-Accumulate Instructions": "Register Fragments" and "Shared Memory Matrix
// Layout", its "Strides" and "Matrix Descriptor Format").
//
// Matrix descriptor, 64 bits: start address bits 0-13, leading-dimension byte offset (LBO)
// bits 16-29, stride-dimension byte offset (SBO) bits 32-45 (each the byte value >> 4, i.e.
// matrix-descriptor-encode(x) = (x & 0x3FFFF) >> 4), matrix base offset bits 49-51, swizzle
// bits 62-63 (0 none, 1 128B, 2 64B, 3 32B). Supported: base offset 0 (tiles at multiples of
// their swizzle repeat); reserved bits must be 0. Anything else is refused naming the field.
//
// Canonical layouts for 16-bit elements (T = 8 elements = 16 bytes; W = swizzle row bytes:
// 128/64/32), element (r, k) of an operand with r in M (A) or N (B), k in 0..15:
//   K-major,  no swizzle: start + (r/8)*SBO + (k/8)*LBO + (r%8)*16 + (k%8)*2
//   K-major,  swizzled:   start + (r/8)*SBO + (r%8)*W  + k*2   (LBO unused: "assumed to be 1")
//   MN-major, no swizzle: start + (r/8)*SBO + (k/8)*LBO + (k%8)*16 + (r%8)*2
//   MN-major, swizzled:   start + (r/(W/2))*LBO + (k/8)*SBO + (k%8)*W + (r%(W/2))*2
// then the swizzle XORs address bits 4.. with bits 7.. (3 bits for 128B, 2 for 64B, 1 for 32B):
// the same pattern TMA writes. The swizzle atoms (8 rows x W bytes, or 8 k x W bytes for
// MN-major) are those of the ISA's "swizzle layout atom" table (128B: 8x8 128-bit elements, ...).
//
// Register fragments: thread i of the warpgroup, w = i/32, g = (i%32)/4, q = i%4.
//   D register j (0 <= j < N/2): row 16w + g + 8*((j/2)%2), column 8*(j/4) + 2q + j%2.
//   A register r (0..3), A from registers: row 16w + g + 8*(r%2), columns 2q + 8*(r/2) (low
//   half) and +1 (high half).
//
// Arithmetic (the emulator's definition; the hardware's order is unspecified): every product of
// two bf16 or two f16 values is exact in f64; for each output, starting from C (or 0 when
// scale-d is 0), the 16 products are added in k order in f64 and the sum is rounded once to f32
// (round to nearest even). tests/gpu/emu_fidelity.rs derives the bound against a GPU.
#include <string.h>

#include <string>

#include "sm90.h"

namespace pa {
namespace emu {

namespace {

uint32_t row_bytes(uint32_t swizzle) {
    return swizzle == 1 ? 128u : swizzle == 2 ? 64u : swizzle == 3 ? 32u : 16u;
}
uint32_t swizzle_mask(uint32_t swizzle) {
    return swizzle == 1 ? 7u : swizzle == 2 ? 3u : swizzle == 3 ? 1u : 0u;
}

uint32_t elem_addr(const SmemOperand &o, uint32_t r, uint32_t k) {
    const uint32_t w = row_bytes(o.swizzle);
    uint32_t a;
    if (o.major == 0) {
        if (o.swizzle == 0)
            a = o.start + (r / 8) * o.sbo + (k / 8) * o.lbo + (r % 8) * 16 + (k % 8) * 2;
        else
            a = o.start + (r / 8) * o.sbo + (r % 8) * w + k * 2;
    } else {
        if (o.swizzle == 0) {
            a = o.start + (r / 8) * o.sbo + (k / 8) * o.lbo + (k % 8) * 16 + (r % 8) * 2;
        } else {
            const uint32_t per = w / 2;
            a = o.start + (r / per) * o.lbo + (k / 8) * o.sbo + (k % 8) * w + (r % per) * 2;
        }
    }
    return a ^ (((a >> 7) & swizzle_mask(o.swizzle)) << 4);
}

double decode(uint16_t bits, int dtype) {
    return dtype == 0 ? static_cast<double>(to_float(bf16{bits})) : static_cast<double>(to_float(f16{bits}));
}

double load(const Launch *L, const SmemOperand &o, uint32_t r, uint32_t k, int dtype) {
    uint16_t v;
    memcpy(&v, L->smem + (elem_addr(o, r, k) - L->sm90.smem_base), 2);
    return decode(v, dtype);
}

std::string check_operand(const Launch *L, const SmemOperand &o, uint32_t rows, const char *which) {
    for (uint32_t r = 0; r < rows; r++) {
        for (uint32_t k = 0; k < 16; k++) {
            const uint32_t a = elem_addr(o, r, k);
            const int64_t off = static_cast<int64_t>(a) - L->sm90.smem_base;
            if (!smem_range_ok(L, off, 2)) {
                return "element (" + std::to_string(r) + ", " + std::to_string(k) + ") of " + which +
                       " is at shared address " + std::to_string(a) +
                       ", outside the CTA's dynamic shared memory (shared addresses " +
                       std::to_string(L->sm90.smem_base) + ".." +
                       std::to_string(L->sm90.smem_base + L->smem_bytes) +
                       "): check the descriptor's start, LBO and SBO";
            }
        }
    }
    return std::string();
}

}  // namespace

std::string decode_smem_desc(uint64_t desc, int major, const char *which, SmemOperand *out) {
    const auto name = [which] { return std::string("matrix descriptor of ") + which; };
    const uint64_t reserved = (3ull << 14) | (3ull << 30) | (7ull << 46) | (0x3ffull << 52);
    if (desc & reserved) {
        return name() + ": reserved bits set (bits 14-15, 30-31, 46-48 and 52-61 must be 0)";
    }
    const uint32_t base_offset = static_cast<uint32_t>((desc >> 49) & 7);
    if (base_offset != 0) {
        return name() + ": matrix base offset " + std::to_string(base_offset) +
               " is not supported (start swizzled tiles at a multiple of their pattern repeat)";
    }
    out->start = static_cast<uint32_t>(desc & 0x3fff) << 4;
    out->lbo = static_cast<uint32_t>((desc >> 16) & 0x3fff) << 4;
    out->sbo = static_cast<uint32_t>((desc >> 32) & 0x3fff) << 4;
    out->swizzle = static_cast<uint32_t>(desc >> 62);
    out->major = major;
    return std::string();
}

std::string check_wgmma_operands(const Launch *L, const WgmmaOp &op) {
    if (!op.a_regs) {
        const std::string e = check_operand(L, op.a, 64, "A");
        if (!e.empty()) return e;
    }
    return check_operand(L, op.b, static_cast<uint32_t>(op.n), "B");
}

std::string check_async_visible(Launch *L, const WgmmaOp &op) {
    const unsigned char *view = async_view(L);
    const auto operand = [&](const SmemOperand &o, uint32_t rows, const char *which) -> std::string {
        for (uint32_t r = 0; r < rows; r++) {
            for (uint32_t k = 0; k < 16; k++) {
                const uint32_t a = elem_addr(o, r, k);
                const uint32_t off = a - L->sm90.smem_base;
                if (memcmp(L->smem + off, view + off, 2) != 0) {
                    return "element (" + std::to_string(r) + ", " + std::to_string(k) + ") of " + which +
                           " at shared address " + std::to_string(a) +
                           " was written by ordinary stores after the last fence.proxy.async.shared::cta: "
                           "wgmma reads shared memory through the async proxy, which sees an ordinary "
                           "store only after the writing thread's fence (then a barrier) "
                           "(fence_proxy_async_smem)";
                }
            }
        }
        return std::string();
    };
    if (!op.a_regs) {
        const std::string e = operand(op.a, 64, "A");
        if (!e.empty()) return e;
    }
    return operand(op.b, static_cast<uint32_t>(op.n), "B");
}

void compute_wgmma(const Launch *L, const WgmmaOp &op) {
    static thread_local double A[64][16];
    static thread_local double B[256][16];
    if (op.a_regs) {
        for (uint32_t i = 0; i < 128; i++) {
            const uint32_t w = i / 32, g = (i % 32) / 4, q = i % 4;
            for (uint32_t r = 0; r < 4; r++) {
                const uint32_t row = 16 * w + g + 8 * (r % 2), col = 2 * q + 8 * (r / 2);
                A[row][col] = decode(static_cast<uint16_t>(op.a_frag[i][r] & 0xffff), op.dtype);
                A[row][col + 1] = decode(static_cast<uint16_t>(op.a_frag[i][r] >> 16), op.dtype);
            }
        }
    } else {
        for (uint32_t m = 0; m < 64; m++)
            for (uint32_t k = 0; k < 16; k++) A[m][k] = load(L, op.a, m, k, op.dtype);
    }
    for (uint32_t n = 0; n < static_cast<uint32_t>(op.n); n++)
        for (uint32_t k = 0; k < 16; k++) B[n][k] = load(L, op.b, n, k, op.dtype);
    for (uint32_t i = 0; i < 128; i++) {
        const uint32_t w = i / 32, g = (i % 32) / 4, q = i % 4;
        float *d = op.d[i];
        for (uint32_t j = 0; j < static_cast<uint32_t>(op.n) / 2; j++) {
            const uint32_t row = 16 * w + g + 8 * ((j / 2) % 2);
            const uint32_t col = 8 * (j / 4) + 2 * q + j % 2;
            double s = op.scale_d ? static_cast<double>(d[j]) : 0.0;
            for (uint32_t k = 0; k < 16; k++) s += A[row][k] * B[col][k];
            d[j] = static_cast<float>(s);
        }
    }
}

}  // namespace emu
}  // namespace pa
