//! The attention forward and backward as a differentiable [candle](https://docs.rs/candle-core)
//! op (the `candle` cargo feature).
//!
//! [`attention`] takes Q `[rows, n, q_heads, d]` and K, V `[rows, n, kv_heads, d]` (bf16 or f16,
//! d 64 or 128, `q_heads` a multiple of `kv_heads`), the batch's [`Plan`] and the softmax scale,
//! and returns O `[rows, n, q_heads, d]`; `backward()` on anything computed from O gives Q, K and
//! V their gradients through the crate's backward kernels.
//!
//! - On a CUDA device the kernels run on candle's own stream, on candle's buffers, loaded once
//!   per CUDA context ([`crate::Attention::for_context`]); the plan is uploaded to that context
//!   by its first use and shared by every layer and step that uses it (clones of a plan share
//!   the upload).
//! - On the CPU the same kernels run under the crate's exact SIMT emulator: slow (for tests and
//!   machines without a GPU), the same numbers a GPU gives within the documented bounds
//!   ([`crate::bounds`]).
//! - Layouts: any Q, K, V whose head dim is contiguous and whose strides and start offset are
//!   multiples of 8 elements (16 bytes) are read in place, e.g. Q, K and V narrowed from a fused
//!   QKV projection; anything else is first copied by candle (`force_contiguous`, through which
//!   gradients flow as usual).
//! - Errors are the crate's typed [`crate::Error`]s (wrong dtype, head dim, head counts, a plan
//!   of other rows or length, a scale that is not finite and positive), carried as
//!   `candle_core::Error::Wrapped` with the crate's message; nothing panics on bad input. The
//!   crate's errors convert to candle's (`From`), so `?` works on a `Batch`'s or a `Plan`'s
//!   result in a function returning `candle_core::Result`.
//!
//! ```no_run
//! use candle_core::{DType, Device, Tensor, Var};
//! use prefix_attn::{Plan, VisEnd};
//!
//! # fn main() -> candle_core::Result<()> {
//! // One row: a prompt of 3 tokens shared by two completions of 2 (the README's picture).
//! // (The crate's errors convert to candle's: `?` works on them in candle code.)
//! let plan = Plan::new(VisEnd::new(7, vec![7, 7, 7, 5, 5, 7, 7])?)?;
//! let dev = Device::Cpu; // or Device::new_cuda(0)?
//! let q = Var::from_tensor(&Tensor::randn(0f32, 1., (1, 7, 4, 64), &dev)?.to_dtype(DType::BF16)?)?;
//! let k = Var::from_tensor(&Tensor::randn(0f32, 1., (1, 7, 2, 64), &dev)?.to_dtype(DType::BF16)?)?;
//! let v = Var::from_tensor(&Tensor::randn(0f32, 1., (1, 7, 2, 64), &dev)?.to_dtype(DType::BF16)?)?;
//! let o = prefix_attn::candle::attention(&q, &k, &v, &plan, 0.125)?;
//! let grads = o.to_dtype(DType::F32)?.sqr()?.sum_all()?.backward()?;
//! let dq = grads.get(&q).expect("dQ"); // [1, 7, 4, 64] bf16, like dK and dV
//! # let _ = dq;
//! # Ok(())
//! # }
//! ```

mod aligned;
mod backward_op;
mod call;
mod cpu;
mod cuda;
mod error;
mod forward_op;
mod layout;

use std::sync::{Arc, Mutex};

use candle_core::{DType, Result, Tensor};

use crate::plan::Plan;
use crate::scale::Scale;
use crate::shape::AttnShape;

use call::Call;
use error::{invalid, to_candle};
use forward_op::ForwardOp;

/// `O = softmax(scale * Q K^T) V` under `plan`'s mask, differentiable through candle's autograd.
///
/// - `q`: `[rows, n, q_heads, d]`; `k`, `v`: `[rows, n, kv_heads, d]`; all three bf16 or all
///   three f16, on one device; d 64 or 128; `q_heads` a multiple of `kv_heads` (GQA).
/// - `plan`: the batch's plan, from [`Plan::new`] (a `vis_end`) or `Batch::plan`, for `rows`
///   rows of `n` tokens; make it once per batch and pass it to every layer.
/// - `scale`: `impl Into<Scale>` (an `f32`, an `f64`, [`Scale::default_for`]).
///
/// Returns O `[rows, n, q_heads, d]` (dense, the inputs' dtype). A query that sees no key
/// (padding) has O = 0 and gets no gradient. Errors: see the [module docs](self).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    plan: &Plan,
    scale: impl Into<Scale>,
) -> Result<Tensor> {
    attention_with_lse(q, k, v, plan, scale).map(|(o, _)| o)
}

