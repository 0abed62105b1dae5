//! Rotary position embedding (RoPE) tables, in the "rotate half" convention of GPT-NeoX, Llama
//! and Mistral: in each head of dimension `d`, element `i < d/2` is paired with `i + d/2` and the
//! pair is rotated by the angle `pos * theta^(-2i/d)`, where `pos` is the token's position id:
//!
//! ```text
//! out[i]       = x[i] cos(a) - x[i + d/2] sin(a)
//! out[i + d/2] = x[i + d/2] cos(a) + x[i] sin(a)
//! ```
//!
//! With prefix sharing the position ids come from the layout ([`crate::layout::Row::positions`],
//! [`crate::batch::Batch::positions`]): a completion token gets the position it would have in
//! prompt+completion, so its rotation matches the unshared sequence exactly.
//!
//! A rotation is orthogonal, so its inverse is also its backward: rotating by `-a` maps `out`
//! back to `x`, and a gradient `dL/dout` back to `dL/dx`. The CPU path
//! ([`crate::cpu::apply_rotary`]), the f64 reference ([`crate::reference::rotary`]) and the CUDA
//! kernel (`prefix_attn::ops::rotary`) all take a [`RotaryTable`] or its formula.

use crate::error::{Error, Result};

/// Which way to rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RotaryDirection {
    /// By `+a`: the embedding itself.
    Forward,
    /// By `-a`: the inverse, which is also the backward (gradient) of [`RotaryDirection::Forward`].
    Inverse,
}

/// `cos` and `sin` of every (position, pair) angle, each `[max_positions, head_dim / 2]` f32,
/// computed in f64 and rounded once (what trainers cache as "rotary embeddings").
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryTable {
    head_dim: usize,
    max_positions: usize,
    theta: f64,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Mistral-7B v0.1's and Llama 2's base (`rope_theta`); later models use larger ones.
pub const DEFAULT_THETA: f64 = 10_000.0;

impl RotaryTable {
    /// Positions `0..max_positions`. Errors: an odd or zero head dim, no positions, a table past
    /// the int32 indexing of the kernels, a base that is not finite and above 1.
    pub fn new(head_dim: usize, max_positions: usize, theta: f64) -> Result<Self> {
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(Error::UnsupportedHeadDim { head_dim });
        }
        if max_positions == 0 {
            return Err(Error::InvalidArgument {
                what: "max_positions",
                detail: "0: the table needs at least one position".into(),
            });
        }
        let entries = max_positions as u128 * (head_dim / 2) as u128;
        if entries > i32::MAX as u128 {
            return Err(Error::IndexOverflow {
                what: "rotary table entries (max_positions * head_dim / 2)",
                value: entries,
            });
        }
        if !(theta.is_finite() && theta > 1.0) {
            return Err(Error::InvalidArgument {
                what: "theta",
                detail: format!("{theta} is not a finite number above 1"),
            });
        }
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for i in 0..half {
                let a = angle(pos, i, head_dim, theta);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok(Self {
            head_dim,
            max_positions,
            theta,
            cos,
            sin,
        })
    }

    /// A table just large enough for `positions` (the largest position + 1). Errors as
    /// [`RotaryTable::new`], and `InvalidArgument` for a negative position.
    pub fn for_positions(head_dim: usize, positions: &[i32], theta: f64) -> Result<Self> {
        if let Some((at, &p)) = positions.iter().enumerate().find(|(_, &p)| p < 0) {
            return Err(Error::InvalidArgument {
                what: "positions",
                detail: format!("position id {p} at index {at} is negative"),
            });
        }
        let max = positions.iter().copied().max().unwrap_or(0) as usize;
        Self::new(head_dim, max + 1, theta)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// `[max_positions, head_dim / 2]`.
    pub fn cos(&self) -> &[f32] {
        &self.cos
    }

    /// `[max_positions, head_dim / 2]`.
    pub fn sin(&self) -> &[f32] {
        &self.sin
    }

    /// Checks every position id is in `0..max_positions` (what the kernel and the CPU path rely
    /// on to index the table).
    pub fn check_positions(&self, positions: &[i32]) -> Result<()> {
        match positions
            .iter()
            .enumerate()
            .find(|(_, &p)| p < 0 || p as usize >= self.max_positions)
        {
            None => Ok(()),
            Some((at, &p)) => Err(Error::InvalidArgument {
                what: "positions",
                detail: format!(
                    "position id {p} at index {at} is outside the rotary table's 0..{}",
                    self.max_positions
                ),
            }),
        }
    }
}

/// The rotation angle of pair `i` at position `pos`, in f64: `pos * theta^(-2i/d)`.
pub fn angle(pos: usize, i: usize, head_dim: usize, theta: f64) -> f64 {
    pos as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_holds_the_formula_and_rejects_bad_input() {
        let t = RotaryTable::new(8, 5, DEFAULT_THETA).unwrap();
        assert_eq!(t.cos().len(), 20);
        // Position 0: no rotation.
        assert!(t.cos()[..4].iter().all(|&c| c == 1.0));
        assert!(t.sin()[..4].iter().all(|&s| s == 0.0));
        // Pair 0 turns by one radian per position.
        assert_eq!(t.sin()[3 * 4], (3.0f64).sin() as f32);
        assert_eq!(
            t.cos()[4 * 4 + 1],
            (4.0 * 10_000f64.powf(-0.25)).cos() as f32
        );
        assert!(RotaryTable::new(7, 5, DEFAULT_THETA).is_err());
        assert!(RotaryTable::new(8, 0, DEFAULT_THETA).is_err());
        assert!(RotaryTable::new(8, 5, f64::NAN).is_err());
        assert!(RotaryTable::new(8, 5, 1.0).is_err());
        assert!(RotaryTable::for_positions(8, &[0, 3, -1], DEFAULT_THETA).is_err());
        let t = RotaryTable::for_positions(8, &[0, 3, 2], DEFAULT_THETA).unwrap();
        assert_eq!(t.max_positions(), 4);
        assert!(t.check_positions(&[0, 1, 2, 3]).is_ok());
        assert!(t.check_positions(&[0, 4]).is_err());
        assert!(t.check_positions(&[-1]).is_err());
    }
}
