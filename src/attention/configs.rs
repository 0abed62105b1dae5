//! Which forward kernel runs: the one table that picks a tile configuration per (code path, head
//! dim), with the evidence each pick rests on, and the selection that applies it to the
//! registry.
//!
//! The element type does not change a pick: bf16 and f16 take the same instructions at the same
//! rates (mma.sync m16n8k16 with fp32 accumulation), the same registers and shared memory, so each
//! row serves both.

use crate::error::{Error, Result};
use crate::mask::TileShape;
use crate::registry::{self, Arch, KernelDtype, KernelInfo, TileConfig};

/// The registry family of the forward kernels.
pub const FORWARD_FAMILY: &str = "attn_fwd";

/// The forward configurations of one (path, head dim), best first: a call runs the first one the
/// device can hold (shared memory per block), unless a [`KernelChoice`] names another.
#[derive(Debug, Clone, Copy)]
pub struct ForwardPick {
    pub arch: Arch,
    pub head_dim: u32,
    pub prefer: &'static [TileConfig],
    /// Why, and what it was measured or reasoned from.
    pub evidence: &'static str,
}

const Q64K64W4S2: TileConfig = TileConfig::new(64, 64, 4, 2);
const Q128K64W4S2: TileConfig = TileConfig::new(128, 64, 4, 2);
const Q128K64W8S2: TileConfig = TileConfig::new(128, 64, 8, 2);

/// The picks. Change a row when a GPU check sweep (scripts/gpucheck, one table per path and head
/// dim) measures a better configuration, and quote the run.
pub const FORWARD_PICKS: &[ForwardPick] = &[
    ForwardPick {
        arch: Arch::Sm80,
        head_dim: 128,
        prefer: &[Q128K64W8S2, Q64K64W4S2],
        evidence: "Reasoned, not measured (no device was lent when the tile configurations \
                   became templates). 64x64/4 warps ran at 229-248 TFLOP/s on an H200 \
                   (bench/results/2026-11-28-h200), 0.74-0.79x FlashAttention-2, with 46% of its \
                   instructions integer address arithmetic (the tile layer now computes each \
                   lane's ldmatrix addresses once). At 128 queries per CTA each K/V tile is loaded \
                   from global memory and waited for at one barrier per 128 query rows instead \
                   of 64; with 8 warps of 16 rows each warp keeps 64x64/4 warps' registers \
                   (170-178, no spills: one CTA of 8 warps per SM, as 64x64 gave two of 4) and \
                   96 KiB of shared memory, which sm_86/89 cards also have. FlexAttention's own \
                   pick on H100 is 128x64 with 8 warps. 128x64 with 4 warps (FlashAttention-2's \
                   pick) needs 32 rows per warp, whose O accumulator alone takes 128 of the 255 \
                   registers: it spills on sm_90a and is not registered at this head dim. 64x64 \
                   stays as the fallback.",
    },
    ForwardPick {
        arch: Arch::Sm80,
        head_dim: 64,
        prefer: &[Q128K64W4S2, Q64K64W4S2],
        evidence: "Reasoned, not measured (as for head dim 128). 64x64/4 warps ran at 204-229 \
                   TFLOP/s on an H200, 0.78x FlashAttention-2. At 128x64/4 warps each warp holds \
                   both of its 16-row blocks at once (about 220 registers, no spills), so every K \
                   and V fragment it loads serves two mma rows: half the shared-memory loads per \
                   mma and half the global K/V traffic per query; 48 KiB per CTA.",
    },
];

/// How a call picks its kernel; the default picks everything from [`FORWARD_PICKS`] and the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelChoice {
    /// The code path; None: the device's best (sm90a on compute capability 9.0 when the path has
    /// kernels for the call, else sm80). The emulator runs any path; there None means sm80.
    pub arch: Option<Arch>,
    /// The tile configuration; None: the path's first preference that fits the device.
    pub tile: Option<TileConfig>,
}

impl KernelChoice {
    /// A fixed path and tile configuration (tests, benchmarks, sweeps).
    pub fn exactly(arch: Arch, tile: TileConfig) -> Self {
        Self {
            arch: Some(arch),
            tile: Some(tile),
        }
    }
}

fn dtype_name(d: KernelDtype) -> &'static str {
    match d {
        KernelDtype::Bf16 => "bf16",
        KernelDtype::F16 => "f16",
        KernelDtype::F32 => "f32",
        KernelDtype::None => "untyped",
    }
}

