//! The whole device path from day one: nvcc-compiled fatbin embedded in the crate, loaded through
//! the driver API, a kernel launched, the result read back. Without a device the device test is
//! reported as ignored, with the reason (tests/support/device_harness.rs).

use crate::device_harness;

use libtest_mimic::Trial;

use prefix_attn::cuda::{Gpu, GET_NVCC};
use prefix_attn::Error;

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = device_tests![
        fill_writes_every_element_on_the_device,
        gpu_fill_sanitizer_case
    ];
    trials.extend(host_tests![
        no_device_is_an_error_not_a_panic,
        a_build_without_kernels_says_how_to_get_nvcc,
    ]);
    trials
}

fn fill_writes_every_element_on_the_device(gpu: Gpu) {
    // An odd length so the grid-stride tail is exercised.
    fill_on_device(&gpu, 1_000_003);
}

/// A small fill for compute-sanitizer's four tools in scripts/gpucheck/run.sh.
fn gpu_fill_sanitizer_case(gpu: Gpu) {
    fill_on_device(&gpu, 1_001);
}

/// Fills `count` words on the device and requires every one written; the buffer first holds a
/// pattern that differs from the fill value.
fn fill_on_device(gpu: &Gpu, count: usize) {
    let stream = gpu.default_stream();
    let before: Vec<u32> = (0..count as u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let mut buf = stream.clone_htod(&before).expect("upload");
    gpu.fill_u32(&stream, &mut buf, 0x7fc0_0001)
        .expect("fill launch");
    let after = stream.clone_dtoh(&buf).expect("read back");
    assert_eq!(after.len(), count);
    if let Some(i) = after.iter().position(|&x| x != 0x7fc0_0001) {
        panic!("element {i} not written: {:#x}", after[i]);
    }
}

fn no_device_is_an_error_not_a_panic() {
    // Whatever this machine has, asking for an absurd ordinal must come back as Err.
    match Gpu::new(1_000) {
        Ok(_) => panic!("device 1000 cannot exist"),
        Err(e) => eprintln!("Gpu::new(1000) -> {e}"),
    }
}

/// The reason a device test prints when it is ignored for a build without kernels carries the
/// command that gets nvcc (tests/emulator/get_nvcc.rs checks that command against the script, the README
/// and CI).
fn a_build_without_kernels_says_how_to_get_nvcc() {
    let e = Error::KernelsNotBuilt {
        reason: "nvcc was not found".into(),
    };
    assert!(device_harness::skip_reason(&e).contains(GET_NVCC), "{e}");
}
