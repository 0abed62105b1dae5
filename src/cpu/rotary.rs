//! The rotary embedding in f32 on the CPU, reading a [`RotaryTable`] (the same table the kernel
//! reads), in place on `[tokens, heads, head_dim]` rows with any token stride (so it can rotate
//! the Q and K heads of a fused QKV buffer without copying them out).

use crate::error::{Error, Result};
use crate::rotary::{RotaryDirection, RotaryTable};

/// Rotates heads `0..heads` of every token of `x`: token `t` starts at element
/// `t * token_stride`, its heads follow each other (`head_dim` apart). `positions` holds one
/// position id per token.
///
/// Errors: a table of another head dim, a position outside the table, a token stride shorter
/// than its heads, `x` too short for the last token.
pub fn apply_rotary(
    x: &mut [f32],
    token_stride: usize,
    heads: usize,
    positions: &[i32],
    table: &RotaryTable,
    direction: RotaryDirection,
) -> Result<()> {
    let d = table.head_dim();
    table.check_positions(positions)?;
    if token_stride < heads * d {
        return Err(Error::InvalidView {
            what: "rotary x",
            detail: format!(
                "token stride {token_stride} is below heads * head_dim = {}",
                heads * d
            ),
        });
    }
    if let Some(last) = positions.len().checked_sub(1) {
        let needed = last * token_stride + heads * d;
        if x.len() < needed {
            return Err(Error::LengthMismatch {
                what: "rotary x (last token's heads)",
                expected: needed,
                got: x.len(),
            });
        }
    }
    let half = d / 2;
    let sign = match direction {
        RotaryDirection::Forward => 1.0,
        RotaryDirection::Inverse => -1.0,
    };
    for (t, &pos) in positions.iter().enumerate() {
        let at = pos as usize * half;
        let (cos, sin) = (&table.cos()[at..at + half], &table.sin()[at..at + half]);
        for h in 0..heads {
            let base = t * token_stride + h * d;
            let (lo, hi) = x[base..base + d].split_at_mut(half);
            for i in 0..half {
                let (c, s) = (cos[i], sign * sin[i]);
                let (x0, x1) = (lo[i], hi[i]);
                lo[i] = x0 * c - x1 * s;
                hi[i] = x1 * c + x0 * s;
            }
        }
    }
    Ok(())
}
