//! Truncation, only when asked for: a sample longer than `max_len` loses tokens from the ends of
//! its completions (leaf segments), always from the currently longest one (the later one on a
//! tie), so the prompt and every completion survive with at least one token. What was cut is
//! reported. Without the option it is `SampleTooLong`; when even that cannot fit (the prompt or
//! shared segments alone are too long), `SampleTooLong` carries the shortest length truncation
//! could reach.

use std::collections::BinaryHeap;

use crate::batch::sample::Checked;
use crate::error::{Error, Result};

/// Tokens cut from the end of one completion's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub sample: usize,
    /// The completion (root-to-leaf path, in leaf order) whose leaf segment was shortened.
    pub completion: usize,
    /// Tokens of the leaf segment kept.
    pub kept: usize,
    /// Tokens cut from its end.
    pub cut: usize,
}

/// Makes `s` fit in `max_len` tokens, or says why it cannot.
pub(crate) fn fit(s: &mut Checked, max_len: usize, truncate: bool) -> Result<Vec<Truncation>> {
    let total: usize = s.tree.tokens.iter().map(Vec::len).sum();
    if total <= max_len {
        return Ok(Vec::new());
    }
    let leaves = s.tree.layout_tree()?.leaves();
    let cuttable: usize = leaves.iter().map(|&l| s.tree.tokens[l].len() - 1).sum();
    let excess = total - max_len;
    if !truncate || cuttable < excess {
        return Err(Error::SampleTooLong {
            sample: s.sample,
            len: total,
            max_len,
            truncated_len: truncate.then_some(total - cuttable),
        });
    }
    let mut heap: BinaryHeap<(usize, usize)> = leaves
        .iter()
        .enumerate()
        .map(|(c, &l)| (s.tree.tokens[l].len(), c))
        .collect();
    for _ in 0..excess {
        // `cuttable >= excess` guarantees the top still has at least two tokens.
        let (len, c) = heap.pop().expect("a leaf to cut");
        heap.push((len - 1, c));
    }
    let mut cuts: Vec<Truncation> = heap
        .into_iter()
        .filter_map(|(kept, c)| {
            let before = s.tree.tokens[leaves[c]].len();
            (kept < before).then_some(Truncation {
                sample: s.sample,
                completion: c,
                kept,
                cut: before - kept,
            })
        })
        .collect();
    cuts.sort_by_key(|t| t.completion);
    for t in &cuts {
        s.tree.tokens[leaves[t.completion]].truncate(t.kept);
    }
    Ok(cuts)
}
