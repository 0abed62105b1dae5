//! The backward's error bounds (docs/backward.md derives them): for each gradient G of dQ, dK, dV
//!
//!   ||G_kernel - G||_F <= 2 ||R_G||_F + delta ||W_G||_F + u ||G||_F + eta sqrt(len)
//!
//! with G the f64 reference on the same rounded inputs, u the unit roundoff of the element type,
//! eta half its smallest subnormal, and two magnitude tensors computed here in f64 from the exact
//! P, dP, D, dS and O:
//! - R_G (root-sum-square of per-term bounds): every error that is independent from one term of
//!   a gradient's sum to the next (roundings of P and dS to the element type, each pair's fp32
//!   score and dP, each query's D through the forward's O) adds in quadrature;
//! - W_G (sum of absolute values of the terms): the errors shared by many terms (the LSE given
//!   by the forward, the exponent's roundings, ex2.approx: delta_sys relative to each P) and the
//!   fp32 accumulation chains of the sums themselves (gamma_acc), bounded term by term;
//!   delta = delta_sys + gamma_acc.
//!
//! fp32 accumulation on tensor cores: 18 * 2^-23 of the absolute sum per mma of 16 products
//! (tests/emu_gpu_fidelity.rs), for the device as for the emulator.

use half::{bf16, f16};
use prefix_attn::attention::workspace::stats_stride;
use prefix_attn::reference::Element;
use prefix_attn::AttnShape;

use crate::forward_support::bounds::EX2;
use crate::forward_support::cases::Dtype;
use crate::forward_support::check::Inputs;

/// Unit roundoff (round to nearest) of the element type: 2^-p for p significant bits.
pub fn unit_roundoff(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::Bf16 => 2f64.powi(-8),
        Dtype::F16 => 2f64.powi(-11),
    }
}

/// Half the smallest positive subnormal: the absolute rounding error below the normal range.
pub fn underflow(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::Bf16 => 2f64.powi(-134),
        Dtype::F16 => 2f64.powi(-25),
    }
}

/// The dtype tag of an element type.
pub trait Tagged {
    const DTYPE: Dtype;
}
impl Tagged for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}
impl Tagged for f16 {
    const DTYPE: Dtype = Dtype::F16;
}

