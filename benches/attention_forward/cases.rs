//! The problems the forward bench times, built with the crate's own batch builder so that the
//! prefix-shared rows and their unshared ("paired") equivalent hold exactly the same samples.

use prefix_attn::batch::{Batch, BatchOptions, Sample};
use prefix_attn::mask::VisEnd;
use prefix_attn::AttnShape;

/// Heads and head dim of every case in one mode.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// How a case lays out its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Rows that are one causal sequence each.
    Causal,
    /// Each prompt once, its k completions after it (one sample per row).
    Shared,
    /// Every completion as its own causal prompt+completion row (the same samples).
    Paired,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Causal => "causal",
            Format::Shared => "shared",
            Format::Paired => "paired",
        }
    }
}

/// One timed problem: a batch's `vis_end` (its rows and length) under a format.
pub struct Case {
    pub format: Format,
    /// Identifies the problem within its format; a shared and a paired case with the same name
    /// hold the same samples.
    pub name: String,
    pub vis_end: VisEnd,
}

impl Case {
    pub fn shape(&self, dims: Dims) -> AttnShape {
        AttnShape {
            rows: self.vis_end.rows(),
            n: self.vis_end.n(),
            q_heads: dims.q_heads,
            kv_heads: dims.kv_heads,
            head_dim: dims.head_dim,
        }
    }

    pub fn visible_pairs(&self) -> u64 {
        self.vis_end.visible_pairs()
    }

    /// Forward FLOPs of the visible (query, key) pairs, FlashAttention's convention applied to
    /// the mask actually used: 4 * pairs * q_heads * head_dim.
    pub fn forward_flops(&self, dims: Dims) -> u64 {
        4 * self.visible_pairs() * (dims.q_heads * dims.head_dim) as u64
    }

    pub fn tokens(&self) -> usize {
        self.vis_end.rows() * self.vis_end.n()
    }
}

/// `tokens / n` causal rows of `n` tokens (at least one).
pub fn causal(n: usize, tokens: usize) -> Case {
    let rows = (tokens / n).max(1);
    Case {
        format: Format::Causal,
        name: format!("n{n}_rows{rows}"),
        vis_end: VisEnd::new(n, vec![n as i32; rows * n]).expect("a causal row is valid"),
    }
}

/// A prompt shared by `k` completions of equal length (DPO: k = 2, GRPO: a group of k).
#[derive(Debug, Clone, Copy)]
pub struct PrefixGroup {
    /// "dpo" or "grpo": what the shape stands for.
    pub kind: &'static str,
    pub prefix: usize,
    pub k: usize,
    pub completion: usize,
}

impl PrefixGroup {
    fn name(&self) -> String {
        format!(
            "{}_p{}_{}x{}",
            self.kind, self.prefix, self.k, self.completion
        )
    }

    fn shared_len(&self) -> usize {
        self.prefix + self.k * self.completion
    }

    fn paired_len(&self) -> usize {
        self.prefix + self.completion
    }

    /// `count` samples with distinct (arbitrary, non-zero) token ids; attention never reads them.
    fn samples(&self, count: usize) -> Vec<Sample> {
        let mut next = 1u32;
        let mut take = |len: usize| {
            let ids: Vec<u32> = (next..next + len as u32).collect();
            next += len as u32;
            ids
        };
        (0..count)
            .map(|_| {
                let prompt = take(self.prefix);
                let completions = (0..self.k).map(|_| take(self.completion)).collect();
                Sample::completions(prompt, completions)
            })
            .collect()
    }

    /// As many samples as fit in `tokens` shared tokens (at least one), laid out by
    /// `Batch::shared` (one sample per row of `prefix + k * completion`) and by `Batch::paired`
    /// (every completion its own causal `prefix + completion` sequence). `Batch` wants a whole
    /// sample to fit in a paired row too, so paired rows hold the fewest whole sequences that
    /// reach the shared length, packed like documents (the kernel skips the tiles between them):
    /// no padding in either format when the sequence count divides evenly, as in every case
    /// here, so the paired baseline is at its best.
    pub fn shared_and_paired(&self, tokens: usize) -> (Case, Case) {
        let samples = self.samples((tokens / self.shared_len()).max(1));
        let shared = Batch::shared(&samples, &BatchOptions::new(self.shared_len()))
            .expect("the shared batch of valid samples");
        let per_row = self.shared_len().div_ceil(self.paired_len());
        let paired = Batch::paired(&samples, &BatchOptions::new(per_row * self.paired_len()))
            .expect("the paired batch of valid samples");
        let case = |format, batch: Batch| Case {
            format,
            name: self.name(),
            vis_end: batch.vis_end().clone(),
        };
        (case(Format::Shared, shared), case(Format::Paired, paired))
    }
}
