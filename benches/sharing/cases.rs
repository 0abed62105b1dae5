//! The problems of the sweep, host only (tests/bench/sharing.rs builds every one of them in
//! `cargo test`, GPU mode's included). Both formats of a point hold the same samples, laid out by
//! the crate's row builder:
//!
//! - shared: each row holds `per_row` samples `[prompt | c_1 | ... | c_k]`
//!   (`RowBuilder::prefix_completions`);
//! - paired: every completion as its own causal `prompt + completion` sequence (the unshared rows
//!   `Row::paired` gives), `per_row * k` of them per row, so both formats have the same number of
//!   rows and neither has padding.
//!
//! Ideal speedup of shared over paired = work paired / work shared, with work = FLOPs of the op:
//! visible pairs for attention, tokens for the MLP, both for the layer (projections per token,
//! attention per visible pair).

use prefix_attn::layout::{Row, RowBuilder};
use prefix_attn::mask::VisEnd;

use super::config::{Config, Model};

/// Which part of the sweep a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// DPO pairs (k = 2), one sample per row: prefix lengths x prefix/completion ratios.
    Ratio,
    /// Groups of k completions (GRPO), one sample per row.
    Group,
    /// Several DPO samples packed per row.
    Packed,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ratio => "ratio",
            Family::Group => "group",
            Family::Packed => "packed",
        }
    }
}

/// One point of the sweep: a sample shape and how samples fill rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub family: Family,
    pub prefix: usize,
    pub completion: usize,
    pub k: usize,
    /// Samples per shared row.
    pub per_row: usize,
    /// The ratio the point was asked for (prefix / completion before rounding).
    pub ratio: f64,
}

/// The prefix/completion ratio of the k and packed points.
pub const GROUP_RATIO: f64 = 4.0;

impl Point {
    pub fn new(family: Family, prefix: usize, ratio: f64, k: usize, per_row: usize) -> Self {
        Point {
            family,
            prefix,
            completion: ((prefix as f64 / ratio).round() as usize).max(1),
            k,
            per_row,
            ratio,
        }
    }

    /// Short and unique within a run: `p1024_r4`, `k8_p1024_r4`, `packed4_p1024_r4`.
    pub fn id(&self) -> String {
        let base = format!("p{}_r{}", self.prefix, self.ratio);
        match self.family {
            Family::Ratio => base,
            Family::Group => format!("k{}_{base}", self.k),
            Family::Packed => format!("packed{}_{base}", self.per_row),
        }
    }

    fn sample_len(&self) -> usize {
        self.prefix + self.k * self.completion
    }

    /// Shared rows for a budget of `tokens` shared tokens (at least one).
    pub fn rows(&self, tokens: usize) -> usize {
        (tokens / (self.per_row * self.sample_len())).max(1)
    }

    /// The shared and the paired problem of this point.
    pub fn build(&self, tokens: usize) -> Result<(Problem, Problem), String> {
        let rows = self.rows(tokens);
        let err = |e: prefix_attn::Error| format!("{}: {e}", self.id());
        let mut row = RowBuilder::new();
        for _ in 0..self.per_row {
            row.prefix_completions(self.prefix, &vec![self.completion; self.k])
                .map_err(err)?;
        }
        let shared_row = row.finish(self.per_row * self.sample_len()).map_err(err)?;
        let mut paired = RowBuilder::new();
        for seq in shared_row.paired() {
            paired.document(seq.len()).map_err(err)?;
        }
        let paired_n = self.per_row * self.k * (self.prefix + self.completion);
        let paired_row = paired.finish(paired_n).map_err(err)?;
        Ok((
            Problem::repeat(&shared_row, rows).map_err(err)?,
            Problem::repeat(&paired_row, rows).map_err(err)?,
        ))
    }
}

/// The points of a run: the ratio sweep, then the k sweep and the packed point at the middle
/// prefix length and [`GROUP_RATIO`].
pub fn points(c: &Config) -> Vec<Point> {
    let mut out = Vec::new();
    for &p in &c.prefixes {
        for &r in &c.ratios {
            out.push(Point::new(Family::Ratio, p, r, 2, 1));
        }
    }
    let mid = c.prefixes[c.prefixes.len() / 2];
    for &k in &c.group_ks {
        out.push(Point::new(Family::Group, mid, GROUP_RATIO, k, 1));
    }
    out.push(Point::new(
        Family::Packed,
        mid,
        GROUP_RATIO,
        2,
        c.packed_per_row,
    ));
    out
}

