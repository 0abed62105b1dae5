//! One forward call and one backward call, for any executor: the plan's arrays at the kernels'
//! tiles, the launch preparation (every check, the parameters, the tensor maps of the sm90a
//! path) and the launches in order. The safe device calls, the emulator calls and the raw
//! entry points all come here with the buffers as lengths and addresses; what differs between
//! them is only the executor ([`super::exec`]).

use crate::error::Result;
use crate::plan::Plan;
use crate::registry::{Arch, KernelDtype, KernelInfo};
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::backward_prepare::{prepare_backward, BackwardCall, DkvLaunch, DqLaunch};
use super::configs::{tile_shape, BackwardKernels};
use super::exec::{Direction, Executor};
use super::prepare::{prepare_forward, ForwardCall};
use super::prepare_sm90::prepare_forward_sm90;
use super::view::RawView;

/// A flat f32 buffer: its address and its length in elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawBuf {
    pub(crate) addr: u64,
    pub(crate) len: usize,
}

/// The buffers of one forward call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardBufs {
    pub(crate) q: RawView,
    pub(crate) k: RawView,
    pub(crate) v: RawView,
    pub(crate) o: RawView,
    pub(crate) lse: RawBuf,
}

/// The buffers of one backward call, the workspace's two arrays included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackwardBufs {
    pub(crate) q: RawView,
    pub(crate) k: RawView,
    pub(crate) v: RawView,
    pub(crate) o: RawView,
    pub(crate) lse: RawBuf,
    pub(crate) d_o: RawView,
    pub(crate) dq: RawView,
    pub(crate) dk: RawView,
    pub(crate) dv: RawView,
    pub(crate) ws_lse_log2: RawBuf,
    pub(crate) ws_delta: RawBuf,
}

fn tile_of(kernel: &KernelInfo) -> Result<crate::mask::TileShape> {
    kernel
        .tile
        .map(tile_shape)
        .ok_or_else(|| crate::error::Error::InvalidArgument {
            what: "kernel",
            detail: format!("{} has no tile configuration", kernel.name),
        })
}

/// Checks and runs one forward call of `kernel` on `exec`.
///
/// # Safety
/// Every buffer of `b` must be memory in `exec`'s address space that the kernel may read (Q, K,
/// V) or write (O, LSE) over its whole `len`, alive and not used by anyone else until the launch
/// completes. Lengths, alignment, shapes and overlaps are checked here; validity is not.
pub(crate) unsafe fn forward<E: Executor>(
    exec: &mut E,
    kernel: &'static KernelInfo,
    plan: &Plan,
    shape: &AttnShape,
    dtype: KernelDtype,
    b: &ForwardBufs,
    scale: Scale,
) -> Result<()> {
    let tile = tile_of(kernel)?;
    let mask = plan.mask(tile)?;
    let call = ForwardCall {
        kernel,
        mask,
        q_major: exec.lists(plan, tile, Direction::QMajor)?,
        vis_end: exec.vis_end(plan)?,
        shape,
        dtype,
        q: b.q,
        k: b.k,
        v: b.v,
        o: b.o,
        lse_len: b.lse.len,
        lse_addr: b.lse.addr,
        scale: scale.get(),
    };
    // SAFETY (both launches): the preparation checked every view against its length, that O
    // does not overlap itself, and the plan's lists against the kernel and the shape; the
    // tensor maps describe the checked Q, K and V views; validity is the caller's promise.
    match kernel.arch {
        Arch::Sm80 => {
            let l = prepare_forward(&call)?;
            unsafe { exec.launch(l.kernel, &l.dims, &l.params) }
        }
        Arch::Sm90a => {
            let l = prepare_forward_sm90(&call, |d| exec.encode(d))?;
            unsafe { exec.launch(l.kernel, &l.dims, &l.params) }
        }
    }
}

/// Checks and runs one backward call (preprocess, dK/dV, dQ, in this order) on `exec`.
///
/// # Safety
/// As [`forward`]: Q, K, V, O, LSE and dO read, dQ, dK, dV and the workspace written, each over
/// its whole `len`.
pub(crate) unsafe fn backward<E: Executor>(
    exec: &mut E,
    kernels: BackwardKernels,
    plan: &Plan,
    shape: &AttnShape,
    dtype: KernelDtype,
    b: &BackwardBufs,
    scale: Scale,
) -> Result<()> {
    let (dkv_tile, dq_tile) = (tile_of(kernels.dkv)?, tile_of(kernels.dq)?);
    let call = BackwardCall {
        kernels,
        dkv_mask: plan.mask(dkv_tile)?,
        k_major: exec.lists(plan, dkv_tile, Direction::KMajor)?,
        dq_mask: plan.mask(dq_tile)?,
        q_major: exec.lists(plan, dq_tile, Direction::QMajor)?,
        vis_end: exec.vis_end(plan)?,
        shape,
        dtype,
        q: b.q,
        k: b.k,
        v: b.v,
        o: b.o,
        d_o: b.d_o,
        dq: b.dq,
        dk: b.dk,
        dv: b.dv,
        lse_len: b.lse.len,
        lse_addr: b.lse.addr,
        ws_len: b.ws_lse_log2.len.min(b.ws_delta.len),
        ws_lse_log2: b.ws_lse_log2.addr,
        ws_delta: b.ws_delta.addr,
        scale: scale.get(),
    };
    let l = prepare_backward(&call, |d| exec.encode(d))?;
    // SAFETY: prepare_backward checked every view against its length, that dQ, dK and dV do not
    // overlap themselves, each other or the inputs, and the workspace against the shape; the
    // sm90a kernels' tensor maps describe the checked views; validity is the caller's promise.
    // The three launches run in this order (one stream, or one after the other on the CPU).
    unsafe {
        exec.launch(l.pre.kernel, &l.pre.dims, &l.pre.params)?;
        match &l.dkv {
            DkvLaunch::Sm80(k) => exec.launch(k.kernel, &k.dims, &k.params)?,
            DkvLaunch::Sm90a(k) => exec.launch(k.kernel, &k.dims, &k.params)?,
        }
        match &l.dq {
            DqLaunch::Sm80(k) => exec.launch(k.kernel, &k.dims, &k.params),
            DqLaunch::Sm90a(k) => exec.launch(k.kernel, &k.dims, &k.params),
        }
    }
}
