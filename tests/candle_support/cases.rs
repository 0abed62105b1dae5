//! The rows and values of the tests: each layout the crate serves, small enough for the
//! emulator's backward, with values that are exactly bf16/f16 numbers.

use candle_core::DType;
use prefix_attn::layout::{RowBuilder, Tree};
use prefix_attn::{AttnShape, VisEnd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A DPO pair: prompt, chosen, rejected, then padding to `n`.
pub fn dpo(prompt: usize, chosen: usize, rejected: usize, n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    b.prefix_completions(prompt, &[chosen, rejected]).unwrap();
    b.finish(n).unwrap().vis_end().to_vec()
}

/// A GRPO group: one prompt, k completions, padding to `n`.
pub fn grpo(prompt: usize, completions: &[usize], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    b.prefix_completions(prompt, completions).unwrap();
    b.finish(n).unwrap().vis_end().to_vec()
}

/// Packed causal documents, padding to `n`.
pub fn packed(docs: &[usize], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    for &d in docs {
        b.document(d).unwrap();
    }
    b.finish(n).unwrap().vis_end().to_vec()
}

/// A branching conversation: root 9, two turns under it (7 and 6), the first branching again
/// (5 and 4), in DFS preorder; padding to `n`.
pub fn tree(n: usize) -> Vec<i32> {
    let mut t = Tree::new(9).unwrap();
    let a = t.add_child(0, 7).unwrap();
    t.add_child(0, 6).unwrap();
    t.add_child(a, 5).unwrap();
    t.add_child(a, 4).unwrap();
    let mut b = RowBuilder::new();
    b.tree(t).unwrap();
    b.finish(n).unwrap().vis_end().to_vec()
}

/// Mostly padding: a short document, padding, another short prompt with completions, padding.
pub fn padded(n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    b.document(5).unwrap();
    b.padding(9).unwrap();
    b.prefix_completions(4, &[3, 2]).unwrap();
    b.finish(n).unwrap().vis_end().to_vec()
}

/// One test case: rows, heads, head dim, dtype, and the seed of its values.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub rows: Vec<Vec<i32>>,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: DType,
    pub seed: u64,
}

impl Case {
    pub fn vis_end(&self) -> VisEnd {
        VisEnd::from_rows(&self.rows).unwrap()
    }

    pub fn shape(&self) -> AttnShape {
        AttnShape {
            rows: self.rows.len(),
            n: self.rows[0].len(),
            q_heads: self.q_heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        }
    }
}

/// `x` rounded to `dtype` (exactly representable there, and in f32).
pub fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::BF16 => half::bf16::from_f64(x).to_f64(),
        DType::F16 => half::f16::from_f64(x).to_f64(),
        other => panic!("no rounding to {other:?}"),
    }
}

/// Q, K, V and dO of a case: uniform values (Q wider, for peaked softmaxes) rounded to its dtype.
pub struct Values {
    pub q: Vec<f64>,
    pub k: Vec<f64>,
    pub v: Vec<f64>,
    pub d_o: Vec<f64>,
}

pub fn values(case: &Case) -> Values {
    let sh = case.shape();
    let mut rng = StdRng::seed_from_u64(case.seed);
    let mut draw = |len: usize, half_width: f64| -> Vec<f64> {
        (0..len)
            .map(|_| round_to(case.dtype, rng.random_range(-half_width..half_width)))
            .collect()
    };
    Values {
        q: draw(sh.q_len(), 2.0),
        k: draw(sh.kv_len(), 1.0),
        v: draw(sh.kv_len(), 1.0),
        d_o: draw(sh.q_len(), 1.0),
    }
}
