//! Host code, no kernel: the f64 reference, the layouts and block masks, the batch builder and
//! log-prob maps, the CPU path, and the errors bad input gets. One test binary
//! (`cargo test --test host`). Which test checks what: tests/README.md.

#[path = "../support/common.rs"]
mod common;
#[path = "../support/reference/mod.rs"]
mod reference_support;

mod batch_builder;
mod block_mask_bruteforce;
mod cpu_path;
mod downstream_manifest;
mod equivalence_shared_vs_unshared;
mod errors;
mod layout_builders;
mod reference_backward;
mod reference_forward;
mod reference_gqa;
