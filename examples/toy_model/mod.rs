//! A toy language model for the batch builder's proof of exactness: token + position embedding,
//! one attention layer (GQA), a residual and an LM head; forward and hand-written backward in
//! f64. The attention layer runs on the crate's f64 reference ([`Mode::Reference`]) or, forward
//! and backward, on the crate's kernels under the CPU emulator ([`Mode::Kernels`], f16). Shared by
//! `examples/dpo_toy.rs`, `examples/grpo_toy.rs` and `tests/backward/toy_training_equivalence.rs`, so
//! `cargo test` runs what the examples show.
//!
//! The claim checked: a prefix-shared batch and the paired (unshared) batch of the same samples
//! give the same per-completion log-probs, the same loss and the same parameter gradients (with
//! the kernels: within their error bounds carried through the model, [`propagate`]).
#![allow(dead_code)] // each includer uses part of it

pub mod kernels;
pub mod propagate;

use prefix_attn::batch::{Batch, BatchOptions, LogProbs, Sample};
use prefix_attn::reference::{backward, forward, rel_l2_error};
use prefix_attn::{AttnShape, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const VOCAB: usize = 13;
pub const MAX_LEN: usize = 48;
const Q_HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const D: usize = Q_HEADS * HEAD_DIM; // model width = attention output width (residual)
const KV_W: usize = KV_HEADS * HEAD_DIM;

/// Parameters (or their gradients), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub emb: Vec<f64>, // [VOCAB, D]
    pub pos: Vec<f64>, // [MAX_LEN, D]
    pub wq: Vec<f64>,  // [D, D]
    pub wk: Vec<f64>,  // [D, KV_W]
    pub wv: Vec<f64>,  // [D, KV_W]
    pub lm: Vec<f64>,  // [D, VOCAB]
}

impl Params {
    pub fn random(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut m =
            |len: usize| -> Vec<f64> { (0..len).map(|_| rng.random_range(-0.8..0.8)).collect() };
        Self {
            emb: m(VOCAB * D),
            pos: m(MAX_LEN * D),
            wq: m(D * D),
            wk: m(D * KV_W),
            wv: m(D * KV_W),
            lm: m(D * VOCAB),
        }
    }

    fn zeros() -> Self {
        Self {
            emb: vec![0.0; VOCAB * D],
            pos: vec![0.0; MAX_LEN * D],
            wq: vec![0.0; D * D],
            wk: vec![0.0; D * KV_W],
            wv: vec![0.0; D * KV_W],
            lm: vec![0.0; D * VOCAB],
        }
    }

    pub fn named(&self) -> [(&'static str, &[f64]); 6] {
        [
            ("emb", &self.emb),
            ("pos", &self.pos),
            ("wq", &self.wq),
            ("wk", &self.wk),
            ("wv", &self.wv),
            ("lm", &self.lm),
        ]
    }
}

/// `a [m, k] @ b [k, n]`.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j];
            }
        }
    }
    c
}

/// `a^T b` for `a [m, k]`, `b [m, n]`: `[k, n]`.
fn matmul_tn(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; k * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                c[p * n + j] += x * b[i * n + j];
            }
        }
    }
    c
}

/// `a b^T` for `a [m, n]`, `b [k, n]`: `[m, k]`.
fn matmul_nt(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * k];
    for i in 0..m {
        for p in 0..k {
            c[i * k + p] = (0..n).map(|j| a[i * n + j] * b[p * n + j]).sum();
        }
    }
    c
}

fn add_into(acc: &mut [f64], x: &[f64]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

/// Where the attention layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The crate's f64 reference.
    Reference,
    /// The crate's forward and backward kernels on the CPU emulator (f16).
    Kernels,
}

/// What the backward pass needs from the forward pass.
pub struct Forward {
    shape: AttnShape,
    x: Vec<f64>,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    /// The attention layer's output.
    o: Vec<f64>,
    h: Vec<f64>,
    pub logits: Vec<f64>,
    /// Mode::Kernels: the layer's kernel calls.
    call: Option<kernels::KernelCall>,
}

