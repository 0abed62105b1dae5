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

use super::cases::Case;
use super::gpu_cases::{causal_cases, prefix_cases, DIMS};
use super::summary::Summary;

/// Forwards run and synchronised before criterion starts (first-launch costs).
const WARMUP_LAUNCHES: usize = 3;

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
    let mut g = c.benchmark_group("fwd_causal");
    for case in causal_cases() {
        let id = BenchmarkId::new("causal", &case.name);
        bench_case(&mut g, id, dev, &case, summary, &mut rng);
    }
    g.finish();

    let mut g = c.benchmark_group("fwd_prefix");
    for (shared, paired) in prefix_cases() {
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
