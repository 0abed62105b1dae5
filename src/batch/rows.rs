//! Samples to rows: check, fit, pack, lay out, and record what a trainer needs per token and per
//! completion. The shared batch puts each sample's prompt (or tree) once; the paired batch puts
//! every completion (root-to-leaf path) in its own causal sequence. Both come from the same
//! checked and truncated samples and list completions in the same order, so their log-probs can
//! be compared one to one.

use crate::batch::logprob::{CompletionRef, LogProbMap};
use crate::batch::options::BatchOptions;
use crate::batch::pack::first_fit_decreasing;
use crate::batch::sample::{check, Checked, Sample, SampleKind};
use crate::batch::truncate::{fit, Truncation};
use crate::error::{Error, Result};
use crate::layout::{RowBuilder, Tree};
use crate::mask::{BlockMask, TileShape, VisEnd};
use crate::plan::Plan;
use crate::shape::AttnShape;

/// Where one unit (a whole sample, or one unshared sequence of it) sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitPlacement {
    pub sample: usize,
    /// `Some(c)` for an unshared sequence of completion `c`; `None` for a whole shared sample.
    pub completion: Option<usize>,
    pub row: usize,
    pub start: usize,
    pub len: usize,
}

/// A batch of rows ready for a model: token and position ids, the mask (`vis_end`, ready for
/// [`BlockMask::build`]), per-token ids and the log-prob gather map. Per-token arrays are
/// `[rows, n]`, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    n: usize,
    rows: usize,
    token_ids: Vec<u32>,
    positions: Vec<i32>,
    vis_end: VisEnd,
    sample_ids: Vec<i32>,
    completion_ids: Vec<i32>,
    node_ids: Vec<i32>,
    placements: Vec<UnitPlacement>,
    log_probs: LogProbMap,
    truncations: Vec<Truncation>,
    real_tokens: usize,
}

/// One thing to pack: a sample's nodes (all of them, or one root-to-leaf path).
struct Unit<'a> {
    checked: &'a Checked,
    shape: Tree,
    /// `None`: the whole sample, shared. `Some(c)`: the path of completion `c` alone.
    completion: Option<usize>,
    /// Nodes of the unit in layout order.
    nodes: Vec<usize>,
    len: usize,
}

impl Batch {
    /// The prefix-shared batch: each sample once (prompt then completions, or the tree in DFS
    /// preorder), several samples per row by first-fit-decreasing.
    pub fn shared(samples: &[Sample], opts: &BatchOptions) -> Result<Self> {
        let (checked, truncations) = prepare(samples, opts)?;
        let mut units = Vec::with_capacity(checked.len());
        for c in &checked {
            let shape = c.tree.layout_tree()?;
            units.push(Unit {
                checked: c,
                nodes: shape.preorder(),
                len: shape.total_len(),
                completion: None,
                shape,
            });
        }
        assemble(units, opts, truncations)
    }

    /// The equivalent unshared ("paired") batch: every completion as its own causal
    /// prompt+completion sequence (every root-to-leaf path of a tree), packed the same way.
    pub fn paired(samples: &[Sample], opts: &BatchOptions) -> Result<Self> {
        let (checked, truncations) = prepare(samples, opts)?;
        let mut units = Vec::new();
        for c in &checked {
            let shape = c.tree.layout_tree()?;
            for (k, leaf) in shape.leaves().into_iter().enumerate() {
                let nodes = shape.path_to(leaf);
                units.push(Unit {
                    checked: c,
                    len: nodes.iter().map(|&v| shape.segment_len(v)).sum(),
                    nodes,
                    completion: Some(k),
                    shape: shape.clone(),
                });
            }
        }
        assemble(units, opts, truncations)
    }

    /// Tokens per row.
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `[rows, n]` token ids (`pad_token` at padding).
    pub fn token_ids(&self) -> &[u32] {
        &self.token_ids
    }

    /// `[rows, n]` position ids: each token's index in its unshared sequence; 0 at padding.
    pub fn positions(&self) -> &[i32] {
        &self.positions
    }

    /// The mask of the batch, ready for [`BlockMask::build`] and the kernels.
    pub fn vis_end(&self) -> &VisEnd {
        &self.vis_end
    }

