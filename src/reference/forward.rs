//! Forward attention in f64: `O = softmax(scale * Q K^T) V` over the visible keys of each query,
//! and its log-sum-exp.

use crate::error::Result;
use crate::mask::VisEnd;
use crate::reference::element::Element;
use crate::reference::inputs::{add_head, validate_call, Dense};
use crate::reference::parallel::map_heads;
use crate::reference::visible::VisibleKeys;
use crate::scale::Scale;
use crate::shape::AttnShape;

/// Output of [`forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardOut {
    /// `[rows, n, q_heads, head_dim]`; 0 for a query that sees no key.
    pub o: Vec<f64>,
    /// `[rows, q_heads, n]`, natural log of `sum_j exp(scale * q_i . k_j)` over visible keys;
    /// `-inf` for a query that sees no key.
    pub lse: Vec<f64>,
}

/// Reference forward pass. Inputs are widened to f64 exactly and everything accumulates in f64.
///
/// Layouts are the dense ones of [`AttnShape`]: `q` `[rows, n, q_heads, d]`, `k` and `v`
/// `[rows, n, kv_heads, d]`. Query head `h` reads kv head `h / (q_heads / kv_heads)`.
///
/// Errors: the shape's own checks, `vis_end` with another `n` or row count, a slice of the wrong
/// length (`LengthMismatch` naming it), a scale that is not finite and positive.
///
/// Sums over keys run in ascending key order, so two calls that give a query the same keys in
/// the same order (for example a completion in a shared row and alone in its own row) give it
/// bit-identical `O` and LSE.
pub fn forward<T: Element>(
    shape: &AttnShape,
    vis_end: &VisEnd,
    q: &[T],
    k: &[T],
    v: &[T],
    scale: impl Into<Scale>,
) -> Result<ForwardOut> {
    // The f32 the kernels use, widened exactly: a kernel and its reference share one number.
    let scale = scale.into().as_f64();
    validate_call(shape, vis_end, scale)?;
    let q = Dense::new("q", q, shape, shape.q_heads)?;
    let k = Dense::new("k", k, shape, shape.kv_heads)?;
    let v = Dense::new("v", v, shape, shape.kv_heads)?;

    let heads = map_heads(shape, vis_end, |keys, r, h, g| {
        attend_head(
            keys,
            &q.head(r, h),
            &k.head(r, g),
            &v.head(r, g),
            shape.head_dim,
            scale,
        )
    });

    let mut out = ForwardOut {
        o: vec![0.0; shape.q_len()],
        lse: vec![0.0; shape.lse_len()],
    };
    for (unit, head) in heads.into_iter().enumerate() {
        let (r, h) = (unit / shape.q_heads, unit % shape.q_heads);
        add_head(&mut out.o, &head.o, shape, shape.q_heads, r, h);
        let at = (r * shape.q_heads + h) * shape.n;
        out.lse[at..at + shape.n].copy_from_slice(&head.lse);
    }
    Ok(out)
}

/// One (row, query head): `o` is `[n, d]`, `lse` is `[n]`.
pub(crate) struct HeadOut {
    pub(crate) o: Vec<f64>,
    pub(crate) lse: Vec<f64>,
}

/// Forward for one head of one row; `q`, `k`, `v` are contiguous `[n, d]`.
pub(crate) fn attend_head(
    lists: &VisibleKeys,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    d: usize,
    scale: f64,
) -> HeadOut {
    let n = lists.n();
    let mut o = vec![0.0; n * d];
    let mut lse = vec![f64::NEG_INFINITY; n];
    let mut p = Vec::new();
    for i in 0..n {
        let keys = lists.keys(i);
        let Some(row_lse) = softmax_row(&q[i * d..(i + 1) * d], k, d, keys, scale, &mut p) else {
            continue; // sees no key: O stays 0, LSE stays -inf
        };
        lse[i] = row_lse;
        let o_i = &mut o[i * d..(i + 1) * d];
        for (&j, &p_ij) in keys.iter().zip(&p) {
            let v_j = &v[j as usize * d..(j as usize + 1) * d];
            for (acc, &x) in o_i.iter_mut().zip(v_j) {
                *acc += p_ij * x;
            }
        }
    }
    HeadOut { o, lse }
}

/// The softmax of `scale * q_i . k_j` over `keys`, written to `p` (one per key), and its
/// log-sum-exp; `None` when `keys` is empty. Stable: the row maximum is subtracted before `exp`.
pub(crate) fn softmax_row(
    q_i: &[f64],
    k: &[f64],
    d: usize,
    keys: &[u32],
    scale: f64,
    p: &mut Vec<f64>,
) -> Option<f64> {
    p.clear();
    if keys.is_empty() {
        return None;
    }
    p.extend(
        keys.iter()
            .map(|&j| scale * dot(q_i, &k[j as usize * d..(j as usize + 1) * d])),
    );
    let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in p.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in p.iter_mut() {
        *s /= sum;
    }
    Some(max + sum.ln())
}

/// Plain dot product, accumulated in index order.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
