//! The plan of a batch: its `vis_end` and block lists, built once per batch on the host and
//! reused by every layer's forward (and backward). For GPU use the plan also holds its arrays
//! uploaded to the device, so a forward call only reads them.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::cuda::upload_for_kernel;
use crate::error::Result;
use crate::ffi::params::{PA_FWD_BLOCK_K, PA_FWD_BLOCK_Q};
use crate::mask::{BlockMask, TileShape, VisEnd};

/// The tile shape of the forward kernels (csrc/attn/traits.cuh): the forward block lists must be
/// built with exactly this shape.
pub fn forward_tile() -> TileShape {
    TileShape::new(PA_FWD_BLOCK_Q as usize, PA_FWD_BLOCK_K as usize)
        .expect("the forward tile constants are valid tile sides")
}

/// The arrays the forward kernels read, on one device.
pub(crate) struct DevicePlan {
    pub(crate) vis_end: CudaSlice<i32>,
    pub(crate) fwd_q_offsets: CudaSlice<i32>,
    pub(crate) fwd_q_entries: CudaSlice<i32>,
    pub(crate) fwd_heaviest_first: CudaSlice<i32>,
}

/// `vis_end` of a batch and its block lists for the forward tile; optionally uploaded.
pub struct Plan {
    vis_end: VisEnd,
    forward: BlockMask,
    device: Option<DevicePlan>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("rows", &self.vis_end.rows())
            .field("n", &self.vis_end.n())
            .field("forward_tile", &self.forward.tile())
            .field("on_device", &self.device.is_some())
            .finish()
    }
}

impl Plan {
    /// Host-only plan (enough for the emulator): builds the forward block lists.
    pub fn new(vis_end: VisEnd) -> Result<Self> {
        let forward = BlockMask::build(&vis_end, forward_tile())?;
        Ok(Self {
            vis_end,
            forward,
            device: None,
        })
    }

    /// Builds the plan and uploads its arrays on `stream` (the copies are ordered on the
    /// stream; later kernels on any stream wait for them through cudarc's event tracking).
    pub fn on_device(vis_end: VisEnd, stream: &Arc<CudaStream>) -> Result<Self> {
        let mut plan = Self::new(vis_end)?;
        plan.upload(stream)?;
        Ok(plan)
    }

    /// Uploads (or re-uploads) the arrays the kernels read on `stream`.
    pub fn upload(&mut self, stream: &Arc<CudaStream>) -> Result<()> {
        // At least one element each: an all-padding batch has no block-list entries.
        let up = |what: &'static str, data: &[i32]| upload_for_kernel(stream, data, what);
        self.device = Some(DevicePlan {
            vis_end: up("upload vis_end", self.vis_end.as_slice())?,
            fwd_q_offsets: up("upload forward q_offsets", self.forward.q_offsets())?,
            fwd_q_entries: up("upload forward q_entries", self.forward.q_entries())?,
            fwd_heaviest_first: up(
                "upload forward heaviest_first",
                self.forward.heaviest_first(),
            )?,
        });
        Ok(())
    }

    /// The batch's `vis_end`.
    pub fn vis_end(&self) -> &VisEnd {
        &self.vis_end
    }

    /// Block lists at [`forward_tile`].
    pub fn forward_mask(&self) -> &BlockMask {
        &self.forward
    }

    /// Whether [`Plan::upload`] has run.
    pub fn is_on_device(&self) -> bool {
        self.device.is_some()
    }

    pub(crate) fn device(&self) -> Option<&DevicePlan> {
        self.device.as_ref()
    }
}
