//! How much an error in dO moves the backward's gradients: operator-norm bounds of the linear maps
//! dO -> dQ, dK, dV at the exact softmax of the inputs. A user propagating dO's own rounding (to
//! the element type) through the backward adds `gain * ||dO error||` to each gradient's bound.

use crate::error::Result;
use crate::reference::Element;

use super::backward::Grad;
use super::inputs::Inputs;
use super::parallel::par_map;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm2(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Operator-norm bounds (l2 / Frobenius) of the backward's maps dO -> dQ, dK, dV at the exact P
/// of `inputs`, indexed by [`Grad`] (`gain[Grad::Dk as usize]`). They are linear in dO: dV = P^T
/// dO, dS_ij = P_ij dO_i . (V_j - O_i). Rows, and q heads for dQ, kv heads for dK and dV, are
/// independent blocks: the largest block bounds all.
/// - dV: ||P^T||_2 <= sqrt(max column sum of P) per q head (rows of P sum to 1), the q heads of
///   one kv head combined in quadrature;
/// - dQ: query i's change is at most scale * sum_j P_ij ||V_j - O_i|| ||K_j|| times ||dO_i||'s;
/// - dK: key j's change is at most sum over (head, query) of M_j,(h,i) ||dO_hi|| with
///   M = scale P_ij ||V_j - O_i|| ||Q_i||, and ||M||_2 <= sqrt(||M||_1 ||M||_inf).
///
/// Errors: the checks of [`crate::reference::forward`] on the inputs, a head dim that is not a
/// multiple of 16, or a value that is not finite.
pub fn d_o_gain<T: Element>(inputs: Inputs<'_, T>) -> Result<[f64; 3]> {
    inputs.validate_finite()?;
    let sh = inputs.shape;
    let (n, d, qh, kvh) = (sh.n, sh.head_dim, sh.q_heads, sh.kv_heads);
    let scale = inputs.scale.as_f64();
    let wide = |x: &[T]| -> Vec<f64> { x.iter().map(|v| v.to_f64()).collect() };
    let (q, k, v) = (wide(inputs.q), wide(inputs.k), wide(inputs.v));
    let at_q = |r: usize, i: usize, h: usize| ((r * n + i) * qh + h) * d;
    let at_k = |r: usize, j: usize, g: usize| ((r * n + j) * kvh + g) * d;
    let units: Vec<(usize, usize)> = (0..sh.rows)
        .flat_map(|r| (0..kvh).map(move |g| (r, g)))
        .collect();
    // Per (row, kv head): its blocks' gains, in the order of `Grad`.
    let parts = par_map(&units, |&(r, g)| {
        let keys_of: Vec<Vec<usize>> = {
            let vis_end = inputs.vis_end.row(r);
            (0..n)
                .map(|i| (0..=i).filter(|&j| i < vis_end[j] as usize).collect())
                .collect()
        };
        let mut gain = [0.0f64; 3];
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
                gain[Grad::Dq as usize] = gain[Grad::Dq as usize].max(dq_gain);
                m_col_max = m_col_max.max(m_col);
            }
            dv_sq += col.iter().cloned().fold(0.0, f64::max);
        }
        let m_row_max = m_row.iter().cloned().fold(0.0, f64::max);
        gain[Grad::Dk as usize] = (m_col_max * m_row_max).sqrt();
        gain[Grad::Dv as usize] = dv_sq.sqrt();
        gain
    });
    Ok(parts
        .iter()
        .fold([0.0f64; 3], |acc, p| [0, 1, 2].map(|x| acc[x].max(p[x]))))
}
