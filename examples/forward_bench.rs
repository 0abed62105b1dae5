//! Forward throughput on a device: causal rows and prefix-shared rows (prompt + k completions) at
//! a few lengths, timed with CUDA events (median of ITERS launches after WARMUP).
//!
//! - default: the kernels the default choice picks for this device (attention::configs). Writes
//!   `forward_bench.csv` and `cases.json` (the same problems, for scripts/gpucheck/peers.py to time
//!   PyTorch SDPA and FlexAttention on) into OUT_DIR.
//! - `--sweep`: every registered forward configuration this device runs, on every case. Writes
//!   `sweep.csv` and prints one table per (path, head dim): TFLOP/s per case and configuration,
//!   the evidence for the picks in src/attention/configs.rs.
//!
//! TFLOP/s counts the visible (query, key) pairs only (4 * pairs * heads * head_dim), the
//! FlashAttention convention applied to the mask actually used.
//!
//! `cargo run --release --example forward_bench -- OUT_DIR [--sweep]` (exits 0 with a message
//! without a device).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaStream;
use half::bf16;
use prefix_attn::attention::configs::{tile_shape, FORWARD_FAMILY};
use prefix_attn::attention::{DeviceTensors, Forward, KernelChoice, View};
use prefix_attn::cuda::Gpu;
use prefix_attn::mask::TileShape;
use prefix_attn::plan::Plan;
use prefix_attn::registry::{self, KernelDtype, KernelInfo};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "forward_bench/cases.rs"]
mod cases;

use cases::{benches, Bench, KV_HEADS, Q_HEADS};

const WARMUP: usize = 3;
const ITERS: usize = 21;

/// One case's device buffers.
struct Buffers {
    shape: AttnShape,
    plan: Plan,
    q: cudarc::driver::CudaSlice<bf16>,
    k: cudarc::driver::CudaSlice<bf16>,
    v: cudarc::driver::CudaSlice<bf16>,
    o: cudarc::driver::CudaSlice<bf16>,
    lse: cudarc::driver::CudaSlice<f32>,
    scale: f32,
}

fn buffers(
    b: &Bench,
    tiles: &[TileShape],
    stream: &std::sync::Arc<CudaStream>,
    rng: &mut StdRng,
) -> Buffers {
    let shape = AttnShape {
        rows: b.rows(),
        n: b.n,
        q_heads: Q_HEADS,
        kv_heads: KV_HEADS,
        head_dim: b.head_dim,
    };
    let mut plan = Plan::with_tiles(b.vis_end(), tiles).unwrap();
    plan.upload(stream).unwrap();
    let mut rand_vec = |len: usize| -> Vec<bf16> {
        (0..len)
            .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
            .collect()
    };
    Buffers {
        q: stream.clone_htod(&rand_vec(shape.q_len())).unwrap(),
        k: stream.clone_htod(&rand_vec(shape.kv_len())).unwrap(),
        v: stream.clone_htod(&rand_vec(shape.kv_len())).unwrap(),
        o: stream.alloc_zeros::<bf16>(shape.q_len()).unwrap(),
        lse: stream.alloc_zeros::<f32>(shape.lse_len()).unwrap(),
        scale: 1.0 / (b.head_dim as f32).sqrt(),
        shape,
        plan,
    }
}

/// Median milliseconds per forward of `fwd` on `buf`.
fn time(fwd: &Forward, stream: &std::sync::Arc<CudaStream>, buf: &mut Buffers) -> f64 {
    let launch = |buf: &mut Buffers| {
        let sh = buf.shape;
        fwd.run(
            stream,
            &buf.plan,
            &sh,
            DeviceTensors {
                q: View::dense(buf.q.as_view(), &sh, Q_HEADS),
                k: View::dense(buf.k.as_view(), &sh, KV_HEADS),
                v: View::dense(buf.v.as_view(), &sh, KV_HEADS),
                o: View::dense(buf.o.as_view_mut(), &sh, Q_HEADS),
                lse: buf.lse.as_view_mut(),
            },
            buf.scale,
        )
        .unwrap()
    };
    for _ in 0..WARMUP {
        launch(buf);
    }
    let mut ms = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        launch(buf);
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        end.synchronize().unwrap();
        ms.push(start.elapsed_ms(&end).unwrap() as f64);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[ms.len() / 2]
}

