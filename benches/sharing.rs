//! `cargo bench --bench sharing`: does prefix sharing pay, at these prompt and completion
//! lengths? The seed paper's microbenchmarks (arXiv 2410.20305), on this crate's own code:
//!
//! - ops: the MLP layer (SwiGLU), the attention op (forward; forward + backward), the attention
//!   layer (QKV projection, rotary embedding with the layout's position ids, attention, output
//!   projection);
//! - each in the paired format (every completion with its own copy of the prompt, causal: the
//!   dense baseline) and the prefix-shared format, over prefix lengths x prefix/completion
//!   ratios (DPO pairs), groups of k = 2, 4, 8 completions and packed rows;
//! - results: measured speedup of shared over paired next to the ideal one (work paired / work
//!   shared), TFLOP/s, charts (SVG) and tables (CSV, JSON, markdown) in
//!   `target/prefix-attn-bench/<mode>/` (benches/sharing/files.rs lists them).
//!
//! GPU mode (device 0 opens, this build embeds the kernels and libcublas loads): Mistral-7B
//! sizes in bf16; our kernels and cuBLAS, timed with CUDA events. CPU mode otherwise: the
//! crate's CPU path (f32, multi-threaded, block-skipping) at reduced sizes, labelled CPU
//! everywhere. Environment variables choose sizes and sweep (benches/sharing/config.rs);
//! `PREFIX_ATTN_BENCH_QUICK=1` is the CI-sized run.

#[path = "sharing/cases.rs"]
mod cases;
#[path = "sharing/chart.rs"]
mod chart;
#[path = "sharing/config.rs"]
mod config;
#[path = "sharing/cpu.rs"]
mod cpu;
#[path = "sharing/date.rs"]
mod date;
#[path = "sharing/driver.rs"]
mod driver;
#[path = "sharing/files.rs"]
mod files;
#[path = "sharing/gpu.rs"]
mod gpu;
#[path = "sharing/gpu_peak.rs"]
mod gpu_peak;
#[path = "sharing/peers.rs"]
mod peers;
#[path = "sharing/report.rs"]
mod report;
#[path = "sharing/results.rs"]
mod results;

use std::time::Duration;

use criterion::Criterion;

use config::{Config, Mode};
use results::Results;

fn fail(msg: &str) -> ! {
    eprintln!("prefix-attn bench: {msg}");
    std::process::exit(2);
}

