//! The harness of the test binary that needs a CUDA device (tests/gpu, `harness = false` in
//! Cargo.toml):
//! libtest's command line and output, through libtest-mimic, with one difference that matters. A
//! device test that finds no usable device (no driver, no GPU, or a build without kernels) is
//! reported as `ignored (no device: <why>)`, not as passed, so `N passed` counts only tests that
//! ran. `PREFIX_ATTN_REQUIRE_GPU=1` (scripts/gpucheck/run.sh sets it) turns that into a failure.
//!
//! `#[test]` does nothing in that binary: every test is listed in its module's `trials()`, with
//! [`device_tests!`], [`hopper_tests!`] or [`host_tests!`], each trial named `module::function`
//! like libtest names tests (an unlisted test function is dead code, which clippy refuses, and
//! tests/emulator/device_harness_net.rs checks that no `#[test]` is left there).
#![allow(dead_code)] // each binary uses a different subset

use std::process::ExitCode;
use std::sync::Mutex;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use prefix_attn::cuda::Gpu;
use prefix_attn::Error;

/// Set to 1 where a device must be there: a missing one fails the device tests.
pub const REQUIRE_GPU: &str = "PREFIX_ATTN_REQUIRE_GPU";

fn require_gpu() -> bool {
    std::env::var(REQUIRE_GPU).as_deref() == Ok("1")
}

/// Why a device test did not run, as printed after `ignored`: the error of opening device 0
/// (for a build without kernels, it carries the command that gets nvcc).
pub fn skip_reason(e: &Error) -> String {
    format!("no device: {e}")
}

/// What a device test that could not open device 0 reports: ignored with the reason, or a
/// failure under `PREFIX_ATTN_REQUIRE_GPU=1`.
pub fn no_device(e: &Error) -> Result<Completion, Failed> {
    if require_gpu() {
        Err(format!("{REQUIRE_GPU}=1 but {e}").into())
    } else {
        Ok(Completion::ignored_with(skip_reason(e)))
    }
}

/// The names of the device trials made so far ([`on_device`], [`on_device_if`]), for nets that
/// check who runs them (tests/gpu/gpucheck_net.rs).
static DEVICE_TRIALS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The names of the device trials made so far in this process.
pub fn device_trial_names() -> Vec<String> {
    DEVICE_TRIALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn note_device_trial(name: &str) {
    DEVICE_TRIALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.to_string());
}

/// A test of device 0, given the opened [`Gpu`]; a panic in `body` fails it.
pub fn on_device(name: &str, body: fn(Gpu)) -> Trial {
    note_device_trial(name);
    Trial::ignorable_test(name, move || match Gpu::new(0) {
        Ok(gpu) => {
            body(gpu);
            Ok(Completion::Completed)
        }
        Err(e) => no_device(&e),
    })
}

/// A test of device 0 that also needs something of it: ignored with `needs`' reason (not a failure,
/// even under `PREFIX_ATTN_REQUIRE_GPU=1`: another device is not a missing one) when the device
/// lacks it.
pub fn on_device_if(name: &str, needs: fn(&Gpu) -> Result<(), String>, body: fn(Gpu)) -> Trial {
    note_device_trial(name);
    Trial::ignorable_test(name, move || match Gpu::new(0) {
        Ok(gpu) => match needs(&gpu) {
            Ok(()) => {
                body(gpu);
                Ok(Completion::Completed)
            }
            Err(why) => Ok(Completion::ignored_with(why)),
        },
        Err(e) => no_device(&e),
    })
}

/// The Hopper path's requirement: compute capability 9.0 (its sm_90a SASS runs there only).
pub fn hopper(gpu: &Gpu) -> Result<(), String> {
    match gpu.compute_capability() {
        (9, 0) => Ok(()),
        (major, minor) => Err(format!(
            "needs compute capability 9.0 (sm_90a: wgmma, TMA, setmaxnreg), the device is {major}.{minor}"
        )),
    }
}

/// A test that needs no device (host-side checks that share the binary's helpers).
pub fn on_host(name: &str, body: fn()) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

/// A trial's name as libtest would give it: `module_path` (of the calling module, e.g.
/// `gpu::forward`) without the crate's name, then `test`.
pub fn trial_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}

/// Runs `trials` with libtest's arguments (filters, `--exact`, `--test-threads`, `--list`,
/// `--ignored`...) and its summary line.
pub fn run(trials: Vec<Trial>) -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// `device_tests![f, g]`: trials named after the functions, each run by [`on_device`].
#[allow(unused_macros)] // each binary uses a different subset
macro_rules! device_tests {
    ($($test:ident),* $(,)?) => {
        vec![$($crate::device_harness::on_device(
            &$crate::device_harness::trial_name(module_path!(), stringify!($test)),
            $test,
        )),*]
    };
}

/// `hopper_tests![f, g]`: trials named after the functions, each run by [`on_device_if`] with
/// [`hopper`].
#[allow(unused_macros)]
macro_rules! hopper_tests {
    ($($test:ident),* $(,)?) => {
        vec![$($crate::device_harness::on_device_if(
            &$crate::device_harness::trial_name(module_path!(), stringify!($test)),
            $crate::device_harness::hopper,
            $test,
        )),*]
    };
}

/// `host_tests![f, g]`: trials named after the functions, each run by [`on_host`].
#[allow(unused_macros)]
macro_rules! host_tests {
    ($($test:ident),* $(,)?) => {
        vec![$($crate::device_harness::on_host(
            &$crate::device_harness::trial_name(module_path!(), stringify!($test)),
            $test,
        )),*]
    };
}
