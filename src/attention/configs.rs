//! Which kernels run: the one table that picks a tile configuration per (kernel family, code
//! path, head dim), with the evidence each pick rests on, and the selection that applies it to
//! the registry.
//!
//! The element type does not change a pick: bf16 and f16 take the same instructions at the same
//! rates (mma.sync m16n8k16 with fp32 accumulation), the same registers and shared memory, so each
//! row serves both.

use crate::error::{Error, Result};
use crate::mask::TileShape;
use crate::registry::{self, Arch, KernelDtype, KernelInfo, TileConfig};

/// The registry family of the forward kernels.
pub const FORWARD_FAMILY: &str = "attn_fwd";
/// The backward preprocess (D = rowsum(dO * O) and LSE in base 2); no tile configuration.
pub const BACKWARD_PRE_FAMILY: &str = "attn_bwd_pre";
/// The backward dK/dV kernels (warps own keys; k-major block lists).
pub const BACKWARD_DKV_FAMILY: &str = "attn_bwd_dkv";
/// The backward dQ kernels (warps own queries; q-major block lists).
pub const BACKWARD_DQ_FAMILY: &str = "attn_bwd_dq";

/// The configurations of one kernel family for one (path, head dim), best first: a call runs the
/// first one the device can hold (shared memory per block), unless a choice names another.
#[derive(Debug, Clone, Copy)]
pub struct KernelPick {
    pub family: &'static str,
    pub arch: Arch,
    pub head_dim: u32,
    pub prefer: &'static [TileConfig],
    /// Why, and what it was measured or reasoned from.
    pub evidence: &'static str,
}

/// The forward's picks are [`KernelPick`]s of [`FORWARD_FAMILY`].
pub type ForwardPick = KernelPick;

const Q64K64W4S2: TileConfig = TileConfig::new(64, 64, 4, 2);
const Q128K64W4S2: TileConfig = TileConfig::new(128, 64, 4, 2);
const Q128K64W8S2: TileConfig = TileConfig::new(128, 64, 8, 2);
const Q64K128W8S2: TileConfig = TileConfig::new(64, 128, 8, 2);
// sm90a: warps = the producer warpgroup and one consumer warpgroup per 64 query rows.
const SM90_Q128K128S2: TileConfig = TileConfig::new(128, 128, 12, 2);
const SM90_Q192K128S2: TileConfig = TileConfig::new(192, 128, 16, 2);
// The sm90a dK/dV: warps = the producer warpgroup and one consumer warpgroup per 64 keys; q tiles
// of 64 stream through the ring.
const SM90_Q64K128S2: TileConfig = TileConfig::new(64, 128, 12, 2);