fn tflops(buf: &Buffers, kernel: &KernelInfo, ms: f64) -> f64 {
    let mask = buf
        .plan
        .mask(tile_shape(kernel.tile.expect("forward kernels have tiles")))
        .unwrap();
    mask.forward_flops(Q_HEADS, buf.shape.head_dim) / (ms * 1e-3) / 1e12
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out_dir = PathBuf::from(".");
    let mut sweep = false;
    for a in args.by_ref() {
        if a == "--sweep" {
            sweep = true;
        } else {
            out_dir = PathBuf::from(a);
        }
    }
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
    let stream = gpu.default_stream();
    if sweep {
        run_sweep(&gpu, &stream, &out_dir);
    } else {
        run_default(&gpu, &stream, &out_dir);
    }
}

fn run_default(gpu: &Gpu, stream: &std::sync::Arc<CudaStream>, out_dir: &std::path::Path) {
    let fwd = Forward::new(gpu).expect("forward kernels");
    let mut csv = String::from(
        "kind,n,rows,q_heads,kv_heads,head_dim,dtype,kernel,visible_pairs,ms,tflops,tile_density\n",
    );
    let mut cases = String::from("[\n");
    let mut rng = StdRng::seed_from_u64(1);
    for (bi, b) in benches().iter().enumerate() {
        let kernel = fwd.kernel_for(KernelDtype::Bf16, b.head_dim).unwrap();
        let tile = tile_shape(kernel.tile.unwrap());
        let mut buf = buffers(b, &[tile], stream, &mut rng);
        let ms = time(&fwd, stream, &mut buf);
        let tf = tflops(&buf, kernel, ms);
        let st = buf.plan.mask(tile).unwrap().stats();
        let density = st.non_empty() as f64 / st.total() as f64;
        let rows = buf.shape.rows;
        let line = format!(
            "{},{},{rows},{Q_HEADS},{KV_HEADS},{},bf16,{},{},{ms:.4},{tf:.1},{density:.3}",
            b.kind, b.n, b.head_dim, kernel.name, st.visible_pairs
        );
        println!("{line}");
        csv.push_str(&line);
        csv.push('\n');
        let _ = write!(
            cases,
            "{}  {{\"kind\": \"{}\", \"n\": {}, \"rows\": {rows}, \"q_heads\": {Q_HEADS}, \"kv_heads\": {KV_HEADS}, \"head_dim\": {}, \"prompt\": {}, \"completions\": {:?}, \"ours_ms\": {ms:.4}, \"ours_tflops\": {tf:.2}, \"visible_pairs\": {}}}",
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

fn run_sweep(gpu: &Gpu, stream: &std::sync::Arc<CudaStream>, out_dir: &std::path::Path) {
    let kernels: Vec<&KernelInfo> = registry::family(FORWARD_FAMILY)
        .filter(|k| k.dtype == KernelDtype::Bf16 && gpu.runs(k))
        .collect();
    let tiles: Vec<TileShape> = kernels
        .iter()
        .map(|k| tile_shape(k.tile.unwrap()))
        .collect();
    let mut csv = String::from("kind,n,head_dim,arch,tile,kernel,ms,tflops\n");
    // (arch, head dim) -> case label -> tile -> TFLOP/s
    let mut tables: BTreeMap<(String, u32), BTreeMap<String, BTreeMap<String, f64>>> =
        BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(1);
    for b in benches() {
        let mut buf = buffers(&b, &tiles, stream, &mut rng);
        for k in kernels.iter().filter(|k| k.head_dim as usize == b.head_dim) {
            let fwd = Forward::with_choice(gpu, KernelChoice::exactly(k.arch, k.tile.unwrap()))
                .expect("a kernel this device runs");
            let ms = time(&fwd, stream, &mut buf);
            let tf = tflops(&buf, k, ms);
            let tile = k.tile.unwrap().to_string();
            let line = format!(
                "{},{},{},{},{tile},{},{ms:.4},{tf:.1}",
                b.kind, b.n, b.head_dim, k.arch, k.name
            );
            println!("{line}");
            csv.push_str(&line);
            csv.push('\n');
            tables
                .entry((k.arch.to_string(), k.head_dim))
                .or_default()
                .entry(format!("{} n={}", b.kind, b.n))
                .or_default()
                .insert(tile, tf);
        }
    }
    std::fs::write(out_dir.join("sweep.csv"), &csv).unwrap();
    for ((arch, d), rows) in &tables {
        let tiles: Vec<&String> = rows
            .values()
            .flat_map(|r| r.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        println!("\nforward TFLOP/s, bf16, {arch}, head dim {d} ({Q_HEADS}/{KV_HEADS} heads)");
        print!("| case |");
        for t in &tiles {
            print!(" {t} |");
        }
        println!();
        println!("|---|{}", "---|".repeat(tiles.len()));
        for (case, r) in rows {
            print!("| {case} |");
            for t in &tiles {
                match r.get(*t) {
                    Some(v) => print!(" {v:.1} |"),
                    None => print!(" - |"),
                }
            }
            println!();
        }
    }
}
