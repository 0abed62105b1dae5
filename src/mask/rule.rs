//! The one mask rule. Each row of tokens carries one int32 per key token, `vis_end[j]`:
//! query `i` sees key `j` iff `j <= i && i < vis_end[j]`.
//!
//! Causal rows, packed documents, prefix + k completions, trees in DFS preorder and padding
//! (`vis_end[j] = j`, visible to nobody) are all just different `vis_end`. A query that sees no
//! key has output 0 and log-sum-exp `-inf` everywhere in this crate (reference and kernels).

use crate::error::{Error, Result};

/// Whether query `i` sees key `j` under `vis_end` (the rule, in one place).
#[inline]
pub fn visible(vis_end: &[i32], i: usize, j: usize) -> bool {
    j <= i && (i as i64) < vis_end[j] as i64
}

/// Checks one row: non-empty and `j <= vis_end[j] <= n` for every `j`. `row` only labels errors.
pub fn validate_row(row: usize, vis_end: &[i32]) -> Result<()> {
    let n = vis_end.len();
    if n == 0 {
        return Err(Error::EmptyRow { row });
    }
    if n > i32::MAX as usize {
        return Err(Error::IndexOverflow {
            what: "row length",
            value: n as u128,
        });
    }
    for (j, &v) in vis_end.iter().enumerate() {
        if (v as i64) < j as i64 || v as i64 > n as i64 {
            return Err(Error::VisEndOutOfRange {
                row,
                index: j,
                value: v as i64,
                len: n,
            });
        }
    }
    Ok(())
}

/// Number of (query, key) pairs visible in one valid row: each key `j` is seen by the queries
/// `j..vis_end[j]`.
pub fn visible_pairs_in_row(vis_end: &[i32]) -> u64 {
    vis_end
        .iter()
        .enumerate()
        .map(|(j, &v)| (v as i64 - j as i64).max(0) as u64)
        .sum()
}

/// The `vis_end` of a batch: `rows` rows of `n` tokens each, row-major, validated on
/// construction. Rows share one length so tensors can be `[rows, n, heads, dim]`; shorter
/// content is padded with `vis_end[j] = j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisEnd {
    n: usize,
    data: Vec<i32>,
}

impl VisEnd {
    /// `data` holds `rows * n` entries, row after row (at least one row).
    pub fn new(n: usize, data: Vec<i32>) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::NoRows { what: "vis_end" });
        }
        if n == 0 {
            return Err(Error::EmptyRow { row: 0 });
        }
        // Before the length check: a length that cannot be a row is the culprit, not `data`.
        if n > i32::MAX as usize {
            return Err(Error::IndexOverflow {
                what: "row length n",
                value: n as u128,
            });
        }
        if data.len() % n != 0 {
            return Err(Error::LengthMismatch {
                what: "vis_end (a multiple of the row length n)",
                expected: n * (data.len() / n).max(1),
                got: data.len(),
            });
        }
        if data.len() > i32::MAX as usize {
            return Err(Error::IndexOverflow {
                what: "rows * n",
                value: data.len() as u128,
            });
        }
        for (r, row) in data.chunks(n).enumerate() {
            validate_row(r, row)?;
        }
        Ok(Self { n, data })
    }

    /// One `vis_end` per row (at least one); all rows must have the same length.
    pub fn from_rows<R: AsRef<[i32]>>(rows: &[R]) -> Result<Self> {
        let Some(first) = rows.first() else {
            return Err(Error::NoRows {
                what: "VisEnd::from_rows",
            });
        };
        let n = first.as_ref().len();
        let mut data = Vec::with_capacity(n * rows.len());
        for (r, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if row.is_empty() {
                return Err(Error::EmptyRow { row: r });
            }
            if row.len() != n {
                return Err(Error::LengthMismatch {
                    what: "row length (all rows of a batch share one length)",
                    expected: n,
                    got: row.len(),
                });
            }
            data.extend_from_slice(row);
        }
        Self::new(n, data)
    }

    /// Tokens per row.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.n
    }

    /// Row `r`'s `vis_end`.
    pub fn row(&self, r: usize) -> &[i32] {
        &self.data[r * self.n..(r + 1) * self.n]
    }

    /// All rows, row-major (`rows * n` entries): the array uploaded for the kernels.
    pub fn as_slice(&self) -> &[i32] {
        &self.data
    }

    /// Visible (query, key) pairs over all rows.
    pub fn visible_pairs(&self) -> u64 {
        self.data.chunks(self.n).map(visible_pairs_in_row).sum()
    }
}
