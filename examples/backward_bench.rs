//! Forward + backward throughput on a device, on the problems of examples/forward_bench.rs (causal
//! rows and prefix-shared rows, bf16, 32/8 heads, 16k tokens per launch, n = 2k/4k/8k, d = 64
//! and 128): the forward, the backward (preprocess, dK/dV, dQ) and both in a row, timed with CUDA
//! events (median of ITERS after WARMUP), with the kernels the default choices pick, and on a
//! compute capability 9.0 device also with the chosen-only sm90a backward kernels
//! (`BackwardChoice { arch: Some(Arch::Sm90a), .. }`), which no default picks until a run like
//! this one has checked and measured them: one CSV row per case and backward choice (the
//! `dkv_kernel` / `dq_kernel` columns say which).
//!
//! TFLOP/s counts visible (query, key) pairs only, FlashAttention's convention on the mask
//! actually used: forward 4 * pairs * heads * d, backward 10 * (S recomputed, dP, dV, dK, dQ),
//! forward + backward 14. (The deterministic dQ kernel recomputes S and dP once more: 14 counts
//! the work FlashAttention-2 does, so the figures compare with its.)
//!
//! Writes `backward_bench.csv` and `cases_fwd_bwd.json` (the same problems with the default
//! choices' forward + backward times, for scripts/gpucheck/peers_backward.py to time PyTorch SDPA and FlexAttention forward
//! + backward on) into OUT_DIR.
//!
//! `cargo run --release --example backward_bench -- OUT_DIR` (exits 0 with a message without a
//! device; 1 under PREFIX_ATTN_REQUIRE_GPU=1).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;
use prefix_attn::attention::configs::{tile_shape, BackwardChoice, KernelChoice};
use prefix_attn::attention::{Attention, BackwardTensors, BackwardWorkspace, DeviceTensors, View};
use prefix_attn::cuda::Gpu;
use prefix_attn::plan::Plan;
use prefix_attn::registry::{Arch, KernelDtype};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "forward_bench/cases.rs"]
mod cases;

use cases::{benches, Bench, KV_HEADS, Q_HEADS};

const WARMUP: usize = 3;
const ITERS: usize = 11;

/// One case's device buffers.
struct Buffers {
    shape: AttnShape,
    plan: Plan,
    q: CudaSlice<bf16>,
    k: CudaSlice<bf16>,
    v: CudaSlice<bf16>,
    o: CudaSlice<bf16>,
    lse: CudaSlice<f32>,
    d_o: CudaSlice<bf16>,
    dq: CudaSlice<bf16>,
    dk: CudaSlice<bf16>,
    dv: CudaSlice<bf16>,
    ws: BackwardWorkspace,
    scale: f32,
}

fn buffers(b: &Bench, stream: &Arc<CudaStream>, rng: &mut StdRng) -> Buffers {
    let shape = AttnShape {
        rows: b.rows(),
        n: b.n,
        q_heads: Q_HEADS,
        kv_heads: KV_HEADS,
        head_dim: b.head_dim,
    };
    let plan = Plan::on_device(b.vis_end(), stream).unwrap();
    let mut rand_vec = |len: usize| -> Vec<bf16> {
        (0..len)
            .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
            .collect()
    };
    let (q, k, v, d_o) = (
        rand_vec(shape.q_len()),
        rand_vec(shape.kv_len()),
        rand_vec(shape.kv_len()),
        rand_vec(shape.q_len()),
    );
    Buffers {
        q: stream.clone_htod(&q).unwrap(),
        k: stream.clone_htod(&k).unwrap(),
        v: stream.clone_htod(&v).unwrap(),
        d_o: stream.clone_htod(&d_o).unwrap(),
        o: stream.alloc_zeros(shape.q_len()).unwrap(),
        lse: stream.alloc_zeros(shape.lse_len()).unwrap(),
        dq: stream.alloc_zeros(shape.q_len()).unwrap(),
        dk: stream.alloc_zeros(shape.kv_len()).unwrap(),
        dv: stream.alloc_zeros(shape.kv_len()).unwrap(),
        ws: BackwardWorkspace::new(stream, &shape).unwrap(),
        scale: 1.0 / (b.head_dim as f32).sqrt(),
        shape,
        plan,
    }
}

fn forward(attn: &Attention, s: &Arc<CudaStream>, b: &mut Buffers) {
    let sh = b.shape;
    attn.forward(
        s,
        &b.plan,
        &sh,
        DeviceTensors {
            q: View::dense(b.q.as_view(), &sh, Q_HEADS),
            k: View::dense(b.k.as_view(), &sh, KV_HEADS),
            v: View::dense(b.v.as_view(), &sh, KV_HEADS),
            o: View::dense(b.o.as_view_mut(), &sh, Q_HEADS),
            lse: b.lse.as_view_mut(),
        },
        b.scale,
    )
    .unwrap();
}

