//! The backward kernels (preprocess, dK/dV, dQ; sm80 and sm90a paths, every registered
//! configuration) on the CPU emulator against the f64 reference, and a toy model trained through
//! them. One test binary (`cargo test --test backward`); the device runs are in tests/gpu
//! (`cargo test --test gpu backward::`). Which test checks what: tests/README.md.

#[path = "../support/backward/mod.rs"]
mod backward_support;
#[path = "../support/forward/mod.rs"]
mod forward_support;
#[path = "../support/on_threads.rs"]
mod on_threads;

mod edge_cases;
mod emulated;
mod toy_training_equivalence;