#[derive(Clone)]
/// The f64 reference gradients and the magnitude tensors of one call (layouts as dQ, dK, dV).
pub struct Reference {
    pub dq: Vec<f64>,
    pub dk: Vec<f64>,
    pub dv: Vec<f64>,
    /// R_G, already square-rooted: [dQ, dK, dV].
    pub r: [Vec<f64>; 3],
    /// W_G: [dQ, dK, dV].
    pub w: [Vec<f64>; 3],
    /// The relative error coefficient of the W terms: delta_sys + gamma_acc.
    pub delta: f64,
    /// LSE ([rows, q_heads, n], natural log, -inf where a query sees no key): the backward's
    /// bound adds the error of the LSE it is given (check_given_lse) to `delta`.
    pub lse: Vec<f64>,
    /// Which queries see at least one key ([rows, n]) and which keys are seen ([rows, n]).
    pub query_sees: Vec<bool>,
    pub key_seen: Vec<bool>,
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

/// Tensor-core accumulation, per mma step of 16 products: 18 * 2^-23 of the absolute sum
/// (tests/emu_gpu_fidelity.rs), over a chain of `steps` steps.
fn mma_chain(steps: f64) -> f64 {
    steps * 18.0 * 2f64.powi(-23)
}

/// The reference gradients (in the same f64 formulas as `prefix_attn::reference::backward`,
/// which a test checks them against) and the magnitudes.
pub fn reference<T: Element + Tagged>(inp: &Inputs<T>, d_o: &[T]) -> Reference {
    let sh = inp.shape;
    let (n, d, qh, kvh) = (sh.n, sh.head_dim, sh.q_heads, sh.kv_heads);
    let scale = f64::from(inp.scale);
    let (log2e, ln2) = (std::f64::consts::LOG2_E, std::f64::consts::LN_2);
    let u = unit_roundoff(T::DTYPE);
    let gamma_d = mma_chain(d as f64 / 16.0);
    // Keys a query's sums run over (k tiles of up to 128 keys), and the longest gradient chain:
    // dK/dV over every query of every head of the group, one mma step per 16 terms.
    let keys = stats_stride(n).unwrap().max(n.div_ceil(128) * 128) as f64;
    let gamma_keys = mma_chain(keys / 16.0) + 2f64.powi(-21);
    let gamma_acc = mma_chain(sh.group() as f64 * keys / 16.0) + 2f64.powi(-23);
    let wide = |x: &[T]| -> Vec<f64> { x.iter().map(|v| v.to_f64()).collect() };
    let (q, k, v, g_o) = (wide(&inp.q), wide(&inp.k), wide(&inp.v), wide(d_o));
    let at_q = |r: usize, i: usize, h: usize| ((r * n + i) * qh + h) * d;
    let at_k = |r: usize, j: usize, g: usize| ((r * n + j) * kvh + g) * d;
    let zeros = |len: usize| vec![0.0; len];
    let mut out = Reference {
        dq: zeros(sh.q_len()),
        dk: zeros(sh.kv_len()),
        dv: zeros(sh.kv_len()),
        r: [zeros(sh.q_len()), zeros(sh.kv_len()), zeros(sh.kv_len())],
        w: [zeros(sh.q_len()), zeros(sh.kv_len()), zeros(sh.kv_len())],
        delta: 0.0,
        lse: vec![f64::NEG_INFINITY; sh.lse_len()],
        query_sees: vec![false; sh.rows * n],
        key_seen: vec![false; sh.rows * n],
    };
    let (mut s_max, mut l_max) = (0.0f64, 0.0f64);
    for r in 0..sh.rows {
        let keys_of = visible(inp.vis_end.row(r), n);
        for h in 0..qh {
            let g = h / sh.group();
            let kj = |j: usize| &k[at_k(r, j, g)..][..d];
            let vj = |j: usize| &v[at_k(r, j, g)..][..d];
            for (i, ks) in keys_of.iter().enumerate() {
                if ks.is_empty() {
                    continue;
                }
                out.query_sees[r * n + i] = true;
                let aq = at_q(r, i, h);
                let (qi, doi) = (&q[aq..][..d], &g_o[aq..][..d]);
                // Exact softmax over the visible keys.
                let s: Vec<f64> = ks.iter().map(|&j| scale * dot(qi, kj(j))).collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let sum: f64 = p.iter().sum();
                p.iter_mut().for_each(|x| *x /= sum);
                let lse = m + sum.ln();
                out.lse[(r * qh + h) * n + i] = lse;
                l_max = l_max.max(lse.abs() * log2e);
                s_max = s.iter().fold(s_max, |a, x| a.max(x.abs() * log2e));
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
                let d_err =
                    d_rms.sqrt() + gamma_keys * abs_dot(doi, &pv) + gamma_d * abs_dot(doi, &o);
                for (t, &j) in ks.iter().enumerate() {
                    out.key_seen[r * n + j] = true;
                    let (pj, ds) = (p[t], p[t] * (dp[t] - big_d));
                    let (kj, vj) = (kj(j), vj(j));
                    // Per-term error bounds of dS: its rounding and its P's score error, dP's fp32
                    // sum (both per pair); dK's also D's (per query, independent across queries).
                    let ds_pair = ds.abs() * (u + eps_s[t]) + pj * gamma_d * abs_dot(doi, vj);
                    let ds_with_d = ds_pair + pj * d_err;
                    let ak = at_k(r, j, g);
                    for c in 0..d {
                        out.dv[ak + c] += pj * doi[c];
                        out.dk[ak + c] += scale * ds * qi[c];
                        out.dq[aq + c] += scale * ds * kj[c];
                        out.r[2][ak + c] += ((u + eps_s[t]) * pj * doi[c]).powi(2);
                        out.r[1][ak + c] += (scale * ds_with_d * qi[c]).powi(2);
                        out.r[0][aq + c] += (scale * ds_pair * kj[c]).powi(2);
                        out.w[2][ak + c] += (pj * doi[c]).abs();
                        out.w[1][ak + c] += (scale * ds * qi[c]).abs();
                        out.w[0][aq + c] += (scale * ds * kj[c]).abs();
                    }
                }
                // dQ's share of D's error is one term per element: scale * dD_i * (P K)_i.
                for (c, pkc) in pk.iter().enumerate() {
                    out.r[0][aq + c] += (scale * d_err * pkc).powi(2);
                }
            }
        }
    }
    for rg in &mut out.r {
        rg.iter_mut().for_each(|x| *x = x.sqrt());
    }
    // Relative errors every P of a row (or of the call) shares: ex2.approx, the LSE the forward
    // gave, and the roundings of scale_log2, lse_log2 and the exponent (base-2 units); then the
    // gradient sums' accumulation chains and the final fp32 multiply by scale.
    let f32_u = 2f64.powi(-24);
    // ex2.approx: within 2 ulp of the correctly rounded result (PTX ISA), i.e. EX2 relative.
    let delta_sys = EX2 + ln2 * 1.01 * f32_u * (2.0 * s_max + 2.0 * l_max);
    out.delta = delta_sys + gamma_acc + 2.0 * f32_u;
    out
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The bound on ||G_kernel - G||_F of gradient `which` (0 dQ, 1 dK, 2 dV).
pub fn tolerance(rf: &Reference, which: usize, dtype: Dtype) -> f64 {
    let t = terms(rf, which, dtype);
    t[0] + t[1] + t[2] + underflow(dtype) * (rf.r[which].len() as f64).sqrt()
}

/// The terms of [`tolerance`] (2 ||R||, delta ||W||, u ||G||) and ||G||, for reports.
pub fn terms(rf: &Reference, which: usize, dtype: Dtype) -> [f64; 4] {
    let g = [&rf.dq, &rf.dk, &rf.dv][which];
    [
        2.0 * norm(&rf.r[which]),
        rf.delta * norm(&rf.w[which]),
        unit_roundoff(dtype) * norm(g),
        norm(g),
    ]
}

pub const NAMES: [&str; 3] = ["dQ", "dK", "dV"];

/// The largest LSE error the first-order bound takes: exp(x) - 1 <= x (1 + x) holds there with
/// room, and a forward within its own derived bound is far below it (about 1e-5 at |LSE| ~ 150).
pub const LSE_ERR_MAX: f64 = 1.0 / 4096.0;

/// The LSE the backward was given (the forward kernel's): -inf exactly where the reference's is,
/// and elsewhere within LSE_ERR_MAX of it. Every probability the backward recomputes from it
/// carries a relative error of at most e (1 + e) for e = max |LSE - reference|, which is added to
/// `rf.delta` (the forward's own accuracy is the forward tests' to check).
pub fn check_given_lse(label: &str, rf: &mut Reference, lse: &[f32]) -> Result<(), String> {
    let mut err: f64 = 0.0;
    for (i, (&g, &w)) in lse.iter().zip(&rf.lse).enumerate() {
        let g = f64::from(g);
        if w == f64::NEG_INFINITY {
            if g != w {
                return Err(format!(
                    "{label}: the forward's LSE[{i}] = {g}, reference -inf"
                ));
            }
            continue;
        }
        let e = (g - w).abs();
        if e.is_nan() || e > LSE_ERR_MAX {
            return Err(format!("{label}: the forward's LSE[{i}] = {g}, reference {w}: beyond {LSE_ERR_MAX:e}, where the backward's first-order bound stops holding"));
        }
        err = err.max(e);
    }
    rf.delta += err * (1.0 + err);
    Ok(())
}

/// Compares kernel gradients (dense) with the reference: every element finite, exact zeros where
/// a query sees no key (dQ) or a key is seen by nobody (dK, dV), and each within its bound.
/// Returns the three errors ||G_kernel - G||_F and tolerances.
pub fn check<T: Element + Tagged>(
    label: &str,
    sh: &AttnShape,
    rf: &Reference,
    got: [&[T]; 3],
) -> Result<[(f64, f64); 3], String> {
    let mut out = [(0.0, 0.0); 3];
    for which in 0..3 {
        let name = NAMES[which];
        let want = [&rf.dq, &rf.dk, &rf.dv][which];
        let g: Vec<f64> = got[which].iter().map(|x| x.to_f64()).collect();
        if g.len() != want.len() {
            return Err(format!(
                "{label}: {name} has {} elements, want {}",
                g.len(),
                want.len()
            ));
        }
        if let Some(i) = g.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "{label}: {name}[{i}] = {} (not written or NaN)",
                g[i]
            ));
        }
        let heads = if which == 0 { sh.q_heads } else { sh.kv_heads };
        let width = heads * sh.head_dim;
        let zero_tokens = if which == 0 {
            &rf.query_sees
        } else {
            &rf.key_seen
        };
        for (t, &live) in zero_tokens.iter().enumerate() {
            if !live {
                if let Some(x) = g[t * width..(t + 1) * width].iter().find(|&&x| x != 0.0) {
                    let what = if which == 0 {
                        "query sees no key"
                    } else {
                        "key is seen by nobody"
                    };
                    return Err(format!(
                        "{label}: row {} token {}: the {what}, but {name} holds {x}",
                        t / sh.n,
                        t % sh.n
                    ));
                }
            }
        }
        let err = g
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let tol = tolerance(rf, which, T::DTYPE);
        out[which] = (err, tol);
        if err.is_nan() || err > tol {
            return Err(format!(
                "{label}: ||{name} - reference|| = {err:.3e} > bound {tol:.3e} (||{name}|| = {:.3e})",
                norm(want)
            ));
        }
    }
    Ok(out)
}

