//! Rotary position embedding in f64 (the formula of [`crate::rotary`], angles computed in f64,
//! not read from a rounded table): the oracle of the CPU path and of the rotary kernel.

use crate::error::{Error, Result};
use crate::reference::element::Element;
use crate::rotary::{angle, RotaryDirection};

/// Rotates every head of `x` (`[tokens, heads, head_dim]`, dense) by its token's position id
/// (`positions`, one per token) and returns the result in f64.
///
/// Errors: an odd or zero head dim, `x` not `tokens * heads * head_dim` long, a negative
/// position, a base that is not finite and above 1.
pub fn rotary<T: Element>(
    x: &[T],
    heads: usize,
    head_dim: usize,
    positions: &[i32],
    theta: f64,
    direction: RotaryDirection,
) -> Result<Vec<f64>> {
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(Error::UnsupportedHeadDim { head_dim });
    }
    if !(theta.is_finite() && theta > 1.0) {
        return Err(Error::InvalidArgument {
            what: "theta",
            detail: format!("{theta} is not a finite number above 1"),
        });
    }
    let expected = positions.len() * heads * head_dim;
    if x.len() != expected {
        return Err(Error::LengthMismatch {
            what: "x [tokens, heads, head_dim]",
            expected,
            got: x.len(),
        });
    }
    let half = head_dim / 2;
    let sign = match direction {
        RotaryDirection::Forward => 1.0,
        RotaryDirection::Inverse => -1.0,
    };
    let mut out = vec![0f64; expected];
    for (t, &pos) in positions.iter().enumerate() {
        if pos < 0 {
            return Err(Error::InvalidArgument {
                what: "positions",
                detail: format!("position id {pos} at index {t} is negative"),
            });
        }
        for h in 0..heads {
            let base = (t * heads + h) * head_dim;
            for i in 0..half {
                let a = angle(pos as usize, i, head_dim, theta);
                let (c, s) = (a.cos(), sign * a.sin());
                let (x0, x1) = (x[base + i].to_f64(), x[base + i + half].to_f64());
                out[base + i] = x0 * c - x1 * s;
                out[base + i + half] = x1 * c + x0 * s;
            }
        }
    }
    Ok(out)
}
