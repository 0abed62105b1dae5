//! Host plan building against tokens (issue 18): `Plan::new` (every pick's tile shape, five
//! today) and a plan for one device's kernels (`Plan::with_tiles` at `default_tiles`: the sm80
//! kernels' three shapes), from 16k to 1M tokens, on three layouts:
//!
//! - causal: one row of n tokens;
//! - packed documents: one row of n tokens packed with documents of 256 to 4096 tokens (seeded);
//! - DPO batches: samples of a prompt of 512 to 2048 tokens and two completions of 64 to 512
//!   (seeded) packed into rows of 16k by `Batch::shared`; 8 to 512 samples (256 samples: 30 rows,
//!   the batch).
//!
//! For each: the time (median and minimum wall clock of 7 builds after a warm-up, and the median
//! CPU time of the process over a build: every thread's work, which a plan of 16k tokens or more
//! spreads over the cores, so it is above the wall time on an idle machine and a measure of the
//! work on a busy one), the bytes of the block lists and of a whole upload (`Plan::upload_bytes`:
//! lists and `vis_end`). The heap peak of building the 1M-token causal plan is measured by a
//! counting allocator. Then the targets (times on the median wall time; linear growth on
//! the CPU time per token, the work, which does not depend on how many threads shared it), and
//! the machine's load (`/proc/loadavg`, before and after).
//!
//! Output: the table on stdout and in `<target>/prefix-attn-bench/plan_build/summary.md`, and the
//! chart `plan_build.svg` (time and bytes against tokens, log-log, with a linear reference) next to
//! it. `PREFIX_ATTN_BENCH_QUICK=1` stops at 64k tokens (CI-sized).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use prefix_attn::attention::configs::default_tiles;
use prefix_attn::batch::{Batch, BatchOptions, Sample};
use prefix_attn::layout::RowBuilder;
use prefix_attn::mask::VisEnd;
use prefix_attn::plan::Plan;
use prefix_attn::registry::Arch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Counts live heap bytes and their peak (for the 1M-token plan's memory).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a block this allocator returned, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: a block this allocator returned, with its layout, and the caller's new size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time of the process, every thread (Linux: CLOCK_PROCESS_CPUTIME_ID); None elsewhere.
fn process_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut t = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out pointer; the clock id is Linux's.
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) } == 0 {
            return Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
        }
    }
    None
}

const REPS: usize = 7;
const ROW: usize = 16 * 1024;

/// Times of REPS builds after one warm-up, in ms: (median wall, minimum wall, median CPU).
fn time(vis_end: &VisEnd, build: impl Fn(VisEnd) -> Plan) -> (f64, f64, f64, Plan) {
    let mut plan = build(vis_end.clone());
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let input = vis_end.clone();
        let (c0, t0) = (process_cpu(), Instant::now());
        plan = build(input);
        let w = t0.elapsed();
        let c = process_cpu().zip(c0).map(|(b, a)| b - a).unwrap_or(w);
        wall.push(w.as_secs_f64() * 1e3);
        cpu.push(c.as_secs_f64() * 1e3);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let min = wall.iter().copied().fold(f64::MAX, f64::min);
    (med(&mut wall), min, med(&mut cpu), plan)
}

fn causal(n: usize) -> VisEnd {
    VisEnd::new(n, vec![n as i32; n]).expect("a causal row")
}

fn packed(n: usize, seed: u64) -> VisEnd {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut row = RowBuilder::new();
    loop {
        let d = rng.random_range(256..=4096);
        if row.len() + d > n {
            break;
        }
        row.document(d).expect("a document");
    }
    VisEnd::new(n, row.finish(n).expect("a row").vis_end().to_vec()).expect("a packed row")
}

/// `samples` DPO samples packed into rows of 16k tokens.
fn dpo(samples: usize, seed: u64) -> VisEnd {
    let mut rng = StdRng::seed_from_u64(seed);
    let tokens = |len: usize| vec![1u32; len];
    let batch: Vec<Sample> = (0..samples)
        .map(|_| {
            let p = rng.random_range(512..=2048);
            let (a, b) = (rng.random_range(64..=512), rng.random_range(64..=512));
            Sample::completions(tokens(p), vec![tokens(a), tokens(b)])
        })
        .collect();
    Batch::shared(&batch, &BatchOptions::new(ROW))
        .expect("a DPO batch")
        .vis_end()
        .clone()
}

struct Point {
    layout: &'static str,
    rows: usize,
    tokens: usize,
    /// Plan::new: median wall, minimum wall, median CPU (ms), list bytes, upload bytes.
    new: (f64, f64, f64),
    new_lists: usize,
    new_upload: usize,
    /// The sm80 device's plan: median wall (ms), list bytes.
    device_wall: f64,
    device_lists: usize,
}

