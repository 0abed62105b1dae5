//! Forward throughput on a device: causal rows and prefix-shared rows (prompt + k completions) at
//! a few lengths, timed with CUDA events. Writes `forward_bench.csv` and `cases.json` (the same
//! problems, for scripts/gpucheck/peers.py to time PyTorch SDPA and FlexAttention on) into the
//! directory given as the first argument (default: the current directory).
//!
//! TFLOP/s counts the visible (query, key) pairs only (4 * pairs * heads * head_dim), the
//! FlashAttention convention applied to the mask actually used.
//!
//! `cargo run --release --example forward_bench -- OUT_DIR` (exits 0 with a message without a
//! device).

use std::fmt::Write as _;
use std::path::PathBuf;

use cudarc::driver::sys::CUevent_flags;
use half::bf16;
use prefix_attn::attention::{DeviceTensors, Forward, View};
use prefix_attn::cuda::Gpu;
use prefix_attn::plan::Plan;
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "forward_bench/cases.rs"]
mod cases;

use cases::{benches, KV_HEADS, Q_HEADS};

const WARMUP: usize = 3;
const ITERS: usize = 20;

fn main() {
    let out_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out_dir).expect("create output dir");
    let gpu = match Gpu::new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("forward_bench: skipped, no device: {e}");
            // scripts/gpucheck/run.sh sets this: there, no device is a failure.
            if std::env::var("PREFIX_ATTN_REQUIRE_GPU").as_deref() == Ok("1") {
                std::process::exit(1);
            }
            return;
        }
    };
    let fwd = Forward::new(&gpu).expect("forward kernels");
    let stream = gpu.default_stream();
    let mut csv = String::from(
        "kind,n,rows,q_heads,kv_heads,head_dim,dtype,visible_pairs,ms,tflops,tile_density\n",
    );
    let mut cases = String::from("[\n");
    let mut rng = StdRng::seed_from_u64(1);
    for (bi, b) in benches().iter().enumerate() {
        let rows = b.rows();
        let vis = b.vis_end();
        let shape = AttnShape {
            rows,
            n: b.n,
            q_heads: Q_HEADS,
            kv_heads: KV_HEADS,
            head_dim: b.head_dim,
        };
        let plan = Plan::on_device(vis, &stream).unwrap();
        let mut rand_vec = |len: usize| -> Vec<bf16> {
            (0..len)
                .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
                .collect()
        };
        let q = stream.clone_htod(&rand_vec(shape.q_len())).unwrap();
        let k = stream.clone_htod(&rand_vec(shape.kv_len())).unwrap();
        let v = stream.clone_htod(&rand_vec(shape.kv_len())).unwrap();
        let mut o = stream.alloc_zeros::<bf16>(shape.q_len()).unwrap();
        let mut lse = stream.alloc_zeros::<f32>(shape.lse_len()).unwrap();
        let scale = 1.0 / (b.head_dim as f32).sqrt();
        let launch = |o: &mut cudarc::driver::CudaSlice<bf16>,
                      lse: &mut cudarc::driver::CudaSlice<f32>| {
            fwd.run(
                &stream,
                &plan,
                &shape,
                DeviceTensors {
                    q: View::dense(q.as_view(), &shape, Q_HEADS),
                    k: View::dense(k.as_view(), &shape, KV_HEADS),
                    v: View::dense(v.as_view(), &shape, KV_HEADS),
                    o: View::dense(o.as_view_mut(), &shape, Q_HEADS),
                    lse: lse.as_view_mut(),
                },
                scale,
            )
            .unwrap()
        };
        for _ in 0..WARMUP {
            launch(&mut o, &mut lse);
        }
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        for _ in 0..ITERS {
            launch(&mut o, &mut lse);
        }
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        end.synchronize().unwrap();
        let ms = start.elapsed_ms(&end).unwrap() as f64 / ITERS as f64;
        let mask = plan.forward_mask();
        let flops = mask.forward_flops(Q_HEADS, b.head_dim);
        let tflops = flops / (ms * 1e-3) / 1e12;
        let st = mask.stats();
        let density = st.non_empty() as f64 / st.total() as f64;
        let line = format!(
            "{},{},{rows},{Q_HEADS},{KV_HEADS},{},bf16,{},{ms:.4},{tflops:.1},{density:.3}",
            b.kind, b.n, b.head_dim, st.visible_pairs
        );
        println!("{line}");
        csv.push_str(&line);
        csv.push('\n');
        let _ = write!(
            cases,
            "{}  {{\"kind\": \"{}\", \"n\": {}, \"rows\": {rows}, \"q_heads\": {Q_HEADS}, \"kv_heads\": {KV_HEADS}, \"head_dim\": {}, \"prompt\": {}, \"completions\": {:?}, \"ours_ms\": {ms:.4}, \"ours_tflops\": {tflops:.2}, \"visible_pairs\": {}}}",
            if bi == 0 { "" } else { ",\n" },
            b.kind,
            b.n,
            b.head_dim,
            b.prompt,
            b.completions,
            st.visible_pairs
        );
    }
    cases.push_str("\n]\n");
    std::fs::write(out_dir.join("forward_bench.csv"), csv).unwrap();
    std::fs::write(out_dir.join("cases.json"), cases).unwrap();
}
