//! How samples become rows.

use crate::error::{Error, Result};
use crate::layout::MAX_ROW_TOKENS;

/// Options of [`crate::batch::Batch::shared`] and [`crate::batch::Batch::paired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOptions {
    /// Row capacity in tokens, at most [`MAX_ROW_TOKENS`]; a sample must fit in one row.
    pub max_len: usize,
    /// When set, every token id must be below it.
    pub vocab: Option<u32>,
    /// Cut over-long samples (from the ends of their longest completions) instead of failing;
    /// what was cut is reported in [`crate::batch::Batch::truncations`].
    pub truncate: bool,
    /// When set, the row length is rounded up to a multiple of it (for example the tile side);
    /// it must divide `max_len`.
    pub round_to: Option<usize>,
    /// Token id written at padding positions (never scored, seen by nobody).
    pub pad_token: u32,
}

impl BatchOptions {
    /// Rows of at most `max_len` tokens; no vocabulary check, no truncation, no rounding, pad 0.
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            vocab: None,
            truncate: false,
            round_to: None,
            pad_token: 0,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_len == 0 {
            return Err(Error::InvalidArgument {
                what: "max_len",
                detail: "0: a row needs at least one token".into(),
            });
        }
        // Rows are padded up to a multiple of round_to (at most max_len), so max_len bounds the
        // host memory of every row built.
        if self.max_len > MAX_ROW_TOKENS {
            return Err(Error::RowTooLong {
                what: "BatchOptions::max_len",
                tokens: self.max_len as u128,
                max: MAX_ROW_TOKENS,
            });
        }
        if let Some(m) = self.round_to {
            if m == 0 || self.max_len % m != 0 {
                return Err(Error::InvalidArgument {
                    what: "round_to",
                    detail: format!("{m} must be positive and divide max_len {}", self.max_len),
                });
            }
        }
        if let Some(v) = self.vocab {
            if self.pad_token >= v {
                return Err(Error::InvalidArgument {
                    what: "pad_token",
                    detail: format!("{} is not below the vocabulary size {v}", self.pad_token),
                });
            }
        }
        Ok(())
    }
}
