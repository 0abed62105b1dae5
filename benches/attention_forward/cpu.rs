//! CPU mode (no device, or no kernels in this build): a tiny forward on the SIMT emulator and the
//! host plan building of the GPU-mode batches. These are not kernel performance: the emulator
//! runs every thread of every CTA as a fiber on the CPU.

use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use half::bf16;
use prefix_attn::attention::{forward_emulated, HostTensors, View};
use prefix_attn::emu::Schedule;
use prefix_attn::plan::Plan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::{causal, Case, Dims, PrefixGroup};
use super::summary::Summary;

/// Small enough that one emulated forward takes milliseconds.
pub const DIMS: Dims = Dims {
    q_heads: 2,
    kv_heads: 1,
    head_dim: 64,
};

/// One causal row of 128 tokens; one 64-token prompt shared by two 64-token completions (one
/// row of 192), against its two 128-token paired sequences (one row of 256). Tile-aligned, as
/// the GPU cases are.
const EMU_N: usize = 128;
const EMU_GROUP: PrefixGroup = PrefixGroup {
    kind: "dpo",
    prefix: 64,
    k: 2,
    completion: 64,
};

pub fn run(c: &mut Criterion, summary: &Summary) {
    // Short group names (criterion cuts long ones in its folder names); what the elements are is
    // said in the header line.
    let mut g = c.benchmark_group("emu_fwd");
    let (shared, paired) = EMU_GROUP.shared_and_paired(1);
    for case in [causal(EMU_N, EMU_N), shared, paired] {
        let shape = case.shape(DIMS);
        let plan = Plan::new(case.vis_end.clone()).expect("host plan");
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut random = |len: usize| -> Vec<bf16> {
            (0..len)
                .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
                .collect()
        };
        let (q, k, v) = (
            random(shape.q_len()),
            random(shape.kv_len()),
            random(shape.kv_len()),
        );
        let mut o = vec![bf16::ZERO; shape.q_len()];
        let mut lse = vec![0f32; shape.lse_len()];
        let scale = 1.0 / (DIMS.head_dim as f32).sqrt();
        let slot = summary.add(&case, DIMS);
        g.throughput(Throughput::Elements(case.forward_flops(DIMS)));
        g.bench_function(BenchmarkId::new(case.format.name(), &case.name), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let t = HostTensors {
                        q: View::dense(&q[..], &shape, DIMS.q_heads),
                        k: View::dense(&k[..], &shape, DIMS.kv_heads),
                        v: View::dense(&v[..], &shape, DIMS.kv_heads),
                        o: View::dense(&mut o[..], &shape, DIMS.q_heads),
                        lse: &mut lse[..],
                    };
                    forward_emulated(&plan, &shape, t, scale, Schedule::Ascending)
                        .expect("emulated forward");
                }
                let total: Duration = t0.elapsed();
                summary.record(slot, iters, total);
                total
            })
        });
    }
    g.finish();

    bench_plan_building(c);
}

/// `Plan::new` (vis_end validation and block lists at the forward tile) of two GPU-mode batches
/// of 16k tokens: what a trainer pays on the host once per batch.
fn bench_plan_building(c: &mut Criterion) {
    let tokens = 16 * 1024;
    let group = PrefixGroup {
        kind: "dpo",
        prefix: 1024,
        k: 2,
        completion: 512,
    };
    let (shared, _) = group.shared_and_paired(tokens);
    let mut g = c.benchmark_group("plan_new");
    let cases: [Case; 2] = [causal(8192, tokens), shared];
    for case in &cases {
        g.throughput(Throughput::Elements(case.tokens() as u64));
        g.bench_function(BenchmarkId::new(case.format.name(), &case.name), |b| {
            b.iter_batched(
                || case.vis_end.clone(),
                |vis_end| Plan::new(vis_end).expect("host plan"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}
