//! The SIMT emulator and the intrinsics layer: the probe kernels (csrc/test_registry.cuh), the
//! planted-bug nets, the fill kernel, SwiGLU and rotary on the emulator, and the nets of the
//! test setup itself (the device harness, the one way to get nvcc). One test binary
//! (`cargo test --test emulator`); the probes on a real device are in tests/gpu
//! (`cargo test --test gpu emu_fidelity::`). Which test checks what: tests/README.md.

#[path = "../support/emu/mod.rs"]
mod emu_support;
#[path = "../support/ops.rs"]
mod ops_support;

mod approx;
mod device_harness_net;
mod fill;
mod get_nvcc;
mod nets;
mod ops;
mod primitives;
mod sm90_nets;
mod sm90_primitives;
mod tile;
mod tile_ops;
