//! The backward call on a device: the kernels for this device picked and loaded once, then any
//! number of asynchronous calls (three launches each: preprocess, dK/dV, dQ) on any stream of
//! the context.

use std::sync::Arc;

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaStream, CudaView, CudaViewMut, DeviceRepr,
};

use crate::cuda::{DeviceArgs, DeviceKernel, Gpu};
use crate::error::{Error, Result};
use crate::ffi::params::{
    PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params, PaAttnBwdDqParams, PaAttnBwdDqSm90Params,
    PaAttnBwdPreParams,
};
use crate::mask::TileShape;
use crate::plan::Plan;
use crate::registry::{KernelDtype, KernelInfo, KernelRef};
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::call;
use super::configs::{
    path_for, picked_head_dims, select_backward, tile_set, tile_shape, BackwardChoice,
    BackwardKernels, BACKWARD_PICKS,
};
use super::dtype::{AttnDtype, Dtype};
use super::exec::{borrow_stream, check_context, DeviceExec, LoadedKernels};
use super::path_kernel::PathKernel;
use super::raw::{RawBackward, RawBuffer, RawWorkspace};
use super::tensors::BackwardViews;
use super::workspace::BackwardWorkspace;

// SAFETY: plain C structs of pointers, integers and floats laid out as in csrc/pa_params.h
// (bindgen layout tests check them), passed to the kernels by value.
unsafe impl DeviceRepr for PaAttnBwdPreParams {}
unsafe impl DeviceRepr for PaAttnBwdDkvParams {}
unsafe impl DeviceRepr for PaAttnBwdDqParams {}
unsafe impl DeviceRepr for PaAttnBwdDqSm90Params {}
unsafe impl DeviceRepr for PaAttnBwdDkvSm90Params {}

/// Inputs and outputs of one backward call on a device ([`BackwardViews`] of cudarc views).
pub type BackwardTensors<'a, T> =
    BackwardViews<CudaView<'a, T>, CudaViewMut<'a, T>, CudaView<'a, f32>>;

/// A loaded dQ kernel of either path (their parameter structs differ).
type DqKernel = PathKernel<PaAttnBwdDqParams, PaAttnBwdDqSm90Params>;

/// A loaded dK/dV kernel of either path (their parameter structs differ).
type DkvKernel = PathKernel<PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params>;

/// The three kernels of one (dtype, head dim), loaded.
struct Loaded {
    dtype: KernelDtype,
    head_dim: usize,
    pre: DeviceKernel<PaAttnBwdPreParams>,
    dkv: DkvKernel,
    dq: DqKernel,
}

/// The backward kernels of one device, ready to launch: for each dtype and head dim, the ones the
/// kernel choice picks for this device.
pub struct Backward {
    ctx: Arc<CudaContext>,
    kernels: Vec<Loaded>,
}

