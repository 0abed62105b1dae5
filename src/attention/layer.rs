//! What a trainer holds per device for its attention layers: the forward and the backward kernels
//! together, and the workspace the backward needs.

use std::sync::{Arc, Mutex};

use cudarc::driver::{sys, CudaContext, CudaSlice, CudaStream, DeviceRepr};

use crate::cuda::{cuda_err, same_context, Gpu};
use crate::error::Result;
use crate::mask::TileShape;
use crate::plan::Plan;
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::backward::{Backward, BackwardTensors};
use super::configs::{tile_set, BackwardChoice, KernelChoice};
use super::dtype::{AttnDtype, Dtype};
use super::forward::{DeviceTensors, Forward};
use super::raw::{RawBackward, RawForward};
use super::workspace::BackwardWorkspace;

/// O and LSE of a forward whose outputs the crate allocated ([`Attention::forward_dense`]):
/// O dense `[rows, n, q_heads, d]`, LSE `[rows, q_heads, n]` f32 (natural log), which the
/// backward takes back.
pub struct ForwardOutput<T> {
    pub o: CudaSlice<T>,
    pub lse: CudaSlice<f32>,
}

/// dQ, dK and dV of a backward whose outputs the crate allocated ([`Attention::backward_dense`]),
/// dense like Q, K and V.
pub struct Gradients<T> {
    pub dq: CudaSlice<T>,
    pub dk: CudaSlice<T>,
    pub dv: CudaSlice<T>,
}

/// The kernels loaded once per CUDA context by [`Attention::for_context`].
static SHARED: Mutex<Vec<Arc<Attention>>> = Mutex::new(Vec::new());

/// The forward and backward kernels of one device. Every layer of a model can share one: a call
/// takes the layer's tensors, the batch's plan and the softmax scale.
pub struct Attention {
    pub forward: Forward,
    pub backward: Backward,
}

