//! The forward call on a device: the kernels for this device picked and loaded once, then any
//! number of asynchronous launches on any stream of the context.

use std::sync::Arc;

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaStream, CudaView, CudaViewMut, DeviceRepr,
};

use crate::cuda::{DeviceArgs, Gpu};
use crate::error::{Error, Result};
use crate::ffi::params::{PaAttnFwdParams, PaAttnFwdSm90Params};
use crate::mask::TileShape;
use crate::plan::Plan;
use crate::registry::{KernelDtype, KernelInfo};
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::call;
use super::configs::{
    path_for, picked_head_dims, select_forward, tile_set, tile_shape, KernelChoice, FORWARD_PICKS,
};
use super::dtype::{AttnDtype, Dtype};
use super::exec::{borrow_stream, check_context, DeviceExec, LoadedKernels};
use super::path_kernel::PathKernel;
use super::raw::RawForward;
use super::tensors::ForwardViews;

// SAFETY: a plain C struct of pointers, integers and floats laid out as in csrc/pa_params.h
// (bindgen layout tests check it), passed to the kernel by value.
unsafe impl DeviceRepr for PaAttnFwdParams {}
// SAFETY: as above; its tensor maps are 128 plain bytes each, and the struct's 64-byte alignment
// (cp.async.bulk.tensor's for a map) is the C struct's own.
unsafe impl DeviceRepr for PaAttnFwdSm90Params {}

/// A loaded forward kernel: its path decides its parameter struct.
type FwdKernel = PathKernel<PaAttnFwdParams, PaAttnFwdSm90Params>;

/// Inputs and outputs of one forward call on a device ([`ForwardViews`] of cudarc views).
pub type DeviceTensors<'a, T> =
    ForwardViews<CudaView<'a, T>, CudaViewMut<'a, T>, CudaViewMut<'a, f32>>;

/// The forward kernels of one device, ready to launch: for each dtype and head dim, the one the
/// kernel choice picks for this device.
pub struct Forward {
    ctx: Arc<CudaContext>,
    kernels: Vec<(KernelDtype, usize, FwdKernel)>,
}

impl Forward {
    /// The kernels the default choice picks for this device (attention::configs).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_choice(gpu, KernelChoice::default())
    }

    /// The kernels `choice` picks for this device; errors when it names a path or tile the device
    /// cannot run at any head dim.
    pub fn with_choice(gpu: &Gpu, choice: KernelChoice) -> Result<Self> {
        let best = gpu.arch()?;
        let mut kernels = Vec::new();
        for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
            for head_dim in picked_head_dims(FORWARD_PICKS) {
                let arch = choice
                    .arch
                    .unwrap_or_else(|| path_for(FORWARD_PICKS, best, head_dim));
                // A forced tile configuration need not exist at every head dim: calls at the
                // others are then errors (UnsupportedHeadDim), like any head dim without a kernel.
                let info = match select_forward(arch, dtype, head_dim, choice.tile, |k| gpu.runs(k))
                {
                    Ok(info) => info,
                    Err(_) if choice.tile.is_some() => continue,
                    Err(e) => return Err(e),
                };
                kernels.push((dtype, head_dim, FwdKernel::load(gpu, info)?));
            }
        }
        if kernels.is_empty() {
            return Err(Error::InvalidArgument {
                what: "kernel choice",
                detail: format!("{choice:?} picks no forward kernel this device runs"),
            });
        }
        Ok(Self {
            ctx: gpu.context().clone(),
            kernels,
        })
    }

    /// The CUDA context the kernels are loaded in (any of its streams runs them).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The block-list tile shapes of the loaded kernels (every dtype and head dim), for a plan
    /// that holds just these ([`Plan::for_forward`]).
    pub fn tiles(&self) -> Vec<TileShape> {
        tile_set(
            self.kernels
                .iter()
                .filter_map(|(_, _, k)| k.info().tile.map(tile_shape)),
        )
    }

    /// The kernel a call of this dtype and head dim runs (its registry entry says its path and
    /// tile).
    pub fn kernel_for(&self, dtype: KernelDtype, head_dim: usize) -> Result<&'static KernelInfo> {
        self.find(dtype, head_dim).map(|k| k.info())
    }

    fn find(&self, dtype: KernelDtype, head_dim: usize) -> Result<&FwdKernel> {
        self.kernels
            .iter()
            .find(|(d, h, _)| *d == dtype && *h == head_dim)
            .map(|(_, _, k)| k)
            .ok_or(Error::UnsupportedHeadDim { head_dim })
    }

    /// `O = softmax(scale * Q K^T) V` and LSE under `plan`'s mask, enqueued on `stream`.
    ///
    /// Asynchronous: no host synchronisation and no allocation, except the first call with a
    /// plan not yet in this context, which uploads it once ([`Plan`]). `stream` may be any
    /// stream of the context the kernels were loaded in (compared as CUDA contexts, so a
    /// stream of candle's or another library's handle of the same primary context works).
    /// Errors: shape/plan mismatches, views that are too short, misaligned or self-overlapping
    /// (O), a dense buffer with another head count than the shape's, unsupported head dims, a
    /// scale that is not finite and positive, a stream of another context, CUDA launch errors.
    pub fn run<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        mut t: DeviceTensors<'_, T>,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        check_context(&self.ctx, stream.context(), "stream")?;
        let mut args = DeviceArgs::new(stream);
        let raw = t.raw(&mut args)?;
        // SAFETY: every address is a cudarc buffer of this context with its own length, borrowed
        // (O and LSE mutably) for the call; `args` holds their stream-ordering guards until the
        // launch is enqueued.
        unsafe { self.run_on(stream, plan, shape, Dtype::of::<T>(), &raw, scale.into()) }
    }

    /// [`Forward::run`] on memory given by address, on a borrowed stream: the raw entry
    /// ([`super::raw`]), for tensors this crate does not own (PyTorch, candle, another
    /// allocator). Every check of the safe call runs on the numbers given, with the same errors.
    ///
    /// # Safety
    /// The raw entry's contract ([`super::raw`]): the addresses and lengths describe device
    /// memory of this context that nobody else uses until the kernel ran, and `stream` is a
    /// valid stream handle that outlives the work.
    pub unsafe fn run_raw(
        &self,
        stream: sys::CUstream,
        plan: &Plan,
        shape: &AttnShape,
        dtype: Dtype,
        t: &RawForward,
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
        t: &RawForward,
        scale: Scale,
    ) -> Result<()> {
        let kernel = self.find(dtype.kernel_dtype(), shape.head_dim)?.info();
        let dev = plan.device_for(stream)?;
        let mut exec = DeviceExec::new(stream, self, &dev);
        // SAFETY: forwarded to the caller.
        unsafe {
            call::forward(
                &mut exec,
                kernel,
                plan,
                shape,
                dtype.kernel_dtype(),
                &t.bufs(),
                scale,
            )
        }
    }
}

impl LoadedKernels for Forward {
    fn function(&self, info: &'static KernelInfo) -> Option<&CudaFunction> {
        self.kernels
            .iter()
            .map(|(_, _, k)| k)
            .find(|k| std::ptr::eq(k.info(), info))
            .map(|k| k.function())
    }
}
