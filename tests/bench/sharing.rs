//! `cargo bench --bench sharing` without running it: every problem of GPU mode's sweep and its
//! dataset batches are built and checked on the host (sizes within the kernels' and cuBLAS's
//! int32 indices, plans, launch preparation of the layer kernels); the statistic, the stopping
//! rule and the noisy/busy flags are checked on synthetic timings; the synthetic datasets are
//! checked against their published medians; and a small CPU-mode sweep goes through the whole
//! pipeline (the CPU runner and training step, tables, CSV, JSON, every SVG chart, peers) into a
//! temp folder.

#[allow(dead_code)]
#[path = "../../benches/sharing/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../../benches/sharing/chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "../../benches/sharing/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../benches/sharing/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../../benches/sharing/cpu_step.rs"]
mod cpu_step;
#[allow(dead_code)]
#[path = "../../benches/sharing/dataset_report.rs"]
mod dataset_report;
#[allow(dead_code)]
#[path = "../../benches/sharing/dataset_run.rs"]
mod dataset_run;
#[allow(dead_code)]
#[path = "../../benches/sharing/datasets.rs"]
mod datasets;
#[allow(dead_code)]
#[path = "../../benches/sharing/date.rs"]
mod date;
#[allow(dead_code)]
#[path = "../../benches/sharing/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../../benches/sharing/files.rs"]
mod files;
#[allow(dead_code)]
#[path = "../../benches/sharing/gpu_peak.rs"]
mod gpu_peak;
#[allow(dead_code)]
#[path = "../../benches/sharing/measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "../../benches/sharing/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../../benches/sharing/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../../benches/sharing/results.rs"]
mod results;
#[allow(dead_code)]
#[path = "../../benches/sharing/stats.rs"]
mod stats;

use std::collections::HashMap;
use std::time::Duration;

use cases::{Family, Op};
use config::{Config, Mode};
use prefix_attn::cpu::MatShape;
use prefix_attn::ops::rotary::{RotaryShape, TableAddrs};
use prefix_attn::ops::swiglu::SwigluShape;
use prefix_attn::ops::RawBuf;
use prefix_attn::plan::Plan;
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

/// A fake, 256-aligned device address range of `len` elements: the preparation only does
/// arithmetic on addresses.
fn fake(len: usize) -> RawBuf {
    RawBuf { addr: 1 << 20, len }
}

