//! A bound on the rounding error of candle's dense f32 attention (dense.rs) and of its autograd
//! gradients against the exact (f64) values, element by element, derived from the f32
//! arithmetic of exactly the ops the graph runs.
//!
//! Model (IEEE f32, round to nearest, as candle's CPU kernels compute): every op's result is the
//! exact result of its computed operands times (1 + d), |d| <= u = 2^-24, plus at most 2^-149 in
//! the subnormal range; a sum or dot product of k terms, in any order and with or without FMA,
//! is within gamma_k = k u / (1 - k u) of the sum of the absolute terms (Higham, "Accuracy and
//! Stability of Numerical Algorithms", 3.1 and 4.2); f32 `exp` (glibc's `expf`, called by
//! candle's CPU `exp`) within 1 ulp, i.e. 2u relative (an exhaustive search over all f32 inputs
//! found at most 0.502 ulp: Gladman, Innocente, Mather, Zimmermann, "Accuracy of mathematical
//! functions", 2021/2024). Converting bf16/f16 inputs to f32, transposes, copies, `where_cond`,
//! multiplying by the 0/1 mask, adding 0 or to 0, negation and candle's accumulation of a
//! gradient into zeros are exact.
//!
//! Running error analysis with exact centres: each intermediate is an [`A`] (its exact value, a
//! bound on the computed value's distance from it), and each op combines them rigorously
//! (products and quotients include the cross terms). The centres are computed with the row max
//! of the exact scores as the softmax shift instead of candle's (the max of the computed
//! scores, within max E_j of it): every output (P, O, the gradients) is invariant to the shift,
//! and so is every relative error term of the chain; only the 2^-149 terms are not, which stay
//! far below anything measured.
//!
//! Per query i (keys j visible to it; S_j = scale q.k_j exact, m = max_j S_j):
//! - score: |S^_j - S_j| <= E_j = scale gamma_d sum_c |q_c k_jc| (1 + u) + u |S_j|;
//! - shift: x_j = S_j - m, |x^_j - x_j| <= a_j = E_j + u (|x_j| + E_j + max E);
//! - exp: e^_j = exp(x_j) (1 + r), |r| <= exp(a_j)(1 + 2u) - 1;
//! - Z = sum e (gamma_n over the row of n, masked zeros included), P_j = e_j / Z, O = P V
//!   (gamma_n);
//! - backward, as candle's autograd runs it: dP = dO V^T (gamma_d); the division's gradients
//!   t_j = dP_j / Z and dZ = -sum_k dP_k e_k / Z^2 (each of dP_k e_k, Z^2 and the quotient
//!   rounded; the sum gamma_n); de_j = t_j + dZ; dx_j = de_j e_j; dS_j = dx_j scale; dQ = dS K,
//!   dK = dS^T Q, dV = P^T dO (gamma_n each); with GQA the group's copies summed (gamma_group).

use prefix_attn::{AttnShape, VisEnd};

/// f32 unit roundoff.
pub const U: f64 = 1.0 / 16_777_216.0;
/// The absolute error of an f32 result in the subnormal range (at most half of 2^-149; all of it).
const TINY: f64 = 1.401_298_464_324_817e-45;
/// f32 `exp`: 1 ulp, at most 2u of the result.
const EXP: f64 = 2.0 * U;

fn gamma(k: usize) -> f64 {
    let ku = k as f64 * U;
    ku / (1.0 - ku)
}

/// An intermediate: its exact value and a bound on the computed value's distance from it.
#[derive(Debug, Clone, Copy)]
struct A {
    v: f64,
    e: f64,
}

impl A {
    fn exact(v: f64) -> A {
        A { v, e: 0.0 }
    }

    /// The result of an op with exact value `v` on operands whose errors give `e`, rounded.
    fn rounded(v: f64, e: f64) -> A {
        A {
            v,
            e: e + U * (v.abs() + e) + TINY,
        }
    }