fn measure(layout: &'static str, vis_end: VisEnd) -> Point {
    let (w, wmin, c, plan) = time(&vis_end, |v| Plan::new(v).expect("Plan::new"));
    let vis_bytes = 4 * vis_end.as_slice().len();
    let sm80 = default_tiles(Arch::Sm80, |_| true).expect("the sm80 picks");
    let (dw, _, _, dplan) = time(&vis_end, |v| {
        Plan::with_tiles(v, &sm80).expect("a device plan")
    });
    let p = Point {
        layout,
        rows: vis_end.rows(),
        tokens: vis_end.as_slice().len(),
        new: (w, wmin, c),
        new_lists: plan.upload_bytes() - vis_bytes,
        new_upload: plan.upload_bytes(),
        device_wall: dw,
        device_lists: dplan.upload_bytes() - vis_bytes,
    };
    eprintln!(
        "{layout:>8} {:>8} tokens: Plan::new {:.3} ms (CPU {:.3}), lists {} B",
        p.tokens, w, c, p.new_lists
    );
    p
}

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("prefix-attn-bench").join("plan_build")
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn table(points: &[Point]) -> String {
    let mut s = String::from(
        "| layout | rows | tokens | Plan::new median ms (wall) | min ms (wall) | median ms (CPU) | \
         lists | upload | sm80 device plan ms (wall) | its lists | wall ns / token | list bytes / token |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in points {
        writeln!(
            s,
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} MiB | {:.3} MiB | {:.3} | {:.3} MiB | {:.2} | {:.3} |",
            p.layout,
            p.rows,
            p.tokens,
            p.new.0,
            p.new.1,
            p.new.2,
            mib(p.new_lists),
            mib(p.new_upload),
            p.device_wall,
            mib(p.device_lists),
            p.new.0 * 1e6 / p.tokens as f64,
            p.new_lists as f64 / p.tokens as f64
        )
        .unwrap();
    }
    s
}

