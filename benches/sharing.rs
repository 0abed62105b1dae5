//! `cargo bench --bench sharing`: does prefix sharing pay, at these prompt and completion
//! lengths? The seed paper's microbenchmarks (arXiv 2410.20305), on this crate's own code:
//!
//! - ops: the MLP layer (SwiGLU), the attention op (forward; forward + backward), the attention
//!   layer (QKV projection, rotary embedding with the layout's position ids, attention, output
//!   projection);
//! - each in the paired format (every completion with its own copy of the prompt, causal: the
//!   dense baseline) and the prefix-shared format, over prefix lengths x prefix/completion
//!   ratios (DPO pairs), groups of k = 2, 4, 8 completions and packed rows;
//! - the paper's Tables 1 and 2: training samples/s of one transformer block (forward and
//!   backward) on synthetic samples of six preference datasets, without and with packing
//!   (benches/sharing/datasets.rs);
//! - results: measured speedup of shared over paired, with its 95% interval, next to the ideal
//!   one (work paired / work shared), FLOP/s, charts (SVG) and tables (CSV, JSON, markdown) in
//!   `target/prefix-attn-bench/<mode>/` (benches/sharing/files.rs lists them).
//!
//! Timing (benches/sharing/measure.rs): both formats in interleaved rounds until the speedup's
//! interval is narrow or the point's budget is spent; a point that stays noisy, or that other
//! processes kept from the CPU, is flagged, never reported as a result. One console line per
//! point, then the tables; `PREFIX_ATTN_BENCH_VERBOSE=1` prints every round.
//!
//! GPU mode (device 0 opens, this build embeds the kernels and libcublas loads): Mistral-7B
//! sizes in bf16; our kernels and cuBLAS, timed with CUDA events. CPU mode otherwise: the
//! crate's CPU path (f32, multi-threaded, block-skipping) at reduced sizes, labelled CPU
//! everywhere. Environment variables choose sizes and sweep (benches/sharing/config.rs);
//! `PREFIX_ATTN_BENCH_QUICK=1` is the CI-sized run.

#[path = "sharing/allocator.rs"]
mod allocator;
#[path = "sharing/cases.rs"]
mod cases;
#[path = "sharing/chart.rs"]
mod chart;
#[path = "sharing/config.rs"]
mod config;
#[path = "sharing/cpu.rs"]
mod cpu;
#[path = "sharing/cpu_step.rs"]
mod cpu_step;
#[path = "sharing/dataset_report.rs"]
mod dataset_report;
#[path = "sharing/dataset_run.rs"]
mod dataset_run;
#[path = "sharing/datasets.rs"]
mod datasets;
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
#[path = "sharing/gpu_step.rs"]
mod gpu_step;
#[path = "sharing/measure.rs"]
mod measure;
#[path = "sharing/peers.rs"]
mod peers;
#[path = "sharing/report.rs"]
mod report;
#[path = "sharing/results.rs"]
mod results;
#[path = "sharing/stats.rs"]
mod stats;

use config::{Config, Mode};
use driver::Runner;

fn fail(msg: &str) -> ! {
    eprintln!("prefix-attn bench: {msg}");
    std::process::exit(2);
}

fn main() {
    // First, before the runs allocate anything they time.
    let allocator = allocator::pin();
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
    let mut cfg = Config::new(mode, &env).unwrap_or_else(|e| fail(&e));
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

    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) every point runs one
    // round of one call, to check the code, and nothing is written.
    let timing = std::env::args().any(|a| a == "--bench");
    if !timing {
        cfg.plan = measure::Plan {
            min_rounds: 1,
            max_rounds: 1,
            target: f64::INFINITY,
            budget: std::time::Duration::ZERO,
            min_sample: std::time::Duration::ZERO,
            max_wait: None,
        };
        cfg.data.samples = cfg.data.samples.min(4);
    }
    let peers = match &cfg.peers {
        None => Vec::new(),
        Some(path) => peers::load(path).unwrap_or_else(|e| {
            eprintln!("prefix-attn bench: peers not read ({e}); tables and charts without them");
            Vec::new()
        }),
    };
    let mut peak = cfg.bf16_peak_tflops;
    let gpu_dev;
    let cpu_dev;
    let (runner, device_name): (&dyn Runner, String) = match (mode, device) {
        (Mode::Gpu, Ok(dev)) => {
            let name = dev.name();
            peak = peak.or_else(|| gpu::bf16_peak_tflops(&name));
            println!(
                "prefix-attn bench: GPU mode on {name} - bf16, {}; CUDA-event timing",
                cfg.model.describe()
            );
            gpu_dev = dev;
            (&gpu_dev, name)
        }
        (_, why) => {
            let why = why.err().unwrap_or_default();
            let threads = prefix_attn::cpu::available_threads();
            println!(
                "prefix-attn bench: CPU mode (no GPU: {why}) - the crate's CPU path, f32, {threads} threads, {}; timings are this CPU's, not the kernels'",
                cfg.model.describe()
            );
            cpu_dev = cpu::Cpu::new(cfg.model).unwrap_or_else(|e| fail(&e));
            (&cpu_dev, format!("CPU ({threads} threads)"))
        }
    };
    let p = &cfg.plan;
    println!(
        "Each point: paired and shared timed in interleaved rounds of >= {} ms samples until the speedup's 95% interval is within ±{:.0}% (at least {} rounds, at most {:.0} s; dataset points 3x); {allocator}.",
        p.min_sample.as_millis(),
        100.0 * p.target,
        p.min_rounds,
        p.budget.as_secs_f64()
    );
    let results = if cfg.micro {
        driver::run(&cfg, &cfg.plan, &cases, runner)
    } else {
        Vec::new()
    };
    let data = if cfg.datasets {
        dataset_run::run(&cfg, runner)
    } else {
        Vec::new()
    };

    let mut tables = dataset_report::tables(&cfg, &data);
    tables.extend(report::op_tables(&cfg, &results, peak));
    tables.extend(report::peer_tables(&results, &peers));
    let mut notes = report::target_lines(&cfg, &results);
    notes.extend(report::above_ideal_note(cfg.mode, &results));
    let flagged: Vec<String> = results
        .iter()
        .filter(|r| r.verdict().is_some_and(|v| v.flagged()))
        .map(|r| format!("{} {}", r.op.name(), r.point.id()))
        .chain(
            data.iter()
                .filter(|r| r.outcome.as_ref().is_ok_and(|o| o.verdict.flagged()))
                .map(|r| format!("step {}", r.id())),
        )
        .collect();
    let total = results.iter().filter(|r| r.timed().is_some()).count()
        + data.iter().filter(|r| r.outcome.is_ok()).count();
    if !flagged.is_empty() {
        let which = if flagged.len() == total {
            "all of them".to_string()
        } else {
            flagged.join(", ")
        };
        notes.push(format!(
            "{} of {total} point(s) flagged (noisy or busy, not results): {which}. Rerun on an idle machine, or with a larger PREFIX_ATTN_BENCH_BUDGET_S.",
            flagged.len(),
        ));
    }
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
        println!(
            "prefix-attn bench: test mode (no --bench): every point ran once; no results written"
        );
        return;
    }
    let info = files::RunInfo {
        device: device_name,
        date: date::today_utc(),
    };
    match files::write_all(&cfg.out_dir, &cfg, &info, &results, &data, &peers, &md) {
        Ok(written) => println!(
            "\nResults and charts ({label}) written to {}: {}",
            cfg.out_dir.display(),
            written.join(", ")
        ),
        Err(e) => fail(&format!("writing results: {e}")),
    }
}
