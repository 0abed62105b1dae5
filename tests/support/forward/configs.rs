//! The kernels the tests run, read from the registry (csrc/registry.cuh), so a new tile
//! configuration is tested with no test edit: every registered forward tile configuration of a
//! path, each a [`KernelChoice`], and plans with block lists for every registered forward and
//! backward kernel. (The backward's choices, built on [`registered_tiles`]: backward_support's
//! configs.)

use prefix_attn::attention::configs::{
    select_forward, tile_shape, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY, FORWARD_FAMILY,
};
use prefix_attn::attention::KernelChoice;
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{self, Arch, KernelDtype, TileConfig};

/// The tile configurations of `family` registered on path `arch` for bf16 (bf16 and f16 are
/// registered alike), at `head_dim` or at any head dim, sorted, each once.
pub fn registered_tiles(
    family: &'static str,
    arch: Arch,
    head_dim: Option<u32>,
) -> Vec<TileConfig> {
    let mut tiles: Vec<TileConfig> = registry::family(family)
        .filter(|k| k.arch == arch && k.dtype == KernelDtype::Bf16)
        .filter(|k| head_dim.is_none_or(|d| k.head_dim == d))
        .filter_map(|k| k.tile)
        .collect();
    tiles.sort();
    tiles.dedup();
    tiles
}

/// Every registered forward tile configuration of `arch`, at any head dim, the default pick for
/// head dim 128 first.
pub fn tiles(arch: Arch) -> Vec<TileConfig> {
    let first = select_forward(arch, KernelDtype::Bf16, 128, None, |_| true)
        .ok()
        .and_then(|k| k.tile);
    let mut tiles = registered_tiles(FORWARD_FAMILY, arch, None);
    tiles.sort_by_key(|t| (Some(*t) != first, *t));
    tiles
}

/// Whether `choice` has a kernel at `head_dim` (not every configuration is registered at every
/// head dim).
pub fn runs_at(choice: &KernelChoice, head_dim: usize) -> bool {
    let arch = choice.arch.unwrap_or(Arch::Sm80);
    select_forward(arch, KernelDtype::Bf16, head_dim, choice.tile, |_| true).is_ok()
}

/// [`tiles`] as kernel choices.
pub fn choices(arch: Arch) -> Vec<KernelChoice> {
    tiles(arch)
        .into_iter()
        .map(|t| KernelChoice::exactly(arch, t))
        .collect()
}

/// Every tile shape a registered forward or backward kernel uses.
pub fn all_tile_shapes() -> Vec<TileShape> {
    let mut shapes: Vec<TileShape> = [FORWARD_FAMILY, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY]
        .into_iter()
        .flat_map(registry::family)
        .filter_map(|k| k.tile)
        .map(tile_shape)
        .collect();
    shapes.sort_by_key(|t| (t.block_q(), t.block_k()));
    shapes.dedup();
    shapes
}

/// A host plan with block lists for every registered forward and backward kernel.
pub fn plan_for_all(vis_end: VisEnd) -> Plan {
    Plan::with_tiles(vis_end, &all_tile_shapes()).unwrap()
}

/// `KernelChoice` in test names.
pub fn name(c: &KernelChoice) -> String {
    match (c.arch, c.tile) {
        (Some(a), Some(t)) => format!("{a} {t}"),
        _ => "default".into(),
    }
}

/// The block-list tile the kernel `choice` picks for `head_dim` runs at (the emulator's default
/// choice is the sm80 path's first pick).
pub fn tile_of(choice: &KernelChoice, head_dim: usize) -> TileShape {
    let arch = choice.arch.unwrap_or(Arch::Sm80);
    let k = select_forward(arch, KernelDtype::Bf16, head_dim, choice.tile, |_| true)
        .expect("a registered forward kernel");
    tile_shape(k.tile.expect("forward kernels have tiles"))
}
