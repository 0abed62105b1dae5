// 16-bit float storage types and the 16-byte vector, identical on both paths: a kernel moves them
// around as bits and converts through pa::to_float / pa::to_bf16 / pa::to_f16 (path-specific).
#pragma once

#include <stdint.h>

namespace pa {

// bfloat16 storage: 1 sign, 8 exponent, 7 mantissa bits. Trivially copyable, 2 bytes, the same
// bits as __nv_bfloat16 and half::bf16.
struct bf16 {
    uint16_t bits;
};

// IEEE binary16 storage: 1 sign, 5 exponent, 10 mantissa bits (the bits of __half, half::f16).
struct f16 {
    uint16_t bits;
};

// Sixteen bytes, 16-byte aligned: the unit of vectorised global/shared loads and of cp.async.
struct alignas(16) u32x4 {
    uint32_t x, y, z, w;
};

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2 && sizeof(u32x4) == 16, "storage sizes");

}  // namespace pa
