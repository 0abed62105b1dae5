//! The shape of one attention call: `rows` rows of `n` tokens, `q_heads` query heads reading
//! `kv_heads` key/value heads (GQA: query head `h` reads kv head `h / (q_heads / kv_heads)`),
//! each of `head_dim`.
//!
//! Dense layouts used by the reference and by default views (token-major, like FlashAttention):
//! Q and O `[rows, n, q_heads, head_dim]`, K and V `[rows, n, kv_heads, head_dim]`,
//! LSE `[rows, q_heads, n]` (natural log, fp32 on the device).

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttnShape {
    pub rows: usize,
    pub n: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Checks what every caller needs: non-zero sizes, GQA divisibility, and element counts that
    /// fit the int32 token indexing of plans and kernels and the 64-bit element offsets.
    pub fn validate(&self) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::NoRows { what: "shape.rows" });
        }
        if self.n == 0 {
            return Err(Error::EmptyRow { row: 0 });
        }
        if self.kv_heads == 0 || self.q_heads == 0 || self.q_heads % self.kv_heads != 0 {
            return Err(Error::HeadCountMismatch {
                q_heads: self.q_heads,
                kv_heads: self.kv_heads,
            });
        }
        if self.head_dim == 0 {
            return Err(Error::UnsupportedHeadDim { head_dim: 0 });
        }
        for (what, v) in [
            ("rows", self.rows),
            ("n", self.n),
            ("q_heads", self.q_heads),
            ("head_dim", self.head_dim),
        ] {
            if v > i32::MAX as usize {
                return Err(Error::IndexOverflow {
                    what,
                    value: v as u128,
                });
            }
        }
        // Token indices (row * n + i) are int32 in the plan and the kernels; element offsets are
        // 64-bit.
        let tokens = (self.rows as u128) * (self.n as u128);
        if tokens > i32::MAX as u128 {
            return Err(Error::IndexOverflow {
                what: "rows * n",
                value: tokens,
            });
        }
        let q = tokens * (self.q_heads as u128) * (self.head_dim as u128);
        if q > i64::MAX as u128 {
            return Err(Error::IndexOverflow {
                what: "rows * n * q_heads * head_dim",
                value: q,
            });
        }
        Ok(())
    }

    /// Query heads per kv head.
    pub fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }

    /// Elements of Q (and O, dO, dQ).
    pub fn q_len(&self) -> usize {
        self.rows * self.n * self.q_heads * self.head_dim
    }

    /// Elements of K (and V, dK, dV).
    pub fn kv_len(&self) -> usize {
        self.rows * self.n * self.kv_heads * self.head_dim
    }

    /// Elements of LSE.
    pub fn lse_len(&self) -> usize {
        self.rows * self.q_heads * self.n
    }
}
