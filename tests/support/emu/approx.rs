//! The PTX ISA's documented error of the approximate instructions behind `exp2_fast` and
//! `log2_fast` (Floating Point Instructions: ex2, lg2), as checks on one result, and inputs that
//! reach their special cases. Used by the emulator's model tests (tests/emulator/approx.rs) and the
//! GPU fidelity test (the device must honour what the emulator models).

use super::rng;
use rand::Rng;

/// `ex2.approx.ftz.f32` without .ftz on the result: the correctly rounded 2^x (the f32 rounding
/// of the f64 function), or None for the inputs the PTX table fixes exactly.
pub fn ex2_rounded(x: f32) -> Option<f32> {
    let x = flush(x);
    if x.is_nan() || x == 0.0 || x.is_infinite() {
        return None;
    }
    Some((x as f64).exp2() as f32)
}

/// A subnormal becomes a zero of the same sign (.ftz).
pub fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}

/// Whether `y` is a result `ex2.approx.ftz.f32` may give for `x`: the PTX table for NaN, zeros
/// and infinities (subnormal inputs are zeros), otherwise at most 2 ulp (2 floats) from the
/// correctly rounded result, with a result below the normals flushed to +0. Returns the distance
/// in floats when it is one (None for the table's cases).
pub fn ex2_ok(x: f32, y: f32) -> Result<Option<u32>, String> {
    let fx = flush(x);
    let fixed = if fx.is_nan() {
        Some(f32::NAN)
    } else if fx == 0.0 {
        Some(1.0)
    } else if fx == f32::NEG_INFINITY {
        Some(0.0)
    } else if fx == f32::INFINITY {
        Some(f32::INFINITY)
    } else {
        None
    };
    if let Some(want) = fixed {
        let same = (want.is_nan() && y.is_nan()) || want.to_bits() == y.to_bits();
        return if same {
            Ok(None)
        } else {
            Err(format!("ex2({x:e}) = {y:e}, the PTX table says {want:e}"))
        };
    }
    let c = ex2_rounded(x).expect("not a table case");
    if c.is_infinite() {
        // Overflow: +inf, or a finite value within 2 floats of the largest.
        return if y == f32::INFINITY || (y.is_finite() && y.to_bits() + 2 >= f32::MAX.to_bits()) {
            Ok(Some(0))
        } else {
            Err(format!("ex2({x:e}) = {y:e}, want +inf"))
        };
    }
    // Positive finite floats are ordered like their bits.
    let dist = y.to_bits().abs_diff(c.to_bits());
    if y.is_finite() && y >= 0.0 && dist <= 2 && (y == 0.0 || y >= f32::MIN_POSITIVE) {
        return Ok(Some(dist));
    }
    // A result within 2 floats of one below the normals may be flushed to +0.
    if y == 0.0 && c.to_bits() < f32::MIN_POSITIVE.to_bits() + 2 {
        return Ok(Some(0));
    }
    Err(format!(
        "ex2({x:e}) = {y:e} ({:#010x}): {dist} floats from the correctly rounded {c:e} ({:#010x}), \
         the PTX ISA allows 2",
        y.to_bits(),
        c.to_bits()
    ))
}

/// The documented maximum error of `lg2.approx.f32` at `x`: 2^-22 absolute for x in (0.5, 2),
/// 2^-22 relative outside, i.e. 2^-22 max(1, |log2 x|).
pub fn lg2_max_error(x: f32) -> f64 {
    2f64.powi(-22) * (x as f64).log2().abs().max(1.0)
}

/// Whether `y` is a result `lg2.approx.ftz.f32` may give for `x`: the PTX table for NaN, zeros
/// (and subnormals, flushed), negatives and +inf, otherwise within [`lg2_max_error`] of log2 x.
/// Returns the error as a fraction of the documented maximum (None for the table's cases).
pub fn lg2_ok(x: f32, y: f32) -> Result<Option<f64>, String> {
    let fx = flush(x);
    let fixed = if fx.is_nan() || fx < 0.0 {
        Some(f32::NAN)
    } else if fx == 0.0 {
        Some(f32::NEG_INFINITY)
    } else if fx == f32::INFINITY {
        Some(f32::INFINITY)
    } else {
        None
    };
    if let Some(want) = fixed {
        let same = (want.is_nan() && y.is_nan()) || want.to_bits() == y.to_bits();
        return if same {
            Ok(None)
        } else {
            Err(format!("lg2({x:e}) = {y:e}, the PTX table says {want:e}"))
        };
    }
    let err = (y as f64 - (x as f64).log2()).abs();
    let max = lg2_max_error(x);
    if err <= max {
        Ok(Some(err / max))
    } else {
        Err(format!(
            "lg2({x:e}) = {y:e}: error {err:e} > the PTX ISA's {max:e} (2^-22 max(1, |log2 x|))"
        ))
    }
}

/// Inputs for exp2_fast and log2_fast: the PTX tables' specials, subnormals (flushed), the
/// results' underflow and overflow edges, lg2's (0.5, 2) interval and its ends, integers, and
/// random values over ex2's useful range [-150, 130] and over all positive normals.
pub fn approx_inputs(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-45,
        -1e-45,
        3e-39,
        -3e-39,
        f32::MIN_POSITIVE,
        1.0,
        -1.0,
        0.5,
        2.0,
        0.500_000_06,
        1.999_999_9,
        1.0 + f32::EPSILON,
        1.0 - f32::EPSILON / 2.0,
        -126.0,
        -126.5,
        -125.999_99,
        -127.0,
        -149.0,
        -150.0,
        127.0,
        127.999_99,
        128.0,
        f32::MAX,
        65536.0,
    ];
    let mut r = rng(seed);
    for k in -130..=130 {
        v.push(k as f32);
    }
    while v.len() < 2048 {
        v.push(r.random_range(-150.0f32..130.0));
        v.push(r.random_range(0.25f32..4.0));
        v.push(f32::from_bits(r.random_range(0x0080_0000u32..0x7f80_0000)));
        v.push(-r.random_range(0.0f32..20.0));
    }
    v.truncate(2048);
    v
}
