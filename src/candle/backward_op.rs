//! The backward, as a second op that candle's autograd runs.
//!
//! When `backward()` reaches O's node, candle calls the forward op's `bwd` with Q, K, V, O and
//! dO. `bwd` runs the kernels through [`BackwardOp`], a `CustomOp3` over (Q, K, V) like the
//! forward (so it gets the same storages and layouts, on the same device path), which also reads
//! O, dO and the forward's LSE. A candle op has one output, so the three gradients come back
//! packed in one buffer `[dQ | dK | dV]`, each part dense; `narrow` + `reshape` give them their
//! shapes as views of that buffer (no copy). The backward op has no `bwd` of its own: a second
//! derivative through attention is an error (`BackwardNotSupported`), not a wrong number.

use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::call::{Call, Held, Saved};
use super::error::invalid;
use super::forward_op::ForwardOp;
use super::{cpu, cuda};

/// One backward call: Q, K and V are its candle inputs; O, dO and the LSE are held under their
/// read locks by [`gradients`] for the duration of the call.
struct BackwardOp<'a> {
    call: &'a Call,
    saved: Saved<'a>,
}

impl CustomOp3 for BackwardOp<'_> {
    fn name(&self) -> &'static str {
        "prefix-attn-backward"
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
        let packed = cpu::backward(self.call, (q, lq), (k, lk), (v, lv), &self.saved)?;
        Ok((packed, self.packed_shape()))
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
        let packed = cuda::backward(self.call, (q, lq), (k, lk), (v, lv), &self.saved)?;
        Ok((packed, self.packed_shape()))
    }
}

impl BackwardOp<'_> {
    fn packed_shape(&self) -> Shape {
        let sh = &self.call.shape;
        Shape::from(sh.q_len() + 2 * sh.kv_len())
    }
}

/// dQ, dK and dV of the forward `fwd` (whose inputs were `q`, `k`, `v` and output `o`) given
/// `grad` = dO, shaped like `q`, `k` and `v`.
pub(crate) fn gradients(
    fwd: &ForwardOp,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let lse = fwd
        .lse()
        .ok_or_else(|| invalid("lse", "the forward kept no LSE: it did not run".into()))?;
    // dO comes in O's dtype from candle's autograd; a gradient of another dtype is converted.
    // Its layout is whatever the ops above made (a broadcast of a scalar's gradient has stride 0
    // everywhere, the head dim included): copied to one the kernels read when it is not one.
    let d_o = super::kernel_layout(&grad.to_dtype(o.dtype())?)?;
    let sh = fwd.call.shape;
    if o.dims() != [sh.rows, sh.n, sh.q_heads, sh.head_dim] || d_o.dims() != o.dims() {
        return Err(invalid(
            "d_o",
            format!("shape {:?}, O has {:?}", d_o.dims(), o.dims()),
        ));
    }
    let packed = {
        // Read locks on O, dO and the LSE, taken before candle takes Q's, K's and V's (its
        // recursive read locks) in `apply_op3_no_bwd`: the same kind of locks candle's own
        // multi-input ops hold together.
        let (o_s, o_l) = o.storage_and_layout();
        let (d_s, d_l) = d_o.storage_and_layout();
        let (l_s, l_l) = lse.storage_and_layout();
        let op = BackwardOp {
            call: &fwd.call,
            saved: Saved {
                o: Held {
                    storage: &o_s,
                    layout: o_l,
                },
                d_o: Held {
                    storage: &d_s,
                    layout: d_l,
                },
                lse: Held {
                    storage: &l_s,
                    layout: l_l,
                },
            },
        };
        q.apply_op3_no_bwd(k, v, &op)?
    };
    let (ql, kl) = (sh.q_len(), sh.kv_len());
    let dq = packed.narrow(0, 0, ql)?.reshape(q.shape())?;
    let dk = packed.narrow(0, ql, kl)?.reshape(k.shape())?;
    let dv = packed.narrow(0, ql + kl, kl)?.reshape(v.shape())?;
    Ok((dq, dk, dv))
}
