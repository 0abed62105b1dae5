//! The backward's error bounds (docs/backward.md derives them): for each gradient G of dQ, dK, dV
//!
//! ```text
//! ||G_kernel - G||_F <= 2 ||R_G||_F + delta ||W_G||_F + u ||G||_F + eta sqrt(len)
//! ```
//!
//! with G the f64 reference on the same inputs, u the unit roundoff of the element type, eta half
//! its smallest subnormal, and two magnitude tensors computed here in f64 from the exact P, dP, D,
//! dS and O:
//! - R_G (root-sum-square of per-term bounds): every error that is independent from one term of
//!   a gradient's sum to the next (roundings of P and dS to the element type, each pair's fp32
//!   score and dP, each query's D through the forward's O) adds in quadrature;
//! - W_G (sum of absolute values of the terms): the errors shared by many terms (the LSE given
//!   by the forward, the exponent's roundings, ex2.approx: delta_sys relative to each P) and the
//!   fp32 accumulation chains of the sums themselves (gamma_acc), bounded term by term;
//!   delta = delta_sys + gamma_acc + 2^-23, plus e (1 + e) for the error e of the LSE the
//!   backward was given ([`BackwardBounds::forward_lse_error`]).
//!
//! A norm bound, not a per-element one: independent roundings add in quadrature only over many
//! terms, which a Frobenius norm sums. fp32 accumulation on tensor cores:
//! [`MMA_STEP_BACKWARD`] of the absolute sum per mma of 16 products, device and emulator alike.

use crate::attention::workspace::stats_stride;
use crate::error::Result;
use crate::reference::Element;
use crate::shape::AttnShape;

use super::figures::{Dtype, EX2, MMA_STEP_BACKWARD};
use super::inputs::{check_tensor, Inputs};
use super::parallel::par_map;

/// One of the backward's three gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grad {
    /// dQ, `[rows, n, q_heads, d]`.
    Dq,
    /// dK, `[rows, n, kv_heads, d]`.
    Dk,
    /// dV, `[rows, n, kv_heads, d]`.
    Dv,
}

impl Grad {
    /// dQ, dK, dV, in the order arrays indexed by `Grad as usize` hold them.
    pub const ALL: [Grad; 3] = [Grad::Dq, Grad::Dk, Grad::Dv];

    /// "dQ", "dK" or "dV".
    pub fn name(self) -> &'static str {
        match self {
            Grad::Dq => "dQ",
            Grad::Dk => "dK",
            Grad::Dv => "dV",
        }
    }
}

impl std::fmt::Display for Grad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of the LSE the backward was given, measured against the reference by
/// [`BackwardBounds::forward_lse_error`] (at most [`LSE_ERR_MAX`](super::figures::LSE_ERR_MAX)); or [`LseError::EXACT`] for a
/// backward given the exact LSE.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct LseError(pub(crate) f64);

impl LseError {
    /// No error: the bound of a backward given the exact LSE.
    pub const EXACT: LseError = LseError(0.0);

