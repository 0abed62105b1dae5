//! Everything that needs a CUDA device, in one binary with its own harness (tests/support/
//! device_harness.rs, `harness = false` in Cargo.toml): the forward and backward kernels against
//! the f64 reference on the device, the fill kernel, the log-prob gather, SwiGLU and rotary, and
//! the emulator's fidelity to the device (the probes, loaded from the test-only fatbin). Without a device, or in a
//! build without nvcc, every device test is reported as `ignored (no device: <why>)`;
//! `PREFIX_ATTN_REQUIRE_GPU=1` makes that a failure. Host-side checks of the same modules run
//! everywhere. Trials are named `module::function`: `cargo test --test gpu forward::` runs the
//! forward's. Which test checks what: tests/README.md.

use std::process::ExitCode;

#[path = "../support/backward/mod.rs"]
mod backward_support;
#[macro_use]
#[path = "../support/device_harness.rs"]
mod device_harness;
#[path = "../support/emu/mod.rs"]
mod emu_support;
#[path = "../support/forward/mod.rs"]
mod forward_support;
#[path = "../support/on_threads.rs"]
mod on_threads;
#[path = "../support/ops.rs"]
mod ops_support;

mod backward;
mod emu_fidelity;
mod fill;
mod forward;
mod gpucheck_net;
mod logprob_gather;
mod ops;

/// Every trial of the binary.
fn all_trials() -> Vec<libtest_mimic::Trial> {
    let mut trials = forward::trials();
    trials.extend(backward::trials());
    trials.extend(fill::trials());
    trials.extend(logprob_gather::trials());
    trials.extend(ops::trials());
    trials.extend(emu_fidelity::trials());
    trials.extend(gpucheck_net::trials());
    trials
}

fn main() -> ExitCode {
    device_harness::run(all_trials())
}
