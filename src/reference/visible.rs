//! Per-row lists of the keys each query sees, built once per row and shared by every head.
//!
//! Memory is one entry per visible (query, key) pair of the row plus `n + 1` offsets: never the
//! dense `n x n` mask.

use crate::mask::rule::visible;

/// For one row: query `i` sees exactly `keys(i)`, in ascending key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VisibleKeys {
    offsets: Vec<usize>,
    keys: Vec<u32>,
}

impl VisibleKeys {
    /// Lists for one row whose `vis_end` is already validated (`j <= vis_end[j] <= n`, which
    /// [`crate::mask::VisEnd`] guarantees).
    pub(crate) fn build(vis_end: &[i32]) -> Self {
        let n = vis_end.len();
        // Key j is seen by the queries j .. vis_end[j]: count per query with a difference array.
        let mut starts = vec![0isize; n + 1];
        for (j, &end) in vis_end.iter().enumerate() {
            let end = end as usize;
            if end > j {
                starts[j] += 1;
                starts[end] -= 1;
            }
        }
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        let mut seen_by_query = 0isize;
        for &delta in &starts[..n] {
            seen_by_query += delta;
            offsets.push(offsets.last().copied().unwrap_or(0) + seen_by_query as usize);
        }
        // Fill key by key so every query's list comes out in ascending key order.
        let mut keys = vec![0u32; offsets[n]];
        let mut cursor = offsets[..n].to_vec();
        for (j, &end) in vis_end.iter().enumerate() {
            for i in j..end as usize {
                debug_assert!(visible(vis_end, i, j));
                keys[cursor[i]] = j as u32;
                cursor[i] += 1;
            }
        }
        Self { offsets, keys }
    }

    /// Number of queries (the row length).
    pub(crate) fn n(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The keys query `i` sees, ascending. Panics if `i >= n` (an internal index, never user
    /// input).
    pub(crate) fn keys(&self, i: usize) -> &[u32] {
        &self.keys[self.offsets[i]..self.offsets[i + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_the_rule_pair_by_pair() {
        // Prefix of 2 (seen up to the sample end, 7), completions [2, 4) and [4, 7), then one
        // padding token (vis_end[7] = 7, seen by nobody).
        let vis_end = [7, 7, 4, 4, 7, 7, 7, 7];
        let lists = VisibleKeys::build(&vis_end);
        assert_eq!(lists.n(), 8);
        let mut total = 0;
        for i in 0..8 {
            let want: Vec<u32> = (0..8)
                .filter(|&j| visible(&vis_end, i, j))
                .map(|j| j as u32)
                .collect();
            assert_eq!(lists.keys(i), want.as_slice(), "query {i}");
            total += want.len();
        }
        assert_eq!(
            total as u64,
            crate::mask::rule::visible_pairs_in_row(&vis_end)
        );
        assert_eq!(lists.keys.len(), total);
        assert!(lists.keys(7).is_empty(), "the padding query sees nothing");
        assert_eq!(lists.keys(4), &[0, 1, 4]);
    }
}
