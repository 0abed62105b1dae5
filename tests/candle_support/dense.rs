//! candle's own dense attention in f32: what a candle user would write without this crate
//! (matmul, a mask built from `vis_end`, softmax, matmul), differentiated by candle's autograd.
//! The comparison the op is tested against; `dense_bound` bounds its rounding.
//!
//! The graph, op by op (dense_bound.rs follows it exactly):
//! - S = (Q K^T) * scale: one f32 matmul over d, then one f32 multiply (`affine`);
//! - masked scores: `where_cond(visible, S, -1e30)` (exact);
//! - m = rowmax, detached (the softmax does not depend on it; its gradient would only add
//!   rounding noise), x = S - m, e = exp(x) * visible (a query that sees nothing gets all zeros);
//! - Z = rowsum(e) + nosee (1 where a query sees no key, so it divides 0 by 1), P = e / Z;
//! - O = P V: one f32 matmul over n.
//!
//! GQA by repeating each kv head over its group (`broadcast_as` + `reshape`): its gradient sums
//! the group's copies.

use candle_core::{DType, Device, Result, Tensor, D};
use prefix_attn::VisEnd;

/// `[rows, n, n]` visibility (u8) and per-query "sees nothing" (f32 `[rows, n, 1]`).
fn masks(vis_end: &VisEnd, dev: &Device) -> Result<(Tensor, Tensor)> {
    let (rows, n) = (vis_end.rows(), vis_end.n());
    let mut vis = vec![0u8; rows * n * n];
    let mut nosee = vec![1f32; rows * n];
    for r in 0..rows {
        let ve = vis_end.row(r);
        for i in 0..n {
            for j in 0..=i {
                if i < ve[j] as usize {
                    vis[(r * n + i) * n + j] = 1;
                    nosee[r * n + i] = 0.0;
                }
            }
        }
    }
    Ok((
        Tensor::from_vec(vis, (rows, 1, n, n), dev)?,
        Tensor::from_vec(nosee, (rows, 1, n, 1), dev)?,
    ))
}

/// `[rows, n, kv_heads, d]` as `[rows, q_heads, n, d]`, each kv head repeated over its group.
fn per_q_head(t: &Tensor, q_heads: usize) -> Result<Tensor> {
    let (rows, n, kv_heads, d) = t.dims4()?;
    let t = t.transpose(1, 2)?; // [rows, kv_heads, n, d]
    if kv_heads == q_heads {
        return t.contiguous();
    }
    let group = q_heads / kv_heads;
    t.unsqueeze(2)?
        .broadcast_as((rows, kv_heads, group, n, d))?
        .reshape((rows, q_heads, n, d))
}

/// O `[rows, n, q_heads, d]` of f32 Q, K, V under `vis_end`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis_end: &VisEnd,
    scale: f32,
) -> Result<Tensor> {
    let dev = q.device();
    let q_heads = q.dim(2)?;
    let qt = q.transpose(1, 2)?.contiguous()?; // [rows, q_heads, n, d]
    let kt = per_q_head(k, q_heads)?;
    let vt = per_q_head(v, q_heads)?;
    let s = qt
        .matmul(&kt.t()?.contiguous()?)?
        .affine(f64::from(scale), 0.0)?; // [rows, q_heads, n, n]
    let (vis, nosee) = masks(vis_end, dev)?;
    let visible = vis.broadcast_as(s.shape())?;
    let neg = Tensor::full(-1e30f32, s.shape(), dev)?;
    let s = visible.where_cond(&s, &neg)?;
    let m = s.max_keepdim(D::Minus1)?.detach();
    let e = s
        .broadcast_sub(&m)?
        .exp()?
        .broadcast_mul(&vis.to_dtype(DType::F32)?)?;
    let z = e.sum_keepdim(D::Minus1)?.broadcast_add(&nosee)?;
    let p = e.broadcast_div(&z)?;
    p.matmul(&vt)?.transpose(1, 2)?.contiguous()
}
