//! The plan of a batch: its `vis_end` and block lists, built once per batch on the host and
//! reused by every layer's forward and backward. A plan holds the lists of every tile shape its
//! kernels use (each kernel's tile configuration comes from the registry), in both directions:
//! q-major (forward, dQ) and k-major (dK/dV), each with its heaviest-first launch order. The lists
//! are runs ([`crate::mask::BlockMask`]): a plan's size and building time grow with tokens.
//!
//! Which tile shapes: [`Plan::new`] builds every shape a default or chosen-only pick uses (five
//! today), so one plan serves the default kernels of any device and either path. A plan made for
//! the kernels that will run builds just theirs: [`Plan::for_attention`], [`Plan::for_forward`],
//! [`Plan::for_backward`] (loaded kernels), [`Plan::for_device`] (the default kernels of a device,
//! without loading them), [`Plan::for_emulator`] (the emulator's calls under given choices);
//! [`Plan::with_tiles`] takes the shapes. [`Plan::upload_bytes`] says what an upload copies.
//!
//! For GPU use the plan also holds its arrays uploaded, once per CUDA context: either explicitly
//! ([`Plan::upload`], [`Plan::on_device`]) or by the first call on a stream of a context it was
//! not uploaded to yet (which then allocates and copies once, on that call's stream). Later calls
//! only read them. A plan is cheap to clone (the clones share the lists and the uploads), so an
//! op that runs the backward later (the candle op, the Python package) keeps one.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};

use crate::attention::configs::{
    default_tiles, emulated_tiles, pick_tiles, BackwardChoice, KernelChoice,
};
use crate::attention::{Attention, Backward, Forward};
use crate::cuda::{same_context, upload_for_kernel, Gpu};
use crate::error::{Error, Result};
use crate::mask::{BlockMask, TileShape, VisEnd};

/// One direction of a tile shape's lists on a device ([`crate::mask::ListArrays`]).
pub(crate) struct DeviceLists {
    pub(crate) offsets: CudaSlice<i32>,
    pub(crate) runs: CudaSlice<i32>,
    pub(crate) order: CudaSlice<i32>,
}

/// Both directions of one tile shape's lists on a device.
pub(crate) struct DeviceMask {
    pub(crate) q_major: DeviceLists,
    pub(crate) k_major: DeviceLists,
}

/// The arrays the kernels read, in one CUDA context: `masks[i]` holds the lists of the plan's
/// `masks[i]`.
pub(crate) struct DevicePlan {
    pub(crate) vis_end: CudaSlice<i32>,
    pub(crate) masks: Vec<DeviceMask>,
}

struct PlanInner {
    vis_end: VisEnd,
    masks: Vec<BlockMask>,
    /// One upload per CUDA context (usually one).
    device: Mutex<Vec<Arc<DevicePlan>>>,
}

/// `vis_end` of a batch and its block lists at every tile shape its kernels use; optionally
/// uploaded. Clones share everything.
#[derive(Clone)]
pub struct Plan {
    inner: Arc<PlanInner>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("rows", &self.inner.vis_end.rows())
            .field("n", &self.inner.vis_end.n())
            .field("tiles", &self.tiles())
            .field("on_device", &self.is_on_device())
            .finish()
    }
}

impl Plan {
    /// Host plan (enough for the emulator; uploaded by the first device call) with block lists
    /// at every tile shape the default kernel picks use (`attention::configs::FORWARD_PICKS` and
    /// `BACKWARD_PICKS`).
    pub fn new(vis_end: VisEnd) -> Result<Self> {
        Self::with_tiles(vis_end, &pick_tiles())
    }