const SCALE: f64 = 0.5;

pub fn forward_model(p: &Params, batch: &Batch) -> Result<Forward> {
    forward_with_positions(p, batch, batch.positions())
}

/// [`forward_model`] with other position ids (to show that wrong ones are caught).
pub fn forward_with_positions(p: &Params, batch: &Batch, positions: &[i32]) -> Result<Forward> {
    forward_in(p, batch, positions, Mode::Reference)
}

/// The forward pass with the attention layer in `mode`.
pub fn forward_in(p: &Params, batch: &Batch, positions: &[i32], mode: Mode) -> Result<Forward> {
    let tokens = batch.rows() * batch.n();
    let shape = AttnShape {
        rows: batch.rows(),
        n: batch.n(),
        q_heads: Q_HEADS,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
    };
    let mut x = vec![0.0; tokens * D];
    for t in 0..tokens {
        let (tok, pos) = (batch.token_ids()[t] as usize, positions[t] as usize);
        for c in 0..D {
            x[t * D + c] = p.emb[tok * D + c] + p.pos[pos * D + c];
        }
    }
    let q = matmul(&x, &p.wq, tokens, D, D);
    let k = matmul(&x, &p.wk, tokens, D, KV_W);
    let v = matmul(&x, &p.wv, tokens, D, KV_W);
    let (o, call) = match mode {
        Mode::Reference => (forward(&shape, batch.vis_end(), &q, &k, &v, SCALE)?.o, None),
        Mode::Kernels => {
            let (o, call) = kernels::forward(&shape, batch.vis_end(), &q, &k, &v, SCALE)?;
            (o, Some(call))
        }
    };
    let (h, logits) = head(p, &x, &o);
    Ok(Forward {
        shape,
        x,
        q,
        k,
        v,
        o,
        h,
        logits,
        call,
    })
}

impl Forward {
    /// Mode::Kernels: the attention layer's kernel calls (inputs and outputs as the kernels saw
    /// them).
    pub fn kernel_call(&self) -> Option<&kernels::KernelCall> {
        self.call.as_ref()
    }
}

/// The residual and the LM head: h = x + O and the logits.
fn head(p: &Params, x: &[f64], o: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut h = x.to_vec();
    add_into(&mut h, o);
    let logits = matmul(&h, &p.lm, x.len() / D, D, VOCAB);
    (h, logits)
}

/// The attention layer's backward: (dQ, dK, dV) from dO, in the toy's layouts.
pub type AttnBackward<'a> = dyn FnMut(&[f64]) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> + 'a;

/// Parameter gradients given the gradient of the loss with respect to the logits (the attention
/// layer in the forward's mode; a kernel call records dO and the gradients).
pub fn backward_model(
    p: &Params,
    batch: &Batch,
    f: &mut Forward,
    d_logits: &[f64],
) -> Result<Params> {
    let (shape, vis_end) = (f.shape, batch.vis_end());
    let (q, k, v) = (&f.q, &f.k, &f.v);
    let mut attn: Box<AttnBackward> = match f.call.as_mut() {
        None => Box::new(move |dh: &[f64]| {
            let att = backward(&shape, vis_end, q, k, v, dh, SCALE)?;
            Ok((att.dq, att.dk, att.dv))
        }),
        Some(call) => Box::new(move |dh: &[f64]| kernels::backward(call, HEAD_DIM, dh)),
    };
    gradients(p, batch, &f.x, &f.h, d_logits, &mut *attn)
}