#[test]
fn gpu_mode_sweep_builds_on_the_host() {
    let cfg = Config::new(Mode::Gpu, &env_of(&[])).unwrap();
    let m = cfg.model;
    assert_eq!(
        (m.hidden, m.q_heads, m.kv_heads, m.head_dim, m.ffn),
        (4096, 32, 8, 128, 14336)
    );
    let points = cases::points(&cfg);
    // 6 prefixes x 6 ratios, k = 2, 4, 8, one packed point.
    assert_eq!(points.len(), 36 + 3 + 1);
    let mut largest = (0, None);
    for p in &points {
        let (shared, paired) = p.build(cfg.tokens).unwrap();
        assert_eq!(shared.rows(), paired.rows(), "{}", p.id());
        // No padding in either format: every token belongs to a sample.
        for prob in [&shared, &paired] {
            let v = prob.vis_end.as_slice();
            let n = prob.n();
            assert!(
                v.iter().enumerate().all(|(j, &e)| e as usize > j % n),
                "{}",
                p.id()
            );
            let shape = AttnShape {
                rows: prob.rows(),
                n,
                q_heads: m.q_heads,
                kv_heads: m.kv_heads,
                head_dim: m.head_dim,
            };
            shape.validate().unwrap();
            let t = prob.tokens();
            // cuBLAS takes int32 sizes; the layer kernels' launch preparation must accept the
            // problem (addresses are fake: only the arithmetic runs).
            for s in [
                MatShape {
                    m: t,
                    k: m.hidden,
                    n: 2 * m.ffn,
                },
                MatShape {
                    m: t,
                    k: m.ffn,
                    n: m.hidden,
                },
                MatShape {
                    m: t,
                    k: m.hidden,
                    n: (m.q_heads + 2 * m.kv_heads) * m.head_dim,
                },
            ] {
                assert!(
                    s.m <= i32::MAX as usize
                        && s.k <= i32::MAX as usize
                        && s.n <= i32::MAX as usize
                );
            }
            let gu = fake(t * 2 * m.ffn);
            let up = RawBuf {
                addr: gu.addr + 2 * m.ffn as u64,
                len: gu.len - m.ffn,
            };
            SwigluShape::fused(t, m.ffn)
                .prepare(gu, up, fake(t * m.ffn))
                .unwrap()
                .unwrap();
            // A small table with the right head dim stands for the real one (the bench sizes it to
            // the largest position id); the ids must fit the sample's length.
            let table = RotaryTable::new(m.head_dim, 2, DEFAULT_THETA).unwrap();
            let max = *prob.positions.iter().max().unwrap() as usize;
            assert!(max < p.prefix + p.completion, "{}", p.id());
            let width = (m.q_heads + 2 * m.kv_heads) * m.head_dim;
            let rot = RotaryShape {
                tokens: t,
                heads: m.q_heads + m.kv_heads,
                head_dim: m.head_dim,
                token_stride: width,
            };
            rot.prepare(
                fake(t * width),
                fake(t),
                TableAddrs::host(&table),
                RotaryDirection::Forward,
            )
            .unwrap()
            .unwrap();
            if t > largest.0 {
                largest = (t, Some(prob.vis_end.clone()));
            }
        }
        // The MLP's ideal is the token ratio, exactly 2 (P + C) / (P + 2 C) for DPO pairs.
        if p.family == Family::Ratio {
            let ideal = Op::Mlp.ideal(&shared, &paired, &m);
            let (pp, c) = (p.prefix as f64, p.completion as f64);
            assert!(
                (ideal - 2.0 * (pp + c) / (pp + 2.0 * c)).abs() < 1e-12,
                "{}",
                p.id()
            );
            assert!(Op::AttnFwd.ideal(&shared, &paired, &m) > 1.0);
        }
    }
    // The largest problem's plan (block lists at every picked forward tile) builds.
    let plan = Plan::new(largest.1.unwrap()).unwrap();
    for tile in plan.tiles() {
        let mask = plan.mask(tile).unwrap();
        assert!(mask.rows() * mask.q_tiles() * m.q_heads <= i32::MAX as usize);
    }
    assert_eq!(gpu_peak::bf16_peak_tflops("NVIDIA H200"), Some(989.0));
    assert_eq!(gpu_peak::bf16_peak_tflops("NVIDIA H100 PCIe"), Some(756.0));
    assert_eq!(gpu_peak::bf16_peak_tflops("Some future card"), None);
}