fn chart(points: &[Point], path: &std::path::Path) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, 2));
    let layouts = ["causal", "packed", "dpo"];
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    let x_lo = points.iter().map(|p| p.tokens).min().unwrap_or(1) as f64 / 1.3;
    let x_hi = points.iter().map(|p| p.tokens).max().unwrap_or(2) as f64 * 1.3;
    type Get = fn(&Point) -> f64;
    let specs: [(&str, &str, Get); 2] = [
        (
            "Plan::new CPU time, all threads (ms, median of 7)",
            "ms",
            |p| p.new.2,
        ),
        ("Plan::new block-list bytes", "MiB", |p| mib(p.new_lists)),
    ];
    for (panel, (title, unit, get)) in panels.iter().zip(specs) {
        let ys: Vec<f64> = points.iter().map(get).collect();
        let y_lo = ys.iter().copied().fold(f64::MAX, f64::min) / 2.0;
        let y_hi = ys.iter().copied().fold(f64::MIN, f64::max) * 2.0;
        let mut c = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (x_lo..x_hi)
                    .log_scale()
                    .with_key_points(vec![16384.0, 65536.0, 262144.0, 1048576.0]),
                (y_lo..y_hi).log_scale(),
            )
            .map_err(|x| e(&x))?;
        c.configure_mesh()
            .x_desc("tokens (rows x n)")
            .y_desc(unit)
            .x_label_formatter(&|x| {
                // Tokens in binary units: the sizes are powers of two (16k = 16384).
                if *x >= 1048576.0 {
                    format!("{:.1}M", x / 1048576.0)
                } else {
                    format!("{:.0}k", x / 1024.0)
                }
            })
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(|x| e(&x))?;
        for (i, layout) in layouts.iter().enumerate() {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.layout == *layout)
                .map(|p| (p.tokens as f64, get(p)))
                .collect();
            let Some(&(x0, y0)) = pts.first() else {
                continue;
            };
            let col = colors[i];
            c.draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(*layout)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .map_err(|x| e(&x))?;
            // Linear in tokens from the smallest point: what "grows with tokens" looks like.
            let x1 = pts.last().map_or(x0, |p| p.0);
            c.draw_series(DashedLineSeries::new(
                [(x0, y0), (x1, y0 * x1 / x0)],
                6,
                4,
                col.mix(0.6).stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}

fn main() {
    // cargo bench passes --bench; nothing to parse.
    let quick = std::env::var_os("PREFIX_ATTN_BENCH_QUICK").is_some();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into());
    let max_tokens = if quick { 64 * 1024 } else { 1024 * 1024 };
    let sizes: Vec<usize> = (0..)
        .map(|i| ROW << i)
        .take_while(|&t| t <= max_tokens)
        .collect();

    // The 1M-token causal plan's heap peak first, with nothing else alive but its input.
    let peak = (!quick).then(|| {
        let vis = causal(1 << 20);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let plan = Plan::new(vis).expect("Plan::new");
        let peak = PEAK.load(Ordering::Relaxed);
        let held = LIVE.load(Ordering::Relaxed);
        drop(plan);
        (before, peak, held)
    });

    let mut points = Vec::new();
    for &n in &sizes {
        points.push(measure("causal", causal(n)));
    }
    for &n in &sizes {
        points.push(measure("packed", packed(n, n as u64)));
    }
    for samples in [8usize, 16, 32, 64, 128, 256, 512] {
        let vis = dpo(samples, 256);
        if vis.as_slice().len() > max_tokens {
            break;
        }
        let mut p = measure("dpo", vis);
        p.layout = "dpo";
        eprintln!("  ({samples} DPO samples)");
        points.push(p);
    }

    let mut md = String::from("# Plan building against tokens (benches/plan_build.rs)\n\n");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into());
    writeln!(
        md,
        "Machine load (/proc/loadavg) before: {}; after: {}; {} CPUs. Times are medians of \
         {REPS} builds after a warm-up; CPU time is the process's over a build (every thread).\n",
        load_before.trim(),
        load.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
    .unwrap();
    md.push_str(&table(&points));

    md.push_str(
        "\n## Targets (issue 18; times on the median wall time, growth on the CPU time)\n\n",
    );
    let find = |layout: &str, tokens: usize| {
        points
            .iter()
            .filter(|p| p.layout == layout)
            .min_by_key(|p| p.tokens.abs_diff(tokens))
    };
    let mut check = |what: String, ok: bool| {
        writeln!(md, "- [{}] {what}", if ok { "x" } else { " " }).unwrap();
    };
    if let Some(p) = find("causal", 256 * 1024).filter(|p| p.tokens == 256 * 1024) {
        check(
            format!(
                "256k-token causal row: Plan::new {:.3} ms (min {:.3}, CPU {:.3}) <= 2 ms, lists {:.3} MiB <= 1 MB",
                p.new.0,
                p.new.1,
                p.new.2,
                mib(p.new_lists)
            ),
            p.new.0 <= 2.0 && p.new_lists <= 1_000_000,
        );
    }
    if let Some(p) = points.iter().find(|p| p.layout == "dpo" && p.rows == 30) {
        check(
            format!(
                "256 DPO samples ({} rows x 16k): Plan::new {:.3} ms (min {:.3}, CPU {:.3}) <= 2 ms",
                p.rows, p.new.0, p.new.1, p.new.2
            ),
            p.new.0 <= 2.0,
        );
    }
    if let (Some(p), Some((before, peak, held))) = (
        find("causal", 1 << 20).filter(|p| p.tokens == 1 << 20),
        peak,
    ) {
        check(
            format!(
                "1M-token causal row: Plan::new {:.3} ms (min {:.3}, CPU {:.3}) <= 10 ms; heap peak \
                 {:.2} MiB < 100 MB ({:.2} MiB before: the row's vis_end; the plan keeps {:.2} MiB)",
                p.new.0,
                p.new.1,
                p.new.2,
                mib(peak),
                mib(before),
                mib(held)
            ),
            p.new.0 <= 10.0 && peak < 100_000_000,
        );
    }
    for layout in ["causal", "packed", "dpo"] {
        let ps: Vec<&Point> = points.iter().filter(|p| p.layout == layout).collect();
        if ps.len() < 2 {
            continue;
        }
        let per = |f: &dyn Fn(&Point) -> f64| {
            let v: Vec<f64> = ps.iter().map(|p| f(p) / p.tokens as f64).collect();
            v.iter().copied().fold(f64::MIN, f64::max) / v.iter().copied().fold(f64::MAX, f64::min)
        };
        let (t, b) = (per(&|p| p.new.2), per(&|p| p.new_lists as f64));
        check(
            format!(
                "{layout}: linear from {} to {} tokens: CPU time per token varies {t:.2}x, list \
                 bytes per token {b:.2}x (a quadratic plan would grow {:.0}x)",
                ps[0].tokens,
                ps[ps.len() - 1].tokens,
                ps[ps.len() - 1].tokens as f64 / ps[0].tokens as f64
            ),
            t <= 2.0 && b <= 1.25,
        );
    }

    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("results folder");
    std::fs::write(dir.join("summary.md"), &md).expect("summary.md");
    let svg = dir.join("plan_build.svg");
    if let Err(e) = chart(&points, &svg) {
        eprintln!("chart: {e}");
    }
    println!("{md}");
    println!("results: {}", dir.display());
}
