//! Back from logits to per-completion log-probs. The logit at position `t` predicts the token at
//! `t + 1` of the same sequence; in a shared row the next token of a prompt's last token is the
//! first token of *every* completion, so that one logit row is read k times (no duplicated prompt
//! token is needed). The map lists, per completion, the flat logit row (`row * n + t`) and the
//! target token of each scored token, in order.

use crate::error::{Error, Result};
use crate::reference::Element;

/// A completion: sample index and completion index within the sample (for trees, the leaf in
/// DFS preorder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompletionRef {
    pub sample: usize,
    pub completion: usize,
}

/// Where each completion's scored tokens are predicted, as compressed lists: completion `c` owns
/// entries `offsets[c]..offsets[c + 1]` of `logit_rows` and `targets`. Completions are sorted by
/// (sample, completion), whatever the packing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProbMap {
    pub(crate) completions: Vec<CompletionRef>,
    pub(crate) offsets: Vec<usize>,
    pub(crate) logit_rows: Vec<i32>,
    pub(crate) targets: Vec<u32>,
    /// `rows * n`: logit rows of the batch.
    pub(crate) positions: usize,
}

/// Gathered log-probs: per scored token (same order as the map's entries) and per completion.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProbs {
    pub offsets: Vec<usize>,
    pub per_token: Vec<f64>,
    /// Sum over each completion's scored tokens.
    pub sums: Vec<f64>,
}

impl LogProbs {
    /// The log-probs of completion `c`'s scored tokens.
    pub fn tokens(&self, c: usize) -> &[f64] {
        &self.per_token[self.offsets[c]..self.offsets[c + 1]]
    }
}

impl LogProbMap {
    pub fn completions(&self) -> &[CompletionRef] {
        &self.completions
    }

    /// Index of a completion in [`Self::completions`].
    pub fn find(&self, sample: usize, completion: usize) -> Option<usize> {
        self.completions
            .binary_search(&CompletionRef { sample, completion })
            .ok()
    }

    /// `completions + 1` offsets into the entries.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Per entry: the flat logit row `row * n + t` that predicts it.
    pub fn logit_rows(&self) -> &[i32] {
        &self.logit_rows
    }

    /// Per entry: the token id whose log-prob is read.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// Log-probs from logits `[rows, n, vocab]` (row-major, any [`Element`]), through a
    /// log-softmax in f64 at each needed position. A target not below `vocab` is
    /// `TokenOutOfVocab` naming the sample, with `position` = the index of that scored token in
    /// its completion's list.
    ///
    /// Every logit row that is read must be usable: NaN or +inf anywhere in it, or -inf at the
    /// target, is [`Error::NonFiniteLogit`] naming the completion, the scored token and the
    /// logit (a NaN would otherwise spread silently into the sums). -inf elsewhere is a masked
    /// vocabulary entry: probability 0, it adds nothing to the log-sum-exp.
    pub fn gather<T: Element>(&self, logits: &[T], vocab: usize) -> Result<LogProbs> {
        self.check(logits.len(), vocab)?;
        let mut per_token = Vec::with_capacity(self.targets.len());
        for e in 0..self.targets.len() {
            let row = self.row(logits, vocab, e)?;
            per_token.push(row[self.targets[e] as usize] - log_sum_exp(&row));
        }
        let sums = self
            .offsets
            .windows(2)
            .map(|w| per_token[w[0]..w[1]].iter().sum())
            .collect();
        Ok(LogProbs {
            offsets: self.offsets.clone(),
            per_token,
            sums,
        })
    }

