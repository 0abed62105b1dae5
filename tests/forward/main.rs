//! The forward kernels (sm80 and sm90a paths, every registered tile configuration) on the CPU
//! emulator against the f64 reference, plus the host-side forward plumbing: bounds, the raw entry,
//! the kernels' committed output bits. One test binary (`cargo test --test forward`); the device
//! runs of the same cases are in tests/gpu (`cargo test --test gpu forward::`). Which test checks
//! what: tests/README.md.

#[path = "../support/backward/mod.rs"]
mod backward_support;
#[path = "../support/common.rs"]
mod common;
#[path = "../support/forward/mod.rs"]
mod forward_support;
#[path = "../support/on_threads.rs"]
mod on_threads;

mod bounds;
mod edge_cases;
mod emulated;
mod equivalence_kernels;
mod kernel_bits;
mod raw_entry;
