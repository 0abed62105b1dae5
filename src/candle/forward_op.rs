//! The forward op: a candle `CustomOp3` over (Q, K, V) returning O, keeping the LSE for its
//! backward.
//!
//! candle gives an op's `bwd` only the op itself (`&self`), its inputs, its result and the
//! result's gradient. The LSE, a second output of the kernel that O does not carry, therefore
//! lives in the op: `cpu_fwd`/`cuda_fwd` put it (as a detached candle tensor on the inputs'
//! device) into a slot the op shares with [`super::attention_with_lse`]. candle keeps the op, and
//! with it the LSE, exactly as long as the graph node of O (an `Arc` in the node's `Op`); when no
//! input tracks gradients there is no node, and the LSE goes with the op at the end of the call.

use std::sync::{Arc, Mutex};

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use super::call::Call;
use super::{backward_op, cpu, cuda};

/// Where the forward leaves its LSE (`[rows, q_heads, n]` f32, natural log, -inf where a query
/// sees no key).
pub(crate) type LseSlot = Arc<Mutex<Option<Tensor>>>;

/// One forward call of the op (a fresh one per [`super::attention`] call).
pub(crate) struct ForwardOp {
    pub(crate) call: Call,
    pub(crate) lse: LseSlot,
}

impl ForwardOp {
    fn keep_lse(&self, lse: Storage) {
        let sh = &self.call.shape;
        let t = Tensor::from_storage(lse, (sh.rows, sh.q_heads, sh.n), BackpropOp::none(), false);
        // A poisoned lock means a panic elsewhere while it was held; the slot holds a whole
        // tensor or none, so it is still sound to use.
        *self.lse.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    /// The forward's LSE, for the backward.
    pub(crate) fn lse(&self) -> Option<Tensor> {
        self.lse.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn out_shape(&self) -> Shape {
        let sh = &self.call.shape;
        Shape::from((sh.rows, sh.n, sh.q_heads, sh.head_dim))
    }
}

impl CustomOp3 for ForwardOp {
    fn name(&self) -> &'static str {
        "prefix-attn-forward"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k: &CpuStorage,
        lk: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (o, lse) = cpu::forward(&self.call, (q, lq), (k, lk), (v, lv))?;
        self.keep_lse(Storage::Cpu(lse));
        Ok((o, self.out_shape()))
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        lq: &Layout,
        k: &CudaStorage,
        lk: &Layout,
        v: &CudaStorage,
        lv: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (o, lse) = cuda::forward(&self.call, (q, lq), (k, lk), (v, lv))?;
        self.keep_lse(Storage::Cuda(lse));
        Ok((o, self.out_shape()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        d_o: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = backward_op::gradients(self, q, k, v, o, d_o)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