impl Backward {
    /// The kernels the default choice picks for this device (attention::configs).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_choice(gpu, BackwardChoice::default())
    }

    /// The kernels `choice` picks for this device; errors when it names a path or tile the device
    /// cannot run.
    pub fn with_choice(gpu: &Gpu, choice: BackwardChoice) -> Result<Self> {
        let best = gpu.arch()?;
        let mut kernels = Vec::new();
        for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
            for head_dim in picked_head_dims(BACKWARD_PICKS) {
                let arch = choice
                    .arch
                    .unwrap_or_else(|| path_for(BACKWARD_PICKS, best, head_dim));
                let ks = select_backward(arch, dtype, head_dim, &choice, |k| gpu.runs(k))?;
                kernels.push(Loaded {
                    dtype,
                    head_dim,
                    pre: gpu.load(KernelRef::new(ks.pre)?)?,
                    dkv: DkvKernel::load(gpu, ks.dkv)?,
                    dq: DqKernel::load(gpu, ks.dq)?,
                });
            }
        }
        Ok(Self {
            ctx: gpu.context().clone(),
            kernels,
        })
    }

    fn find(&self, dtype: KernelDtype, head_dim: usize) -> Result<&Loaded> {
        self.kernels
            .iter()
            .find(|k| k.dtype == dtype && k.head_dim == head_dim)
            .ok_or(Error::UnsupportedHeadDim { head_dim })
    }

    /// The block-list tile shapes of the loaded dK/dV and dQ kernels (every dtype and head dim),
    /// for a plan that holds just these ([`Plan::for_backward`]).
    pub fn tiles(&self) -> Vec<TileShape> {
        tile_set(
            self.kernels
                .iter()
                .flat_map(|k| [k.dkv.info().tile, k.dq.info().tile])
                .flatten()
                .map(tile_shape),
        )
    }

    /// The kernels a call of this dtype and head dim runs (their registry entries say their tiles).
    pub fn kernels_for(&self, dtype: KernelDtype, head_dim: usize) -> Result<BackwardKernels> {
        let k = self.find(dtype, head_dim)?;
        Ok(BackwardKernels {
            pre: k.pre.kernel().info(),
            dkv: k.dkv.info(),
            dq: k.dq.info(),
        })
    }

    /// dQ, dK and dV of `O = softmax(scale * Q K^T) V` under `plan`'s mask given dO, enqueued on
    /// `stream` (three kernels; `scale` must be the forward's).
    ///
    /// Asynchronous: no host synchronisation and no allocation (except a plan's first upload to
    /// this context, as [`super::Forward::run`]); `workspace` must [fit](BackwardWorkspace::fits)
    /// the shape and must not be used by another call until this one's kernels ran (calls on
    /// one stream are ordered). `stream` may be any stream of the kernels' context.
    /// Deterministic: the same inputs give the same bits, run after run.
    /// Errors: as [`super::Forward::run`], plus a workspace too small, and written views that
    /// may overlap any other view.
    pub fn run<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        mut t: BackwardTensors<'_, T>,
        workspace: &mut BackwardWorkspace,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        check_context(&self.ctx, stream.context(), "stream")?;
        check_context(&self.ctx, workspace.lse_log2.context(), "workspace")?;
        let mut args = DeviceArgs::new(stream);
        let ws = RawWorkspace {
            lse_log2: RawBuffer {
                len: workspace.lse_log2.len(),
                addr: args.write(&mut workspace.lse_log2)?,
            },
            delta: RawBuffer {
                len: workspace.delta.len(),
                addr: args.write(&mut workspace.delta)?,
            },
        };
        let raw = t.raw(&mut args, ws)?;
        // SAFETY: every address is a cudarc buffer of this context with its own length, borrowed
        // (dQ, dK, dV and the workspace mutably) for the call; `args` holds their stream-ordering
        // guards until the three launches are enqueued.
        unsafe { self.run_on(stream, plan, shape, Dtype::of::<T>(), &raw, scale.into()) }
    }

    /// [`Backward::run`] on memory given by address, on a borrowed stream: the raw entry
    /// ([`super::raw`]). The workspace is given too (two f32 arrays of at least
    /// [`super::workspace::workspace_len`] elements). Every check of the safe call runs on the
    /// numbers given, with the same errors.
    ///
    /// # Safety
    /// The raw entry's contract ([`super::raw`]).
    pub unsafe fn run_raw(
        &self,
        stream: sys::CUstream,
        plan: &Plan,
        shape: &AttnShape,
        dtype: Dtype,
        t: &RawBackward,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        // SAFETY: the caller's promise that `stream` is a live stream handle.
        let stream = unsafe { borrow_stream(&self.ctx, stream)? };
        // SAFETY: forwarded to the caller.
        unsafe { self.run_on(&stream, plan, shape, dtype, t, scale.into()) }
    }

    /// # Safety
    /// The raw entry's contract, on a stream of this context.
    unsafe fn run_on(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        dtype: Dtype,
        t: &RawBackward,
        scale: Scale,
    ) -> Result<()> {
        let kernels = self.kernels_for(dtype.kernel_dtype(), shape.head_dim)?;
        let dev = plan.device_for(stream)?;
        let mut exec = DeviceExec::new(stream, self, &dev);
        let dt = dtype.kernel_dtype();
        // SAFETY: forwarded to the caller.
        unsafe { call::backward(&mut exec, kernels, plan, shape, dt, &t.bufs(), scale) }
    }
}

impl LoadedKernels for Backward {
    fn function(&self, info: &'static KernelInfo) -> Option<&CudaFunction> {
        self.kernels.iter().find_map(|k| {
            if std::ptr::eq(k.pre.kernel().info(), info) {
                Some(k.pre.function())
            } else if std::ptr::eq(k.dkv.info(), info) {
                Some(k.dkv.function())
            } else if std::ptr::eq(k.dq.info(), info) {
                Some(k.dq.function())
            } else {
                None
            }
        })
    }
}
