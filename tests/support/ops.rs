//! The SwiGLU and rotary kernels' inputs and checks, shared by the emulator tests
//! (tests/emulator/ops.rs) and the device tests (tests/gpu/ops.rs): every output element against
//! the f64 reference within a bound derived here for both the host build and the device build.
//!
//! Tolerances, derived (u = 2^-24, the unit roundoff of f32):
//! - SwiGLU: the kernel computes g / (1 + exp2(-g log2e)) * u in fp32 from exact 16-bit inputs.
//!   The exponent's argument: log2e rounded to f32 and one product, each within u relative, move
//!   it by at most 2u |g| log2e, so exp2 of it is off by at most 2 |g| u relative (times ln 2 <
//!   1). exp2 itself: on the host libm's exp2f, within 1 ulp (2u); on the device
//!   ex2.approx.ftz.f32, within 2 ulp (4u, PTX ISA); ftz only flushes results below 2^-126,
//!   where 1 + e rounds to 1 anyway. Then one add, one divide, one multiply (IEEE: the crate is
//!   built without fast math): a relative error below (4 + 2|g|) u + 3u < (8 + 2|g|) u. Rounding
//!   to the output type adds half an ulp of the output type, and a value that straddles a
//!   rounding boundary can land one ulp away: |out - ref| <= 1 ulp of the output type at |ref|,
//!   plus the fp32 error.
//! - Rotary: x0 c - x1 s (and x1 c + x0 s) from exact 16-bit inputs and f32 table entries, each
//!   within u/2 of the f64 cos/sin: u/2 (|x0| + |x1|) from the table; two products and a
//!   difference each rounded (host), or one product and a fused multiply-add (device: nvcc
//!   contracts by default), at most 2u (|x0| + |x1|). Within 3u (|x0| + |x1|) before the final
//!   rounding, which adds at most 1 ulp of the output type at |ref| as above.
#![allow(dead_code)] // each test binary uses a different subset

use prefix_attn::reference::{self, Element};
use prefix_attn::rotary::{RotaryDirection, DEFAULT_THETA};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The unit roundoff of f32.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Spacing of `T` at magnitude `x` (one ulp), from its mantissa bits and smallest normal.
pub fn ulp<T: Element>(x: f64) -> f64 {
    let (mant, min_exp) = if T::NAME == "bf16" {
        (7, -126)
    } else {
        (10, -14)
    };
    let e = x.abs().log2().floor().max(min_exp as f64);
    2f64.powf(e - mant as f64)
}

/// `len` seeded uniform values in [lo, hi), rounded to `T`.
pub fn random<T: Element>(len: usize, lo: f64, hi: f64, seed: u64) -> Vec<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| T::from_f64(rng.random_range(lo..hi)))
        .collect()
}

/// A fused `[tokens, 2 ffn]` gate|up buffer, as the MLP's first GEMM writes it (gate first):
/// values up to +-12 reach both tails of silu, and a -90 (exp(-g) overflows f32) and a 40 are
/// planted in the first row's gate.
pub fn swiglu_inputs<T: Element>(tokens: usize, ffn: usize, seed: u64) -> Vec<T> {
    assert!(ffn > 5, "the planted values sit in the first row's gate");
    let mut gu: Vec<T> = random(tokens * 2 * ffn, -12.0, 12.0, seed);
    gu[3] = T::from_f64(-90.0);
    gu[5] = T::from_f64(40.0);
    gu
}

/// Checks every `out[t * out_stride + f]` against silu(gate) * up for the fused buffer `gu` of
/// [`swiglu_inputs`]; a message naming the first element out of bounds, if any.
pub fn check_swiglu<T: Element>(
    gu: &[T],
    tokens: usize,
    ffn: usize,
    out: &[T],
    out_stride: usize,
) -> Result<(), String> {
    for t in 0..tokens {
        for f in 0..ffn {
            let (g, u) = (
                gu[t * 2 * ffn + f].to_f64(),
                gu[t * 2 * ffn + ffn + f].to_f64(),
            );
            let want = reference::swiglu(g, u);
            let got = out[t * out_stride + f].to_f64();
            // Below g = -88 exp(-g) overflows fp32 and the kernel returns -0 where the true
            // value is |g u| e^g < 2^-110: an absolute allowance of that size.
            let bound = ulp::<T>(want) + (8.0 + 2.0 * g.abs()) * U * want.abs() + 2f64.powi(-110);
            if (got - want).abs() > bound || got.is_nan() {
                return Err(format!(
                    "{} [{t}, {f}]: silu({g}) * {u}: got {got}, want {want}",
                    T::NAME
                ));
            }
        }
    }
    Ok(())
}

/// One rotary problem in a fused QKV buffer: `turned` heads (Q and K) of `head_dim` at the start
/// of each token's `width` elements; the V heads after them must not change.
pub struct RotaryCheck<'a, T> {
    pub input: &'a [T],
    pub positions: &'a [i32],
    pub turned: usize,
    pub head_dim: usize,
    pub width: usize,
}

impl<T: Element> RotaryCheck<'_, T> {
    /// Checks `output` (the buffer after the kernel) against the f64 reference in `direction`
    /// (table theta [`DEFAULT_THETA`]); a message naming the first element out of bounds.
    pub fn check(&self, output: &[T], direction: RotaryDirection) -> Result<(), String> {
        let (d, width) = (self.head_dim, self.width);
        let row = self.turned * d;
        let heads_of = |v: &[T]| -> Vec<T> {
            v.chunks_exact(width)
                .flat_map(|t| t[..row].iter().copied())
                .collect()
        };
        let input = heads_of(self.input);
        let want = reference::rotary(
            &input,
            self.turned,
            d,
            self.positions,
            DEFAULT_THETA,
            direction,
        )
        .map_err(|e| e.to_string())?;
        let got = heads_of(output);
        for (e, (g, w)) in got.iter().zip(&want).enumerate() {
            let (head, i) = (e / d * d, e % (d / 2));
            let mag = input[head + i].to_f64().abs() + input[head + i + d / 2].to_f64().abs();
            let bound = ulp::<T>(*w) + 3.0 * U * mag;
            if (g.to_f64() - w).abs() > bound || g.to_f64().is_nan() {
                return Err(format!(
                    "{} {direction:?} [token {}, element {}]: {} vs {w}",
                    T::NAME,
                    e / row,
                    e % row,
                    g.to_f64()
                ));
            }
        }
        // The V heads (after Q and K) are untouched, bit for bit.
        let bits = |s: &[T]| s.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
        for t in 0..self.positions.len() {
            let v = t * width + row..(t + 1) * width;
            if bits(&output[v.clone()]) != bits(&self.input[v]) {
                return Err(format!(
                    "{} {direction:?}: token {t}'s V heads changed",
                    T::NAME
                ));
            }
        }
        Ok(())
    }
}
