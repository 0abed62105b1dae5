//! Backward attention in f64: the gradients of the loss through `O` given `dO`.
//!
//! With `P = softmax(scale * Q K^T)` over each query's visible keys:
//! `dV = P^T dO`, `dP = dO V^T`, `D_i = dO_i . O_i`, `dS = P * (dP - D)`,
//! `dQ = scale * dS K`, `dK = scale * dS^T Q`. Query heads of one GQA group add into their kv
//! head. A query that sees no key has `dQ = 0` and adds nothing to `dK` or `dV`.

use crate::error::Result;
use crate::mask::VisEnd;
use crate::reference::element::Element;
use crate::reference::forward::{attend_head, dot, softmax_row};
use crate::reference::inputs::{add_head, validate_call, Dense};
use crate::reference::parallel::map_heads;
use crate::reference::visible::VisibleKeys;
use crate::scale::Scale;
use crate::shape::AttnShape;

/// Output of [`backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct BackwardOut {
    /// `[rows, n, q_heads, head_dim]`, like Q.
    pub dq: Vec<f64>,
    /// `[rows, n, kv_heads, head_dim]`, like K.
    pub dk: Vec<f64>,
    /// `[rows, n, kv_heads, head_dim]`, like V.
    pub dv: Vec<f64>,
}

/// Reference backward pass; recomputes `O` and `P` itself from `q`, `k`, `v`.
///
/// Same layouts and errors as [`crate::reference::forward`], plus `d_o` (like Q) checked by
/// length. The query heads of one kv head are added into `dk`/`dv` in ascending head order, and
/// each head's sums run in ascending query then key order, so the result is deterministic.
pub fn backward<T: Element>(
    shape: &AttnShape,
    vis_end: &VisEnd,
    q: &[T],
    k: &[T],
    v: &[T],
    d_o: &[T],
    scale: impl Into<Scale>,
) -> Result<BackwardOut> {
    // The f32 the kernels use, widened exactly: a kernel and its reference share one number.
    let scale = scale.into().as_f64();
    validate_call(shape, vis_end, scale)?;
    let q = Dense::new("q", q, shape, shape.q_heads)?;
    let k = Dense::new("k", k, shape, shape.kv_heads)?;
    let v = Dense::new("v", v, shape, shape.kv_heads)?;
    let d_o = Dense::new("d_o", d_o, shape, shape.q_heads)?;

    let heads = map_heads(shape, vis_end, |keys, r, h, g| {
        backward_head(
            keys,
            &HeadInputs {
                q: &q.head(r, h),
                k: &k.head(r, g),
                v: &v.head(r, g),
                d_o: &d_o.head(r, h),
            },
            shape.head_dim,
            scale,
        )
    });

    let mut out = BackwardOut {
        dq: vec![0.0; shape.q_len()],
        dk: vec![0.0; shape.kv_len()],
        dv: vec![0.0; shape.kv_len()],
    };
    // Units are (row, head) in ascending order, so GQA heads add into their kv head in
    // ascending head order.
    for (unit, head) in heads.into_iter().enumerate() {
        let (r, h) = (unit / shape.q_heads, unit % shape.q_heads);
        let g = h / shape.group();
        add_head(&mut out.dq, &head.dq, shape, shape.q_heads, r, h);
        add_head(&mut out.dk, &head.dk, shape, shape.kv_heads, r, g);
        add_head(&mut out.dv, &head.dv, shape, shape.kv_heads, r, g);
    }
    Ok(out)
}

/// One head of one row, each `[n, d]` contiguous.
struct HeadInputs<'a> {
    q: &'a [f64],
    k: &'a [f64],
    v: &'a [f64],
    d_o: &'a [f64],
}

/// Gradients of one (row, query head), each `[n, d]`; `dk`/`dv` are this head's share only.
struct HeadGrads {
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

fn backward_head(lists: &VisibleKeys, x: &HeadInputs, d: usize, scale: f64) -> HeadGrads {
    let n = lists.n();
    let fwd = attend_head(lists, x.q, x.k, x.v, d, scale);
    let mut g = HeadGrads {
        dq: vec![0.0; n * d],
        dk: vec![0.0; n * d],
        dv: vec![0.0; n * d],
    };
    let mut p = Vec::new();
    for i in 0..n {
        let keys = lists.keys(i);
        let row = i * d..(i + 1) * d;
        let (q_i, do_i) = (&x.q[row.clone()], &x.d_o[row.clone()]);
        if softmax_row(q_i, x.k, d, keys, scale, &mut p).is_none() {
            continue; // sees no key: no gradient anywhere
        }
        let delta_i = dot(do_i, &fwd.o[row.clone()]);
        let dq_i = &mut g.dq[row];
        for (&j, &p_ij) in keys.iter().zip(&p) {
            let col = j as usize * d..(j as usize + 1) * d;
            let dp_ij = dot(do_i, &x.v[col.clone()]);
            let ds_ij = p_ij * (dp_ij - delta_i);
            for c in 0..d {
                g.dv[col.start + c] += p_ij * do_i[c];
                dq_i[c] += scale * ds_ij * x.k[col.start + c];
                g.dk[col.start + c] += scale * ds_ij * q_i[c];
            }
        }
    }
    g
}