    /// Host plan with block lists at exactly these tile shapes (e.g. for a tile configuration
    /// that no default pick uses; duplicates are built once).
    pub fn with_tiles(vis_end: VisEnd, tiles: &[TileShape]) -> Result<Self> {
        let mut unique: Vec<TileShape> = Vec::with_capacity(tiles.len());
        for &t in tiles {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        let masks = BlockMask::build_all(&vis_end, &unique)?;
        Ok(Self {
            inner: Arc::new(PlanInner {
                vis_end,
                masks,
                device: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Host plan with the block lists `attention`'s kernels use (forward and backward, every
    /// dtype and head dim it loaded).
    pub fn for_attention(vis_end: VisEnd, attention: &Attention) -> Result<Self> {
        Self::with_tiles(vis_end, &attention.tiles())
    }

    /// Host plan with the block lists `forward`'s kernels use.
    pub fn for_forward(vis_end: VisEnd, forward: &Forward) -> Result<Self> {
        Self::with_tiles(vis_end, &forward.tiles())
    }

    /// Host plan with the block lists `backward`'s kernels use.
    pub fn for_backward(vis_end: VisEnd, backward: &Backward) -> Result<Self> {
        Self::with_tiles(vis_end, &backward.tiles())
    }

    /// Host plan with the block lists of the kernels the default choices pick on `gpu` (what
    /// [`Attention::new`] loads there), without loading them.
    pub fn for_device(vis_end: VisEnd, gpu: &Gpu) -> Result<Self> {
        Self::with_tiles(vis_end, &default_tiles(gpu.arch()?, |k| gpu.runs(k))?)
    }

    /// Host plan with the block lists the emulator's forward and backward calls at `head_dim`
    /// run under these choices ([`crate::attention::forward_emulated_with`],
    /// [`crate::attention::backward_emulated_with`]; the default choices for
    /// [`crate::attention::forward_emulated`] and [`crate::attention::backward_emulated`]).
    pub fn for_emulator(
        vis_end: VisEnd,
        head_dim: usize,
        forward: &KernelChoice,
        backward: &BackwardChoice,
    ) -> Result<Self> {
        Self::with_tiles(vis_end, &emulated_tiles(head_dim, forward, backward)?)
    }

    /// Builds the plan ([`Plan::new`]: every pick's tile shape) and uploads its arrays on
    /// `stream` (the copies are ordered on the stream; later kernels on any stream wait for them
    /// through cudarc's event tracking).
    pub fn on_device(vis_end: VisEnd, stream: &Arc<CudaStream>) -> Result<Self> {
        let mut plan = Self::new(vis_end)?;
        plan.upload(stream)?;
        Ok(plan)
    }

    /// Uploads (or re-uploads) the arrays the kernels read to `stream`'s context, on `stream`.
    /// Clones of this plan see the upload.
    pub fn upload(&mut self, stream: &Arc<CudaStream>) -> Result<()> {
        let fresh = Arc::new(self.upload_arrays(stream)?);
        let mut device = self.lock_device();
        device.retain(|d| !same_context(d.vis_end.context(), stream.context()));
        device.push(fresh);
        Ok(())
    }

    fn upload_arrays(&self, stream: &Arc<CudaStream>) -> Result<DevicePlan> {
        // At least one element each: an all-padding batch has no block-list entries.
        let up = |what: &'static str, data: &[i32]| upload_for_kernel(stream, data, what);
        let mut masks = Vec::with_capacity(self.inner.masks.len());
        for m in &self.inner.masks {
            masks.push(DeviceMask {
                q_major: DeviceLists {
                    offsets: up("upload q-major offsets", m.q_major().offsets)?,
                    runs: up("upload q-major runs", m.q_major().runs)?,
                    order: up("upload q-major launch order", m.q_major().order)?,
                },
                k_major: DeviceLists {
                    offsets: up("upload k-major offsets", m.k_major().offsets)?,
                    runs: up("upload k-major runs", m.k_major().runs)?,
                    order: up("upload k-major launch order", m.k_major().order)?,
                },
            });
        }
        Ok(DevicePlan {
            vis_end: up("upload vis_end", self.inner.vis_end.as_slice())?,
            masks,
        })
    }

    fn lock_device(&self) -> std::sync::MutexGuard<'_, Vec<Arc<DevicePlan>>> {
        // The list is only ever pushed to or filtered whole: a panic elsewhere while it was held
        // cannot leave it half-updated, so a poisoned lock is still sound to use.
        self.inner
            .device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The batch's `vis_end`.
    pub fn vis_end(&self) -> &VisEnd {
        &self.inner.vis_end
    }

    /// Rows of the batch.
    pub fn rows(&self) -> usize {
        self.inner.vis_end.rows()
    }

    /// Tokens per row.
    pub fn n(&self) -> usize {
        self.inner.vis_end.n()
    }

    /// Bytes one upload copies to a device: `vis_end` and every tile shape's lists (an empty
    /// array counts as the one element uploaded in its place).
    pub fn upload_bytes(&self) -> usize {
        4 * self.inner.vis_end.as_slice().len().max(1)
            + self
                .inner
                .masks
                .iter()
                .map(BlockMask::list_bytes)
                .sum::<usize>()
    }

    /// The tile shapes this plan has block lists for.
    pub fn tiles(&self) -> Vec<TileShape> {
        self.inner.masks.iter().map(|m| m.tile()).collect()
    }

    pub(crate) fn index(&self, tile: TileShape) -> Result<usize> {
        self.inner
            .masks
            .iter()
            .position(|m| m.tile() == tile)
            .ok_or_else(|| Error::InvalidArgument {
                what: "plan",
                detail: format!(
                    "no block lists at tile {}x{} (the plan has {:?}; build it with Plan::with_tiles)",
                    tile.block_q(),
                    tile.block_k(),
                    self.tiles()
                ),
            })
    }

    /// The block lists at `tile`.
    pub fn mask(&self, tile: TileShape) -> Result<&BlockMask> {
        Ok(&self.inner.masks[self.index(tile)?])
    }

    /// Whether the plan's arrays are on some device (uploaded explicitly or by a device call).
    pub fn is_on_device(&self) -> bool {
        !self.lock_device().is_empty()
    }

    /// Whether the plan's arrays are in `stream`'s context.
    pub fn is_on(&self, stream: &CudaStream) -> bool {
        self.lock_device()
            .iter()
            .any(|d| same_context(d.vis_end.context(), stream.context()))
    }

    /// Uploads the arrays to `ctx` unless they are already there, through its legacy default
    /// stream, waiting for the copies (what a device call does on first use; call it ahead to
    /// keep that one-time upload out of a timed or captured region). Clones see the upload.
    pub fn upload_to(&self, ctx: &Arc<CudaContext>) -> Result<()> {
        self.device_for(&ctx.default_stream()).map(|_| ())
    }

    /// The arrays in `stream`'s context, uploaded first if they are not there yet.
    ///
    /// A first upload by a call goes through the context's default (legacy) stream and waits for
    /// the copies, once: the call's stream may be borrowed from another library (a PyTorch
    /// stream) and may be gone before the plan is, so the arrays must not be tied to it (cudarc
    /// frees a buffer on the stream it was allocated on), and no stream but the legacy one
    /// orders itself after those copies without events.
    pub(crate) fn device_for(&self, stream: &Arc<CudaStream>) -> Result<Arc<DevicePlan>> {
        let mut device = self.lock_device();
        if let Some(d) = device
            .iter()
            .find(|d| same_context(d.vis_end.context(), stream.context()))
        {
            return Ok(d.clone());
        }
        let legacy = stream.context().default_stream();
        let fresh = Arc::new(self.upload_arrays(&legacy)?);
        legacy
            .synchronize()
            .map_err(crate::cuda::cuda_err("plan upload (cuStreamSynchronize)"))?;
        device.push(fresh.clone());
        Ok(fresh)
    }
}

impl TryFrom<VisEnd> for Plan {
    type Error = Error;

    fn try_from(vis_end: VisEnd) -> Result<Self> {
        Plan::new(vis_end)
    }
}

/// docs/plans.md, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../docs/plans.md")]
pub struct PlansGuide;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_bytes_count_vis_end_and_every_shape_and_a_lean_plan_uploads_less() {
        let n = 1000;
        let vis_end = VisEnd::new(n, vec![n as i32; n]).unwrap();
        let full = Plan::new(vis_end.clone()).unwrap();
        let lists: usize = full
            .tiles()
            .iter()
            .map(|&t| full.mask(t).unwrap().list_bytes())
            .sum();
        assert_eq!(full.upload_bytes(), 4 * n + lists);
        assert_eq!(full.tiles(), pick_tiles());
        let lean = Plan::for_emulator(
            vis_end,
            128,
            &KernelChoice::default(),
            &BackwardChoice::default(),
        )
        .unwrap();
        assert_eq!(
            lean.tiles(),
            emulated_tiles(128, &KernelChoice::default(), &BackwardChoice::default()).unwrap()
        );
        assert!(lean.upload_bytes() < full.upload_bytes());
        // The same lists at a shared shape, whichever plan built them.
        for t in lean.tiles() {
            assert_eq!(lean.mask(t).unwrap(), full.mask(t).unwrap());
        }
    }
}