/// The parameter gradients from the logits' gradient, the attention layer's backward given.
fn gradients(
    p: &Params,
    batch: &Batch,
    x: &[f64],
    h: &[f64],
    d_logits: &[f64],
    attn: &mut AttnBackward,
) -> Result<Params> {
    let tokens = batch.rows() * batch.n();
    let mut g = Params::zeros();
    g.lm = matmul_tn(h, d_logits, tokens, D, VOCAB);
    let dh = matmul_nt(d_logits, &p.lm, tokens, VOCAB, D);
    let (dq, dk, dv) = attn(&dh)?;
    let mut dx = dh; // residual
    g.wq = matmul_tn(x, &dq, tokens, D, D);
    g.wk = matmul_tn(x, &dk, tokens, D, KV_W);
    g.wv = matmul_tn(x, &dv, tokens, D, KV_W);
    add_into(&mut dx, &matmul_nt(&dq, &p.wq, tokens, D, D));
    add_into(&mut dx, &matmul_nt(&dk, &p.wk, tokens, KV_W, D));
    add_into(&mut dx, &matmul_nt(&dv, &p.wv, tokens, KV_W, D));
    for t in 0..tokens {
        let (tok, pos) = (batch.token_ids()[t] as usize, batch.positions()[t] as usize);
        add_into(&mut g.emb[tok * D..(tok + 1) * D], &dx[t * D..(t + 1) * D]);
        add_into(&mut g.pos[pos * D..(pos + 1) * D], &dx[t * D..(t + 1) * D]);
    }
    Ok(g)
}

/// Per-completion log-prob sums of `p` on `batch`, with the forward pass kept for backward.
pub fn log_probs(p: &Params, batch: &Batch) -> Result<(Forward, LogProbs)> {
    log_probs_in(p, batch, Mode::Reference)
}

/// [`log_probs`] with the attention layer in `mode`.
pub fn log_probs_in(p: &Params, batch: &Batch, mode: Mode) -> Result<(Forward, LogProbs)> {
    let f = forward_in(p, batch, batch.positions(), mode)?;
    let lp = batch.log_prob_map().gather(&f.logits, VOCAB)?;
    Ok((f, lp))
}

/// One step's results in one format.
pub struct Step {
    pub log_probs: Vec<f64>,
    pub loss: f64,
    pub grads: Params,
    pub real_tokens: usize,
    pub efficiency: f64,
    /// Mode::Kernels: the forward pass (with its kernel calls), for the error bounds.
    pub forward: Option<Forward>,
}

/// A loss of the per-completion log-prob sums: returns the loss and its gradient per sum.
pub type Loss<'a> = dyn Fn(&Batch, &LogProbs) -> (f64, Vec<f64>) + 'a;

/// The step's outputs after the attention forward, given its output O: log-prob sums, loss and
/// parameter gradients (what [`propagate`] differentiates with respect to O).
fn after_attention(
    p: &Params,
    batch: &Batch,
    x: &[f64],
    o: &[f64],
    loss: &Loss,
    attn: &mut AttnBackward,
) -> Result<(LogProbs, f64, Params)> {
    let (h, logits) = head(p, x, o);
    let map = batch.log_prob_map();
    let lp = map.gather(&logits, VOCAB)?;
    let (value, d_sums) = loss(batch, &lp);
    let d_logits = map.backward(&logits, VOCAB, &map.spread_sums(&d_sums)?)?;
    let grads = gradients(p, batch, x, &h, &d_logits, attn)?;
    Ok((lp, value, grads))
}

pub fn step(p: &Params, batch: &Batch, loss: &Loss) -> Result<Step> {
    step_in(p, batch, loss, Mode::Reference)
}

/// [`step`] with the attention layer in `mode`.
pub fn step_in(p: &Params, batch: &Batch, loss: &Loss, mode: Mode) -> Result<Step> {
    let (mut f, lp) = log_probs_in(p, batch, mode)?;
    let (value, d_sums) = loss(batch, &lp);
    let map = batch.log_prob_map();
    let d_logits = map.backward(&f.logits, VOCAB, &map.spread_sums(&d_sums)?)?;
    let grads = backward_model(p, batch, &mut f, &d_logits)?;
    Ok(Step {
        grads,
        log_probs: lp.sums,
        loss: value,
        real_tokens: batch.real_tokens(),
        efficiency: batch.efficiency(),
        forward: (mode == Mode::Kernels).then_some(f),
    })
}

/// The shared step against the paired step.
pub struct Comparison {
    pub shared: Step,
    pub paired: Step,
    pub shared_batch: Batch,
    pub paired_batch: Batch,
    /// The parameters and the loss both steps ran with.
    pub params: Params,
    pub loss: Box<Loss<'static>>,
}