    /// The batch's plan for the kernels (block lists at the default kernels' tiles), built once
    /// per batch and used by every layer's forward and backward; a device call uploads it to its
    /// context the first time (or upload it now with [`Batch::plan_on`]).
    pub fn plan(&self) -> Result<Plan> {
        Plan::new(self.vis_end.clone())
    }

    /// [`Batch::plan`], uploaded on `stream` now.
    pub fn plan_on(&self, stream: &std::sync::Arc<cudarc::driver::CudaStream>) -> Result<Plan> {
        Plan::on_device(self.vis_end.clone(), stream)
    }

    /// The attention shape of a model with these heads on this batch: `rows` and `n` from the
    /// batch. Errors as [`AttnShape::validate`].
    pub fn attn_shape(
        &self,
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<AttnShape> {
        let shape = AttnShape {
            rows: self.rows,
            n: self.n,
            q_heads,
            kv_heads,
            head_dim,
        };
        shape.validate()?;
        Ok(shape)
    }

    /// `[rows, n]` sample index of each token; -1 at padding.
    pub fn sample_ids(&self) -> &[i32] {
        &self.sample_ids
    }

    /// `[rows, n]` the completion whose sequence a token belongs to alone: completion tokens
    /// (and, in the paired batch, every token of a sequence); -1 for tokens shared by several
    /// completions (prompts, inner tree nodes) and padding.
    pub fn completion_ids(&self) -> &[i32] {
        &self.completion_ids
    }

    /// `[rows, n]` the tree node (of [`crate::batch::TokenTree`]; for prompt + completions, 0 is
    /// the prompt and `c + 1` completion `c`) of each token; -1 at padding.
    pub fn node_ids(&self) -> &[i32] {
        &self.node_ids
    }

    /// Where each unit landed, in input order.
    pub fn placements(&self) -> &[UnitPlacement] {
        &self.placements
    }

    /// The gather map from logits to per-completion log-probs.
    pub fn log_prob_map(&self) -> &LogProbMap {
        &self.log_probs
    }

    /// What truncation cut (empty unless [`BatchOptions::truncate`] was set and needed).
    pub fn truncations(&self) -> &[Truncation] {
        &self.truncations
    }

    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.real_tokens
    }

    /// Packing efficiency: real tokens / (rows * n).
    pub fn efficiency(&self) -> f64 {
        self.real_tokens as f64 / (self.rows * self.n) as f64
    }

    /// The block lists of this batch for one tile shape.
    pub fn block_mask(&self, tile: TileShape) -> Result<BlockMask> {
        BlockMask::build(&self.vis_end, tile)
    }
}

fn prepare(samples: &[Sample], opts: &BatchOptions) -> Result<(Vec<Checked>, Vec<Truncation>)> {
    opts.validate()?;
    if samples.is_empty() {
        return Err(Error::InvalidArgument {
            what: "samples",
            detail: "no samples to batch".into(),
        });
    }
    let mut checked = Vec::with_capacity(samples.len());
    let mut truncations = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let mut c = check(i, s, opts.vocab)?;
        truncations.extend(fit(&mut c, opts.max_len, opts.truncate)?);
        checked.push(c);
    }
    Ok((checked, truncations))
}

