//! The seed paper's Tables 1 and 2 (arXiv 2410.20305): training throughput on six preference
//! datasets, without and with packing. Nothing can be downloaded here, so each dataset is a
//! **synthetic profile** with the paper's published medians, and the samples are drawn from a
//! documented distribution around them:
//!
//! - total length `L` (prompt + chosen + rejected) ~ LogNormal(ln(median overall length), 0.5),
//!   then multiplied by the mode's length scale and clipped to `[8, max_len]`;
//! - prefix/completion ratio `rho` ~ LogNormal(ln(median ratio), 0.5), with the completion length
//!   taken as the mean of chosen and rejected;
//! - prompt `P = L rho / (rho + 2)`, completions `L - P` split `u : 1 - u`, `u` ~ Uniform(0.3, 0.7).
//!
//! The medians of `L` and `rho` are the profile's exactly (a log-normal's median is `e^mu`);
//! clipping touches only the tails, and the tables print the medians actually drawn. What the
//! paper calls "median overall length" is read as the whole sample (prompt + both responses).
//!
//! Batches, per format (the same samples in each):
//! - paired: two causal sequences per sample (prompt + chosen, prompt + rejected);
//! - shared: one row item per sample `[prompt | chosen | rejected]` (prefix sharing);
//! - without packing: micro-batches of `batch` samples, each sequence (or shared sample) its own
//!   row, rows padded to the micro-batch's longest, as a trainer without packing does;
//! - with packing: sequences (or shared samples) placed first-fit into rows of at most
//!   `pack_len` tokens, one row per micro-batch, each row as long as its items (no padding, as a
//!   variable-length trainer runs packed rows).
//!
//! One timed call runs the training step (transformer block forward and backward) on every
//! micro-batch of a format: samples/s = samples / time per call.

use prefix_attn::layout::{Row, RowBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::Problem;
use super::config::{DataSetup, Model};
use super::stats::median;

/// One row of the paper's table: samples/s of FA3 (paired), FlexAttention (paired) and
/// FlexAttention with prefix sharing, and the speedups it printed for the last one over each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperRow {
    pub fa3: f64,
    pub flex: f64,
    pub flex_shared: f64,
    pub over_fa3: f64,
    pub over_flex: f64,
}

/// A dataset as the paper describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub median_len: f64,
    pub ratio: f64,
    /// Table 1 (without packing), Table 2 (with packing).
    pub paper: [PaperRow; 2],
}

const fn row(fa3: f64, flex: f64, flex_shared: f64, over_fa3: f64, over_flex: f64) -> PaperRow {
    PaperRow {
        fa3,
        flex,
        flex_shared,
        over_fa3,
        over_flex,
    }
}

/// arXiv 2410.20305, Tables 1 and 2 (Mistral-7B; samples/s as printed there).
pub const PROFILES: [Profile; 6] = [
    Profile {
        name: "Capybara",
        median_len: 1160.0,
        ratio: 1.59,
        paper: [
            row(8.38, 7.75, 11.90, 1.42, 1.54),
            row(17.89, 17.63, 23.89, 1.34, 1.36),
        ],
    },
    Profile {
        name: "HH-RLHF",
        median_len: 186.0,
        ratio: 2.15,
        paper: [
            row(33.71, 30.25, 36.11, 1.07, 1.19),
            row(109.77, 104.99, 155.04, 1.41, 1.48),
        ],
    },
    Profile {
        name: "MetaMath-DPO",
        median_len: 872.0,
        ratio: 3.91,
        paper: [
            row(13.86, 13.02, 19.13, 1.38, 1.47),
            row(24.21, 23.83, 38.07, 1.57, 1.60),
        ],
    },
    Profile {
        name: "TLDR",
        median_len: 416.0,
        ratio: 11.14,
        paper: [
            row(31.43, 29.53, 35.36, 1.12, 1.20),
            row(44.11, 43.22, 59.76, 1.35, 1.38),
        ],
    },
    Profile {
        name: "Tulu-Helpsteer",
        median_len: 775.0,
        ratio: 6.34,
        paper: [
            row(14.83, 13.93, 21.75, 1.47, 1.56),
            row(29.85, 28.98, 44.10, 1.48, 1.52),
        ],
    },
    Profile {
        name: "UltraFeedback",
        median_len: 409.0,
        ratio: 0.42,
        paper: [
            row(18.40, 17.31, 20.46, 1.11, 1.18),
            row(45.46, 44.13, 53.21, 1.17, 1.21),
        ],
    },
];

/// Log-normal spread of the total length and of the ratio.
pub const SIGMA: f64 = 0.5;

/// One DPO sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub prompt: usize,
    pub chosen: usize,
    pub rejected: usize,
}

impl Sample {
    pub fn len(&self) -> usize {
        self.prompt + self.chosen + self.rejected
    }

    /// Prompt over the mean completion.
    pub fn ratio(&self) -> f64 {
        2.0 * self.prompt as f64 / (self.chosen + self.rejected) as f64
    }
}

/// A standard normal draw (Box-Muller: rand 0.9 alone has no normal distribution).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `count` samples of `p`, seeded by the profile's position in [`PROFILES`] (the same samples in
/// every run and both modes, up to the length scale).
pub fn draw(p: &Profile, setup: &DataSetup, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(0xda7a_0000 + seed);
    (0..setup.samples)
        .map(|_| {
            let len = p.median_len * setup.length_scale * (SIGMA * normal(&mut rng)).exp();
            let len = (len.round() as usize).clamp(8, setup.max_len.max(8));
            let rho = p.ratio * (SIGMA * normal(&mut rng)).exp();
            let prompt = ((len as f64 * rho / (rho + 2.0)).round() as usize).clamp(1, len - 2);
            let completions = len - prompt;
            let u: f64 = rng.random_range(0.3..0.7);
            let chosen = ((completions as f64 * u).round() as usize).clamp(1, completions - 1);
            Sample {
                prompt,
                chosen,
                rejected: completions - chosen,
            }
        })
        .collect()
}