    fn mul(self, o: A) -> A {
        A::rounded(
            self.v * o.v,
            self.v.abs() * o.e + o.v.abs() * self.e + self.e * o.e,
        )
    }

    /// `self / o` for `o` bounded away from 0 (|o.v| > o.e).
    fn div(self, o: A) -> A {
        let b = o.v.abs();
        assert!(b > o.e, "divisor {o:?} not bounded away from 0");
        A::rounded(
            self.v / o.v,
            (self.e * b + self.v.abs() * o.e) / (b * (b - o.e)),
        )
    }

    fn add(self, o: A) -> A {
        A::rounded(self.v + o.v, self.e + o.e)
    }
}

/// An f32 sum of `n` terms (the computed `terms`, padded with exact zeros), in any order.
fn sum(terms: &[A], n: usize) -> A {
    let v: f64 = terms.iter().map(|t| t.v).sum();
    let e: f64 = terms.iter().map(|t| t.e).sum();
    let mag: f64 = terms.iter().map(|t| t.v.abs() + t.e).sum();
    A {
        v,
        e: e + gamma(n) * mag,
    }
}

/// Per element, bounds on |computed - exact| of the dense graph's O and gradients.
pub struct DenseBounds {
    /// `[rows, n, q_heads, d]`.
    pub o: Vec<f64>,
    /// `[rows, n, q_heads, d]`.
    pub dq: Vec<f64>,
    /// `[rows, n, kv_heads, d]`.
    pub dk: Vec<f64>,
    /// `[rows, n, kv_heads, d]`.
    pub dv: Vec<f64>,
}

