//! Inputs shared by the emulator tests and the GPU fidelity test: seeded, never zeros, with the
//! special values each primitive must get right.
#![allow(dead_code)]

pub mod approx;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random_u32(n: usize, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random()).collect()
}

/// bf16 bits of values k/8 with k in [-32, 32]: exact products and exact f32 sums in a
/// 16-deep dot product, so an mma of them has one right answer.
pub fn exact_bf16(n: usize, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| half::bf16::from_f32(r.random_range(-32i32..=32) as f32 / 8.0).to_bits())
        .collect()
}

pub fn exact_f16(n: usize, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| half::f16::from_f32(r.random_range(-32i32..=32) as f32 / 8.0).to_bits())
        .collect()
}

/// bf16 (or f16) bits of normal values of both signs spread over [2^-6, 2^6) in magnitude.
pub fn spread_bf16(n: usize, seed: u64, f16: bool) -> Vec<u16> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let mag = 2f32.powf(r.random_range(-6.0f32..6.0));
            let x = if r.random::<bool>() { mag } else { -mag };
            if f16 {
                half::f16::from_f32(x).to_bits()
            } else {
                half::bf16::from_f32(x).to_bits()
            }
        })
        .collect()
}

/// Floats for the conversion probe: the rounding edge cases of bf16 and f16, specials, and
/// random values over the whole exponent range.
pub fn conversion_inputs(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,  // smallest f32 subnormal
        -3e-39, // f32 subnormal
        // bf16 ties: 1 + 2^-8 (tie, to even = 1), 1 + 3*2^-8 (tie, to even = 1 + 2^-6)
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        1.0 + 2f32.powi(-8) + 2f32.powi(-20),
        3.389_531_4e38, // rounds to bf16 inf
        // f16 edges: max, just below the overflow tie, the tie, beyond
        65504.0,
        65519.996,
        65520.0,
        65536.0,
        -70000.0,
        // f16 ties: 1 + 2^-11 (tie to 1), 1 + 3*2^-11 (tie up)
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        // f16 subnormals and their ties
        2f32.powi(-14),
        2f32.powi(-15),
        2f32.powi(-24),
        2f32.powi(-25),       // tie between 0 and the smallest subnormal: 0
        3.0 * 2f32.powi(-25), // tie between 1 and 2 units: 2
        1.5 * 2f32.powi(-25), // above the tie: 1 unit
        2f32.powi(-26),
        -5.5 * 2f32.powi(-24),
        6.097_555e-5, // just below the smallest normal f16
    ];
    let mut r = rng(seed);
    while v.len() < 1024 {
        let bits: u32 = r.random();
        let x = f32::from_bits(bits);
        if x.is_finite() {
            v.push(x);
        }
        // and values in the f16 range
        v.push(r.random_range(-70000.0f32..70000.0) * 2f32.powi(r.random_range(-30..1)));
    }
    v.truncate(1024);
    v
}

/// Row-major matmul in f64: a [m][k] times b [k][n].
pub fn matmul_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|x| a[i * k + x] * b[x * n + j]).sum();
        }
    }
    c
}

pub fn bf16_to_f64(bits: u16) -> f64 {
    half::bf16::from_bits(bits).to_f64()
}

pub fn f16_to_f64(bits: u16) -> f64 {
    half::f16::from_bits(bits).to_f64()
}

pub mod sm90;
