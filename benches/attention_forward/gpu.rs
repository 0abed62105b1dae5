//! GPU mode: the forward kernel timed on the device with CUDA events around criterion's
//! iterations, so criterion measures device time; inputs are uploaded and outputs allocated
//! before the timed region.

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;
use prefix_attn::attention::{DeviceTensors, Forward, View};
use prefix_attn::cuda::Gpu;
use prefix_attn::plan::Plan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::{causal, Case, Dims, PrefixGroup};
use super::summary::Summary;

/// Mistral-7B attention, the seed paper's model: 32 query heads, 8 kv heads, head dim 128, bf16.
pub const DIMS: Dims = Dims {
    q_heads: 32,
    kv_heads: 8,
    head_dim: 128,
};

/// Tokens per launch (rows * n), as in the FlashAttention benchmarks (batch * seqlen = 16k).
const TOKENS: usize = 16 * 1024;
/// Forwards run and synchronised before criterion starts (first-launch costs).
const WARMUP_LAUNCHES: usize = 3;

/// Prefix/completion shapes: DPO pairs and GRPO groups at prefix/completion ratios 2 and 6
/// (DPO) and 2 and 4 (GRPO); ideal speedups (paired / shared visible pairs) 1.29, 1.58, 1.50
/// and 1.92.
const GROUPS: [PrefixGroup; 4] = [
    PrefixGroup {
        kind: "dpo",
        prefix: 1024,
        k: 2,
        completion: 512,
    },
    PrefixGroup {
        kind: "dpo",
        prefix: 3072,
        k: 2,
        completion: 512,
    },
    PrefixGroup {
        kind: "grpo",
        prefix: 512,
        k: 4,
        completion: 256,
    },
    PrefixGroup {
        kind: "grpo",
        prefix: 2048,
        k: 4,
        completion: 512,
    },
];

/// A device with the forward kernels loaded.
pub struct Device {
    gpu: Gpu,
    fwd: Forward,
    stream: Arc<CudaStream>,
}

/// Opens device 0 and looks up the forward kernels; the error says why GPU mode is impossible.
pub fn open() -> Result<Device, String> {
    let gpu = Gpu::new(0).map_err(|e| e.to_string())?;
    let fwd = Forward::new(&gpu).map_err(|e| format!("forward kernels: {e}"))?;
    let stream = gpu.default_stream();
    Ok(Device { gpu, fwd, stream })
}

pub fn run(c: &mut Criterion, dev: &Device, summary: &Summary) {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut g =
        c.benchmark_group("gpu_fwd_causal_bf16_d128_q32kv8__elements_are_visible_pair_FLOPs");
    for n in [2048, 4096, 8192] {
        let case = causal(n, TOKENS);
        let id = BenchmarkId::new("causal", &case.name);
        bench_case(&mut g, id, dev, &case, summary, &mut rng);
    }
    g.finish();

    let mut g =
        c.benchmark_group("gpu_fwd_prefix_bf16_d128_q32kv8__elements_are_visible_pair_FLOPs");
    for group in GROUPS {
        let (shared, paired) = group.shared_and_paired(TOKENS);
        for case in [&shared, &paired] {
            let id = BenchmarkId::new(case.format.name(), &case.name);
            bench_case(&mut g, id, dev, case, summary, &mut rng);
        }
    }
    g.finish();
}

fn random_bf16(rng: &mut StdRng, len: usize) -> Vec<bf16> {
    (0..len)
        .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
        .collect()
}

fn bench_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    dev: &Device,
    case: &Case,
    summary: &Summary,
    rng: &mut StdRng,
) {
    let stream = &dev.stream;
    let shape = case.shape(DIMS);
    let plan = Plan::on_device(case.vis_end.clone(), stream).expect("plan upload");
    let upload = |data: Vec<bf16>| stream.clone_htod(&data).expect("input upload");
    let q = upload(random_bf16(rng, shape.q_len()));
    let k = upload(random_bf16(rng, shape.kv_len()));
    let v = upload(random_bf16(rng, shape.kv_len()));
    let mut o: CudaSlice<bf16> = stream.alloc_zeros(shape.q_len()).expect("O allocation");
    let mut lse: CudaSlice<f32> = stream.alloc_zeros(shape.lse_len()).expect("LSE allocation");
    let ctx = dev.gpu.context();
    let start = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .expect("timing event");
    let end = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .expect("timing event");
    let scale = 1.0 / (DIMS.head_dim as f32).sqrt();
    let mut forward = || {
        let t = DeviceTensors {
            q: View::dense(q.as_view(), &shape, DIMS.q_heads),
            k: View::dense(k.as_view(), &shape, DIMS.kv_heads),
            v: View::dense(v.as_view(), &shape, DIMS.kv_heads),
            o: View::dense(o.as_view_mut(), &shape, DIMS.q_heads),
            lse: lse.as_view_mut(),
        };
        dev.fwd
            .run(stream, &plan, &shape, t, scale)
            .expect("forward launch");
    };
    for _ in 0..WARMUP_LAUNCHES {
        forward();
    }
    stream.synchronize().expect("warm-up synchronize");

    let slot = summary.add(case, DIMS);
    g.throughput(Throughput::Elements(case.forward_flops(DIMS)));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            start.record(stream).expect("record start");
            for _ in 0..iters {
                forward();
            }
            end.record(stream).expect("record end");
            // elapsed_ms waits for both events: device time between them.
            let ms = start.elapsed_ms(&end).expect("event elapsed time");
            let total = Duration::from_secs_f64(f64::from(ms) * 1e-3);
            summary.record(slot, iters, total);
            total
        })
    });
}
