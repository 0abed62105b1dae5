//! The elements a strided view `[rows, n, heads, head_dim]` reaches: element (r, t, h, e) is at
//! offset `r * row + t * token + h * head + e` from element 0 (the head dim contiguous), so the
//! element address is `addr + 2 * offset` for 2-byte elements.

/// Every element offset of the view, by enumeration (sizes are small in the targets).
pub fn offsets(dims: [usize; 4], strides: [usize; 3]) -> Vec<u128> {
    let [rows, n, heads, d] = dims;
    let mut out = Vec::with_capacity(rows * n * heads * d);
    for r in 0..rows {
        for t in 0..n {
            for h in 0..heads {
                let base = r as u128 * strides[0] as u128
                    + t as u128 * strides[1] as u128
                    + h as u128 * strides[2] as u128;
                for e in 0..d {
                    out.push(base + e as u128);
                }
            }
        }
    }
    out
}

/// One past the largest offset the view reaches: the buffer length it needs.
pub fn reach(dims: [usize; 4], strides: [usize; 3]) -> u128 {
    let r = offsets(dims, strides)
        .into_iter()
        .max()
        .map_or(0, |m| m + 1);
    if crate::planted("reach") {
        return r - 1;
    }
    r
}

/// Whether two elements of the view share one address.
pub fn self_overlaps(dims: [usize; 4], strides: [usize; 3]) -> bool {
    let mut all = offsets(dims, strides);
    all.sort_unstable();
    all.windows(2).any(|w| w[0] == w[1])
}

/// The global element indices (`addr / 2 + offset`) of a view whose `addr` is even, sorted.
pub fn elements(addr: u64, dims: [usize; 4], strides: [usize; 3]) -> Vec<u128> {
    let base = u128::from(addr / 2);
    let mut all: Vec<u128> = offsets(dims, strides)
        .into_iter()
        .map(|o| base + o)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Whether two sorted element sets share an element.
pub fn meet(a: &[u128], b: &[u128]) -> Option<u128> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less if crate::planted("overlap") && a[i] + 1 == b[j] => {
                return Some(b[j]);
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return Some(a[i]),
        }
    }
    None
}