impl Attention {
    /// The kernels the default choices pick for this device.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_choices(gpu, KernelChoice::default(), BackwardChoice::default())
    }

    /// Explicit kernel choices for the forward and the backward.
    pub fn with_choices(
        gpu: &Gpu,
        forward: KernelChoice,
        backward: BackwardChoice,
    ) -> Result<Self> {
        Ok(Self {
            forward: Forward::with_choice(gpu, forward)?,
            backward: Backward::with_choice(gpu, backward)?,
        })
    }

    /// The kernels of `ctx`'s device with the default choices, loaded into that context once per
    /// process and shared: what an op that receives a stream from another library (candle,
    /// PyTorch) calls on every use.
    pub fn for_context(ctx: &Arc<CudaContext>) -> Result<Arc<Attention>> {
        // A poisoned lock only means a panic elsewhere while loading; the list holds whole
        // entries only.
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = shared.iter().find(|a| same_context(a.context(), ctx)) {
            return Ok(a.clone());
        }
        let a = Arc::new(Attention::new(&Gpu::from_context(ctx.clone())?)?);
        shared.push(a.clone());
        Ok(a)
    }

    /// The block-list tile shapes of the forward and backward kernels, for a plan that holds
    /// just these ([`Plan::for_attention`]).
    pub fn tiles(&self) -> Vec<TileShape> {
        tile_set(
            self.forward
                .tiles()
                .into_iter()
                .chain(self.backward.tiles()),
        )
    }

    /// The CUDA context the kernels are loaded in.
    pub fn context(&self) -> &Arc<CudaContext> {
        self.forward.context()
    }

    /// A backward workspace for calls up to `shape` (allocate once, reuse for every layer).
    pub fn workspace(
        &self,
        stream: &Arc<CudaStream>,
        shape: &AttnShape,
    ) -> Result<BackwardWorkspace> {
        BackwardWorkspace::new(stream, shape)
    }

    /// O and LSE of dense Q, K and V (`[rows, n, heads, d]` as `shape` says), in buffers
    /// allocated on `stream`: a layer's forward in one line. Errors as [`Forward::run`], plus
    /// [`crate::Error::WrongHeadCount`] / `LengthMismatch` for a buffer that is not the shape's.
    // The call's own tensors are its arguments; grouping them in a struct would only move the
    // names one line up in every caller.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_dense<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        q: &CudaSlice<T>,
        k: &CudaSlice<T>,
        v: &CudaSlice<T>,
        scale: impl Into<Scale>,
    ) -> Result<ForwardOutput<T>> {
        shape.validate()?;
        // SAFETY (both): the kernel writes every element of O and LSE (zeros and -inf for a
        // query that sees nothing) before anything can read them.
        let mut o = unsafe { stream.alloc::<T>(shape.q_len()) }.map_err(cuda_err("alloc o"))?;
        let mut lse =
            unsafe { stream.alloc::<f32>(shape.lse_len()) }.map_err(cuda_err("alloc lse"))?;
        let t = DeviceTensors::dense(
            shape,
            q.as_view(),
            k.as_view(),
            v.as_view(),
            o.as_view_mut(),
            lse.as_view_mut(),
        )?;
        self.forward.run(stream, plan, shape, t, scale)?;
        Ok(ForwardOutput { o, lse })
    }

    /// dQ, dK and dV of dense tensors given the forward's output and dO, in buffers allocated on
    /// `stream` (with a workspace for this call): a layer's backward in one line. `scale` must
    /// be the forward's. Errors as [`Backward::run`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_dense<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        q: &CudaSlice<T>,
        k: &CudaSlice<T>,
        v: &CudaSlice<T>,
        out: &ForwardOutput<T>,
        d_o: &CudaSlice<T>,
        scale: impl Into<Scale>,
    ) -> Result<Gradients<T>> {
        shape.validate()?;
        let mut workspace = BackwardWorkspace::new(stream, shape)?;
        // SAFETY (all three): the kernels write every element of dQ, dK and dV (zeros where there
        // is no gradient).
        let mut dq = unsafe { stream.alloc::<T>(shape.q_len()) }.map_err(cuda_err("alloc dq"))?;
        let mut dk = unsafe { stream.alloc::<T>(shape.kv_len()) }.map_err(cuda_err("alloc dk"))?;
        let mut dv = unsafe { stream.alloc::<T>(shape.kv_len()) }.map_err(cuda_err("alloc dv"))?;
        let t = BackwardTensors::dense(
            shape,
            q.as_view(),
            k.as_view(),
            v.as_view(),
            out.o.as_view(),
            out.lse.as_view(),
            d_o.as_view(),
            dq.as_view_mut(),
            dk.as_view_mut(),
            dv.as_view_mut(),
        )?;
        self.backward
            .run(stream, plan, shape, t, &mut workspace, scale)?;
        Ok(Gradients { dq, dk, dv })
    }

    /// [`Forward::run_raw`]: the raw entry's forward ([`super::raw`]).
    ///
    /// # Safety
    /// The raw entry's contract ([`super::raw`]).
    pub unsafe fn forward_raw(
        &self,
        stream: sys::CUstream,
        plan: &Plan,
        shape: &AttnShape,
        dtype: Dtype,
        t: &RawForward,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.forward.run_raw(stream, plan, shape, dtype, t, scale) }
    }

    /// [`Backward::run_raw`]: the raw entry's backward ([`super::raw`]).
    ///
    /// # Safety
    /// The raw entry's contract ([`super::raw`]).
    pub unsafe fn backward_raw(
        &self,
        stream: sys::CUstream,
        plan: &Plan,
        shape: &AttnShape,
        dtype: Dtype,
        t: &RawBackward,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.backward.run_raw(stream, plan, shape, dtype, t, scale) }
    }

    /// [`Forward::run`]: O and LSE, which the backward takes back.
    pub fn forward<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        t: DeviceTensors<'_, T>,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        self.forward.run(stream, plan, shape, t, scale)
    }

    /// [`Backward::run`]: dQ, dK and dV given dO, with the same plan and scale as the forward.
    pub fn backward<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        t: BackwardTensors<'_, T>,
        workspace: &mut BackwardWorkspace,
        scale: impl Into<Scale>,
    ) -> Result<()> {
        self.backward.run(stream, plan, shape, t, workspace, scale)
    }
}