/// The forward kernel of `arch` for a dtype and head dim: `tile` if given, else the first of the
/// path's preferences for which `fits` holds (the device's shared-memory limit; always true on the
/// emulator).
pub fn select_forward(
    arch: Arch,
    dtype: KernelDtype,
    head_dim: usize,
    tile: Option<TileConfig>,
    fits: impl Fn(&KernelInfo) -> bool,
) -> Result<&'static KernelInfo> {
    let find = |t: TileConfig| {
        registry::family(FORWARD_FAMILY).find(|k| {
            k.arch == arch
                && k.dtype == dtype
                && k.head_dim as usize == head_dim
                && k.tile == Some(t)
        })
    };
    let known_dim = registry::family(FORWARD_FAMILY).any(|k| k.head_dim as usize == head_dim);
    if !known_dim {
        return Err(Error::UnsupportedHeadDim { head_dim });
    }
    if let Some(t) = tile {
        let k = find(t).ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!(
                "no {arch} forward kernel with tile {t} for {} at head dim {head_dim} in the registry",
                dtype_name(dtype)
            ),
        })?;
        if !fits(k) {
            return Err(Error::InvalidArgument {
                what: "kernel choice",
                detail: format!(
                    "{} needs {} bytes of shared memory per block, more than the device allows",
                    k.name, k.smem_bytes
                ),
            });
        }
        return Ok(k);
    }
    let pick = FORWARD_PICKS
        .iter()
        .find(|p| p.arch == arch && p.head_dim as usize == head_dim)
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!("the {arch} path has no forward pick for head dim {head_dim}"),
        })?;
    pick.prefer
        .iter()
        .filter_map(|&t| find(t))
        .find(|k| fits(k))
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!(
                "none of the {arch} forward configurations for head dim {head_dim} fits the device"
            ),
        })
}

/// The path a call without a device (the emulator) runs: the choice's, else sm80.
pub(crate) fn emulated_arch(choice: &KernelChoice) -> Arch {
    choice.arch.unwrap_or(Arch::Sm80)
}

/// Every tile shape the picks use: what [`crate::plan::Plan::new`] builds block lists for.
pub fn pick_tiles() -> Vec<TileShape> {
    let mut tiles: Vec<TileShape> = FORWARD_PICKS
        .iter()
        .flat_map(|p| p.prefer.iter())
        .map(|t| tile_shape(*t))
        .collect();
    tiles.sort_by_key(|t| (t.block_q(), t.block_k()));
    tiles.dedup();
    tiles
}

/// The block-list tile of a configuration.
pub fn tile_shape(t: TileConfig) -> TileShape {
    TileShape::new(t.block_q as usize, t.block_k as usize)
        .expect("registered tile configurations have valid tile sides")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pick_is_registered_for_both_dtypes() {
        for p in FORWARD_PICKS {
            for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
                for &t in p.prefer {
                    let k = select_forward(p.arch, dtype, p.head_dim as usize, Some(t), |_| true)
                        .unwrap();
                    assert_eq!(k.tile, Some(t));
                }
                let first =
                    select_forward(p.arch, dtype, p.head_dim as usize, None, |_| true).unwrap();
                assert_eq!(first.tile, Some(p.prefer[0]));
            }
        }
    }

    #[test]
    fn a_device_too_small_for_the_first_pick_gets_the_next() {
        let p = &FORWARD_PICKS[0];
        let limit = select_forward(p.arch, KernelDtype::Bf16, p.head_dim as usize, None, |_| {
            true
        })
        .unwrap()
        .smem_bytes;
        let k = select_forward(p.arch, KernelDtype::Bf16, p.head_dim as usize, None, |k| {
            k.smem_bytes < limit
        })
        .unwrap();
        assert_eq!(k.tile, Some(p.prefer[1]));
        assert!(
            select_forward(p.arch, KernelDtype::Bf16, p.head_dim as usize, None, |_| {
                false
            })
            .is_err()
        );
    }

    #[test]
    fn unknown_head_dims_and_tiles_are_errors() {
        assert!(matches!(
            select_forward(Arch::Sm80, KernelDtype::Bf16, 96, None, |_| true),
            Err(Error::UnsupportedHeadDim { head_dim: 96 })
        ));
        assert!(select_forward(
            Arch::Sm80,
            KernelDtype::Bf16,
            128,
            Some(TileConfig::new(32, 32, 1, 2)),
            |_| true
        )
        .is_err());
    }
}