fn main() {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let forced_cpu = matches!(
        env("PREFIX_ATTN_BENCH_CPU").as_deref(),
        Some("1" | "true" | "yes")
    );
    let cases_only = matches!(
        env("PREFIX_ATTN_BENCH_CASES_ONLY").as_deref(),
        Some("1" | "true" | "yes")
    );
    // Cases only needs no device: the GPU sweep's problems are host data.
    let (mode, device) = if forced_cpu {
        (Mode::Cpu, Err("PREFIX_ATTN_BENCH_CPU is set".to_string()))
    } else if cases_only {
        (Mode::Gpu, Err("cases only".to_string()))
    } else {
        let model = Config::new(Mode::Gpu, &env)
            .map(|c| c.model)
            .unwrap_or(config::MISTRAL_7B);
        match gpu::Gpu::open(model) {
            Ok(d) => (Mode::Gpu, Ok(d)),
            Err(why) => (Mode::Cpu, Err(why)),
        }
    };
    // scripts/gpucheck/run.sh sets this: there, falling back to CPU mode is a failure.
    if mode == Mode::Cpu && env("PREFIX_ATTN_REQUIRE_GPU").as_deref() == Some("1") {
        let why = device.as_ref().err().cloned().unwrap_or_default();
        fail(&format!(
            "PREFIX_ATTN_REQUIRE_GPU=1 but GPU mode is impossible: {why}"
        ));
    }
    let cfg = Config::new(mode, &env).unwrap_or_else(|e| fail(&e));
    let cases: Vec<_> = cases::points(&cfg)
        .into_iter()
        .map(|p| {
            let (s, q) = p.build(cfg.tokens).unwrap_or_else(|e| fail(&e));
            (p, s, q)
        })
        .collect();
    if cfg.cases_only {
        std::fs::create_dir_all(&cfg.out_dir).unwrap_or_else(|e| fail(&e.to_string()));
        let path = cfg.out_dir.join("cases.json");
        std::fs::write(&path, files::cases_json(&cfg, &cases))
            .unwrap_or_else(|e| fail(&e.to_string()));
        println!(
            "prefix-attn bench: {} cases written to {}",
            cases.len(),
            path.display()
        );
        return;
    }

    // Criterion runs each benchmark once, untimed, unless the binary gets `--bench` (what
    // `cargo bench` passes): such a run checks the code, and writes no results.
    let timing = std::env::args().any(|a| a == "--bench");
    let results = Results::default();
    let device_name;
    let mut c = match mode {
        Mode::Gpu => Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(700))
            .nresamples(2000),
        // Milliseconds per call at these sizes; about 0.6 s per benchmark.
        Mode::Cpu => Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .nresamples(2000),
    }
    .configure_from_args();
    let peers = match &cfg.peers {
        None => Vec::new(),
        Some(path) => peers::load(path).unwrap_or_else(|e| {
            eprintln!("prefix-attn bench: peers not read ({e}); tables and charts without them");
            Vec::new()
        }),
    };
    let mut peak = cfg.bf16_peak_tflops;
    match (mode, device) {
        (Mode::Gpu, Ok(dev)) => {
            device_name = dev.name();
            peak = peak.or_else(|| gpu::bf16_peak_tflops(&device_name));
            println!(
                "prefix-attn bench: GPU mode on {device_name} - bf16, {}; criterion's elem/s = FLOP/s",
                cfg.model.describe()
            );
            driver::run(&mut c, &cfg, &cases, &dev, &results);
        }
        (_, why) => {
            let why = why.err().unwrap_or_default();
            let threads = prefix_attn::cpu::available_threads();
            device_name = format!("CPU ({threads} threads)");
            println!(
                "prefix-attn bench: CPU mode (no GPU: {why}) - the crate's CPU path, f32, {threads} threads, {}; timings are this CPU's, not the kernels'; criterion's elem/s = FLOP/s",
                cfg.model.describe()
            );
            let cpu = cpu::Cpu::new(cfg.model).unwrap_or_else(|e| fail(&e));
            driver::run(&mut c, &cfg, &cases, &cpu, &results);
        }
    }
    c.final_summary();

    let entries = results.entries();
    let speedups = results.speedups();
    let mut tables = report::op_tables(&cfg, &entries, &speedups, peak);
    tables.extend(report::peer_tables(&speedups, &peers));
    let mut notes = report::target_lines(&cfg, &speedups);
    notes.extend(report::above_ideal_note(cfg.mode, &speedups));
    let label = match cfg.mode {
        Mode::Cpu => "CPU mode: the crate's CPU path (f32), not the GPU kernels",
        Mode::Gpu => "GPU mode",
    };
    let mut md = format!(
        "# prefix-attn bench: {label}\n\n{} - {}\n\n",
        device_name,
        cfg.model.describe()
    );
    for t in &tables {
        print!("{}", t.console());
        md += &t.markdown();
    }
    println!();
    for n in &notes {
        println!("{n}");
        md += &format!("{n}\n\n");
    }
    if !timing {
        println!("prefix-attn bench: test mode (no --bench): every benchmark ran once; no results written");
        return;
    }
    let info = files::RunInfo {
        device: device_name,
        date: date::today_utc(),
    };
    match files::write_all(&cfg.out_dir, &cfg, &info, &entries, &speedups, &peers, &md) {
        Ok(written) => println!(
            "\nResults and charts ({label}) written to {}: {}",
            cfg.out_dir.display(),
            written.join(", ")
        ),
        Err(e) => fail(&format!("writing results: {e}")),
    }
}