impl Comparison {
    pub fn run(samples: &[Sample], p: &Params, loss: Box<Loss<'static>>) -> Result<Self> {
        Self::run_in(samples, p, loss, Mode::Reference)
    }

    /// [`Self::run`] with the attention layer in `mode`.
    pub fn run_in(
        samples: &[Sample],
        p: &Params,
        loss: Box<Loss<'static>>,
        mode: Mode,
    ) -> Result<Self> {
        let opts = BatchOptions {
            vocab: Some(VOCAB as u32),
            round_to: Some(16),
            ..BatchOptions::new(MAX_LEN)
        };
        let (shared_batch, paired_batch) = (
            Batch::shared(samples, &opts)?,
            Batch::paired(samples, &opts)?,
        );
        Ok(Self {
            shared: step_in(p, &shared_batch, &*loss, mode)?,
            paired: step_in(p, &paired_batch, &*loss, mode)?,
            shared_batch,
            paired_batch,
            params: p.clone(),
            loss,
        })
    }

    /// The differences shared - paired: (name, ||shared - paired||_2, ||paired||_2), in the
    /// order of [`Self::errors`].
    pub fn differences(&self) -> Vec<(&'static str, f64, f64)> {
        let diff = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let norm = |a: &[f64]| a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (s, p) = (&self.shared, &self.paired);
        let mut out = vec![
            (
                "log-probs",
                diff(&s.log_probs, &p.log_probs),
                norm(&p.log_probs),
            ),
            ("loss", (s.loss - p.loss).abs(), p.loss.abs()),
        ];
        for ((name, a), (_, b)) in s.grads.named().into_iter().zip(p.grads.named()) {
            out.push((name, diff(a, b), norm(b)));
        }
        out
    }

    /// Largest relative differences: (log-probs, loss, each gradient by name).
    pub fn errors(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            (
                "log-probs",
                rel_l2_error(&self.shared.log_probs, &self.paired.log_probs),
            ),
            (
                "loss",
                rel_l2_error(&[self.shared.loss], &[self.paired.loss]),
            ),
        ];
        for ((name, a), (_, b)) in self
            .shared
            .grads
            .named()
            .into_iter()
            .zip(self.paired.grads.named())
        {
            out.push((name, rel_l2_error(a, b)));
        }
        out
    }

    pub fn print(&self, what: &str) {
        println!(
            "{what}: shared batch {} real tokens ({:.0}% of its rows), paired batch {} ({:.0}%)",
            self.shared.real_tokens,
            100.0 * self.shared.efficiency,
            self.paired.real_tokens,
            100.0 * self.paired.efficiency
        );
        println!(
            "  loss shared {:.12} paired {:.12}",
            self.shared.loss, self.paired.loss
        );
        for (name, err) in self.errors() {
            println!("  {name:>9}: relative difference {err:.2e}");
        }
    }
}

/// f64 through different summation orders only: anything above this is a wrong token, position
/// or mask, which shows up at order 1e-2 or more.
pub const TOLERANCE: f64 = 1e-10;

fn random_tokens(rng: &mut StdRng, lo: usize, hi: usize) -> Vec<u32> {
    (0..rng.random_range(lo..=hi))
        .map(|_| rng.random_range(0..VOCAB as u32))
        .collect()
}

/// DPO: `pairs` prompts with a chosen (completion 0) and a rejected (completion 1) answer.
pub fn dpo_samples(seed: u64, pairs: usize) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..pairs)
        .map(|_| {
            let prompt = random_tokens(&mut rng, 4, 12);
            let chosen = random_tokens(&mut rng, 2, 8);
            let rejected = random_tokens(&mut rng, 2, 8);
            Sample::completions(prompt, vec![chosen, rejected])
        })
        .collect()
}

