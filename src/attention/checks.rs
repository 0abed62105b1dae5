//! The checks every attention launch preparation shares (forward and backward): the kernel
//! against the call, the plan's block lists against the kernel and the shape, the scale, the LSE
//! buffer, the grid size, and the Q/K/V part of the parameters. Each returns the typed error the
//! public calls document.

use crate::error::{Error, Result};
use crate::ffi::params::{PaAttnQkv, PaBlockList, PaStrides, PaTileRun, PaView};
use crate::mask::BlockMask;
use crate::registry::{KernelDtype, KernelInfo, TileConfig};
use crate::shape::AttnShape;

use super::configs::tile_shape;
use super::view::{check_view, RawView};

/// The kernel's tile configuration, after checking that it is for the call's dtype and head dim.
pub(crate) fn kernel_tile(
    info: &KernelInfo,
    dtype: KernelDtype,
    shape: &AttnShape,
) -> Result<TileConfig> {
    let tile = info.tile.ok_or_else(|| Error::InvalidArgument {
        what: "kernel",
        detail: format!("{} has no tile configuration", info.name),
    })?;
    check_kernel_dtype(info, dtype, shape)?;
    Ok(tile)
}

/// The kernel is for the call's dtype and head dim.
pub(crate) fn check_kernel_dtype(
    info: &KernelInfo,
    dtype: KernelDtype,
    shape: &AttnShape,
) -> Result<()> {
    if info.dtype != dtype || info.head_dim as usize != shape.head_dim {
        return Err(Error::InvalidArgument {
            what: "kernel",
            detail: format!(
                "{} is for {:?} at head dim {}, the call is {:?} at head dim {}",
                info.name, info.dtype, info.head_dim, dtype, shape.head_dim
            ),
        });
    }
    Ok(())
}

/// The block lists are at the kernel's tile and for the call's rows and n.
pub(crate) fn check_plan(
    mask: &BlockMask,
    shape: &AttnShape,
    info: &KernelInfo,
    tile: TileConfig,
) -> Result<()> {
    if mask.tile() != tile_shape(tile) {
        return Err(Error::InvalidArgument {
            what: "plan",
            detail: format!(
                "block lists were built for tile {:?}, {} uses {:?}",
                mask.tile(),
                info.name,
                tile_shape(tile)
            ),
        });
    }
    if mask.rows() != shape.rows {
        return Err(Error::LengthMismatch {
            what: "rows (plan vs shape)",
            expected: mask.rows(),
            got: shape.rows,
        });
    }
    if mask.n() != shape.n {
        return Err(Error::LengthMismatch {
            what: "tokens per row n (plan vs shape)",
            expected: mask.n(),
            got: shape.n,
        });
    }
    Ok(())
}

pub(crate) fn check_scale(scale: f32) -> Result<()> {
    crate::scale::Scale::from(scale).check()
}

/// A dense `[rows, q_heads, n]` f32 buffer (LSE): its length and alignment.
pub(crate) fn check_lse(
    what: &'static str,
    len: usize,
    addr: u64,
    shape: &AttnShape,
) -> Result<()> {
    if len != shape.lse_len() {
        return Err(Error::LengthMismatch {
            what,
            expected: shape.lse_len(),
            got: len,
        });
    }
    if addr % 4 != 0 {
        return Err(Error::InvalidView {
            what: "lse",
            detail: format!("address {addr:#x} is not 4-byte aligned"),
        });
    }
    Ok(())
}

/// `slots * heads` CTAs of a one-dimensional grid, if that fits the kernels' int32 block index.
pub(crate) fn grid_ctas(what: &'static str, slots: usize, heads: usize) -> Result<u32> {
    let ctas = slots as u128 * heads as u128;
    if ctas > i32::MAX as u128 {
        return Err(Error::IndexOverflow { what, value: ctas });
    }
    Ok(ctas as u32)
}

pub(crate) fn pa_view(v: &RawView, stride: PaStrides) -> PaView {
    PaView {
        ptr: v.addr as usize as *mut core::ffi::c_void,
        stride,
    }
}

/// Addresses (device or host) of one direction of a plan's block lists at one tile shape: the
/// arrays of [`crate::mask::ListArrays`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListAddrs {
    pub(crate) offsets: u64,
    /// Two int32 per run, read by the kernels as `PaTileRun`.
    pub(crate) runs: u64,
    pub(crate) order: u64,
}

impl ListAddrs {
    pub(crate) fn params(&self, tiles: usize) -> PaBlockList {
        PaBlockList {
            offsets: self.offsets as usize as *const i32,
            runs: self.runs as usize as *const PaTileRun,
            order: self.order as usize as *const i32,
            tiles: tiles as i32,
            _pad0: 0,
        }
    }
}

/// Q, K and V of a call (checked as read views) and the head geometry, as every attention
/// kernel takes them.
pub(crate) fn qkv_params(
    shape: &AttnShape,
    q: &RawView,
    k: &RawView,
    v: &RawView,
    vis_end: u64,
    scale: f32,
) -> Result<PaAttnQkv> {
    let q_stride = check_view("q", q, shape, shape.q_heads, false)?;
    let k_stride = check_view("k", k, shape, shape.kv_heads, false)?;
    let v_stride = check_view("v", v, shape, shape.kv_heads, false)?;
    Ok(PaAttnQkv {
        q: pa_view(q, q_stride),
        k: pa_view(k, k_stride),
        v: pa_view(v, v_stride),
        vis_end: vis_end as usize as *const i32,
        n: shape.n as i32,
        q_heads: shape.q_heads as i32,
        kv_group: shape.group() as i32,
        scale,
        scale_log2: scale * std::f32::consts::LOG2_E,
        _pad0: 0,
    })
}
