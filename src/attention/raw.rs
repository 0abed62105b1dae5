//! The raw entry: forward and backward on memory this crate does not own — a PyTorch tensor, a
//! candle storage, a buffer from another allocator — given as addresses, element counts and
//! strides, on a borrowed CUDA stream (device) or on the emulator (host addresses).
//!
//! Every check the safe calls make runs on the numbers given: shapes, head counts, lengths
//! (every element a view reaches lies inside its `len`), 16-byte alignment, written views that
//! may overlap any other view, the workspace's size and alignment, the plan against the shape,
//! the scale, and (device) that the stream belongs to the kernels' context. The errors are the
//! same typed ones. What cannot be checked is whether the numbers describe real memory: that is
//! the safety contract below.
//!
//! # Safety contract (every `unsafe fn` of the raw entry)
//!
//! - Each buffer's `addr` is element 0 of the tensor and the `len` elements from `addr` lie in
//!   one allocation: device memory of the kernels' context for a device call, host memory for an
//!   emulated one.
//! - Inputs (Q, K, V; for the backward also O, LSE and dO) are not written by anyone, and outputs
//!   (O and LSE; dQ, dK, dV and the workspace) are not read or written by anyone else, until the
//!   kernels complete: for a device call, until the work enqueued on the stream has run; for an
//!   emulated call, until it returns.
//! - A device call's `stream` is a valid CUDA stream (`CUstream`) that stays alive until the
//!   work enqueued on it has run; 0 is the legacy default stream. A stream of another context is
//!   refused with a typed error; a handle that is not a stream at all is undefined behaviour.
//! - The caller orders the stream after whatever produced the inputs, and whatever consumes the
//!   outputs after the stream (as with any kernel it enqueues itself). The calls enqueue
//!   asynchronously and never synchronise the host, except the first call with a plan that was
//!   never uploaded to this context, which uploads it once ([`crate::plan::Plan`]).

use crate::error::{Error, Result};
use crate::shape::AttnShape;

use super::call::{BackwardBufs, ForwardBufs, RawBuf};
use super::overlap::{check_disjoint, Footprint};
use super::view::{check_view, RawView, Strides};

/// A `[rows, n, heads, head_dim]` tensor given by address: element (0, 0, 0, 0) at `addr`, `len`
/// elements accessible from there, element strides (the head dim contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTensor {
    pub addr: u64,
    pub len: usize,
    pub strides: Strides,
}

impl RawTensor {
    /// A dense tensor of `heads` heads of `shape` at `addr` (`len` exactly what it spans).
    pub fn dense(addr: u64, shape: &AttnShape, heads: usize) -> Self {
        RawTensor {
            addr,
            len: shape.rows * shape.n * heads * shape.head_dim,
            strides: Strides::dense(shape.n, heads, shape.head_dim),
        }
    }

    pub(crate) fn view(&self) -> RawView {
        RawView {
            len: self.len,
            addr: self.addr,
            strides: self.strides,
        }
    }
}

/// A flat f32 buffer given by address (LSE `[rows, q_heads, n]`, a workspace array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBuffer {
    pub addr: u64,
    pub len: usize,
}

impl RawBuffer {
    fn buf(&self) -> RawBuf {
        RawBuf {
            addr: self.addr,
            len: self.len,
        }
    }
}

/// The buffers of a raw forward call: Q `[rows, n, q_heads, d]`, K and V `[rows, n, kv_heads,
/// d]` read; O like Q and LSE dense `[rows, q_heads, n]` f32 (natural log) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawForward {
    pub q: RawTensor,
    pub k: RawTensor,
    pub v: RawTensor,
    pub o: RawTensor,
    pub lse: RawBuffer,
}

impl RawForward {
    pub(crate) fn bufs(&self) -> ForwardBufs {
        ForwardBufs {
            q: self.q.view(),
            k: self.k.view(),
            v: self.v.view(),
            o: self.o.view(),
            lse: self.lse.buf(),
        }
    }
}

/// The backward's workspace given by address: two f32 arrays of at least
/// [`workspace_len`](super::workspace::workspace_len) elements each, 16-byte aligned. Only the
/// backward call uses it; nothing in it needs to survive between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawWorkspace {
    pub lse_log2: RawBuffer,
    pub delta: RawBuffer,
}

/// The buffers of a raw backward call: what the forward read and wrote (Q, K, V, O, LSE), dO,
/// and dQ, dK, dV (written, every element) with the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBackward {
    pub q: RawTensor,
    pub k: RawTensor,
    pub v: RawTensor,
    pub o: RawTensor,
    pub lse: RawBuffer,
    pub d_o: RawTensor,
    pub dq: RawTensor,
    pub dk: RawTensor,
    pub dv: RawTensor,
    pub workspace: RawWorkspace,
}

