// The emulator's model of the device's approximate math instructions, behind pa::exp2_fast and
// pa::log2_fast (host.cuh). The PTX ISA specifies them only within a maximum error (Floating
// Point Instructions: ex2, lg2):
//
// - ex2.approx.f32: "the maximum ulp error is 2 ulp from correctly rounded result across the
//   full range of inputs"; -inf -> +0, +-0 -> +1, +inf -> +inf, NaN -> NaN.
// - lg2.approx.f32: "the maximum absolute error is 2^-22 when the input operand is in the range
//   (0.5, 2). For positive finite inputs outside of this interval, maximum relative error is
//   2^-22"; +-0 -> -inf, negative -> NaN, +inf -> +inf, NaN -> NaN.
// - .ftz: subnormal inputs and results are flushed to sign-preserving zero.
//
// The launch picks how the host computes them (PA_EMU_APPROX_* in pa_emu.h): the correctly
// rounded value (the f32 rounding of the f64 function, which glibc computes within about half an
// f64 ulp: correctly rounded unless the value lies within ~2^-52 of an f32 rounding boundary), or
// that value moved within the documented error, pseudo-randomly or by the whole error in one
// direction. A perturbation is a hash of the seed, the instruction and the input's bits: the same
// input gives the same output in every thread, CTA and schedule, as one hardware unit would, so
// schedule comparisons still see only races.
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "runtime.h"

namespace pa {
namespace emu {
namespace {

// Keeps the two instructions' perturbations of the same input bits independent.
constexpr uint64_t kEx2 = 0x6578320000000000ull;  // "ex2"
constexpr uint64_t kLg2 = 0x6c67320000000000ull;  // "lg2"

// splitmix64's finaliser: every input bit reaches every output bit.
uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Outside a launch (a helper called directly) the model is exact.
uint32_t mode() { return tl_launch ? tl_launch->approx : PA_EMU_APPROX_EXACT; }

uint64_t draw(uint64_t instr, float x) {
    return mix(tl_launch->approx_seed ^ instr ^ (f32_bits(x) * 0x9e3779b97f4a7c15ull));
}

// .ftz on an input or a result: a subnormal becomes a zero of the same sign.
float flush(float x) {
    const uint32_t b = f32_bits(x);
    return (b & 0x7f800000u) == 0 ? bits_f32(b & 0x80000000u) : x;
}

}  // namespace

float exp2_approx(float x) {
    x = flush(x);
    if (x != x) return x;
    if (x == 0.0f) return 1.0f;  // exact by the PTX table
    const float y = static_cast<float>(exp2(static_cast<double>(x)));
    if (y < FLT_MIN) return 0.0f;  // -inf, underflow or a subnormal result: +0 (flushed)
    if (y == HUGE_VALF) return y;  // +inf and overflow: nothing to move
    int steps = 0;  // floats away from the correctly rounded result, within [-2, 2]
    switch (mode()) {
        case PA_EMU_APPROX_PERTURBED: steps = static_cast<int>(draw(kEx2, x) % 5) - 2; break;
        case PA_EMU_APPROX_WORST_UP: steps = 2; break;
        case PA_EMU_APPROX_WORST_DOWN: steps = -2; break;
        default: return y;
    }
    const int64_t b = static_cast<int64_t>(f32_bits(y)) + steps;
    if (b < 0x00800000) return 0.0f;                // moved below the normals: flushed
    if (b > 0x7f7fffff) return bits_f32(0x7f7fffffu);  // stays finite, as 2 ulp below +inf
    return bits_f32(static_cast<uint32_t>(b));
}

float log2_approx(float x) {
    x = flush(x);
    if (x != x) return x;
    if (x == 0.0f) return -HUGE_VALF;
    if (x < 0.0f) return NAN;
    if (x == HUGE_VALF) return x;
    const double v = log2(static_cast<double>(x));
    double frac = 0.0;  // the error as a fraction of the documented maximum, in [-1, 1]
    switch (mode()) {
        case PA_EMU_APPROX_PERTURBED:
            frac = static_cast<double>(draw(kLg2, x) >> 11) * 0x1p-52 - 1.0;
            break;
        case PA_EMU_APPROX_WORST_UP: frac = 1.0; break;
        case PA_EMU_APPROX_WORST_DOWN: frac = -1.0; break;
        default: return static_cast<float>(v);
    }
    // Documented maximum: 2^-22 absolute in (0.5, 2), 2^-22 relative outside, i.e.
    // 2^-22 * max(1, |log2 x|). The f32 rounding of v + move adds up to half an ulp of the
    // largest value the result can reach, so the move keeps that much inside the maximum.
    const double bound = 0x1p-22 * fmax(1.0, fabs(v));
    int e = 0;
    frexp(fabs(v) + bound, &e);  // |result| < 2^e, so its f32 ulp is at most 2^(e - 24)
    const double half_ulp = ldexp(1.0, e - 25);
    return flush(static_cast<float>(v + frac * (bound - half_ulp)));
}

}  // namespace emu
}  // namespace pa