/// The forward picks. Change a row when a GPU check sweep (scripts/gpucheck, one table per path
/// and head dim) measures a better configuration, and quote the run.
pub const FORWARD_PICKS: &[KernelPick] = &[
    KernelPick {
        family: FORWARD_FAMILY,
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
    KernelPick {
        family: FORWARD_FAMILY,
        arch: Arch::Sm80,
        head_dim: 64,
        prefer: &[Q128K64W4S2, Q64K64W4S2],
        evidence: "Reasoned, not measured (as for head dim 128). 64x64/4 warps ran at 204-229 \
                   TFLOP/s on an H200, 0.78x FlashAttention-2. At 128x64/4 warps each warp holds \
                   both of its 16-row blocks at once (about 220 registers, no spills), so every K \
                   and V fragment it loads serves two mma rows: half the shared-memory loads per \
                   mma and half the global K/V traffic per query; 48 KiB per CTA.",
    },
    KernelPick {
        family: FORWARD_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 128,
        prefer: &[SM90_Q128K128S2],
        evidence: "Reasoned, not measured (no device was lent when the sm90a forward was \
                   written). FlashAttention-3 runs 128x128 for causal head dim 128 on H100 at \
                   521-602 TFLOP/s (2k-8k); cuDNN's kernel on the H200 is also three warpgroups \
                   of 128 threads, one CTA per SM (gpu-runs 2026-11-28, peer-kernels.md). Two \
                   consumer warpgroups of 64 rows each hold O (64 fp32 per thread) and S \
                   (64) plus P (32 registers) in the 240 registers setmaxnreg gives them (ptxas: \
                   no spills), and a 128-key tile gives each wgmma N = 128. Shared memory: Q 32 \
                   KiB plus two stages of K and V (128 KiB), 162 KiB of the 227; a third stage \
                   would fit (227 KiB with nothing to spare) and is left for a device sweep to \
                   justify.",
    },
    KernelPick {
        family: FORWARD_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 64,
        prefer: &[SM90_Q192K128S2, SM90_Q128K128S2],
        evidence: "Reasoned, not measured (as for head dim 128). FlashAttention-3's choice for \
                   causal head dim 64: 192 queries (three consumer warpgroups, 160 registers \
                   each after setmaxnreg: O 32 + S 64 + P 32 fp32/packed registers, no spills) \
                   by 128 keys, so each K/V tile loaded serves 192 queries. At head dim 64 a \
                   warpgroup's GEMMs are half as long per softmax as at 128, so the tensor core \
                   needs the third warpgroup's GEMMs to cover two softmaxes. 128x128 (two \
                   consumers, 240 registers) is registered as the alternative for the sweep.",
    },
];

/// The backward picks (dK/dV and dQ; the preprocess has no tile). Same rule as the forward's:
/// change a row when a device sweep measures a better configuration, and quote the run.
pub const BACKWARD_PICKS: &[KernelPick] = &[
    KernelPick {
        family: BACKWARD_DKV_FAMILY,
        arch: Arch::Sm80,
        head_dim: 128,
        prefer: &[Q64K128W8S2, Q64K64W4S2],
        evidence: "Reasoned, not measured (no device was lent for the backward). With 128 keys \
                   per CTA (8 warps of 16 keys) each Q, dO, lse and D tile loaded from global \
                   memory serves 128 keys instead of 64, halving the dominant global traffic of \
                   the k-major walk; FlashAttention-2 makes the same choice (128 keys, 8 warps) \
                   for this head dim. 129 KiB of shared memory: sm_80 and sm_90 hold it, sm_86 \
                   and sm_89 (99 KiB per block) fall back to 64x64/4 warps (97 KiB). ptxas: \
                   247-255 registers, no spills.",
    },
    KernelPick {
        family: BACKWARD_DKV_FAMILY,
        arch: Arch::Sm80,
        head_dim: 64,
        prefer: &[Q64K128W8S2, Q64K64W4S2],
        evidence: "Reasoned, not measured (as for head dim 128): 128 keys per CTA halve the Q/dO \
                   traffic per key; 65 KiB of shared memory fits every card from sm_80 on. \
                   ptxas: about 200 registers, no spills.",
    },
    KernelPick {
        family: BACKWARD_DQ_FAMILY,
        arch: Arch::Sm80,
        head_dim: 128,
        prefer: &[Q64K64W4S2],
        evidence: "Reasoned, not measured. The dQ kernel holds dQ (64 fp32 registers per lane at \
                   this head dim) plus the S and dP tiles of 64 keys; 16 queries per warp is what \
                   fits without spills (about 215 registers). 96 KiB of shared memory: every card \
                   from sm_80 on.",
    },
    KernelPick {
        family: BACKWARD_DQ_FAMILY,
        arch: Arch::Sm80,
        head_dim: 64,
        prefer: &[Q64K64W4S2],
        evidence: "Reasoned, not measured; the forward's fallback shape (48 KiB, about 170 \
                   registers).",
    },
];

/// Configurations a call runs only when its choice names their path explicitly
/// (`BackwardChoice { arch: Some(..), .. }`), never by a device's default: kernels no GPU run has
/// checked yet. [`path_for`] reads [`BACKWARD_PICKS`] alone, so a device keeps the sm80 backward
/// until one of these moves there with the run that checked it.
pub const BACKWARD_CHOSEN_ONLY_PICKS: &[KernelPick] = &[
    KernelPick {
        family: BACKWARD_DQ_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 128,
        prefer: &[SM90_Q128K128S2],
        evidence: "Emulator-verified only (no device was lent): not a default until a GPU run \
                   has checked it. Two consumer warpgroups of 64 query rows against 128 keys, \
                   the forward's sm90a tile: dQ (64 fp32 per thread), S and dP (64 each) and \
                   dS's fragments (32) fit the 240 registers setmaxnreg gives a consumer \
                   (ptxas: no spills). Shared memory: Q and dO 32 KiB each plus two stages of K \
                   and V (128 KiB), 194 KiB.",
    },
    KernelPick {
        family: BACKWARD_DQ_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 64,
        prefer: &[SM90_Q128K128S2],
        evidence: "Emulator-verified only, as for head dim 128; 98 KiB of shared memory, no \
                   spills.",
    },
    KernelPick {
        family: BACKWARD_DKV_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 128,
        prefer: &[SM90_Q64K128S2],
        evidence: "Emulator-verified only (no device was lent): not a default until a GPU run \
                   has checked it. Two consumer warpgroups of 64 keys (the sm80 pick's 128-key \
                   tile, so both walk the same lists in the same order and give the same bits), \
                   q tiles of 64 through a 2-stage ring: dK and dV (64 fp32 per thread each), \
                   S^T and dP^T (32 each) and two operand fragments (16 each), 224 registers, \
                   fit the 240 setmaxnreg gives a consumer (ptxas: no spills). Shared memory: K \
                   and V 32 KiB each plus two stages of Q and dO (64 KiB), 131 KiB (133672 \
                   bytes).",
    },
    KernelPick {
        family: BACKWARD_DKV_FAMILY,
        arch: Arch::Sm90a,
        head_dim: 64,
        prefer: &[SM90_Q64K128S2],
        evidence: "Emulator-verified only, as for head dim 128; 67 KiB (68136 bytes) of shared \
                   memory, no spills.",
    },
];

/// The picks of every family.
/// The head dims `picks` has rows for, ascending.
pub fn picked_head_dims(picks: &[KernelPick]) -> Vec<usize> {
    let mut d: Vec<usize> = picks.iter().map(|p| p.head_dim as usize).collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// The path a call at `head_dim` takes on a device whose best path is `best`: `best` where
/// `picks` has a row for it at that head dim, else sm80 (which every supported device runs).
pub fn path_for(picks: &[KernelPick], best: Arch, head_dim: usize) -> Arch {
    let has = |a: Arch| {
        picks
            .iter()
            .any(|p| p.arch == a && p.head_dim as usize == head_dim)
    };
    if has(best) {
        best
    } else {
        Arch::Sm80
    }
}

fn picks() -> impl Iterator<Item = &'static KernelPick> {
    FORWARD_PICKS
        .iter()
        .chain(BACKWARD_PICKS)
        .chain(BACKWARD_CHOSEN_ONLY_PICKS)
}

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

/// How a backward call picks its kernels; the default picks everything from [`BACKWARD_PICKS`]
/// and the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackwardChoice {
    /// The code path; None: the device's best that has backward picks (today sm80 everywhere:
    /// [`BACKWARD_PICKS`] has no sm90a row until a GPU run checks the sm90a kernels).
    /// Some(path): each family's kernel of that path, sm80 for a family without one
    /// ([`backward_family_path`]): Some(Sm90a) runs the sm80 preprocess with the sm90a dK/dV and
    /// dQ. The emulator runs any path; there None means sm80.
    pub arch: Option<Arch>,
    /// The dK/dV kernel's tile configuration; None: the path's first preference that fits.
    pub dkv_tile: Option<TileConfig>,
    /// The dQ kernel's tile configuration; None: the path's first preference that fits.
    pub dq_tile: Option<TileConfig>,
}

