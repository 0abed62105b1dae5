//! What a trainer holds per device for its attention layers: the forward and the backward kernels
//! together, and the workspace the backward needs.

use std::sync::Arc;

use cudarc::driver::{CudaStream, DeviceRepr};

use crate::cuda::Gpu;
use crate::error::Result;
use crate::plan::Plan;
use crate::shape::AttnShape;

use super::backward::{Backward, BackwardTensors};
use super::configs::{BackwardChoice, KernelChoice};
use super::dtype::AttnDtype;
use super::forward::{DeviceTensors, Forward};
use super::workspace::BackwardWorkspace;

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

    /// A backward workspace for calls up to `shape` (allocate once, reuse for every layer).
    pub fn workspace(
        &self,
        stream: &Arc<CudaStream>,
        shape: &AttnShape,
    ) -> Result<BackwardWorkspace> {
        BackwardWorkspace::new(stream, shape)
    }

    /// [`Forward::run`]: O and LSE, which the backward takes back.
    pub fn forward<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        t: DeviceTensors<'_, T>,
        scale: f32,
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
        scale: f32,
    ) -> Result<()> {
        self.backward.run(stream, plan, shape, t, workspace, scale)
    }
}