/// Medians of the drawn samples: (total length, ratio).
pub fn drawn_medians(samples: &[Sample]) -> (f64, f64) {
    let lens: Vec<f64> = samples.iter().map(|s| s.len() as f64).collect();
    let ratios: Vec<f64> = samples.iter().map(Sample::ratio).collect();
    (median(&lens).unwrap_or(0.0), median(&ratios).unwrap_or(0.0))
}

/// One format's micro-batches of a dataset.
#[derive(Debug, Clone)]
pub struct Batches {
    pub problems: Vec<Problem>,
    pub samples: usize,
}

impl Batches {
    pub fn rows(&self) -> usize {
        self.problems.iter().map(Problem::rows).sum()
    }

    /// Tokens computed, padding included.
    pub fn tokens(&self) -> usize {
        self.problems.iter().map(Problem::tokens).sum()
    }

    /// FLOPs of one training step over every micro-batch.
    pub fn step_flops(&self, m: &Model) -> f64 {
        self.problems.iter().map(|p| step_flops(p, m)).sum()
    }
}

/// FLOPs of a transformer block's forward and backward on one micro-batch: per token the QKV and
/// output projections and the SwiGLU MLP (backward = 2x forward), per visible pair the attention
/// (forward 4 q-heads d, backward 2.5x that: the FlashAttention convention). Padding tokens
/// cost their projections and MLP, as they do in a trainer.
pub fn step_flops(p: &Problem, m: &Model) -> f64 {
    let t = p.tokens() as f64;
    let (h, f) = (m.hidden as f64, m.ffn as f64);
    let (hq, hkv, d) = (m.q_heads as f64, m.kv_heads as f64, m.head_dim as f64);
    let linear = 2.0 * t * (h * (hq + 2.0 * hkv) * d + hq * d * h + 3.0 * h * f);
    let attn = 4.0 * p.visible_pairs() as f64 * hq * d;
    3.0 * linear + 3.5 * attn
}

/// Real tokens of a format: paired counts the prompt twice.
pub fn real_tokens(samples: &[Sample], shared: bool) -> usize {
    samples
        .iter()
        .map(|s| {
            if shared {
                s.len()
            } else {
                2 * s.prompt + s.chosen + s.rejected
            }
        })
        .sum()
}

/// What goes in a row: a causal sequence, or a shared sample.
#[derive(Debug, Clone, Copy)]
enum Item {
    Seq(usize),
    Shared(Sample),
}

impl Item {
    fn len(&self) -> usize {
        match *self {
            Item::Seq(n) => n,
            Item::Shared(s) => s.len(),
        }
    }

    fn put(&self, row: &mut RowBuilder) -> Result<(), String> {
        let r = match *self {
            Item::Seq(n) => row.document(n),
            Item::Shared(s) => row.prefix_completions(s.prompt, &[s.chosen, s.rejected]),
        };
        r.map(drop).map_err(|e| e.to_string())
    }
}

fn items(samples: &[Sample], shared: bool) -> Vec<Item> {
    samples
        .iter()
        .flat_map(|&s| {
            if shared {
                vec![Item::Shared(s)]
            } else {
                vec![
                    Item::Seq(s.prompt + s.chosen),
                    Item::Seq(s.prompt + s.rejected),
                ]
            }
        })
        .collect()
}

/// Rows holding `groups` of items each, padded to `n`.
fn problem(groups: &[Vec<Item>], n: usize) -> Result<Problem, String> {
    let rows: Vec<Row> = groups
        .iter()
        .map(|g| {
            let mut r = RowBuilder::new();
            for it in g {
                it.put(&mut r)?;
            }
            r.finish(n).map_err(|e| e.to_string())
        })
        .collect::<Result<_, String>>()?;
    Problem::from_rows(&rows).map_err(|e| e.to_string())
}

/// The micro-batches of one format.
pub fn batches(
    samples: &[Sample],
    shared: bool,
    packed: bool,
    setup: &DataSetup,
) -> Result<Batches, String> {
    let its = items(samples, shared);
    let mut problems = Vec::new();
    if packed {
        // First fit, in draw order: every row keeps the order its items came in.
        let mut rows: Vec<(usize, Vec<Item>)> = Vec::new();
        for it in its {
            if it.len() > setup.pack_len {
                return Err(format!(
                    "an item of {} tokens does not fit a packed row of {}",
                    it.len(),
                    setup.pack_len
                ));
            }
            match rows
                .iter_mut()
                .find(|(used, _)| used + it.len() <= setup.pack_len)
            {
                Some((used, g)) => {
                    *used += it.len();
                    g.push(it);
                }
                None => rows.push((it.len(), vec![it])),
            }
        }
        // Each packed row is its own micro-batch, ending with its last item: packing without
        // padding, as a variable-length (cu_seqlens-style) trainer runs it.
        for (used, g) in rows {
            problems.push(problem(&[g], used)?);
        }
    } else {
        let per_batch = if shared { setup.batch } else { 2 * setup.batch };
        for chunk in its.chunks(per_batch.max(1)) {
            let n = chunk.iter().map(Item::len).max().unwrap_or(1);
            let groups: Vec<Vec<Item>> = chunk.iter().map(|&it| vec![it]).collect();
            problems.push(problem(&groups, n)?);
        }
    }
    Ok(Batches {
        problems,
        samples: samples.len(),
    })
}