    /// max |LSE_given - LSE_reference| over the queries that see a key.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// The reference gradients of one backward call and the magnitudes their bounds are made of.
///
/// Built by [`BackwardBounds::new`]; checks a kernel's gradients with [`BackwardBounds::check`].
#[derive(Debug, Clone)]
pub struct BackwardBounds {
    pub(crate) shape: AttnShape,
    pub(crate) dtype: Dtype,
    /// The reference dQ, dK, dV.
    pub(crate) grads: [Vec<f64>; 3],
    /// Per gradient: ||R_G||_F, ||W_G||_F, ||G||_F.
    pub(crate) norms: [[f64; 3]; 3],
    /// delta_sys + gamma_acc + 2^-23.
    pub(crate) delta: f64,
    /// LSE (`[rows, q_heads, n]`, natural log, -inf where a query sees no key).
    pub(crate) lse: Vec<f64>,
    /// Which queries see at least one key, and which keys are seen (`[rows, n]` each).
    pub(crate) query_sees: Vec<bool>,
    pub(crate) key_seen: Vec<bool>,
}

/// Per row: the visible keys of each query, ascending.
fn visible(vis_end: &[i32], n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| (0..=i).filter(|&j| i < vis_end[j] as usize).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn abs_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum()
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Tensor-core accumulation over a chain of `steps` mma steps of 16 products:
/// [`MMA_STEP_BACKWARD`] of the absolute sum each.
fn mma_chain(steps: f64) -> f64 {
    steps * MMA_STEP_BACKWARD
}

/// What one (row, kv head) contributes: the gradients and magnitudes of its keys (`[n, d]`) and
/// of the queries of its group's heads (`[group, n, d]`), its LSEs (`[group, n]`), which of its
/// queries see a key and which keys are seen, and its largest scaled score and |LSE| (base 2).
struct Unit {
    /// dQ, dK, dV; then R^2 and W of each.
    g: [Vec<f64>; 3],
    r: [Vec<f64>; 3],
    w: [Vec<f64>; 3],
    lse: Vec<f64>,
    query_sees: Vec<bool>,
    key_seen: Vec<bool>,
    s_max: f64,
    l_max: f64,
}

/// The widened inputs and the constants every unit uses.
struct Common<'a> {
    sh: AttnShape,
    vis_end: &'a crate::mask::VisEnd,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    g_o: Vec<f64>,
    scale: f64,
    u: f64,
    gamma_d: f64,
    gamma_keys: f64,
}

/// The reference gradients (in the same f64 formulas as `crate::reference::backward`) and the
/// magnitudes of row r, kv head g: every sum runs in the order the whole-call loop over (row,
/// q head, query, key) would run it, so the numbers do not depend on the split.
fn unit(c: &Common<'_>, r: usize, g: usize) -> Unit {
    let sh = c.sh;
    let (n, d, qh, kvh) = (sh.n, sh.head_dim, sh.q_heads, sh.kv_heads);
    let group = sh.group();
    let (log2e, ln2) = (std::f64::consts::LOG2_E, std::f64::consts::LN_2);
    let (u, gamma_d, gamma_keys, scale) = (c.u, c.gamma_d, c.gamma_keys, c.scale);
    let (q, k, v, g_o) = (&c.q, &c.k, &c.v, &c.g_o);
    let at_q = |r: usize, i: usize, h: usize| ((r * n + i) * qh + h) * d;
    let at_k = |r: usize, j: usize, g: usize| ((r * n + j) * kvh + g) * d;
    let zeros = |len: usize| vec![0.0; len];
    let mut out = Unit {
        g: [zeros(group * n * d), zeros(n * d), zeros(n * d)],
        r: [zeros(group * n * d), zeros(n * d), zeros(n * d)],
        w: [zeros(group * n * d), zeros(n * d), zeros(n * d)],
        lse: vec![f64::NEG_INFINITY; group * n],
        query_sees: vec![false; n],
        key_seen: vec![false; n],
        s_max: 0.0,
        l_max: 0.0,
    };
    let keys_of = visible(c.vis_end.row(r), n);
    let kj = |j: usize| &k[at_k(r, j, g)..][..d];
    let vj = |j: usize| &v[at_k(r, j, g)..][..d];
    for hh in 0..group {
        let h = g * group + hh;
        for (i, ks) in keys_of.iter().enumerate() {
            if ks.is_empty() {
                continue;
            }
            out.query_sees[i] = true;
            let aq = at_q(r, i, h);
            let lq = (hh * n + i) * d;
            let (qi, doi) = (&q[aq..][..d], &g_o[aq..][..d]);
            // Exact softmax over the visible keys.
            let s: Vec<f64> = ks.iter().map(|&j| scale * dot(qi, kj(j))).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let sum: f64 = p.iter().sum();
            p.iter_mut().for_each(|x| *x /= sum);
            let lse = m + sum.ln();
            out.lse[hh * n + i] = lse;
            out.l_max = out.l_max.max(lse.abs() * log2e);
            out.s_max = s.iter().fold(out.s_max, |a, x| a.max(x.abs() * log2e));
            // Each recomputed P's relative error from its fp32 score (independent per pair),
            // plus its rounding to the element type where it is rounded.
            let eps_s: Vec<f64> = ks
                .iter()
                .map(|&j| ln2 * 1.01 * gamma_d * scale * log2e * abs_dot(qi, kj(j)))
                .collect();
            let (mut o, mut pv, mut pk) = (zeros(d), zeros(d), zeros(d));
            for (&j, &pj) in ks.iter().zip(&p) {
                let (kj, vj) = (kj(j), vj(j));
                for c in 0..d {
                    o[c] += pj * vj[c];
                    pv[c] += pj * vj[c].abs();
                    pk[c] += pj * kj[c];
                }
            }
            let big_d = dot(doi, &o);
            let dp: Vec<f64> = ks.iter().map(|&j| dot(doi, vj(j))).collect();
            // D's error through the forward's O (each P and O element rounded to the element
            // type: independent terms), the forward's key accumulation, and the preprocess's
            // fp32 sum.
            let d_rms = (0..ks.len())
                .map(|t| ((u + eps_s[t]) * p[t] * dp[t]).powi(2))
                .sum::<f64>()
                + (0..d).map(|c| (u * doi[c] * o[c]).powi(2)).sum::<f64>();
            let d_err = d_rms.sqrt() + gamma_keys * abs_dot(doi, &pv) + gamma_d * abs_dot(doi, &o);
            for (t, &j) in ks.iter().enumerate() {
                out.key_seen[j] = true;
                let (pj, ds) = (p[t], p[t] * (dp[t] - big_d));
                let (kj, vj) = (kj(j), vj(j));
                // Per-term error bounds of dS: its rounding and its P's score error, dP's fp32
                // sum (both per pair); dK's also D's (per query, independent across queries).
                let ds_pair = ds.abs() * (u + eps_s[t]) + pj * gamma_d * abs_dot(doi, vj);
                let ds_with_d = ds_pair + pj * d_err;
                let lk = j * d;
                for c in 0..d {
                    out.g[2][lk + c] += pj * doi[c];
                    out.g[1][lk + c] += scale * ds * qi[c];
                    out.g[0][lq + c] += scale * ds * kj[c];
                    out.r[2][lk + c] += ((u + eps_s[t]) * pj * doi[c]).powi(2);
                    out.r[1][lk + c] += (scale * ds_with_d * qi[c]).powi(2);
                    out.r[0][lq + c] += (scale * ds_pair * kj[c]).powi(2);
                    out.w[2][lk + c] += (pj * doi[c]).abs();
                    out.w[1][lk + c] += (scale * ds * qi[c]).abs();
                    out.w[0][lq + c] += (scale * ds * kj[c]).abs();
                }
            }
            // dQ's share of D's error is one term per element: scale * dD_i * (P K)_i.
            for (c, pkc) in pk.iter().enumerate() {
                out.r[0][lq + c] += (scale * d_err * pkc).powi(2);
            }
        }
    }
    out
}

impl BackwardBounds {
    /// The f64 reference gradients of `inputs` with output gradient `d_o` (`[rows, n, q_heads,
    /// d]`), and the magnitudes of their bounds for kernels computing in `dtype`.
    ///
    /// Errors: as [`super::ForwardBounds::new`] for the inputs (shape, `vis_end`, lengths, scale,
    /// head dim, values not exactly `dtype` values), and the same for `d_o`; a row length whose
    /// backward workspace would overflow the kernels' int32 indexing (`IndexOverflow`).
    pub fn new<T: Element>(inputs: Inputs<'_, T>, d_o: &[T], dtype: Dtype) -> Result<Self> {
        inputs.validate(dtype)?;
        let sh = inputs.shape;
        check_tensor("d_o", d_o, sh.q_len(), dtype)?;
        let n = sh.n;
        let u = dtype.unit_roundoff();
        let gamma_d = mma_chain(sh.head_dim as f64 / 16.0);
        // Keys a query's sums run over (k tiles of up to 128 keys), and the longest gradient
        // chain: dK/dV over every query of every head of the group, one mma step per 16 terms.
        let keys = stats_stride(n)?.max(n.div_ceil(128) * 128) as f64;
        let gamma_keys = mma_chain(keys / 16.0) + 2f64.powi(-21);
        let gamma_acc = mma_chain(sh.group() as f64 * keys / 16.0) + 2f64.powi(-23);
        let wide = |x: &[T]| -> Vec<f64> { x.iter().map(|v| v.to_f64()).collect() };
        let common = Common {
            sh,
            vis_end: inputs.vis_end,
            q: wide(inputs.q),
            k: wide(inputs.k),
            v: wide(inputs.v),
            g_o: wide(d_o),
            scale: inputs.scale.as_f64(),
            u,
            gamma_d,
            gamma_keys,
        };
        let units: Vec<(usize, usize)> = (0..sh.rows)
            .flat_map(|r| (0..sh.kv_heads).map(move |g| (r, g)))
            .collect();
        let parts = par_map(&units, |&(r, g)| unit(&common, r, g));

        let (qh, kvh, d, group) = (sh.q_heads, sh.kv_heads, sh.head_dim, sh.group());
        let zeros = |len: usize| vec![0.0; len];
        let mut grads = [zeros(sh.q_len()), zeros(sh.kv_len()), zeros(sh.kv_len())];
        let mut r = [zeros(sh.q_len()), zeros(sh.kv_len()), zeros(sh.kv_len())];
        let mut w = [zeros(sh.q_len()), zeros(sh.kv_len()), zeros(sh.kv_len())];
        let mut lse = vec![f64::NEG_INFINITY; sh.lse_len()];
        let mut query_sees = vec![false; sh.rows * n];
        let mut key_seen = vec![false; sh.rows * n];
        let (mut s_max, mut l_max) = (0.0f64, 0.0f64);
        for (&(row, g), p) in units.iter().zip(&parts) {
            for i in 0..n {
                query_sees[row * n + i] |= p.query_sees[i];
                key_seen[row * n + i] |= p.key_seen[i];
                // (global, local) offsets of the d values of token i: one per kv-head tensor
                // (dK, dV), one per head of the group for the q-head tensor (dQ).
                let ak = ((row * n + i) * kvh + g) * d;
                let mut at = vec![(1, ak, i * d), (2, ak, i * d)];
                for hh in 0..group {
                    let h = g * group + hh;
                    at.push((0, ((row * n + i) * qh + h) * d, (hh * n + i) * d));
                    lse[(row * qh + h) * n + i] = p.lse[hh * n + i];
                }
                for (x, a, l) in at {
                    grads[x][a..a + d].copy_from_slice(&p.g[x][l..l + d]);
                    r[x][a..a + d].copy_from_slice(&p.r[x][l..l + d]);
                    w[x][a..a + d].copy_from_slice(&p.w[x][l..l + d]);
                }
            }
            s_max = s_max.max(p.s_max);
            l_max = l_max.max(p.l_max);
        }
        drop(parts);
        for rg in &mut r {
            rg.iter_mut().for_each(|x| *x = x.sqrt());
        }
        // Relative errors every P of a row (or of the call) shares: ex2.approx, and the roundings
        // of scale_log2, lse_log2 and the exponent (base-2 units); then the gradient sums'
        // accumulation chains and the final fp32 multiply by scale. (The LSE given by the
        // forward adds its own error at the check.)
        let f32_u = 2f64.powi(-24);
        let ln2 = std::f64::consts::LN_2;
        // ex2.approx: within 2 ulp of the correctly rounded result (PTX ISA), i.e. EX2 relative.
        let delta_sys = EX2 + ln2 * 1.01 * f32_u * (2.0 * s_max + 2.0 * l_max);
        let delta = delta_sys + gamma_acc + 2.0 * f32_u;
        let norms = [0, 1, 2].map(|x| [norm(&r[x]), norm(&w[x]), norm(&grads[x])]);
        Ok(BackwardBounds {
            shape: sh,
            dtype,
            grads,
            norms,
            delta,
            lse,
            query_sees,
            key_seen,
        })
    }

