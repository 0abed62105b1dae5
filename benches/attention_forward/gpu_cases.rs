//! The problems GPU mode times, host only: heads, tokens per launch, causal lengths and the
//! prefix-group shapes. Kept apart from gpu.rs so that `cargo test` (tests/bench/attention_forward.rs) builds
//! every one of them without a device.

use super::cases::{causal, Case, Dims, PrefixGroup};

/// Mistral-7B attention, the seed paper's model: 32 query heads, 8 kv heads, head dim 128, bf16.
pub const DIMS: Dims = Dims {
    q_heads: 32,
    kv_heads: 8,
    head_dim: 128,
};

/// Tokens per launch (rows * n), as in the FlashAttention benchmarks (batch * seqlen = 16k).
pub const TOKENS: usize = 16 * 1024;

/// Lengths of the causal rows.
pub const CAUSAL_N: [usize; 3] = [2048, 4096, 8192];

/// Prefix/completion shapes: DPO pairs and GRPO groups at prefix/completion ratios 2 and 6
/// (DPO) and 2 and 4 (GRPO); ideal speedups (paired / shared visible pairs) 1.29, 1.58, 1.50
/// and 1.92.
pub const GROUPS: [PrefixGroup; 4] = [
    PrefixGroup {
        kind: "dpo",
        prefix: 1024,
        k: 2,
        completion: 512,
    },
    PrefixGroup {
        kind: "dpo",
        prefix: 3072,
        k: 2,
        completion: 512,
    },
    PrefixGroup {
        kind: "grpo",
        prefix: 512,
        k: 4,
        completion: 256,
    },
    PrefixGroup {
        kind: "grpo",
        prefix: 2048,
        k: 4,
        completion: 512,
    },
];

/// The causal cases, in the order they are timed.
pub fn causal_cases() -> Vec<Case> {
    CAUSAL_N.iter().map(|&n| causal(n, TOKENS)).collect()
}

/// The (shared, paired) cases of every group, in the order they are timed.
pub fn prefix_cases() -> Vec<(Case, Case)> {
    GROUPS.iter().map(|g| g.shared_and_paired(TOKENS)).collect()
}