/// The bounds of dense.rs's `attention` on these (f32-exact) inputs and output gradient `d_o`.
pub fn dense_bounds(
    sh: &AttnShape,
    vis_end: &VisEnd,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    d_o: &[f64],
    scale: f64,
) -> DenseBounds {
    let (rows, n, qh, kvh, d) = (sh.rows, sh.n, sh.q_heads, sh.kv_heads, sh.head_dim);
    let group = qh / kvh;
    let at_q = |r: usize, i: usize, h: usize| ((r * n + i) * qh + h) * d;
    let at_k = |r: usize, j: usize, g: usize| ((r * n + j) * kvh + g) * d;
    let mut out = DenseBounds {
        o: vec![0.0; sh.q_len()],
        dq: vec![0.0; sh.q_len()],
        dk: vec![0.0; sh.kv_len()],
        dv: vec![0.0; sh.kv_len()],
    };
    // dK and dV per q head before the group's sum: exact value and error of each element.
    let per_head = rows * n * qh * d;
    let (mut dk_v, mut dk_e) = (vec![0.0; per_head], vec![0.0; per_head]);
    let (mut dv_v, mut dv_e) = (vec![0.0; per_head], vec![0.0; per_head]);
    let (gn, gd) = (gamma(n), gamma(d));
    for r in 0..rows {
        let ve = vis_end.row(r);
        for h in 0..qh {
            let g = h / group;
            for i in 0..n {
                let keys: Vec<usize> = (0..=i).filter(|&j| i < ve[j] as usize).collect();
                if keys.is_empty() {
                    continue; // P = 0, O = 0, dS = 0: all exact
                }
                let qi = &q[at_q(r, i, h)..at_q(r, i, h) + d];
                let gi = &d_o[at_q(r, i, h)..at_q(r, i, h) + d];
                // Scores and their errors.
                let (mut s, mut es) = (Vec::new(), Vec::new());
                for &j in &keys {
                    let kj = &k[at_k(r, j, g)..at_k(r, j, g) + d];
                    let dot: f64 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                    let mag: f64 = qi.iter().zip(kj).map(|(a, b)| (a * b).abs()).sum();
                    let sj = scale * dot;
                    s.push(sj);
                    es.push(scale * gd * mag * (1.0 + U) + U * sj.abs() + TINY);
                }
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e_max = es.iter().cloned().fold(0.0, f64::max);
                let e: Vec<A> = s
                    .iter()
                    .zip(&es)
                    .map(|(&sj, &ej)| {
                        let x = sj - m;
                        let a = ej + U * (x.abs() + ej + e_max);
                        let c = x.exp();
                        A {
                            v: c,
                            e: c * (a.exp() * (1.0 + EXP) - 1.0) + TINY,
                        }
                    })
                    .collect();
                let z = sum(&e, n);
                let p: Vec<A> = e.iter().map(|&ej| ej.div(z)).collect();
                // O = P V.
                for c in 0..d {
                    let mut err = 0.0;
                    for (t, &j) in keys.iter().enumerate() {
                        let vj = v[at_k(r, j, g) + c].abs();
                        err += p[t].e * vj + gn * (p[t].v + p[t].e) * vj;
                    }
                    out.o[at_q(r, i, h) + c] = err;
                }
                // Backward.
                let z2 = z.mul(z);
                let dp: Vec<A> = keys
                    .iter()
                    .map(|&j| {
                        let vj = &v[at_k(r, j, g)..at_k(r, j, g) + d];
                        A {
                            v: gi.iter().zip(vj).map(|(a, b)| a * b).sum(),
                            e: gd * gi.iter().zip(vj).map(|(a, b)| (a * b).abs()).sum::<f64>(),
                        }
                    })
                    .collect();
                let quot: Vec<A> = dp
                    .iter()
                    .zip(&e)
                    .map(|(&dpj, &ej)| dpj.mul(ej).div(z2))
                    .collect();
                let dz = sum(&quot, n);
                let dz = A { v: -dz.v, e: dz.e };
                let ds: Vec<A> = dp
                    .iter()
                    .zip(&e)
                    .map(|(&dpj, &ej)| dpj.div(z).add(dz).mul(ej).mul(A::exact(scale)))
                    .collect();
                for c in 0..d {
                    let mut err = 0.0;
                    for (t, &j) in keys.iter().enumerate() {
                        let kj = k[at_k(r, j, g) + c].abs();
                        err += ds[t].e * kj + gn * (ds[t].v.abs() + ds[t].e) * kj;
                    }
                    out.dq[at_q(r, i, h) + c] = err;
                }
                for (t, &j) in keys.iter().enumerate() {
                    for c in 0..d {
                        let at = at_q(r, j, h) + c;
                        let (qc, gc) = (qi[c], gi[c]);
                        dk_v[at] += ds[t].v * qc;
                        dk_e[at] += ds[t].e * qc.abs() + gn * (ds[t].v.abs() + ds[t].e) * qc.abs();
                        dv_v[at] += p[t].v * gc;
                        dv_e[at] += p[t].e * gc.abs() + gn * (p[t].v + p[t].e) * gc.abs();
                    }
                }
            }
        }
    }
    // The group's sum (none for MHA: a sum over one head is that head).
    let gg = if group > 1 { gamma(group) } else { 0.0 };
    for r in 0..rows {
        for j in 0..n {
            for g in 0..kvh {
                for c in 0..d {
                    let (mut ek, mut mk, mut ev, mut mv) = (0.0, 0.0, 0.0, 0.0);
                    for h in g * group..(g + 1) * group {
                        let at = at_q(r, j, h) + c;
                        ek += dk_e[at];
                        mk += dk_v[at].abs() + dk_e[at];
                        ev += dv_e[at];
                        mv += dv_v[at].abs() + dv_e[at];
                    }
                    out.dk[at_k(r, j, g) + c] = ek + gg * mk;
                    out.dv[at_k(r, j, g) + c] = ev + gg * mv;
                }
            }
        }
    }
    out
}

/// The Frobenius norm of a per-element bound vector: a bound on the norm of the error vector.
pub fn norm(x: &[f64]) -> f64 {
    x.iter().map(|e| e * e).sum::<f64>().sqrt()
}
