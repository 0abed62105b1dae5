//! The plan of a batch: its `vis_end` and block lists, built once per batch on the host and
//! reused by every layer's forward and backward. A plan holds the lists of every tile shape its
//! kernels use (each kernel's tile configuration comes from the registry), in both directions:
//! q-major (forward, dQ) and k-major (dK/dV), each with its heaviest-first launch order. For GPU
//! use the plan also holds all of them uploaded, so a kernel call only reads them.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::attention::configs::pick_tiles;
use crate::cuda::upload_for_kernel;
use crate::error::{Error, Result};
use crate::mask::{BlockMask, TileShape, VisEnd};

/// One direction of a tile shape's lists on a device.
pub(crate) struct DeviceLists {
    pub(crate) offsets: CudaSlice<i32>,
    pub(crate) entries: CudaSlice<i32>,
    pub(crate) order: CudaSlice<i32>,
}

/// Both directions of one tile shape's lists on a device.
pub(crate) struct DeviceMask {
    pub(crate) q_major: DeviceLists,
    pub(crate) k_major: DeviceLists,
}

/// The arrays the kernels read, on one device: `masks[i]` holds the lists of `Plan::masks[i]`.
pub(crate) struct DevicePlan {
    pub(crate) vis_end: CudaSlice<i32>,
    pub(crate) masks: Vec<DeviceMask>,
}

/// `vis_end` of a batch and its block lists at every tile shape its kernels use; optionally
/// uploaded.
pub struct Plan {
    vis_end: VisEnd,
    masks: Vec<BlockMask>,
    device: Option<DevicePlan>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("rows", &self.vis_end.rows())
            .field("n", &self.vis_end.n())
            .field("tiles", &self.tiles())
            .field("on_device", &self.device.is_some())
            .finish()
    }
}

impl Plan {
    /// Host-only plan (enough for the emulator) with block lists at every tile shape the default
    /// kernel picks use (`attention::configs::FORWARD_PICKS` and `BACKWARD_PICKS`).
    pub fn new(vis_end: VisEnd) -> Result<Self> {
        Self::with_tiles(vis_end, &pick_tiles())
    }

    /// Host-only plan with block lists at exactly these tile shapes (e.g. for a tile
    /// configuration that no default pick uses; duplicates are built once).
    pub fn with_tiles(vis_end: VisEnd, tiles: &[TileShape]) -> Result<Self> {
        let mut masks: Vec<BlockMask> = Vec::with_capacity(tiles.len());
        for &t in tiles {
            if masks.iter().all(|m| m.tile() != t) {
                masks.push(BlockMask::build(&vis_end, t)?);
            }
        }
        Ok(Self {
            vis_end,
            masks,
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
        let mut masks = Vec::with_capacity(self.masks.len());
        for m in &self.masks {
            masks.push(DeviceMask {
                q_major: DeviceLists {
                    offsets: up("upload q-major offsets", m.q_offsets())?,
                    entries: up("upload q-major entries", m.q_entries())?,
                    order: up("upload q-major launch order", m.heaviest_first())?,
                },
                k_major: DeviceLists {
                    offsets: up("upload k-major offsets", m.k_offsets())?,
                    entries: up("upload k-major entries", m.k_entries())?,
                    order: up("upload k-major launch order", m.k_heaviest_first())?,
                },
            });
        }
        self.device = Some(DevicePlan {
            vis_end: up("upload vis_end", self.vis_end.as_slice())?,
            masks,
        });
        Ok(())
    }

    /// The batch's `vis_end`.
    pub fn vis_end(&self) -> &VisEnd {
        &self.vis_end
    }

    /// The tile shapes this plan has block lists for.
    pub fn tiles(&self) -> Vec<TileShape> {
        self.masks.iter().map(|m| m.tile()).collect()
    }

    fn index(&self, tile: TileShape) -> Result<usize> {
        self.masks
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
        Ok(&self.masks[self.index(tile)?])
    }

    /// Whether [`Plan::upload`] has run.
    pub fn is_on_device(&self) -> bool {
        self.device.is_some()
    }

    pub(crate) fn device(&self) -> Option<&DevicePlan> {
        self.device.as_ref()
    }

    /// The uploaded lists at `tile` (None before [`Plan::upload`]).
    pub(crate) fn device_mask(&self, tile: TileShape) -> Result<Option<&DeviceMask>> {
        let i = self.index(tile)?;
        Ok(self.device.as_ref().map(|d| &d.masks[i]))
    }
}
