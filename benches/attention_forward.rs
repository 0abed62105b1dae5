//! `cargo bench --bench attention_forward`: the attention forward, the crate's main job.
//!
//! GPU mode (device 0 opens and this build embeds the kernels): bf16, head dim 128, 32 query /
//! 8 kv heads (Mistral-7B, the seed paper's model), about 16k tokens per launch:
//! - causal rows at n = 2k, 4k, 8k;
//! - prefix-shared rows (DPO: prompt + 2 completions, GRPO: prompt + 4) against the same samples
//!   in the paired (unshared) format, both laid out by `prefix_attn::batch::Batch`.
//!
//! Timing: criterion's `iter_custom` with CUDA events recorded around the iterations, so the
//! time is device time; a few forwards run and are synchronised before criterion's own warm-up;
//! inputs are seeded random bf16 in [-1, 1); every buffer is allocated before the timed region.
//!
//! Throughput: `Throughput::Elements(forward FLOPs)`, so criterion's "elem/s" is FLOP/s. FLOPs
//! count only visible (query, key) pairs, 4 * pairs * q_heads * head_dim (FlashAttention
//! convention applied to the mask used; /work/shared/ANCHORS.md), as the header line says. Groups
//! are `fwd_causal` and `fwd_prefix`. At the end a table gives FLOP/s per case (median time per
//! forward over criterion's calls) and, per shared/paired problem, the measured speedup
//! (paired time / shared time) next to the ideal one (paired visible pairs / shared).
//!
//! CPU mode (no device, no driver, or no kernels): says so on one line and times only a tiny
//! forward on the SIMT emulator (group `emu_fwd`) and the host plan building (`plan_new`).
//!
//! The shared-vs-paired charts of the MLP, attention op and attention layer are the other bench,
//! `cargo bench --bench sharing`.

#[path = "attention_forward/cases.rs"]
mod cases;
#[path = "attention_forward/cpu.rs"]
mod cpu;
#[path = "attention_forward/gpu.rs"]
mod gpu;
#[path = "attention_forward/gpu_cases.rs"]
mod gpu_cases;
#[path = "attention_forward/summary.rs"]
mod summary;

use std::time::Duration;

use criterion::Criterion;

use summary::Summary;

fn main() {
    match gpu::open() {
        Ok(device) => {
            println!(
                "prefix-attn bench: GPU mode (device 0) - forward kernel, bf16, d 128, 32 q / 8 kv heads; criterion's elem/s = FLOP/s of visible pairs"
            );
            // 11 cases, about 5 s of criterion time each plus input generation: about a minute and a
            // half in all.
            let mut c = Criterion::default()
                .sample_size(20)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3))
                .configure_from_args();
            let summary = Summary::new((1e12, "TFLOP/s"));
            gpu::run(&mut c, &device, &summary);
            c.final_summary();
            summary.print(
                "forward on the GPU, FLOPs of visible pairs (bf16, d 128, 32 q / 8 kv heads):",
                "a GPU's time is not exactly proportional to visible pairs: per-tile fixed costs, partly filled tiles and the last wave of CTAs differ between the formats",
            );
        }
        Err(reason) => {
            println!(
                "prefix-attn bench: CPU mode (no GPU: {reason}) \u{2014} timings below are the SIMT emulator (emu_fwd, elem/s = FLOP/s of visible pairs) and the host plan building (plan_new, elem/s = tokens), not kernel performance"
            );
            // Milliseconds per emulated forward: about half a minute on 2 cores.
            let mut c = Criterion::default()
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2))
                .configure_from_args();
            let summary = Summary::new((1e6, "MFLOP/s"));
            cpu::run(&mut c, &summary);
            c.final_summary();
            summary.print(
                "CPU mode: forward on the SIMT emulator (bf16, d 64, 2 q / 1 kv heads) - NOT kernel performance:",
                "the emulator's costs are not the GPU's: it runs every thread of every CTA as a fiber on the CPU, so per-CTA and per-tile overheads (fiber switches at every barrier and warp collective, whole PARTIAL tiles) weigh differently, and the two formats differ in CTAs and tiles per visible pair",
            );
        }
    }
}
