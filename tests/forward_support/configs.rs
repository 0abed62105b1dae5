//! The forward kernels the tests run: every registered tile configuration of a path, each a
//! [`KernelChoice`], and plans with block lists for all of them.

use prefix_attn::attention::configs::{select_forward, tile_shape, FORWARD_FAMILY};
use prefix_attn::attention::KernelChoice;
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{self, Arch, KernelDtype, TileConfig};

/// Every registered forward tile configuration of `arch`, at any head dim (bf16 and f16 are
/// registered alike), the default pick for head dim 128 first.
pub fn tiles(arch: Arch) -> Vec<TileConfig> {
    let first = select_forward(arch, KernelDtype::Bf16, 128, None, |_| true)
        .ok()
        .and_then(|k| k.tile);
    let mut tiles: Vec<TileConfig> = registry::family(FORWARD_FAMILY)
        .filter(|k| k.arch == arch && k.dtype == KernelDtype::Bf16)
        .filter_map(|k| k.tile)
        .collect();
    tiles.sort_by_key(|t| (Some(*t) != first, *t));
    tiles.dedup();
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

/// Every tile shape some registered forward kernel uses.
pub fn all_tile_shapes() -> Vec<TileShape> {
    let mut shapes: Vec<TileShape> = registry::family(FORWARD_FAMILY)
        .filter_map(|k| k.tile)
        .map(tile_shape)
        .collect();
    shapes.sort_by_key(|t| (t.block_q(), t.block_k()));
    shapes.dedup();
    shapes
}

/// A host plan with block lists for every registered forward kernel.
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
