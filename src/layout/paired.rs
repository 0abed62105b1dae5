//! The unshared ("paired") form of a shared item: each root-to-leaf path as its own causal
//! sequence, the way a trainer without prefix sharing would feed it. The index map from its
//! tokens to the shared row is what lets tests and the batch builder move tensors between the two.

/// One unshared causal sequence of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedSeq {
    /// The item of the shared row it comes from.
    pub item: usize,
    /// The leaf node its path ends at (for prefix + k, completion `leaf - 1`).
    pub leaf: usize,
    /// `shared[t]` = the row index of the token at position `t` of this sequence.
    pub shared: Vec<usize>,
}

impl PairedSeq {
    /// Tokens in the sequence.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Always false: paths hold at least the root's tokens.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// The causal `vis_end` of the sequence standing alone in a row of `n >= len()` tokens
    /// (padding after it).
    pub fn causal_vis_end(&self, n: usize) -> Vec<i32> {
        let len = self.len();
        (0..n)
            .map(|j| if j < len { len as i32 } else { j as i32 })
            .collect()
    }

    /// Gathers per-token values of the shared row (`width` values per token) into this
    /// sequence's order.
    pub fn gather<T: Copy>(&self, shared_values: &[T], width: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len() * width);
        for &s in &self.shared {
            out.extend_from_slice(&shared_values[s * width..(s + 1) * width]);
        }
        out
    }
}
