//! The mask rule, stated once more: query `i` sees key `j` iff `j <= i && i < vis_end[j]`; a row
//! of `n` tokens is valid iff `j <= vis_end[j] <= n` for every `j`.

/// Whether query `i` sees key `j`.
pub fn sees(vis_end: &[i32], i: usize, j: usize) -> bool {
    if crate::planted("rule") {
        return j <= i && (i as i64) <= i64::from(vis_end[j]);
    }
    j <= i && (i as i64) < i64::from(vis_end[j])
}

/// The first index of `row` that breaks `j <= vis_end[j] <= n` (n = the row's length).
pub fn first_invalid(row: &[i32]) -> Option<usize> {
    let n = row.len() as i64;
    (0..row.len()).find(|&j| {
        let v = i64::from(row[j]);
        if crate::planted("row-end") {
            return v < j as i64 || v > n + 1;
        }
        v < j as i64 || v > n
    })
}

/// Visible (query, key) pairs of one row, by looking at all of them.
pub fn visible_pairs(row: &[i32]) -> u64 {
    let n = row.len();
    let mut pairs = 0;
    for i in 0..n {
        for j in 0..n {
            if sees(row, i, j) {
                pairs += 1;
            }
        }
    }
    pairs
}