/// [`attention`], also returning the forward's log-sum-exp `[rows, q_heads, n]` (f32, natural
/// log of the sum of `exp(scale * q.k)` over the keys each query sees; -inf where it sees none),
/// detached from the graph: what the op keeps for its backward, for a caller that combines
/// attention over several key sets or checks the op against a reference.
pub fn attention_with_lse(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    plan: &Plan,
    scale: impl Into<Scale>,
) -> Result<(Tensor, Tensor)> {
    let scale = scale.into();
    scale.check().map_err(to_candle)?;
    let (shape, dtype) = check_inputs(q, k, v, plan)?;
    let (q, k, v) = (kernel_layout(q)?, kernel_layout(k)?, kernel_layout(v)?);
    let lse = Arc::new(Mutex::new(None));
    let op = ForwardOp {
        call: Call {
            plan: plan.clone(),
            scale,
            shape,
            dtype,
        },
        lse: lse.clone(),
    };
    let o = q.apply_op3_arc(&k, &v, Arc::new(Box::new(op)))?;
    let lse = lse
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| invalid("lse", "the forward left no LSE".into()))?;
    Ok((o, lse))
}

/// The error of an input dtype the kernels do not take.
pub(crate) fn dtype_error(what: &'static str, dtype: DType) -> candle_core::Error {
    invalid(
        what,
        format!(
            "dtype {}: the attention kernels take bf16 or f16 (convert with to_dtype)",
            dtype.as_str()
        ),
    )
}

/// The call's shape and dtype from Q, K and V, after checking everything the raw entry cannot
/// see from views alone: ranks, that K and V have Q's rows, n and head dim and each other's
/// shape, one dtype of the two the kernels take, one device, and the plan's rows and length.
/// (Head dims without kernels, head counts that do not divide, and views that do not fit are
/// the crate's own checks, in the call.)
fn check_inputs(q: &Tensor, k: &Tensor, v: &Tensor, plan: &Plan) -> Result<(AttnShape, DType)> {
    let dims4 = |what: &'static str, t: &Tensor| -> Result<[usize; 4]> {
        <[usize; 4]>::try_from(t.dims()).map_err(|_| {
            invalid(
                what,
                format!(
                    "shape {:?}: want 4 dims, [rows, n, heads, head_dim]",
                    t.dims()
                ),
            )
        })
    };
    let [rows, n, q_heads, head_dim] = dims4("q", q)?;
    let [kr, kn, kv_heads, kd] = dims4("k", k)?;
    if [kr, kn, kd] != [rows, n, head_dim] {
        return Err(invalid(
            "k",
            format!(
                "shape {:?}: want [{rows}, {n}, kv_heads, {head_dim}] (q is {:?})",
                k.dims(),
                q.dims()
            ),
        ));
    }
    if v.dims() != k.dims() {
        return Err(invalid(
            "v",
            format!("shape {:?}: want k's {:?}", v.dims(), k.dims()),
        ));
    }
    let dtype = q.dtype();
    if !matches!(dtype, DType::BF16 | DType::F16) {
        return Err(dtype_error("q", dtype));
    }
    for (what, t) in [("k", k), ("v", v)] {
        if t.dtype() != dtype {
            return Err(invalid(
                what,
                format!("dtype {}, q is {}", t.dtype().as_str(), dtype.as_str()),
            ));
        }
        if !t.device().same_device(q.device()) {
            return Err(invalid(
                what,
                format!(
                    "on {:?}, q is on {:?}",
                    t.device().location(),
                    q.device().location()
                ),
            ));
        }
    }
    if plan.rows() != rows || plan.n() != n {
        return Err(invalid(
            "plan",
            format!(
                "made for {} rows of {} tokens, the tensors have {rows} rows of {n}",
                plan.rows(),
                plan.n()
            ),
        ));
    }
    let shape = AttnShape {
        rows,
        n,
        q_heads,
        kv_heads,
        head_dim,
    };
    shape.validate().map_err(to_candle)?;
    Ok((shape, dtype))
}

/// `t` itself when the kernels read its layout in place, else a dense copy (candle's
/// `force_contiguous`: a new allocation, element 0 aligned, gradients flowing through).
pub(crate) fn kernel_layout(t: &Tensor) -> Result<Tensor> {
    if layout::kernel_view(t.layout()).is_some() {
        Ok(t.clone())
    } else {
        t.force_contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn views_of_a_fused_qkv_are_used_in_place_and_others_copied() {
        let qkv = Tensor::zeros((2, 10, 4 + 2 + 2, 64), DType::BF16, &Device::Cpu).unwrap();
        for (start, heads) in [(0, 4), (4, 2), (6, 2)] {
            let view = qkv.narrow(2, start, heads).unwrap();
            assert!(!view.is_contiguous());
            // The same tensor (same id): no copy.
            assert_eq!(kernel_layout(&view).unwrap().id(), view.id());
        }
        // 4 elements (8 bytes) into a buffer: copied, to a dense layout at offset 0.
        let flat = Tensor::zeros(4 + 10 * 2 * 64, DType::BF16, &Device::Cpu).unwrap();
        let k = flat
            .narrow(0, 4, 10 * 2 * 64)
            .unwrap()
            .reshape((1, 10, 2, 64))
            .unwrap();
        let fixed = kernel_layout(&k).unwrap();
        assert_ne!(fixed.id(), k.id());
        assert!(fixed.is_contiguous() && fixed.layout().start_offset() == 0);
    }
}