fn backward(attn: &Attention, s: &Arc<CudaStream>, b: &mut Buffers) {
    let sh = b.shape;
    attn.backward(
        s,
        &b.plan,
        &sh,
        BackwardTensors {
            q: View::dense(b.q.as_view(), &sh, Q_HEADS),
            k: View::dense(b.k.as_view(), &sh, KV_HEADS),
            v: View::dense(b.v.as_view(), &sh, KV_HEADS),
            o: View::dense(b.o.as_view(), &sh, Q_HEADS),
            lse: b.lse.as_view(),
            d_o: View::dense(b.d_o.as_view(), &sh, Q_HEADS),
            dq: View::dense(b.dq.as_view_mut(), &sh, Q_HEADS),
            dk: View::dense(b.dk.as_view_mut(), &sh, KV_HEADS),
            dv: View::dense(b.dv.as_view_mut(), &sh, KV_HEADS),
        },
        &mut b.ws,
        b.scale,
    )
    .unwrap();
}

/// Median milliseconds of `work` on `stream`.
fn time(stream: &Arc<CudaStream>, mut work: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        work();
    }
    let mut ms = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        work();
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        end.synchronize().unwrap();
        ms.push(start.elapsed_ms(&end).unwrap() as f64);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[ms.len() / 2]
}

fn main() {
    let out_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out_dir).expect("create output dir");
    let gpu = match Gpu::new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("backward_bench: skipped, no device: {e}");
            if std::env::var("PREFIX_ATTN_REQUIRE_GPU").as_deref() == Ok("1") {
                std::process::exit(1);
            }
            return;
        }
    };
    let stream = gpu.default_stream();
    // The default choices first (their times go to cases_fwd_bwd.json for the peers), then the
    // sm90a backward where the device runs it.
    let mut choices = vec![Attention::new(&gpu).expect("forward and backward kernels")];
    if gpu.arch().ok() == Some(Arch::Sm90a) {
        let sm90a = BackwardChoice {
            arch: Some(Arch::Sm90a),
            ..BackwardChoice::default()
        };
        match Attention::with_choices(&gpu, KernelChoice::default(), sm90a) {
            Ok(a) => choices.push(a),
            Err(e) => println!("backward_bench: the sm90a backward does not load: {e}"),
        }
    }
    let mut csv = String::from(
        "kind,n,rows,q_heads,kv_heads,head_dim,dtype,dkv_kernel,dq_kernel,visible_pairs,fwd_ms,bwd_ms,fwd_bwd_ms,fwd_tflops,bwd_tflops,fwd_bwd_tflops\n",
    );
    let mut cases = String::from("[\n");
    let mut rng = StdRng::seed_from_u64(1);
    for (bi, b) in benches().iter().enumerate() {
        let mut buf = buffers(b, &stream, &mut rng);
        for (ci, attn) in choices.iter().enumerate() {
            let ks = attn
                .backward
                .kernels_for(KernelDtype::Bf16, b.head_dim)
                .unwrap();
            let fwd_ms = time(&stream, || forward(attn, &stream, &mut buf));
            let bwd_ms = time(&stream, || backward(attn, &stream, &mut buf));
            let both_ms = time(&stream, || {
                forward(attn, &stream, &mut buf);
                backward(attn, &stream, &mut buf);
            });
            let pairs = buf
                .plan
                .mask(tile_shape(ks.dq.tile.unwrap()))
                .unwrap()
                .stats()
                .visible_pairs;
            let unit = pairs as f64 * Q_HEADS as f64 * b.head_dim as f64 / 1e12;
            let tf = |factor: f64, ms: f64| factor * unit / (ms * 1e-3);
            let rows = buf.shape.rows;
            let line = format!(
                "{},{},{rows},{Q_HEADS},{KV_HEADS},{},bf16,{},{},{pairs},{fwd_ms:.4},{bwd_ms:.4},{both_ms:.4},{:.1},{:.1},{:.1}",
                b.kind,
                b.n,
                b.head_dim,
                ks.dkv.name,
                ks.dq.name,
                tf(4.0, fwd_ms),
                tf(10.0, bwd_ms),
                tf(14.0, both_ms)
            );
            println!("{line}");
            csv.push_str(&line);
            csv.push('\n');
            if ci > 0 {
                continue;
            }
            let _ = write!(
                cases,
                "{}  {{\"kind\": \"{}\", \"n\": {}, \"rows\": {rows}, \"q_heads\": {Q_HEADS}, \"kv_heads\": {KV_HEADS}, \"head_dim\": {}, \"prompt\": {}, \"completions\": {:?}, \"ours_ms\": {both_ms:.4}, \"ours_tflops\": {:.2}, \"ours_fwd_ms\": {fwd_ms:.4}, \"ours_bwd_ms\": {bwd_ms:.4}, \"visible_pairs\": {pairs}}}",
                if bi == 0 { "" } else { ",\n" },
                b.kind,
                b.n,
                b.head_dim,
                b.prompt,
                b.completions,
                tf(14.0, both_ms)
            );
        }
    }
    cases.push_str("\n]\n");
    std::fs::write(out_dir.join("backward_bench.csv"), csv).unwrap();
    std::fs::write(out_dir.join("cases_fwd_bwd.json"), cases).unwrap();
}