impl RawBackward {
    pub(crate) fn bufs(&self) -> BackwardBufs {
        BackwardBufs {
            q: self.q.view(),
            k: self.k.view(),
            v: self.v.view(),
            o: self.o.view(),
            lse: self.lse.buf(),
            d_o: self.d_o.view(),
            dq: self.dq.view(),
            dk: self.dk.view(),
            dv: self.dv.view(),
            ws_lse_log2: self.workspace.lse_log2.buf(),
            ws_delta: self.workspace.delta.buf(),
        }
    }
}

/// A raw call's heads of a tensor: the shape's `q_heads` (Q, O, dO, dQ) or `kv_heads` (K, V,
/// dK, dV); anything else is `InvalidArgument` (no call checks a view with another count).
fn call_heads(what: &'static str, shape: &AttnShape, heads: usize) -> Result<usize> {
    if heads != shape.q_heads && heads != shape.kv_heads {
        return Err(Error::InvalidArgument {
            what,
            detail: format!(
                "{heads} heads: a call's tensors have q_heads {} or kv_heads {}",
                shape.q_heads, shape.kv_heads
            ),
        });
    }
    Ok(heads)
}

/// The check a raw call runs on one of its tensors, without launching anything: `shape`
/// validated as every call does ([`AttnShape::validate`]), then the view check itself (every
/// element the view reaches lies inside its `len`; element 0 and the strides 16-byte aligned; a
/// `written` view (O, dQ, dK, dV) must not map two elements to one address). `what` names the
/// tensor in errors; `heads` is the shape's `q_heads` or `kv_heads`. The same code and the same
/// typed errors as the calls (`InvalidView`, `WrongHeadCount`): for fuzzing and for callers
/// that want to check their layout once, before their first call.
pub fn check_tensor_view(
    what: &'static str,
    shape: &AttnShape,
    tensor: &RawTensor,
    heads: usize,
    written: bool,
) -> Result<()> {
    shape.validate()?;
    let heads = call_heads(what, shape, heads)?;
    check_view(what, &tensor.view(), shape, heads, written).map(|_| ())
}

/// The overlap check a raw backward call runs, without launching anything: `shape` validated,
/// then every `written` tensor (dQ, dK, dV) proven to share no element with any other tensor
/// given, written or read (the test is sufficient, not exact: it accepts separate buffers and
/// head ranges of one fused buffer, token-major or head-major). Each tensor is `(name, tensor,
/// heads)`, `heads` the shape's `q_heads` or `kv_heads`. It does not check each tensor on its
/// own: a call runs [`check_tensor_view`]'s check on every tensor first. The same code and the
/// same `InvalidView` error as the calls.
pub fn check_written_disjoint(
    shape: &AttnShape,
    written: &[(&'static str, RawTensor, usize)],
    read: &[(&'static str, RawTensor, usize)],
) -> Result<()> {
    shape.validate()?;
    let footprints = |ts: &[(&'static str, RawTensor, usize)]| -> Result<Vec<Footprint>> {
        ts.iter()
            .map(|&(name, t, heads)| {
                let heads = call_heads(name, shape, heads)?;
                Ok(Footprint::of(name, &t.view(), shape, heads))
            })
            .collect()
    };
    check_disjoint(&footprints(written)?, &footprints(read)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_of_a_call_without_a_call() {
        let shape = AttnShape {
            rows: 2,
            n: 10,
            q_heads: 4,
            kv_heads: 2,
            head_dim: 64,
        };
        let q = RawTensor::dense(4096, &shape, 4);
        assert!(check_tensor_view("q", &shape, &q, 4, true).is_ok());
        let short = RawTensor {
            len: q.len - 1,
            ..q
        };
        assert!(check_tensor_view("q", &shape, &short, 4, false).is_err());
        let odd = RawTensor { addr: 4098, ..q };
        assert!(check_tensor_view("q", &shape, &odd, 4, false).is_err());
        assert!(matches!(
            check_tensor_view("q", &shape, &q, 3, false),
            Err(Error::InvalidArgument { what: "q", .. })
        ));
        let after = RawTensor::dense(4096 + 2 * q.len as u64, &shape, 4);
        assert!(check_written_disjoint(&shape, &[("dq", after, 4)], &[("q", q, 4)]).is_ok());
        assert!(check_written_disjoint(&shape, &[("dq", q, 4)], &[("q", q, 4)]).is_err());
    }
}