/// The three kernels of a backward call.
#[derive(Debug, Clone, Copy)]
pub struct BackwardKernels {
    /// D = rowsum(dO * O) and LSE in base 2 into the workspace.
    pub pre: &'static KernelInfo,
    pub dkv: &'static KernelInfo,
    pub dq: &'static KernelInfo,
}

/// The path a backward family runs on when a call's path is `arch`: `arch` where the registry
/// holds a kernel of the family for it at this dtype and head dim, else sm80, which has every
/// backward family. So an sm90a backward today runs the sm90a dK/dV and dQ kernels with the sm80
/// preprocess (a memory-bound pass with no sm90a version), and a family that gains one moves to
/// it without a change here.
pub fn backward_family_path(
    family: &'static str,
    arch: Arch,
    dtype: KernelDtype,
    head_dim: usize,
) -> Arch {
    let has = registry::family(family)
        .any(|k| k.arch == arch && k.dtype == dtype && k.head_dim as usize == head_dim);
    if has {
        arch
    } else {
        Arch::Sm80
    }
}

/// The backward kernels of `arch` for a dtype and head dim under `choice`'s tiles (`fits`: as for
/// [`select`]); each tiled family on its [`backward_family_path`].
pub fn select_backward(
    arch: Arch,
    dtype: KernelDtype,
    head_dim: usize,
    choice: &BackwardChoice,
    fits: impl Fn(&KernelInfo) -> bool,
) -> Result<BackwardKernels> {
    let family = |family: &'static str, tile: Option<TileConfig>| {
        let path = backward_family_path(family, arch, dtype, head_dim);
        select(family, path, dtype, head_dim, tile, &fits)
    };
    Ok(BackwardKernels {
        pre: select_untiled(BACKWARD_PRE_FAMILY, dtype, head_dim)?,
        dkv: family(BACKWARD_DKV_FAMILY, choice.dkv_tile)?,
        dq: family(BACKWARD_DQ_FAMILY, choice.dq_tile)?,
    })
}

