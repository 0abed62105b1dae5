//! The problems examples/forward_bench.rs times (host only, so that tests/bench/attention_forward.rs builds
//! every one of them in `cargo test` without a device).

use prefix_attn::mask::VisEnd;

/// Tokens per launch across rows (rows = TOKENS / n).
pub const TOKENS: usize = 16384;
pub const Q_HEADS: usize = 32;
pub const KV_HEADS: usize = 8;

pub struct Bench {
    pub kind: &'static str,
    pub n: usize,
    pub head_dim: usize,
    /// prefix-shared rows: prompt length and completion lengths of the one group per row.
    pub prompt: usize,
    pub completions: Vec<usize>,
}

impl Bench {
    /// `vis_end` of one row; panics if the layout does not fill exactly `n` tokens.
    pub fn row(&self) -> Vec<i32> {
        if self.kind == "causal" {
            return vec![self.n as i32; self.n];
        }
        let mut v = vec![self.n as i32; self.prompt];
        for &c in &self.completions {
            let end = (v.len() + c) as i32;
            v.extend(std::iter::repeat_n(end, c));
        }
        assert_eq!(
            v.len(),
            self.n,
            "{} n={}: the layout must fill the row",
            self.kind,
            self.n
        );
        v
    }

    pub fn rows(&self) -> usize {
        TOKENS / self.n
    }

    /// The batch: [`Bench::rows`] copies of [`Bench::row`].
    pub fn vis_end(&self) -> VisEnd {
        VisEnd::from_rows(&vec![self.row(); self.rows()]).expect("a valid bench layout")
    }
}

pub fn benches() -> Vec<Bench> {
    let mut out = Vec::new();
    for &n in &[2048usize, 4096, 8192] {
        for &d in &[64usize, 128] {
            out.push(Bench {
                kind: "causal",
                n,
                head_dim: d,
                prompt: 0,
                completions: vec![],
            });
            // GRPO-like: half the row is the prompt, 4 completions share it.
            out.push(Bench {
                kind: "prefix4",
                n,
                head_dim: d,
                prompt: n / 2,
                completions: vec![n / 8; 4],
            });
        }
    }
    out
}
