//! `cargo bench --bench sharing` without running it: every problem of GPU mode's sweep is built
//! and checked on the host (sizes within the kernels' and cuBLAS's int32 indices, plans, launch
//! preparation of the layer kernels), and a small CPU-mode sweep goes through the whole
//! pipeline (the CPU runner, tables, CSV, JSON, every SVG chart, peers) into a temp folder.

#[allow(dead_code)]
#[path = "../benches/sharing/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../benches/sharing/chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "../benches/sharing/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../benches/sharing/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../benches/sharing/date.rs"]
mod date;
#[allow(dead_code)]
#[path = "../benches/sharing/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../benches/sharing/files.rs"]
mod files;
#[allow(dead_code)]
#[path = "../benches/sharing/gpu_peak.rs"]
mod gpu_peak;
#[allow(dead_code)]
#[path = "../benches/sharing/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../benches/sharing/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../benches/sharing/results.rs"]
mod results;

use std::collections::HashMap;

use cases::{Family, Format, Op};
use config::{Config, Mode};
use driver::Runner;
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
    ] {
        let e = Config::new(Mode::Cpu, &env_of(&[(k, v)])).unwrap_err();
        assert!(!e.is_empty(), "{k}={v}");
    }
    assert_eq!(date::civil(0), (1970, 1, 1));
    assert_eq!(date::civil(20_819), (2027, 1, 1));
    assert_eq!(date::civil(19_782), (2024, 2, 29));
}

#[test]
fn quick_cpu_pipeline_writes_every_table_and_chart() {
    // Smaller than the bench's quick mode so that the test takes well under a second of compute.
    let cfg = Config::new(
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
    let runner = cpu::Cpu::new(cfg.model).unwrap();
    let res = results::Results::default();
    let cases: Vec<_> = cases::points(&cfg)
        .into_iter()
        .map(|p| {
            let (s, q) = p.build(cfg.tokens).unwrap();
            (p, s, q)
        })
        .collect();
    for op in Op::ALL {
        for (p, s, q) in &cases {
            let ideal = op.ideal(s, q, &cfg.model);
            for (format, prob) in [(Format::Shared, s), (Format::Paired, q)] {
                let slot = res.add(op, p, format, prob, &cfg.model, ideal);
                let mut timed = runner.prepare(op, prob).unwrap();
                let t = timed(2);
                res.record(slot, 2, t);
            }
        }
    }
    let entries = res.entries();
    let speedups = res.speedups();
    assert_eq!(speedups.len(), Op::ALL.len() * cases.len());

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

    let mut tables = report::op_tables(&cfg, &entries, &speedups, None);
    tables.extend(report::peer_tables(&speedups, &peers));
    assert_eq!(tables.len(), Op::ALL.len() + 1);
    let md: String = tables.iter().map(report::Table::markdown).collect();
    assert!(md.contains("| p16_r0.5 |") && md.contains("Flex shared"));
    for t in &tables {
        assert!(!t.console().is_empty());
    }
    assert!(report::target_lines(&cfg, &speedups)[0].contains("GPU runs"));

    let dir = std::env::temp_dir().join(format!("prefix-attn-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let info = files::RunInfo {
        device: "CPU (test)".into(),
        date: date::today_utc(),
    };
    let written = files::write_all(&dir, &cfg, &info, &entries, &speedups, &peers, &md).unwrap();
    for name in [
        "results.csv",
        "speedup.csv",
        "results.json",
        "summary.md",
        "mlp.svg",
        "attn_fwd.svg",
        "attn_fwd_bwd.svg",
        "layer.svg",
        "groups.svg",
        "peers_attn_fwd.svg",
    ] {
        assert!(
            written.iter().any(|w| w == name),
            "{name} not written: {written:?}"
        );
        assert!(dir.join(name).is_file(), "{name}");
    }
    // CSV: a header and one line per entry, every line with the header's field count.
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), entries.len() + 1);
    let fields = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == fields));
    let sp = std::fs::read_to_string(dir.join("speedup.csv")).unwrap();
    assert_eq!(sp.lines().count(), speedups.len() + 1);
    // JSON parses and holds every entry.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["mode"], "cpu");
    assert_eq!(json["entries"].as_array().unwrap().len(), entries.len());
    assert!(json["entries"][0]["median_ms"].as_f64().unwrap() > 0.0);
    // SVG: a whole document with lines, labelled as CPU mode.
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
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
