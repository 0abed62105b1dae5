//! The backward kernels the tests run: every registered dK/dV and dQ tile configuration of a
//! path, as [`BackwardChoice`]s, read from the registry like the forward's (forward_support's
//! configs, whose plans hold block lists for every forward and backward kernel).

use prefix_attn::attention::configs::{
    backward_family_path, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY,
};
use prefix_attn::attention::BackwardChoice;
use prefix_attn::registry::{Arch, KernelDtype, TileConfig};

pub use crate::forward_support::configs::plan_for_all;
use crate::forward_support::configs::registered_tiles;

/// Each family's kernels at head dim 128 on path `arch`, or sm80's where the family has none
/// there (as `select_backward` runs it).
fn family_tiles(family: &'static str, arch: Arch) -> Vec<TileConfig> {
    let path = backward_family_path(family, arch, KernelDtype::Bf16, 128);
    registered_tiles(family, path, Some(128))
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

/// A backward choice in test names.
pub fn name(c: &BackwardChoice) -> String {
    let t = |t: Option<TileConfig>| t.map_or("default".to_string(), |t| t.to_string());
    let path = c.arch.map_or("default".to_string(), |a| a.to_string());
    format!("{path}: dkv {} dq {}", t(c.dkv_tile), t(c.dq_tile))
}