/// The backward's path a call without a device (the emulator) runs: the choice's, else sm80.
pub(crate) fn emulated_backward_arch(choice: &BackwardChoice) -> Arch {
    choice.arch.unwrap_or(Arch::Sm80)
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
    select(FORWARD_FAMILY, arch, dtype, head_dim, tile, fits)
}

/// The kernel of `family` and `arch` for a dtype and head dim: `tile` if given, else the first of
/// the family's preferences ([`FORWARD_PICKS`], [`BACKWARD_PICKS`]) for which `fits` holds.
pub fn select(
    family: &'static str,
    arch: Arch,
    dtype: KernelDtype,
    head_dim: usize,
    tile: Option<TileConfig>,
    fits: impl Fn(&KernelInfo) -> bool,
) -> Result<&'static KernelInfo> {
    let find = |t: TileConfig| {
        registry::family(family).find(|k| {
            k.arch == arch
                && k.dtype == dtype
                && k.head_dim as usize == head_dim
                && k.tile == Some(t)
        })
    };
    let known_dim = registry::family(family).any(|k| k.head_dim as usize == head_dim);
    if !known_dim {
        return Err(Error::UnsupportedHeadDim { head_dim });
    }
    if let Some(t) = tile {
        let k = find(t).ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!(
                "no {arch} {family} kernel with tile {t} for {} at head dim {head_dim} in the registry",
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
    let pick = picks()
        .find(|p| p.family == family && p.arch == arch && p.head_dim as usize == head_dim)
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!("the {arch} path has no {family} pick for head dim {head_dim}"),
        })?;
    pick.prefer
        .iter()
        .filter_map(|&t| find(t))
        .find(|k| fits(k))
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel choice",
            detail: format!(
                "none of the {arch} {family} configurations for head dim {head_dim} fits the device"
            ),
        })
}

