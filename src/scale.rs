//! The softmax scale, one type for every call that takes it: the kernels (device, emulator, raw
//! entry), the f64 reference, the error bounds and the candle op.
//!
//! The kernels multiply scores by an f32 scale (and by `scale * log2 e`, also f32). A scale given
//! as f64 is rounded to f32 once, here, and the reference widens that same f32 back to f64
//! exactly, so a kernel and the reference it is checked against always use the same number.

use crate::error::{Error, Result};

/// `O = softmax(scale * Q K^T) V`'s scale, as the f32 the kernels multiply by.
///
/// Converts from `f32` and `f64` (rounded to nearest f32), so calls take `impl Into<Scale>`:
/// `0.125`, `1.0 / (d as f64).sqrt()` and `Scale::default_for(d)` all work. Every call checks it
/// (finite and positive) and returns [`Error::InvalidArgument`] otherwise; [`Scale::new`] checks
/// it early.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Scale(f32);

impl Scale {
    /// A checked scale: finite and positive.
    pub fn new(value: f32) -> Result<Self> {
        let s = Scale(value);
        s.check()?;
        Ok(s)
    }

    /// The usual `1 / sqrt(head_dim)`, rounded to f32.
    pub fn default_for(head_dim: usize) -> Self {
        Scale((1.0 / (head_dim as f64).sqrt()) as f32)
    }

    /// The f32 the kernels multiply by.
    pub fn get(self) -> f32 {
        self.0
    }

    /// The same value widened to f64 (exactly), as the reference and the bounds use it.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0)
    }

    /// Finite and positive, or the typed error every call returns.
    pub fn check(self) -> Result<()> {
        if self.0.is_finite() && self.0 > 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                what: "softmax scale",
                detail: format!("{} is not finite and positive", self.0),
            })
        }
    }
}

impl From<f32> for Scale {
    fn from(value: f32) -> Self {
        Scale(value)
    }
}

impl From<f64> for Scale {
    /// Rounds to the nearest f32 (what the kernels use); a value outside f32's range becomes
    /// infinite and is refused by the call.
    fn from(value: f64) -> Self {
        Scale(value as f32)
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_rounds_once_and_widens_exactly() {
        let s = Scale::from(1.0 / 128f64.sqrt());
        assert_eq!(s.get(), (1.0 / 128f64.sqrt()) as f32);
        assert_eq!(s.as_f64(), f64::from(s.get()));
        assert_eq!(Scale::default_for(128), s);
    }

    #[test]
    fn bad_scales_are_typed_errors() {
        for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                Scale::new(bad),
                Err(Error::InvalidArgument {
                    what: "softmax scale",
                    ..
                })
            ));
        }
        // Beyond f32's range: infinite, refused.
        assert!(Scale::from(1e300).check().is_err());
    }
}