#[test]
fn config_reads_the_environment_and_names_bad_values() {
    let c = Config::new(
        Mode::Cpu,
        &env_of(&[
            ("PREFIX_ATTN_BENCH_QUICK", "1"),
            ("PREFIX_ATTN_BENCH_PREFIXES", "16, 48"),
            ("PREFIX_ATTN_BENCH_RATIOS", "0.5,3"),
            ("PREFIX_ATTN_BENCH_MODEL", "64,4,2,16,160"),
            ("PREFIX_ATTN_BENCH_OUT", "/x/y"),
        ]),
    )
    .unwrap();
    assert!(c.quick);
    assert_eq!(c.prefixes, [16, 48]);
    assert_eq!(c.ratios, [0.5, 3.0]);
    assert_eq!(c.model.ffn, 160);
    assert_eq!(c.out_dir, std::path::PathBuf::from("/x/y"));
    let d = Config::new(Mode::Cpu, &env_of(&[])).unwrap();
    assert!(
        d.out_dir.ends_with("prefix-attn-bench/cpu"),
        "{}",
        d.out_dir.display()
    );
    for (k, v) in [
        ("PREFIX_ATTN_BENCH_PREFIXES", "64,x"),
        ("PREFIX_ATTN_BENCH_RATIOS", "-1"),
        ("PREFIX_ATTN_BENCH_MODEL", "64,3,2,16,160"),
        ("PREFIX_ATTN_BENCH_MODEL", "64,4"),
        ("PREFIX_ATTN_BENCH_TOKENS", "0"),
        ("PREFIX_ATTN_BENCH_ONLY", "everything"),
        ("PREFIX_ATTN_BENCH_TARGET", "0"),
        ("PREFIX_ATTN_BENCH_BUDGET_S", "-2"),
        ("PREFIX_ATTN_BENCH_DATASET_SAMPLES", "0"),
    ] {
        let e = Config::new(Mode::Cpu, &env_of(&[(k, v)])).unwrap_err();
        assert!(!e.is_empty(), "{k}={v}");
    }
    let t = Config::new(
        Mode::Cpu,
        &env_of(&[
            ("PREFIX_ATTN_BENCH_TARGET", "0.02"),
            ("PREFIX_ATTN_BENCH_BUDGET_S", "1.5"),
            ("PREFIX_ATTN_BENCH_MAX_WAIT", "0.3"),
            ("PREFIX_ATTN_BENCH_ONLY", "datasets"),
            ("PREFIX_ATTN_BENCH_VERBOSE", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(t.plan.target, 0.02);
    assert_eq!(t.plan.budget, Duration::from_millis(1500));
    assert_eq!(t.plan.max_wait, Some(0.3));
    assert!(t.datasets && !t.micro && t.verbose);
    assert_eq!(d.plan.max_wait, Some(0.1), "CPU mode watches the run queue");
    let g = Config::new(Mode::Gpu, &env_of(&[])).unwrap();
    assert_eq!(
        g.plan.max_wait, None,
        "device time does not depend on the host's load"
    );
    assert_eq!(
        g.data.length_scale, 1.0,
        "GPU mode uses the published lengths"
    );
    assert_eq!(date::civil(0), (1970, 1, 1));
    assert_eq!(date::civil(20_819), (2027, 1, 1));
    assert_eq!(date::civil(19_782), (2024, 2, 29));
}

/// A timer that reports `per_call(round)` seconds per call without running anything.
fn fake_timer<'a>(mut per_call: impl FnMut() -> f64 + 'a) -> driver::Timed<'a> {
    Box::new(move |calls| Duration::from_secs_f64(per_call() * calls as f64))
}

fn plan(target: f64, max_wait: Option<f64>) -> measure::Plan {
    measure::Plan {
        min_rounds: 8,
        max_rounds: 60,
        target,
        budget: Duration::from_secs(5),
        min_sample: Duration::ZERO,
        max_wait,
    }
}

#[test]
fn the_median_interval_uses_binomial_order_statistics() {
    // Ranks from the Binomial(n, 1/2) distribution at 95% (standard sign-test tables).
    let want = [
        (5, None),
        (6, Some(1)),
        (8, Some(1)),
        (9, Some(2)),
        (12, Some(3)),
        (17, Some(5)),
        (20, Some(6)),
        (30, Some(10)),
    ];
    for (n, k) in want {
        assert_eq!(stats::lower_rank(n), k, "n = {n}");
    }
    let v: Vec<f64> = (1..=9).map(f64::from).rev().collect();
    let e = stats::estimate(&v).unwrap();
    assert_eq!((e.median, e.lo, e.hi, e.n), (5.0, 2.0, 8.0, 9));
    assert!((e.rel_half_width() - 0.6).abs() < 1e-12);
    let few = stats::estimate(&[1.0, 2.0]).unwrap();
    assert_eq!(few.median, 1.5);
    assert!(
        few.rel_half_width().is_infinite(),
        "no 95% interval from 2 values"
    );
    assert!(stats::estimate(&[]).is_none());
    // Large n stays finite (log-space binomial).
    assert!(stats::lower_rank(2000).unwrap() > 900);
}

#[test]
fn interleaved_timing_stops_when_narrow_and_flags_noise_and_contention() {
    let mut log = |_: usize, _: &measure::Round| {};
    // A steady 2x speedup: stops at the minimum number of rounds, not flagged.
    let o = measure::run(
        &plan(0.05, None),
        fake_timer(|| 2e-3),
        fake_timer(|| 1e-3),
        &mut log,
    );
    assert_eq!(o.verdict, measure::Verdict::Ok);
    assert_eq!(o.rounds.len(), 8);
    assert!((o.speedup.median - 2.0).abs() < 1e-9);
    assert!((o.paired_s.median - 2e-3).abs() < 1e-12);
    // Ratios spread over 0.5x..3x: the interval never narrows to ±5%, so the point runs to
    // max_rounds and is flagged noisy instead of reported.
    let mut i = 0u32;
    let o = measure::run(
        &plan(0.05, None),
        fake_timer(move || {
            i += 1;
            1e-3 * (0.5 + 2.5 * f64::from(i % 7) / 6.0)
        }),
        fake_timer(|| 1e-3),
        &mut log,
    );
    assert_eq!(o.verdict, measure::Verdict::Noisy);
    assert_eq!(o.rounds.len(), 60);
    assert!(o.speedup.rel_half_width() > 0.05);
    // Every round over the wait limit (a negative limit makes any wait count): busy, and the
    // statistic falls back to all rounds.
    let o = measure::run(
        &plan(0.05, Some(-1.0)),
        fake_timer(|| 3e-3),
        fake_timer(|| 1e-3),
        &mut log,
    );
    assert_eq!(o.verdict, measure::Verdict::Busy);
    assert_eq!(o.clean_rounds(), 0);
    assert!((o.speedup.median - 3.0).abs() < 1e-9);
    // Busy rounds are left out when enough clean ones remain.
    let r = |ratio: f64, busy: bool| measure::Round {
        paired: measure::Sample {
            per_call_s: ratio,
            wait: 0.0,
        },
        shared: measure::Sample {
            per_call_s: 1.0,
            wait: 0.0,
        },
        busy,
    };
    let mut rounds: Vec<_> = (0..8).map(|_| r(1.5, false)).collect();
    rounds.extend((0..5).map(|_| r(6.0, true)));
    let o = measure::summarise(&rounds, &plan(0.05, Some(0.1)));
    assert_eq!(o.verdict, measure::Verdict::Ok);
    assert_eq!(o.speedup.median, 1.5);
    assert_eq!(o.clean_rounds(), 8);
}

#[test]
fn synthetic_datasets_have_the_published_medians() {
    let setup = config::DataSetup {
        samples: 4001,
        length_scale: 1.0,
        batch: 8,
        pack_len: 8192,
        max_len: 8192,
    };
    for (i, p) in datasets::PROFILES.iter().enumerate() {
        let samples = datasets::draw(p, &setup, i as u64);
        let (len, ratio) = datasets::drawn_medians(&samples);
        assert!(
            (len / p.median_len - 1.0).abs() < 0.05,
            "{}: median length {len}",
            p.name
        );
        // Rounding to whole tokens moves short samples' ratios a little.
        assert!(
            (ratio / p.ratio - 1.0).abs() < 0.08,
            "{}: median ratio {ratio}",
            p.name
        );
        assert!(samples
            .iter()
            .all(|s| s.prompt > 0 && s.chosen > 0 && s.rejected > 0));
        // The paper's printed speedups are its samples/s ratios.
        for row in p.paper {
            assert!(
                (row.flex_shared / row.fa3 - row.over_fa3).abs() < 0.006,
                "{}",
                p.name
            );
            assert!(
                (row.flex_shared / row.flex - row.over_flex).abs() < 0.006,
                "{}",
                p.name
            );
        }
    }
    // Same seed, same samples.
    let p = &datasets::PROFILES[0];
    let small = config::DataSetup {
        samples: 12,
        ..setup
    };
    assert_eq!(datasets::draw(p, &small, 0), datasets::draw(p, &small, 0));
    // Both formats hold the same samples; shared has fewer tokens; packing leaves no padding.
    let samples = datasets::draw(p, &small, 0);
    for packed in [false, true] {
        let pb = datasets::batches(&samples, false, packed, &small).unwrap();
        let sb = datasets::batches(&samples, true, packed, &small).unwrap();
        let real_p = datasets::real_tokens(&samples, false);
        let real_s = datasets::real_tokens(&samples, true);
        assert!(real_s < real_p);
        if packed {
            assert_eq!(pb.tokens(), real_p);
            assert_eq!(sb.tokens(), real_s);
            assert!(pb.problems.iter().all(|q| q.n() <= small.pack_len));
        } else {
            assert!(pb.tokens() >= real_p && sb.tokens() >= real_s);
            assert_eq!(pb.problems.len(), 2, "12 samples in micro-batches of 8");
            assert_eq!(pb.rows(), 24, "two sequences per sample");
            assert_eq!(sb.rows(), 12, "one row per shared sample");
        }
        let m = config::MISTRAL_7B;
        assert!(pb.step_flops(&m) > sb.step_flops(&m));
    }
}

#[test]
fn gpu_mode_dataset_batches_build_on_the_host() {
    let cfg = Config::new(Mode::Gpu, &env_of(&[])).unwrap();
    let m = cfg.model;
    for (i, p) in datasets::PROFILES.iter().enumerate() {
        let samples = datasets::draw(p, &cfg.data, i as u64);
        for packed in [false, true] {
            for shared in [false, true] {
                let b = datasets::batches(&samples, shared, packed, &cfg.data).unwrap();
                assert_eq!(b.samples, cfg.data.samples);
                for q in &b.problems {
                    let t = q.tokens();
                    assert!(t * 2 * m.ffn <= i32::MAX as usize, "{}", p.name);
                    AttnShape {
                        rows: q.rows(),
                        n: q.n(),
                        q_heads: m.q_heads,
                        kv_heads: m.kv_heads,
                        head_dim: m.head_dim,
                    }
                    .validate()
                    .unwrap();
                }
            }
        }
    }
}

#[test]
fn quick_cpu_pipeline_writes_every_table_and_chart() {
    // Smaller than the bench's quick mode so that the test takes seconds.
    let mut cfg = Config::new(
        Mode::Cpu,
        &env_of(&[
            ("PREFIX_ATTN_BENCH_QUICK", "1"),
            ("PREFIX_ATTN_BENCH_PREFIXES", "16,32"),
            ("PREFIX_ATTN_BENCH_RATIOS", "0.5,4"),
            ("PREFIX_ATTN_BENCH_TOKENS", "96"),
            ("PREFIX_ATTN_BENCH_MODEL", "32,2,1,16,64"),
        ]),
    )
    .unwrap();
    cfg.plan = measure::Plan {
        min_rounds: 6,
        max_rounds: 6,
        target: 0.05,
        budget: Duration::from_secs(1),
        min_sample: Duration::ZERO,
        max_wait: Some(0.5),
    };
    cfg.data = config::DataSetup {
        samples: 6,
        length_scale: 0.05,
        batch: 2,
        pack_len: 128,
        max_len: 128,
    };
    let runner = cpu::Cpu::new(cfg.model).unwrap();
    let cases: Vec<_> = cases::points(&cfg)
        .into_iter()
        .map(|p| {
            let (s, q) = p.build(cfg.tokens).unwrap();
            (p, s, q)
        })
        .collect();
    let results = driver::run(&cfg, &cfg.plan, &cases, &runner);
    assert_eq!(results.len(), Op::ALL.len() * cases.len());
    assert!(results.iter().all(|r| r.timed().is_some()));
    let data = dataset_run::run(&cfg, &runner);
    assert_eq!(data.len(), 2 * datasets::PROFILES.len());
    assert!(data.iter().all(|r| r.outcome.is_ok() && r.ideal > 1.0));

    // Peers as peers_sweep.py writes them, with a failed measurement.
    let peers_csv = "peer,op,case,format,ms,note\n\
        sdpa_cudnn,attn_fwd,p16_r0.5,paired,0.50,\n\
        flex,attn_fwd,p16_r0.5,shared,0.45,\n\
        sdpa_flash,attn_fwd,p16_r0.5,paired,failed,OutOfMemoryError\n\
        sdpa_cudnn,attn_fwd,p32_r4,paired,0.40,kv heads repeated\n\
        flex,attn_fwd,p32_r4,shared,0.30,\n";
    let peers = peers::parse(peers_csv).unwrap();
    assert_eq!(peers.len(), 5);
    assert_eq!(peers[2].ms, None);
    assert!(
        peers::parse("peer,op\nx,y\n").is_err(),
        "missing columns are an error"
    );

    // A flagged point says so in its table row.
    let mut shown = results.clone();
    if let Ok(o) = &mut shown[0].outcome {
        o.verdict = measure::Verdict::Noisy;
    }
    let mut tables = dataset_report::tables(&cfg, &data);
    assert_eq!(tables.len(), 2);
    tables.extend(report::op_tables(&cfg, &shown, None));
    tables.extend(report::peer_tables(&shown, &peers));
    assert_eq!(tables.len(), 2 + Op::ALL.len() + 1);
    let md: String = tables.iter().map(report::Table::markdown).collect();
    assert!(md.contains("| p16_r0.5 |") && md.contains("Flex shared"));
    assert!(md.contains("Table 1 (CPU mode)") && md.contains("Table 2 (CPU mode)"));
    assert!(md.contains("| Capybara |") && md.contains("1.42x, 1.54x"));
    assert!(md.contains("NOISY"));
    for t in &tables {
        assert!(
            t.title.contains("CPU mode") || t.title.contains("peers"),
            "{}",
            t.title
        );
        assert!(!t.console().is_empty());
    }
    assert!(report::target_lines(&cfg, &results)[0].contains("GPU runs"));

    let dir = std::env::temp_dir().join(format!("prefix-attn-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let info = files::RunInfo {
        device: "CPU (test)".into(),
        date: date::today_utc(),
    };
    let written = files::write_all(&dir, &cfg, &info, &results, &data, &peers, &md).unwrap();
    for name in [
        "results.csv",
        "speedup.csv",
        "datasets.csv",
        "results.json",
        "summary.md",
        "mlp.svg",
        "attn_fwd.svg",
        "attn_fwd_bwd.svg",
        "layer.svg",
        "groups.svg",
        "datasets.svg",
        "peers_attn_fwd.svg",
    ] {
        assert!(
            written.iter().any(|w| w == name),
            "{name} not written: {written:?}"
        );
        assert!(dir.join(name).is_file(), "{name}");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("Table 1 (CPU mode)") && summary.contains("UltraFeedback"));
    // CSV: a header and one line per (op, case, format), every line with the header's fields.
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2 * results.len() + 1);
    let fields = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == fields));
    // JSON parses, and says the same as the CSVs: same statistic, same numbers.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["mode"], "cpu");
    assert_eq!(json["statistic"], stats::STATISTIC);
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), results.len());
    let rows = |name: &str| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.starts_with(&format!("# statistic: {}", stats::STATISTIC)));
        text.lines()
            .skip(2)
            .map(|l| l.split(',').map(String::from).collect())
            .collect()
    };
    let close = |a: &str, b: f64| (a.parse::<f64>().unwrap() - b).abs() <= 1e-6 * b.abs().max(1.0);
    let sp = rows("speedup.csv");
    assert_eq!(sp.len(), results.len());
    for (row, p) in sp.iter().zip(points) {
        assert_eq!(row[1], p["case"].as_str().unwrap());
        for (i, key) in [(8, "median"), (9, "lo"), (10, "hi")] {
            assert!(
                close(&row[i], p["speedup"][key].as_f64().unwrap()),
                "{row:?}"
            );
        }
        assert_eq!(row[16], p["verdict"].as_str().unwrap());
        let paired_ms = p["paired"]["ms"]["median"].as_f64().unwrap();
        assert!(paired_ms > 0.0);
    }
    let ds = rows("datasets.csv");
    let jd = json["datasets"].as_array().unwrap();
    assert_eq!(ds.len(), data.len());
    assert_eq!(jd.len(), data.len());
    for (row, d) in ds.iter().zip(jd) {
        assert_eq!(row[0], d["dataset"].as_str().unwrap());
        assert!(
            close(&row[13], d["speedup"]["median"].as_f64().unwrap()),
            "{row:?}"
        );
        assert!(close(&row[11], d["paired_samples_per_s"].as_f64().unwrap()));
    }
    // SVG: a whole document with lines, labelled as CPU mode, with the legend panel.
    for name in written.iter().filter(|n| n.ends_with(".svg")) {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(
            svg.contains("<polyline") || svg.contains("<path") || svg.contains("<line"),
            "{name}"
        );
        if !name.starts_with("peers") {
            assert!(svg.contains("CPU mode"), "{name} is not labelled CPU mode");
            assert!(
                svg.contains("95% confidence interval"),
                "{name}: no bar legend"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cpu_training_step_backward_matches_finite_differences() {
    // A tiny block on one shared DPO row: dx of the loss <d_y, y> against central differences
    // of the forward (summed in f64 over the f32 path).
    let m = config::Model {
        hidden: 8,
        q_heads: 2,
        kv_heads: 1,
        head_dim: 4,
        ffn: 16,
    };
    let block = cpu_step::Block::new(m);
    let s = datasets::Sample {
        prompt: 5,
        chosen: 3,
        rejected: 4,
    };
    let setup = config::DataSetup {
        samples: 1,
        length_scale: 1.0,
        batch: 1,
        pack_len: 64,
        max_len: 64,
    };
    let b = datasets::batches(&[s], true, false, &setup).unwrap();
    let p = &b.problems[0];
    let t = p.tokens();
    let x = cpu::random(t * m.hidden, 1);
    let d_y = cpu::random(t * m.hidden, 2);
    let (_, dx) = block.forward_backward(p, x.clone(), d_y.clone()).unwrap();
    let loss = |x: Vec<f32>| -> f64 {
        let (y, _) = block.forward_backward(p, x, d_y.clone()).unwrap();
        y.iter()
            .zip(&d_y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    };
    let eps = 1e-2f32;
    // One coordinate of every token (prompt and both completions). Differences stay below 3e-5
    // here; running the rotary forward instead of its inverse in the backward moves them to
    // 1.5e-3, which this bound catches.
    for i in (0..t).map(|tok| tok * m.hidden + tok % m.hidden) {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += eps;
        down[i] -= eps;
        let fd = (loss(up) - loss(down)) / (2.0 * f64::from(eps));
        let got = f64::from(dx[i]);
        assert!(
            (fd - got).abs() <= 1e-4 + 1e-3 * fd.abs(),
            "dx[{i}]: backward {got}, finite differences {fd}"
        );
    }
}

#[test]
fn chart_titles_wrap_to_fit() {
    let lines = chart::wrap(
        "attention layer (QKV, rotary, attention, output projection) - CPU mode",
        30,
    );
    assert!(
        lines.len() > 1 && lines.iter().all(|l| l.len() <= 30),
        "{lines:?}"
    );
    assert_eq!(
        lines.join(" "),
        "attention layer (QKV, rotary, attention, output projection) - CPU mode"
    );
}
