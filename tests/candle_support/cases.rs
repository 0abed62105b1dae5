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

// The cases both test binaries run (tests/candle_op.rs on the CPU, tests/candle_device.rs on
// candle's CUDA device): every layout, bf16 and f16, GQA and not, head dims 64 and 128.

/// Two DPO rows of 80 tokens: more than one 64-key tile, so some tiles are skipped.
pub fn dpo_case() -> Case {
    Case {
        name: "dpo bf16 4q/2kv d64",
        rows: vec![dpo(13, 9, 7, 80), dpo(20, 30, 25, 80)],
        q_heads: 4,
        kv_heads: 2,
        head_dim: 64,
        dtype: DType::BF16,
        seed: 1,
    }
}

pub fn grpo_case() -> Case {
    Case {
        name: "grpo f16 2q/2kv d128",
        rows: vec![grpo(11, &[6, 9, 4, 8], 48)],
        q_heads: 2,
        kv_heads: 2,
        head_dim: 128,
        dtype: DType::F16,
        seed: 2,
    }
}

pub fn packed_case() -> Case {
    Case {
        name: "packed bf16 4q/1kv d128",
        rows: vec![packed(&[17, 30, 12, 25], 96)],
        q_heads: 4,
        kv_heads: 1,
        head_dim: 128,
        dtype: DType::BF16,
        seed: 3,
    }
}

pub fn tree_case() -> Case {
    Case {
        name: "tree f16 2q/1kv d64",
        rows: vec![tree(40), tree(40)],
        q_heads: 2,
        kv_heads: 1,
        head_dim: 64,
        dtype: DType::F16,
        seed: 4,
    }
}

/// A row that is mostly padding and one that is padding only, in bf16 and in f16: queries that
/// see nothing get O = 0 and no gradient, keys nobody sees dK = dV = 0, exactly.
pub fn padded_cases() -> [Case; 2] {
    let mut all_padding = RowBuilder::new();
    all_padding.padding(40).unwrap();
    let all_padding = all_padding.finish(40).unwrap().vis_end().to_vec();
    [(DType::BF16, 5), (DType::F16, 6)].map(|(dtype, seed)| Case {
        name: if dtype == DType::BF16 {
            "padded bf16 2q/2kv d64"
        } else {
            "padded f16 2q/2kv d64"
        },
        rows: vec![padded(40), all_padding.clone()],
        q_heads: 2,
        kv_heads: 2,
        head_dim: 64,
        dtype,
        seed,
    })
}

/// For Q, K and V narrowed from one fused tensor.
pub fn fused_cases() -> [Case; 2] {
    [
        Case {
            name: "fused qkv bf16 4q/2kv d64",
            rows: vec![dpo(10, 12, 6, 48), tree(48)],
            q_heads: 4,
            kv_heads: 2,
            head_dim: 64,
            dtype: DType::BF16,
            seed: 7,
        },
        Case {
            name: "fused qkv f16 2q/1kv d128",
            rows: vec![grpo(8, &[5, 7, 3], 40)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 128,
            dtype: DType::F16,
            seed: 8,
        },
    ]
}

/// For a head-major Q and misaligned K and V.
pub fn odd_case() -> Case {
    Case {
        name: "odd layouts bf16 2q/1kv d64",
        rows: vec![packed(&[12, 20], 40), dpo(9, 8, 11, 40)],
        q_heads: 2,
        kv_heads: 1,
        head_dim: 64,
        dtype: DType::BF16,
        seed: 9,
    }
}

/// Two DPO pairs and a GRPO group packed by `Batch::shared`, and the batch's plan.
pub fn batch_case() -> (Case, prefix_attn::Plan) {
    use prefix_attn::batch::{Batch, BatchOptions, Sample};
    let samples = vec![
        Sample::completions(vec![5, 8, 2, 9, 4, 4], vec![vec![4, 4, 1], vec![7, 3]]),
        Sample::completions(vec![6, 1, 3], vec![vec![2, 2, 2, 2], vec![3, 3]]),
        Sample::completions(vec![7; 9], vec![vec![1], vec![3, 3], vec![8, 1, 1]]),
    ];
    let batch = Batch::shared(&samples, &BatchOptions::new(24)).unwrap();
    let vis_end = batch.vis_end();
    let case = Case {
        name: "Batch::shared bf16 4q/2kv d64",
        rows: (0..vis_end.rows())
            .map(|r| vis_end.row(r).to_vec())
            .collect(),
        q_heads: 4,
        kv_heads: 2,
        head_dim: 64,
        dtype: DType::BF16,
        seed: 10,
    };
    (case, batch.plan().unwrap())
}

/// Rows of 520 tokens: several 128-key tiles, most of them skipped for the completions (tens
/// of seconds on the emulator).
pub fn long_case() -> Case {
    Case {
        name: "long grpo bf16 8q/2kv d128",
        rows: vec![
            grpo(200, &[80, 120, 60, 50], 520),
            grpo(300, &[100, 110], 520),
        ],
        q_heads: 8,
        kv_heads: 2,
        head_dim: 128,
        dtype: DType::BF16,
        seed: 21,
    }
}