/// The DPO loss `mean_pairs -ln sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))` against
/// fixed reference log-probs (one per completion, in the map's order).
pub fn dpo_loss(beta: f64, reference: Vec<f64>) -> impl Fn(&Batch, &LogProbs) -> (f64, Vec<f64>) {
    move |batch, lp| {
        let map = batch.log_prob_map();
        let pairs = map.completions().len() / 2;
        let mut d = vec![0.0; map.completions().len()];
        let mut loss = 0.0;
        for s in 0..pairs {
            let (c, r) = (map.find(s, 0).unwrap(), map.find(s, 1).unwrap());
            let z = beta * ((lp.sums[c] - reference[c]) - (lp.sums[r] - reference[r]));
            loss += (1.0 + (-z).exp()).ln() / pairs as f64;
            let dz = -1.0 / (1.0 + z.exp()) / pairs as f64; // d(-ln sigmoid z)/dz
            d[c] = beta * dz;
            d[r] = -beta * dz;
        }
        (loss, d)
    }
}

/// GRPO: `groups` prompts with `k` sampled completions each.
pub fn grpo_samples(seed: u64, groups: usize, k: usize) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..groups)
        .map(|_| {
            let prompt = random_tokens(&mut rng, 3, 10);
            Sample::completions(
                prompt,
                (0..k).map(|_| random_tokens(&mut rng, 1, 6)).collect(),
            )
        })
        .collect()
}

/// The on-policy GRPO surrogate: `-mean_groups mean_c A_c * mean_tokens log p`, with group-
/// normalized advantages `A_c = (r_c - mean r) / (std r + 1e-6)` from fixed rewards.
pub fn grpo_loss(rewards: Vec<Vec<f64>>) -> impl Fn(&Batch, &LogProbs) -> (f64, Vec<f64>) {
    move |batch, lp| {
        let map = batch.log_prob_map();
        let groups = rewards.len() as f64;
        let mut d = vec![0.0; map.completions().len()];
        let mut loss = 0.0;
        for (s, r) in rewards.iter().enumerate() {
            let k = r.len() as f64;
            let mean = r.iter().sum::<f64>() / k;
            let std = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / k).sqrt();
            for (c, &rc) in r.iter().enumerate() {
                let i = map.find(s, c).unwrap();
                let len = lp.tokens(i).len() as f64;
                let a = (rc - mean) / (std + 1e-6);
                let w = -a / (k * len * groups);
                loss += w * lp.sums[i];
                d[i] = w;
            }
        }
        (loss, d)
    }
}

pub fn grpo_rewards(seed: u64, groups: usize, k: usize) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..groups)
        .map(|_| (0..k).map(|_| rng.random_range(0.0..1.0)).collect())
        .collect()
}

/// The DPO demo: a policy and a frozen reference model, shared vs paired.
pub fn dpo_demo(seed: u64) -> Result<Comparison> {
    dpo_demo_in(seed, Mode::Reference)
}

/// [`dpo_demo`] with the attention layer in `mode`.
pub fn dpo_demo_in(seed: u64, mode: Mode) -> Result<Comparison> {
    let samples = dpo_samples(seed, 5);
    let policy = Params::random(seed + 1);
    let reference_model = Params::random(seed + 2);
    let opts = BatchOptions::new(MAX_LEN);
    // Reference log-probs from the paired format, as a trainer without this crate would have.
    let (_, reference) = log_probs(&reference_model, &Batch::paired(&samples, &opts)?)?;
    Comparison::run_in(
        &samples,
        &policy,
        Box::new(dpo_loss(0.1, reference.sums)),
        mode,
    )
}

/// The GRPO demo: groups of k completions with fixed rewards, shared vs paired.
pub fn grpo_demo(seed: u64, k: usize) -> Result<Comparison> {
    grpo_demo_in(seed, k, Mode::Reference)
}

/// [`grpo_demo`] with the attention layer in `mode`.
pub fn grpo_demo_in(seed: u64, k: usize, mode: Mode) -> Result<Comparison> {
    let samples = grpo_samples(seed, 3, k);
    let policy = Params::random(seed + 1);
    Comparison::run_in(
        &samples,
        &policy,
        Box::new(grpo_loss(grpo_rewards(seed + 2, 3, k))),
        mode,
    )
}
