//! How far the kernels' errors can move a toy step's outputs (docs/backward.md, "The toy model
//! through the kernels"), to first order, from bounds on the attention layer's errors:
//!
//! - the forward's O error reaches every output through the rest of the f64 model (logits, the
//!   loss, dO, the exact attention backward, the gradients): the Jacobian J_Y of each output block
//!   Y with respect to O, by central differences, gives ||dY|| <= ||J_Y||_2 ||dO_err||;
//! - the backward's dQ, dK, dV errors (the kernels' own, plus dO's rounding to their type times
//!   the backward's gain) reach the gradients through linear maps: x^T dQ for W_q (norm
//!   ||x||_2), and the scatter-adds of dx = dQ W_q^T + ... into the embedding rows of each token
//!   id and position (norm sqrt(largest count) ||W_q||_2).
//!
//! Spectral norms come from power iteration, stopped when the estimate moves by less than 1e-9
//! relative and then enlarged by 10% (power iteration approaches the norm from below).

use prefix_attn::batch::Batch;
use prefix_attn::reference::backward;
use prefix_attn::Result;

use super::{after_attention, Forward, Loss, Params, D, KV_W, SCALE};

/// Bounds on one step's attention-layer errors (Frobenius norms).
#[derive(Debug, Clone, Copy)]
pub struct AttnBounds {
    /// ||O_kernel - O||: the forward kernel's error.
    pub o: f64,
    /// ||G_kernel - G(dO given)|| for dQ, dK, dV: the backward kernels' error on their inputs.
    pub grads: [f64; 3],
    /// Operator-norm bounds of the (linear) maps dO -> dQ, dK, dV.
    pub d_o_gain: [f64; 3],
    /// The kernels' unit roundoff (dO is rounded to their type).
    pub u: f64,
}

/// The names of the output blocks, in the order of [`super::Comparison::differences`].
pub const OUTPUTS: [&str; 8] = ["log-probs", "loss", "emb", "pos", "wq", "wk", "wv", "lm"];

/// The step's outputs with exact attention backward, given the attention forward's output `o`.
fn outputs(
    p: &Params,
    batch: &Batch,
    f: &Forward,
    o: &[f64],
    loss: &Loss,
) -> Result<Vec<Vec<f64>>> {
    let mut attn = |dh: &[f64]| {
        let att = backward(&f.shape, batch.vis_end(), &f.q, &f.k, &f.v, dh, SCALE)?;
        Ok((att.dq, att.dk, att.dv))
    };
    let (lp, value, g) = after_attention(p, batch, &f.x, o, loss, &mut attn)?;
    Ok(vec![
        lp.sums,
        vec![value],
        g.emb,
        g.pos,
        g.wq,
        g.wk,
        g.wv,
        g.lm,
    ])
}

/// The largest singular value of `a` (`rows x cols`, row-major), from above by 10%.
fn spectral_norm(a: &[f64], rows: usize, cols: usize) -> f64 {
    if rows == 0 || cols == 0 || a.iter().all(|&x| x == 0.0) {
        return 0.0;
    }
    let mut v: Vec<f64> = (0..cols).map(|i| 1.0 + 0.01 * (i % 7) as f64).collect();
    let mut est = 0.0;
    for _ in 0..2000 {
        let av: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| a[r * cols + c] * v[c]).sum())
            .collect();
        let mut atav = vec![0.0; cols];
        for r in 0..rows {
            for c in 0..cols {
                atav[c] += a[r * cols + c] * av[r];
            }
        }
        let norm = atav.iter().map(|x| x * x).sum::<f64>().sqrt();
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let next = (norm / vn).sqrt();
        v = atav.iter().map(|x| x / norm).collect();
        if (next - est).abs() <= 1e-9 * next {
            est = next;
            break;
        }
        est = next;
    }
    1.1 * est
}

/// Largest number of equal values in `keys`.
fn max_multiplicity<K: Ord + Copy>(keys: impl Iterator<Item = K>) -> usize {
    let mut v: Vec<K> = keys.collect();
    v.sort_unstable();
    let (mut best, mut run) = (0, 0);
    for i in 0..v.len() {
        run = if i > 0 && v[i] == v[i - 1] {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

/// A bound on one output block's error, in two parts.
#[derive(Debug, Clone, Copy)]
pub struct OutputBound {
    /// Through the forward's O error: first order (the model is not linear in O).
    pub through_o: f64,
    /// Through dQ, dK, dV's errors: exact (the gradients are linear in them).
    pub linear: f64,
}

/// Bounds on how far each output of a kernel-mode step (in [`OUTPUTS`] order) lies from the same
/// step with exact attention on the same rounded Q, K, V.
pub fn step_bounds(
    p: &Params,
    batch: &Batch,
    f: &Forward,
    loss: &Loss,
    a: &AttnBounds,
) -> Result<Vec<OutputBound>> {
    let tokens = batch.rows() * batch.n();
    let vis = batch.vis_end().as_slice();
    // J_Y: columns for the O entries of tokens someone sees (a padding token's O is 0 and feeds
    // nothing scored), by central differences (the model is smooth; step 1e-5).
    let h = 1e-5;
    let base = outputs(p, batch, f, &f.o, loss)?;
    let live: Vec<usize> = (0..tokens)
        .filter(|&t| vis[t] as usize != t % batch.n())
        .collect();
    let cols = live.len() * D;
    let mut jac: Vec<Vec<f64>> = base.iter().map(|y| vec![0.0; y.len() * cols]).collect();
    let mut o = f.o.clone();
    for (li, &t) in live.iter().enumerate() {
        for c in 0..D {
            let at = t * D + c;
            let keep = o[at];
            o[at] = keep + h;
            let plus = outputs(p, batch, f, &o, loss)?;
            o[at] = keep - h;
            let minus = outputs(p, batch, f, &o, loss)?;
            o[at] = keep;
            let col = li * D + c;
            for (b, (yp, ym)) in plus.iter().zip(&minus).enumerate() {
                for (r, (a, b_)) in yp.iter().zip(ym).enumerate() {
                    jac[b][r * cols + col] = (a - b_) / (2.0 * h);
                }
            }
        }
    }
    // The backward kernels' errors: their own, plus dO's rounding through the backward's gain.
    let dh_norm = {
        let f_dh = &f.call.as_ref().expect("a kernel-mode forward").d_o;
        f_dh.iter().map(|x| x.to_f64().powi(2)).sum::<f64>().sqrt()
    };
    let e: Vec<f64> = (0..3)
        .map(|i| a.grads[i] + a.d_o_gain[i] * a.u * dh_norm)
        .collect();
    let x_norm = spectral_norm(&f.x, tokens, D);
    let w = [
        spectral_norm(&p.wq, D, D),
        spectral_norm(&p.wk, D, KV_W),
        spectral_norm(&p.wv, D, KV_W),
    ];
    let dx = w[0] * e[0] + w[1] * e[1] + w[2] * e[2];
    let ids = (max_multiplicity(batch.token_ids().iter().copied()) as f64).sqrt();
    let positions = (max_multiplicity(batch.positions().iter().copied()) as f64).sqrt();
    let linear = [
        0.0,
        0.0,
        ids * dx,
        positions * dx,
        x_norm * e[0],
        x_norm * e[1],
        x_norm * e[2],
        0.0,
    ];
    Ok(jac
        .iter()
        .zip(&base)
        .zip(linear)
        .map(|((j, y), lin)| OutputBound {
            through_o: spectral_norm(j, y.len(), cols) * a.o,
            linear: lin,
        })
        .collect())
}