fn assemble(units: Vec<Unit>, opts: &BatchOptions, truncations: Vec<Truncation>) -> Result<Batch> {
    let lens: Vec<usize> = units.iter().map(|u| u.len).collect();
    let packed = first_fit_decreasing(&lens, opts.max_len);
    let longest = packed
        .iter()
        .map(|r| r.iter().map(|&u| lens[u]).sum::<usize>())
        .max()
        .unwrap_or(1);
    let n = match opts.round_to {
        Some(m) => longest.div_ceil(m) * m,
        None => longest,
    };
    let rows = packed.len();
    if rows as u128 * n as u128 > i32::MAX as u128 {
        return Err(Error::IndexOverflow {
            what: "rows * n",
            value: rows as u128 * n as u128,
        });
    }

    let total = rows * n;
    let mut token_ids = vec![opts.pad_token; total];
    let mut sample_ids = vec![-1i32; total];
    let mut completion_ids = vec![-1i32; total];
    let mut node_ids = vec![-1i32; total];
    let mut positions = Vec::with_capacity(total);
    let mut vis_end = Vec::with_capacity(total);
    let mut placements = vec![None; units.len()];
    let mut lists: Vec<(CompletionRef, Vec<(i32, u32)>)> = Vec::new();

    for (r, members) in packed.iter().enumerate() {
        let mut b = RowBuilder::new();
        for &u in members {
            let unit = &units[u];
            let start = b.len();
            let seg_start = lay_out(&mut b, unit)?;
            let tree = &unit.checked.tree;
            let leaves = unit.shape.leaves();
            for &v in &unit.nodes {
                let own = match unit.completion {
                    Some(c) => c as i32,
                    None => leaves.iter().position(|&l| l == v).map_or(-1, |c| c as i32),
                };
                for (t, &tok) in tree.tokens[v].iter().enumerate() {
                    let at = r * n + seg_start[v] + t;
                    token_ids[at] = tok;
                    sample_ids[at] = unit.checked.sample as i32;
                    completion_ids[at] = own;
                    node_ids[at] = v as i32;
                }
            }
            for (c, &leaf) in leaves.iter().enumerate() {
                if unit.completion.is_some_and(|k| k != c) {
                    continue;
                }
                let entries = predictions(unit, &seg_start, leaf, r * n);
                let key = CompletionRef {
                    sample: unit.checked.sample,
                    completion: c,
                };
                lists.push((key, entries));
            }
            placements[u] = Some(UnitPlacement {
                sample: unit.checked.sample,
                completion: unit.completion,
                row: r,
                start,
                len: unit.len,
            });
        }
        let row = b.finish(n)?;
        let (v, p) = row.into_parts();
        vis_end.extend(v);
        positions.extend(p);
    }

    lists.sort_by_key(|(key, _)| *key);
    let mut log_probs = LogProbMap {
        completions: Vec::with_capacity(lists.len()),
        offsets: vec![0],
        logit_rows: Vec::new(),
        targets: Vec::new(),
        positions: total,
    };
    for (key, entries) in lists {
        log_probs.completions.push(key);
        for (row, target) in entries {
            log_probs.logit_rows.push(row);
            log_probs.targets.push(target);
        }
        log_probs.offsets.push(log_probs.targets.len());
    }

    Ok(Batch {
        n,
        rows,
        token_ids,
        positions,
        vis_end: VisEnd::new(n, vis_end)?,
        sample_ids,
        completion_ids,
        node_ids,
        placements: placements.into_iter().flatten().collect(),
        log_probs,
        truncations,
        real_tokens: lens.iter().sum(),
    })
}

/// Appends a unit to the row; returns the row index where each of its nodes starts (nodes not
/// in the unit keep `usize::MAX`).
fn lay_out(b: &mut RowBuilder, unit: &Unit) -> Result<Vec<usize>> {
    let start = b.len();
    let mut seg_start = vec![usize::MAX; unit.shape.node_count()];
    match (unit.completion, unit.checked.kind) {
        (Some(_), _) => {
            // One causal sequence: the path's segments back to back.
            b.document(unit.len)?;
            let mut at = start;
            for &v in &unit.nodes {
                seg_start[v] = at;
                at += unit.shape.segment_len(v);
            }
        }
        (None, kind) => {
            if kind == SampleKind::Completions {
                let lens: Vec<usize> = (1..unit.shape.node_count())
                    .map(|v| unit.shape.segment_len(v))
                    .collect();
                b.prefix_completions(unit.shape.segment_len(0), &lens)?;
            } else {
                b.tree(unit.shape.clone())?;
            }
            seg_start = unit.shape.place(start).seg_start;
        }
    }
    Ok(seg_start)
}

/// The (flat logit row, target) of every scored token on the path to `leaf`: a token is
/// predicted by the token before it in its sequence, the first token of a segment by the last
/// token of its parent segment.
fn predictions(unit: &Unit, seg_start: &[usize], leaf: usize, row_base: usize) -> Vec<(i32, u32)> {
    let tree = &unit.checked.tree;
    let mut out = Vec::new();
    for v in unit.shape.path_to(leaf) {
        if !tree.scored[v] {
            continue;
        }
        let parent_last = tree.parent[v].map(|p| seg_start[p] + tree.tokens[p].len() - 1);
        for (t, &tok) in tree.tokens[v].iter().enumerate() {
            // The root is never scored, so a scored segment always has a parent.
            let pred = if t > 0 {
                seg_start[v] + t - 1
            } else {
                parent_last.expect("scored segments have a parent")
            };
            out.push(((row_base + pred) as i32, tok));
        }
    }
    out
}
