//! `prefix_attn::candle::attention` on candle's CUDA device (device 0), through candle's
//! autograd, with the checks tests/candle_op.rs makes on the CPU: against candle's own dense
//! f32 attention (run on the CPU, where its derived bound holds) and the crate's f64 reference,
//! within the bounds of the kernel that ran on the device (`ForwardRun::device`: the PTX ISA's
//! latitude for tensor-core accumulation). The same cases, plus one long row of several tiles.
//!
//! Without a usable device (no driver, no GPU, stub libraries, or a build without the kernels)
//! every test is reported `ignored` with the reason; `PREFIX_ATTN_REQUIRE_GPU=1` makes that a
//! failure (tests/support/device_harness.rs).

mod candle_support;
#[path = "support/device_harness.rs"]
mod device_harness;

use std::process::ExitCode;

use candle_core::{DType, Device};
use libtest_mimic::{Completion, Failed, Trial};
use prefix_attn::bounds::ForwardRun;
use prefix_attn::registry::KernelDtype;
use prefix_attn::Attention;

use candle_support::cases::{
    batch_case, dpo_case, fused_cases, grpo_case, long_case, odd_case, packed_case, padded_cases,
    tree_case, Case,
};
use candle_support::check::{check_case, check_case_with, Layout};

/// candle's CUDA device 0 with this crate's kernels, or why there is none.
fn candle_cuda() -> Result<Device, String> {
    if !prefix_attn::cuda::kernels_built() {
        return Err("prefix-attn was built without its kernels (no nvcc)".into());
    }
    Device::new_cuda(0).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or("").to_string();
        format!("candle Device::new_cuda(0): {first}")
    })
}

/// A test on candle's CUDA device: ignored with the reason when there is none, or a failure
/// under `PREFIX_ATTN_REQUIRE_GPU=1`.
fn on_candle_cuda(name: &str, body: fn(&Device)) -> Trial {
    Trial::ignorable_test(name, move || match candle_cuda() {
        Ok(dev) => {
            body(&dev);
            Ok(Completion::Completed)
        }
        Err(why) if std::env::var(device_harness::REQUIRE_GPU).as_deref() == Ok("1") => {
            Err(Failed::from(format!(
                "{}=1 but no device: {why}",
                device_harness::REQUIRE_GPU
            )))
        }
        Err(why) => Ok(Completion::ignored_with(format!("no device: {why}"))),
    })
}

/// How the forward ran on `dev`: the kernel `Attention::for_context` picked for candle's
/// context, under the device's rounding latitude.
fn device_run(dev: &Device, case: &Case) -> ForwardRun {
    let ctx = dev
        .as_cuda_device()
        .unwrap()
        .cuda_stream()
        .context()
        .clone();
    let attn = Attention::for_context(&ctx).unwrap();
    let dtype = match case.dtype {
        DType::BF16 => KernelDtype::Bf16,
        _ => KernelDtype::F16,
    };
    let kernel = attn.forward.kernel_for(dtype, case.head_dim).unwrap();
    ForwardRun::device(kernel).unwrap()
}

fn check(dev: &Device, case: Case, layout: Layout) {
    let run = device_run(dev, &case);
    check_case(&case, layout, dev, run);
}

fn dpo_bf16_gqa_d64(dev: &Device) {
    check(dev, dpo_case(), Layout::Dense);
}

fn grpo_f16_d128(dev: &Device) {
    check(dev, grpo_case(), Layout::Dense);
}

fn packed_bf16_gqa_d128(dev: &Device) {
    check(dev, packed_case(), Layout::Dense);
}

fn tree_f16_gqa_d64(dev: &Device) {
    check(dev, tree_case(), Layout::Dense);
}

fn padded_bf16_and_f16_d64(dev: &Device) {
    for case in padded_cases() {
        check(dev, case, Layout::Dense);
    }
}

fn fused_qkv_views(dev: &Device) {
    for case in fused_cases() {
        check(dev, case, Layout::Fused);
    }
}

fn head_major_and_misaligned_inputs(dev: &Device) {
    check(dev, odd_case(), Layout::Odd);
}

fn plan_from_a_batch(dev: &Device) {
    let (case, plan) = batch_case();
    let run = device_run(dev, &case);
    check_case_with(&case, &plan, Layout::Dense, dev, run);
}

fn long_grpo_rows_bf16_gqa_d128(dev: &Device) {
    check(dev, long_case(), Layout::Fused);
}

/// A test's name and body.
type DeviceTest = (&'static str, fn(&Device));

fn main() -> ExitCode {
    let tests: [DeviceTest; 9] = [
        ("dpo_bf16_gqa_d64", dpo_bf16_gqa_d64),
        ("grpo_f16_d128", grpo_f16_d128),
        ("packed_bf16_gqa_d128", packed_bf16_gqa_d128),
        ("tree_f16_gqa_d64", tree_f16_gqa_d64),
        ("padded_bf16_and_f16_d64", padded_bf16_and_f16_d64),
        ("fused_qkv_views", fused_qkv_views),
        (
            "head_major_and_misaligned_inputs",
            head_major_and_misaligned_inputs,
        ),
        ("plan_from_a_batch", plan_from_a_batch),
        ("long_grpo_rows_bf16_gqa_d128", long_grpo_rows_bf16_gqa_d128),
    ];
    device_harness::run(
        tests
            .into_iter()
            .map(|(name, body)| on_candle_cuda(name, body))
            .collect(),
    )
}