/// Operator-norm bounds (l2 / Frobenius) of the backward's maps dO -> dQ, dK, dV at the exact P
/// of `inp` (they are linear in dO: dV = P^T dO, dS_ij = P_ij dO_i . (V_j - O_i)). Rows, and
/// q heads for dQ, kv heads for dK and dV, are independent blocks: the largest block bounds all.
/// - dV: ||P^T||_2 <= sqrt(max column sum of P) per q head (rows of P sum to 1), the q heads of
///   one kv head combined in quadrature;
/// - dQ: query i's change is at most scale * sum_j P_ij ||V_j - O_i|| ||K_j|| times ||dO_i||'s;
/// - dK: key j's change is at most sum over (head, query) of M_j,(h,i) ||dO_hi|| with
///   M = scale P_ij ||V_j - O_i|| ||Q_i||, and ||M||_2 <= sqrt(||M||_1 ||M||_inf).
pub fn d_o_gain<T: Element>(inp: &Inputs<T>) -> [f64; 3] {
    let sh = inp.shape;
    let (n, d, qh, kvh) = (sh.n, sh.head_dim, sh.q_heads, sh.kv_heads);
    let scale = f64::from(inp.scale);
    let wide = |x: &[T]| -> Vec<f64> { x.iter().map(|v| v.to_f64()).collect() };
    let (q, k, v) = (wide(&inp.q), wide(&inp.k), wide(&inp.v));
    let at_q = |r: usize, i: usize, h: usize| ((r * n + i) * qh + h) * d;
    let at_k = |r: usize, j: usize, g: usize| ((r * n + j) * kvh + g) * d;
    let norm2 = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut gain = [0.0f64; 3];
    for r in 0..sh.rows {
        let keys_of = visible(inp.vis_end.row(r), n);
        for g in 0..kvh {
            let (mut dv_sq, mut m_col_max) = (0.0f64, 0.0f64);
            let mut m_row = vec![0.0f64; n]; // per key j: sum over (h, i) of M
            for h in g * sh.group()..(g + 1) * sh.group() {
                let mut col = vec![0.0f64; n];
                for (i, ks) in keys_of.iter().enumerate() {
                    if ks.is_empty() {
                        continue;
                    }
                    let qi = &q[at_q(r, i, h)..][..d];
                    let s: Vec<f64> = ks
                        .iter()
                        .map(|&j| scale * dot(qi, &k[at_k(r, j, g)..][..d]))
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                    let sum: f64 = p.iter().sum();
                    p.iter_mut().for_each(|x| *x /= sum);
                    let mut o = vec![0.0; d];
                    for (&j, &pj) in ks.iter().zip(&p) {
                        for (oc, vc) in o.iter_mut().zip(&v[at_k(r, j, g)..][..d]) {
                            *oc += pj * vc;
                        }
                    }
                    let (mut dq_gain, mut m_col) = (0.0, 0.0);
                    for (&j, &pj) in ks.iter().zip(&p) {
                        col[j] += pj;
                        let vj = &v[at_k(r, j, g)..][..d];
                        let v_minus_o: f64 = vj
                            .iter()
                            .zip(&o)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f64>()
                            .sqrt();
                        dq_gain += scale * pj * v_minus_o * norm2(&k[at_k(r, j, g)..][..d]);
                        let mji = scale * pj * v_minus_o * norm2(qi);
                        m_col += mji;
                        m_row[j] += mji;
                    }
                    gain[0] = gain[0].max(dq_gain);
                    m_col_max = m_col_max.max(m_col);
                }
                dv_sq += col.iter().cloned().fold(0.0, f64::max);
            }
            let m_row_max = m_row.iter().cloned().fold(0.0, f64::max);
            gain[1] = gain[1].max((m_col_max * m_row_max).sqrt());
            gain[2] = gain[2].max(dv_sq.sqrt());
        }
    }
    gain
}