/// One format of one point: the batch's mask and position ids.
#[derive(Debug, Clone)]
pub struct Problem {
    pub vis_end: VisEnd,
    /// One position id per token (`[rows, n]`), from the layout.
    pub positions: Vec<i32>,
}

impl Problem {
    fn repeat(row: &Row, rows: usize) -> prefix_attn::Result<Self> {
        let vis_end = VisEnd::from_rows(&vec![row.vis_end(); rows])?;
        let positions = row.positions().repeat(rows);
        Ok(Problem { vis_end, positions })
    }

    /// Finished rows of one length, as one batch.
    pub fn from_rows(rows: &[Row]) -> prefix_attn::Result<Self> {
        let vis: Vec<&[i32]> = rows.iter().map(Row::vis_end).collect();
        let vis_end = VisEnd::from_rows(&vis)?;
        let positions = rows
            .iter()
            .flat_map(|r| r.positions().iter().copied())
            .collect();
        Ok(Problem { vis_end, positions })
    }

    pub fn rows(&self) -> usize {
        self.vis_end.rows()
    }

    pub fn n(&self) -> usize {
        self.vis_end.n()
    }

    pub fn tokens(&self) -> usize {
        self.rows() * self.n()
    }

    pub fn visible_pairs(&self) -> u64 {
        self.vis_end.visible_pairs()
    }
}

/// How a problem lays out its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Shared,
    Paired,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Shared => "shared",
            Format::Paired => "paired",
        }
    }
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// SwiGLU MLP: gate/up/down GEMMs and the activation.
    Mlp,
    /// Attention forward.
    AttnFwd,
    /// Attention forward + backward.
    AttnFwdBwd,
    /// QKV projection, rotary, attention forward, output projection.
    Layer,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Mlp, Op::AttnFwd, Op::AttnFwdBwd, Op::Layer];

    /// Also the criterion group name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Mlp => "mlp",
            Op::AttnFwd => "attn_fwd",
            Op::AttnFwdBwd => "attn_fwd_bwd",
            Op::Layer => "layer",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Op::Mlp => "MLP layer (SwiGLU)",
            Op::AttnFwd => "attention op, forward",
            Op::AttnFwdBwd => "attention op, forward + backward",
            Op::Layer => "attention layer (QKV, rotary, attention, output projection)",
        }
    }

    /// What the ideal speedup counts.
    pub fn ideal_basis(self) -> &'static str {
        match self {
            Op::Mlp => "token ratio",
            Op::AttnFwd | Op::AttnFwdBwd => "visible-pair ratio",
            Op::Layer => "FLOP ratio (projections per token, attention per visible pair)",
        }
    }

    /// FLOPs of the op on a problem: GEMMs 2 m k n; attention 4 * visible pairs * q heads *
    /// head dim forward and 3.5 times that forward + backward (the FlashAttention convention,
    /// counting only visible pairs).
    pub fn flops(self, p: &Problem, m: &Model) -> f64 {
        let t = p.tokens() as f64;
        let attn = 4.0 * p.visible_pairs() as f64 * (m.q_heads * m.head_dim) as f64;
        let proj = 2.0 * t * m.hidden as f64 * ((m.q_heads + 2 * m.kv_heads) * m.head_dim) as f64
            + 2.0 * t * (m.q_heads * m.head_dim) as f64 * m.hidden as f64;
        match self {
            Op::Mlp => 3.0 * 2.0 * t * m.hidden as f64 * m.ffn as f64,
            Op::AttnFwd => attn,
            Op::AttnFwdBwd => 3.5 * attn,
            Op::Layer => proj + attn,
        }
    }

    /// Paired work over shared work.
    pub fn ideal(self, shared: &Problem, paired: &Problem, m: &Model) -> f64 {
        self.flops(paired, m) / self.flops(shared, m)
    }
}