    /// The gradient of a loss with respect to the logits, given its gradient `d_token` with
    /// respect to each gathered log-prob (per entry): `d logits[p] += g * (onehot(target) -
    /// softmax(logits[p]))`. Logit rows no completion reads get 0. Logits are checked as in
    /// [`Self::gather`].
    pub fn backward<T: Element>(
        &self,
        logits: &[T],
        vocab: usize,
        d_token: &[f64],
    ) -> Result<Vec<f64>> {
        self.check(logits.len(), vocab)?;
        if d_token.len() != self.targets.len() {
            return Err(Error::LengthMismatch {
                what: "d_token (one per gathered log-prob)",
                expected: self.targets.len(),
                got: d_token.len(),
            });
        }
        let mut d_logits = vec![0.0; logits.len()];
        for (e, &g) in d_token.iter().enumerate() {
            let row = self.row(logits, vocab, e)?;
            let lse = log_sum_exp(&row);
            let at = self.logit_rows[e] as usize * vocab;
            for (x, d) in row.iter().zip(&mut d_logits[at..at + vocab]) {
                *d -= g * (x - lse).exp();
            }
            d_logits[at + self.targets[e] as usize] += g;
        }
        Ok(d_logits)
    }

    /// Spreads a gradient per completion sum (`d_sums`, one per completion) over its entries.
    pub fn spread_sums(&self, d_sums: &[f64]) -> Result<Vec<f64>> {
        if d_sums.len() != self.completions.len() {
            return Err(Error::LengthMismatch {
                what: "d_sums (one per completion)",
                expected: self.completions.len(),
                got: d_sums.len(),
            });
        }
        let mut d = vec![0.0; self.targets.len()];
        for (c, w) in self.offsets.windows(2).enumerate() {
            d[w[0]..w[1]].fill(d_sums[c]);
        }
        Ok(d)
    }

    fn check(&self, len: usize, vocab: usize) -> Result<()> {
        if vocab == 0 {
            return Err(Error::InvalidArgument {
                what: "vocab",
                detail: "0".into(),
            });
        }
        let Some(expected) = self.positions.checked_mul(vocab) else {
            return Err(Error::IndexOverflow {
                what: "logits length rows * n * vocab",
                value: self.positions as u128 * vocab as u128,
            });
        };
        if len != expected {
            return Err(Error::LengthMismatch {
                what: "logits [rows, n, vocab]",
                expected,
                got: len,
            });
        }
        self.check_targets(vocab)
    }

    /// Every target below `vocab`; else `TokenOutOfVocab` for the first one that is not (in
    /// completion order), naming its sample and its index in the completion's list.
    pub(crate) fn check_targets(&self, vocab: usize) -> Result<()> {
        for (c, w) in self.offsets.windows(2).enumerate() {
            if let Some(e) = (w[0]..w[1]).find(|&e| self.targets[e] as usize >= vocab) {
                return Err(Error::TokenOutOfVocab {
                    sample: self.completions[c].sample,
                    position: e - w[0],
                    token: self.targets[e],
                    vocab: vocab.min(u32::MAX as usize) as u32,
                });
            }
        }
        Ok(())
    }

    /// The logit row entry `e` reads, widened to f64, once it is known to be usable (see
    /// [`Self::gather`]).
    fn row<T: Element>(&self, logits: &[T], vocab: usize, e: usize) -> Result<Vec<f64>> {
        let at = self.logit_rows[e] as usize * vocab;
        let row: Vec<f64> = logits[at..at + vocab].iter().map(|x| x.to_f64()).collect();
        let target = self.targets[e] as usize;
        let bad = row.iter().enumerate().find_map(|(j, &x)| {
            if x.is_nan() {
                Some((j, "NaN"))
            } else if x == f64::INFINITY {
                Some((j, "+inf"))
            } else if x == f64::NEG_INFINITY && j == target {
                Some((j, "-inf"))
            } else {
                None
            }
        });
        match bad {
            None => Ok(row),
            Some((vocab_index, value)) => {
                // The completion owning entry e: the last offset at or below e.
                let c = self.offsets.partition_point(|&o| o <= e) - 1;
                Err(Error::NonFiniteLogit {
                    sample: self.completions[c].sample,
                    completion: self.completions[c].completion,
                    position: e - self.offsets[c],
                    logit_row: self.logit_rows[e] as usize,
                    vocab_index,
                    value,
                })
            }
        }
    }
}

fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}