/// The one kernel of a family without tile configurations (the backward preprocess) for a dtype
/// and head dim.
pub fn select_untiled(
    family: &'static str,
    dtype: KernelDtype,
    head_dim: usize,
) -> Result<&'static KernelInfo> {
    let mut found = registry::family(family)
        .filter(|k| k.dtype == dtype && k.head_dim as usize == head_dim && k.tile.is_none());
    match (found.next(), found.next()) {
        (Some(k), None) => Ok(k),
        (None, _) => Err(
            if registry::family(family).any(|k| k.head_dim as usize == head_dim) {
                Error::UnsupportedDtype {
                    what: family,
                    dtype: dtype_name(dtype),
                }
            } else {
                Error::UnsupportedHeadDim { head_dim }
            },
        ),
        (Some(a), Some(b)) => Err(Error::InvalidArgument {
            what: "kernel",
            detail: format!(
                "{} and {} both match {family} {}",
                a.name,
                b.name,
                dtype_name(dtype)
            ),
        }),
    }
}

/// The path a call without a device (the emulator) runs: the choice's, else sm80.
pub(crate) fn emulated_arch(choice: &KernelChoice) -> Arch {
    choice.arch.unwrap_or(Arch::Sm80)
}

/// The forward kernel an emulated call with `choice` runs for this dtype and head dim (the
/// choice's path, sm80 when it names none; the path's first preference when it names no tile):
/// what [`crate::attention::forward_emulated_with`] launches and what the error bounds of its
/// results assume.
pub fn emulated_forward(
    choice: &KernelChoice,
    dtype: KernelDtype,
    head_dim: usize,
) -> Result<&'static KernelInfo> {
    select_forward(emulated_arch(choice), dtype, head_dim, choice.tile, |_| {
        true
    })
}

/// Tile shapes sorted and deduplicated.
pub(crate) fn tile_set(tiles: impl IntoIterator<Item = TileShape>) -> Vec<TileShape> {
    let mut tiles: Vec<TileShape> = tiles.into_iter().collect();
    tiles.sort_by_key(|t| (t.block_q(), t.block_k()));
    tiles.dedup();
    tiles
}

/// Every tile shape the picks use (forward and backward, the chosen-only rows included): what
/// [`crate::plan::Plan::new`] builds block lists for, so that a plan serves the default kernels
/// of every device and every path a choice may name without a tile. A plan for one device or
/// kernel set builds fewer ([`default_tiles`], [`emulated_tiles`], `Plan::for_attention`).
pub fn pick_tiles() -> Vec<TileShape> {
    tile_set(
        picks()
            .flat_map(|p| p.prefer.iter())
            .map(|t| tile_shape(*t)),
    )
}

/// The tile shape of a kernel that has one.
fn kernel_tile_shape(k: &KernelInfo) -> Result<TileShape> {
    k.tile
        .map(tile_shape)
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel",
            detail: format!("{} has no tile configuration", k.name),
        })
}

/// The tile shapes of the kernels the default choices pick on a device whose best path is `best`
/// and which holds the kernels `fits` accepts (its shared memory): the forward's and the
/// backward's, at every dtype and head dim; what [`super::Attention::new`] loads there.
pub fn default_tiles(best: Arch, fits: impl Fn(&KernelInfo) -> bool) -> Result<Vec<TileShape>> {
    let mut tiles = Vec::new();
    for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
        for head_dim in picked_head_dims(FORWARD_PICKS) {
            let arch = path_for(FORWARD_PICKS, best, head_dim);
            tiles.push(kernel_tile_shape(select_forward(
                arch, dtype, head_dim, None, &fits,
            )?)?);
        }
        for head_dim in picked_head_dims(BACKWARD_PICKS) {
            let arch = path_for(BACKWARD_PICKS, best, head_dim);
            let ks = select_backward(arch, dtype, head_dim, &BackwardChoice::default(), &fits)?;
            tiles.push(kernel_tile_shape(ks.dkv)?);
            tiles.push(kernel_tile_shape(ks.dq)?);
        }
    }
    Ok(tile_set(tiles))
}

