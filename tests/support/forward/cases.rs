//! The covering matrix of forward cases: every mask layout, ragged lengths, GQA ratios 1/4/8,
//! both dtypes and both head dims appear, without the full cartesian product (the emulated
//! suite runs on 2 CI cores).

use super::masks::{all_padding, causal, node, packed, prefix_groups, tree};

/// The element type of a case (the crate's, so cases go straight into `prefix_attn::bounds`).
pub use prefix_attn::bounds::Dtype;

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub rows: Vec<Vec<i32>>,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: Dtype,
    pub seed: u64,
}

impl Case {
    pub fn n(&self) -> usize {
        self.rows[0].len()
    }
}

/// The emulator matrix (small shapes). The GPU tests run it too.
pub fn matrix() -> Vec<Case> {
    use Dtype::*;
    vec![
        Case {
            name: "causal n=256 (tile multiple), gqa 1, d64, bf16",
            rows: vec![causal(256, 256)],
            q_heads: 2,
            kv_heads: 2,
            head_dim: 64,
            dtype: Bf16,
            seed: 1,
        },
        Case {
            name: "causal n=200 (ragged), gqa 4, d128, f16",
            rows: vec![causal(200, 200)],
            q_heads: 4,
            kv_heads: 1,
            head_dim: 128,
            dtype: F16,
            seed: 2,
        },
        Case {
            name: "packed documents + padding, 2 rows, gqa 1, d128, bf16",
            rows: vec![packed(&[70, 130, 64, 40], 320), packed(&[5, 250, 1], 320)],
            q_heads: 2,
            kv_heads: 2,
            head_dim: 128,
            dtype: Bf16,
            seed: 3,
        },
        Case {
            name: "prefix + 1 completion (DPO-like pairs in rows), gqa 4, d64, f16",
            rows: vec![
                prefix_groups(&[(50, &[70]), (33, &[17])], 192),
                prefix_groups(&[(100, &[91])], 192),
            ],
            q_heads: 4,
            kv_heads: 1,
            head_dim: 64,
            dtype: F16,
            seed: 4,
        },
        Case {
            name: "prefix + 2 completions, ragged n=250, gqa 1, d128, f16",
            rows: vec![prefix_groups(&[(64, &[60, 70]), (20, &[15, 9])], 250)],
            q_heads: 2,
            kv_heads: 2,
            head_dim: 128,
            dtype: F16,
            seed: 5,
        },
        Case {
            name: "prefix + 4 completions (GRPO-like), gqa 8, d64, bf16",
            rows: vec![prefix_groups(&[(40, &[30, 50, 17, 44])], 192)],
            q_heads: 8,
            kv_heads: 1,
            head_dim: 64,
            dtype: Bf16,
            seed: 6,
        },
        Case {
            name: "tree in DFS order + padding, gqa 4, d128, bf16",
            rows: vec![tree(
                &node(
                    30,
                    vec![
                        node(20, vec![node(25, vec![]), node(40, vec![])]),
                        node(15, vec![node(50, vec![])]),
                    ],
                ),
                200,
            )],
            q_heads: 4,
            kv_heads: 1,
            head_dim: 128,
            dtype: Bf16,
            seed: 7,
        },
        Case {
            name: "padding: a fully padded row and a short causal row, gqa 1, d64, f16",
            rows: vec![all_padding(130), causal(3, 130)],
            q_heads: 2,
            kv_heads: 2,
            head_dim: 64,
            dtype: F16,
            seed: 8,
        },
        Case {
            name: "gqa 8 at d128, packed, bf16",
            rows: vec![packed(&[17, 80], 100)],
            q_heads: 8,
            kv_heads: 1,
            head_dim: 128,
            dtype: Bf16,
            seed: 9,
        },
    ]
}
