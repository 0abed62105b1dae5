//! The backward kernels the tests run: every registered dK/dV and dQ tile configuration of a
//! path, as [`BackwardChoice`]s, and plans with block lists for all of them.

use prefix_attn::attention::configs::{
    backward_family_path, tile_shape, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY, FORWARD_FAMILY,
};
use prefix_attn::attention::BackwardChoice;
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{self, Arch, KernelDtype, TileConfig};

fn tiles(family: &'static str, arch: Arch) -> Vec<TileConfig> {
    let mut t: Vec<TileConfig> = registry::family(family)
        .filter(|k| k.arch == arch && k.dtype == KernelDtype::Bf16 && k.head_dim == 128)
        .filter_map(|k| k.tile)
        .collect();
    t.sort();
    t
}

/// Each family's kernels on path `arch`, or sm80's where the family has none there (as
/// `select_backward` runs it).
fn family_tiles(family: &'static str, arch: Arch) -> Vec<TileConfig> {
    tiles(
        family,
        backward_family_path(family, arch, KernelDtype::Bf16, 128),
    )
}

/// One choice per registered dK/dV configuration of `arch` (each with the first dQ
/// configuration), then one per further dQ configuration: every kernel runs at least once. A
/// family without a kernel on `arch` contributes sm80's (today every backward family has an
/// sm90a kernel).
pub fn choices(arch: Arch) -> Vec<BackwardChoice> {
    let (dkv, dq) = (
        family_tiles(BACKWARD_DKV_FAMILY, arch),
        family_tiles(BACKWARD_DQ_FAMILY, arch),
    );
    let mut out: Vec<BackwardChoice> = dkv
        .iter()
        .map(|&t| BackwardChoice {
            arch: Some(arch),
            dkv_tile: Some(t),
            dq_tile: Some(dq[0]),
        })
        .collect();
    out.extend(dq.iter().skip(1).map(|&t| BackwardChoice {
        arch: Some(arch),
        dkv_tile: Some(dkv[0]),
        dq_tile: Some(t),
    }));
    out
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

/// A backward choice in test names.
pub fn name(c: &BackwardChoice) -> String {
    let t = |t: Option<TileConfig>| t.map_or("default".to_string(), |t| t.to_string());
    let path = c.arch.map_or("default".to_string(), |a| a.to_string());
    format!("{path}: dkv {} dq {}", t(c.dkv_tile), t(c.dq_tile))
}