/// The tile shapes the emulator's forward and backward calls at `head_dim` run under these
/// choices ([`super::forward_emulated_with`], [`super::backward_emulated_with`]; both dtypes are
/// registered alike).
pub fn emulated_tiles(
    head_dim: usize,
    forward: &KernelChoice,
    backward: &BackwardChoice,
) -> Result<Vec<TileShape>> {
    let mut tiles = Vec::new();
    for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
        let fwd = emulated_forward(forward, dtype, head_dim)?;
        tiles.push(kernel_tile_shape(fwd)?);
        let ks = select_backward(
            emulated_backward_arch(backward),
            dtype,
            head_dim,
            backward,
            |_| true,
        )?;
        tiles.push(kernel_tile_shape(ks.dkv)?);
        tiles.push(kernel_tile_shape(ks.dq)?);
    }
    Ok(tile_set(tiles))
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
    fn a_path_without_picks_at_a_head_dim_falls_back_to_sm80() {
        let picks = [KernelPick {
            family: FORWARD_FAMILY,
            arch: Arch::Sm90a,
            head_dim: 128,
            prefer: &[],
            evidence: "",
        }];
        assert_eq!(path_for(&picks, Arch::Sm90a, 128), Arch::Sm90a);
        assert_eq!(path_for(&picks, Arch::Sm90a, 64), Arch::Sm80);
        assert_eq!(path_for(&picks, Arch::Sm80, 128), Arch::Sm80);
        assert_eq!(picked_head_dims(FORWARD_PICKS), vec![64, 128]);
        assert_eq!(picked_head_dims(BACKWARD_PICKS), vec![64, 128]);
    }

    #[test]
    fn an_sm90a_backward_runs_the_sm90a_dkv_and_dq_with_the_sm80_preprocess() {
        let choice = BackwardChoice {
            arch: Some(Arch::Sm90a),
            ..Default::default()
        };
        for head_dim in [64, 128] {
            // A device's default stays sm80 until BACKWARD_PICKS has an sm90a row.
            assert_eq!(path_for(BACKWARD_PICKS, Arch::Sm90a, head_dim), Arch::Sm80);
            for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
                let ks = select_backward(Arch::Sm90a, dtype, head_dim, &choice, |_| true).unwrap();
                assert_eq!(ks.dq.arch, Arch::Sm90a, "{}", ks.dq.name);
                assert_eq!(ks.dq.tile, Some(SM90_Q128K128S2));
                assert_eq!(ks.dkv.arch, Arch::Sm90a, "{}", ks.dkv.name);
                assert_eq!(ks.dkv.tile, Some(SM90_Q64K128S2));
                // The same plan tile as the sm80 dK/dV pick (the same lists, walked in the same
                // order).
                let sm80 = select_backward(Arch::Sm80, dtype, head_dim, &choice, |_| true).unwrap();
                assert_eq!(
                    tile_shape(ks.dkv.tile.unwrap()),
                    tile_shape(sm80.dkv.tile.unwrap())
                );
                assert_eq!(ks.pre.name, sm80.pre.name);
                assert_eq!(
                    backward_family_path(BACKWARD_DKV_FAMILY, Arch::Sm90a, dtype, head_dim),
                    Arch::Sm90a
                );
                assert_eq!(
                    backward_family_path(BACKWARD_DQ_FAMILY, Arch::Sm90a, dtype, head_dim),
                    Arch::Sm90a
                );
            }
        }
        // A tile the sm90a dQ or dK/dV path does not have is a typed error, not an sm80
        // substitute.
        let bad = BackwardChoice {
            dq_tile: Some(Q64K64W4S2),
            ..choice
        };
        assert!(matches!(
            select_backward(Arch::Sm90a, KernelDtype::Bf16, 64, &bad, |_| true),
            Err(Error::InvalidArgument { .. })
        ));
        let bad = BackwardChoice {
            dkv_tile: Some(Q64K128W8S2),
            ..choice
        };
        assert!(matches!(
            select_backward(Arch::Sm90a, KernelDtype::Bf16, 128, &bad, |_| true),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn every_pick_is_registered_for_both_dtypes() {
        for p in picks() {
            for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
                for &t in p.prefer {
                    let k = select(
                        p.family,
                        p.arch,
                        dtype,
                        p.head_dim as usize,
                        Some(t),
                        |_| true,
                    )
                    .unwrap();
                    assert_eq!(k.tile, Some(t));
                }
                let first =
                    select(p.family, p.arch, dtype, p.head_dim as usize, None, |_| true).unwrap();
                assert_eq!(first.tile, Some(p.prefer[0]));
                let pre = select_untiled(BACKWARD_PRE_FAMILY, dtype, p.head_dim as usize).unwrap();
                assert_eq!(pre.head_dim, p.head_dim);
            }
        }
    }

    #[test]
    fn backward_tiles_are_in_every_plan() {
        let tiles = pick_tiles();
        for p in BACKWARD_PICKS.iter().chain(BACKWARD_CHOSEN_ONLY_PICKS) {
            for &t in p.prefer {
                assert!(tiles.contains(&tile_shape(t)), "{t}");
            }
        }
        assert!(matches!(
            select_untiled(BACKWARD_PRE_FAMILY, KernelDtype::Bf16, 96),
            Err(Error::UnsupportedHeadDim { head_dim: 96 })
        ));
        assert!(matches!(
            select_untiled(BACKWARD_PRE_FAMILY, KernelDtype::F32, 64),
            Err(Error::UnsupportedDtype { .. })
        ));
    }

    #[test]
    fn device_and_emulator_plans_name_only_the_tiles_their_kernels_use() {
        let t = |q, k| TileShape::new(q, k).unwrap();
        // sm80: the forward's 128 x 64 (both head dims), the dK/dV's 64 x 128, the dQ's 64 x 64.
        assert_eq!(
            default_tiles(Arch::Sm80, |_| true).unwrap(),
            vec![t(64, 64), t(64, 128), t(128, 64)]
        );
        // sm90a: the forward's 128 x 128 (d128) and 192 x 128 (d64); the backward stays sm80.
        assert_eq!(
            default_tiles(Arch::Sm90a, |_| true).unwrap(),
            vec![t(64, 64), t(64, 128), t(128, 128), t(192, 128)]
        );
        for tiles in [
            default_tiles(Arch::Sm80, |_| true).unwrap(),
            default_tiles(Arch::Sm90a, |_| true).unwrap(),
        ] {
            assert!(tiles.iter().all(|x| pick_tiles().contains(x)));
        }
        let (k, b) = (KernelChoice::default(), BackwardChoice::default());
        assert_eq!(
            emulated_tiles(128, &k, &b).unwrap(),
            vec![t(64, 64), t(64, 128), t(128, 64)]
        );
        let sm90 = BackwardChoice {
            arch: Some(Arch::Sm90a),
            ..Default::default()
        };
        let fwd90 = KernelChoice {
            arch: Some(Arch::Sm90a),
            tile: None,
        };
        assert_eq!(
            emulated_tiles(64, &fwd90, &sm90).unwrap(),
            vec![t(64, 128), t(128, 128), t(192, 128)]
        );
        assert!(matches!(
            emulated_tiles(96, &k, &b),
            Err(Error::UnsupportedHeadDim { head_dim: 96 })
        ));
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