    /// The reference gradient `which` (dense, in its layout).
    pub fn reference(&self, which: Grad) -> &[f64] {
        &self.grads[which as usize]
    }

    /// The reference LSE (`[rows, q_heads, n]`, natural log, -inf where a query sees no key).
    pub fn lse(&self) -> &[f64] {
        &self.lse
    }

    /// The shape of the call.
    pub fn shape(&self) -> &AttnShape {
        &self.shape
    }

    /// The element type the bounds are for.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Whether query `i` of row `r` sees at least one key (where it does not, dQ must be exactly
    /// 0).
    pub fn query_sees_a_key(&self, r: usize, i: usize) -> bool {
        self.query_sees.get(r * self.shape.n + i) == Some(&true)
    }

    /// Whether key `j` of row `r` is seen by at least one query (where it is not, dK and dV must
    /// be exactly 0).
    pub fn key_is_seen(&self, r: usize, j: usize) -> bool {
        self.key_seen.get(r * self.shape.n + j) == Some(&true)
    }

    /// The bound on ||G_kernel - G||_F of gradient `which` for a backward given an LSE with error
    /// `lse_error`.
    pub fn bound(&self, which: Grad, lse_error: LseError) -> f64 {
        let t = self.terms(which, lse_error);
        t[0] + t[1]
            + t[2]
            + self.dtype.underflow() * (self.grads[which as usize].len() as f64).sqrt()
    }

    /// The terms of [`Self::bound`] (2 ||R||, delta ||W||, u ||G||) and ||G||, for reports.
    pub fn terms(&self, which: Grad, lse_error: LseError) -> [f64; 4] {
        let [r, w, g] = self.norms[which as usize];
        let e = lse_error.0;
        [
            2.0 * r,
            (self.delta + e * (1.0 + e)) * w,
            self.dtype.unit_roundoff() * g,
            g,
        ]
    }
}
