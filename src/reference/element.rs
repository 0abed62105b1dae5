//! The element types the reference reads. Inputs may be f32, f64, bf16 or f16; every value is
//! widened to f64 exactly (all four convert to f64 without rounding) before any arithmetic, so
//! the reference of a bf16 tensor is the f64 attention of exactly the values the kernel sees.

use half::{bf16, f16};

/// An input element type: converts to f64 exactly and back (rounding to nearest).
pub trait Element: Copy + Send + Sync + 'static {
    /// Short name, as used in error messages and test labels.
    const NAME: &'static str;
    /// The value as f64 (exact for every implementor).
    fn to_f64(self) -> f64;
    /// The nearest value of this type (round to nearest even; used to build test inputs).
    fn from_f64(v: f64) -> Self;
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for bf16 {
    const NAME: &'static str = "bf16";
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

impl Element for f16 {
    const NAME: &'static str = "f16";
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_are_exact_for_representable_values() {
        for v in [0.0, -1.5, 0.25, 3.0, -1024.0] {
            assert_eq!(<f64 as Element>::from_f64(v).to_f64(), v);
            assert_eq!(<f32 as Element>::from_f64(v).to_f64(), v);
            assert_eq!(<bf16 as Element>::from_f64(v).to_f64(), v);
            assert_eq!(<f16 as Element>::from_f64(v).to_f64(), v);
        }
        // bf16 keeps 7 fraction bits: 1 + 2^-8 is the tie between 1 and 1 + 2^-7 and rounds to
        // the even neighbour, 1.
        assert_eq!(
            <bf16 as Element>::from_f64(1.0 + 2f64.powi(-8)).to_f64(),
            1.0
        );
        assert_eq!(<bf16 as Element>::NAME, "bf16");
        assert_eq!(<f16 as Element>::NAME, "f16");
    }
}
