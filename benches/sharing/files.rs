//! What a run leaves in its results folder (`target/prefix-attn-bench/<mode>/` by default):
//!
//! | file | content |
//! |---|---|
//! | `results.csv` | one line per (op, case, format): sizes, visible pairs, FLOPs, median ms and its interval, FLOP/s |
//! | `speedup.csv` | one line per (op, case): speedup with its interval, ideal, rounds, CPU wait, verdict |
//! | `datasets.csv` | one line per (dataset, packing): samples/s of both formats, speedup with its interval, the paper's |
//! | `results.json` | the run (mode, device, model, label, date, statistic) and everything above |
//! | `cases.json` | the problems, for scripts/gpucheck/peers_sweep.py |
//! | `summary.md` | the closing tables in markdown |
//! | `<op>.svg` | speedup vs prefix/completion ratio, one line per prefix length, 95% intervals, ideal dashed |
//! | `groups.svg` | speedup vs group size k (and the packed rows), every op |
//! | `datasets.svg` | the dataset tables' speedups with intervals, the paper's beside them |
//! | `peers_<op>.svg` | with peers: speedup of ours and FlexAttention (shared) over the best paired peer |

use std::fmt::Write as _;
use std::path::Path;

use super::cases::{Family, Format, Op, Point, Problem};
use super::chart::{self, Chart, Pt, Series, Stroke};
use super::config::Config;
use super::dataset_run::DatasetResult;
use super::peers::{find, paired_baseline, PeerTiming};
use super::results::PointResult;
use super::stats::{Estimate, STATISTIC};

/// The run's description written into results.json.
pub struct RunInfo {
    pub device: String,
    pub date: String,
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o + "\""
}

fn num(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or("null".into(), |v| format!("{v}"))
}

/// Cells of an interval: median, lo, hi (empty when unbounded).
fn ci_cells(e: &Estimate, scale: f64) -> String {
    let b = |v: f64| {
        if v.is_finite() {
            format!("{:.6}", v * scale)
        } else {
            String::new()
        }
    };
    format!("{},{},{}", b(e.median), b(e.lo), b(e.hi))
}

/// One line per (op, case, format): sizes and the median time per call with its interval.
pub fn results_csv(results: &[PointResult]) -> String {
    let mut s = String::from(
        "op,case,family,prefix,completion,k,samples_per_row,format,rows,n,tokens,visible_pairs,flops,median_ms,ms_lo,ms_hi,flop_per_s,rounds,calls_per_sample,skipped\n",
    );
    for r in results {
        let p = &r.point;
        for f in [Format::Paired, Format::Shared] {
            let z = r.size(f);
            let (time, rounds, calls) = match r.timed() {
                Some(o) => (
                    ci_cells(&r.time(f).expect("timed"), 1e3),
                    o.rounds.len().to_string(),
                    match f {
                        Format::Paired => o.calls.0,
                        Format::Shared => o.calls.1,
                    }
                    .to_string(),
                ),
                None => (",,".into(), String::new(), String::new()),
            };
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.op.name(),
                p.id(),
                p.family.name(),
                p.prefix,
                p.completion,
                p.k,
                p.per_row,
                f.name(),
                z.rows,
                z.n,
                z.tokens,
                z.visible_pairs,
                z.flops,
                time,
                r.flop_rate(f).map_or(String::new(), |v| format!("{v:.6e}")),
                rounds,
                calls,
                r.outcome
                    .as_ref()
                    .err()
                    .map_or(String::new(), |w| w.replace(',', ";")),
            );
        }
    }
    s
}

/// One line per timed (op, case): the speedup, its interval, the ideal, the verdict.
pub fn speedup_csv(results: &[PointResult]) -> String {
    let mut s = format!(
        "# statistic: {STATISTIC}\nop,case,family,prefix,completion,ratio,k,samples_per_row,speedup,speedup_lo,speedup_hi,ideal,of_ideal,rounds,clean_rounds,cpu_contended,verdict\n"
    );
    for r in results {
        let Some(o) = r.timed() else { continue };
        let p = &r.point;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{:.4},{:.4},{},{},{:.3},{}",
            r.op.name(),
            p.id(),
            p.family.name(),
            p.prefix,
            p.completion,
            p.ratio,
            p.k,
            p.per_row,
            ci_cells(&o.speedup, 1.0),
            r.ideal,
            o.speedup.median / r.ideal,
            o.rounds.len(),
            o.clean_rounds(),
            o.wait(),
            o.verdict.name()
        );
    }
    s
}

/// One line per dataset point.
pub fn datasets_csv(results: &[DatasetResult]) -> String {
    let mut s = format!(
        "# statistic: {STATISTIC}\ndataset,packing,paper_median_len,paper_ratio,drawn_median_len,drawn_ratio,samples,paired_tokens,shared_tokens,paired_padding,shared_padding,paired_samples_per_s,shared_samples_per_s,speedup,speedup_lo,speedup_hi,ideal,paper_over_fa3,paper_over_flex,rounds,verdict\n"
    );
    for r in results {
        let p = &r.profile;
        let paper = p.paper[usize::from(r.packed)];
        let (sps, sp, rounds, verdict) = match (&r.outcome, r.samples_per_s()) {
            // Shortest round-trip form, as in results.json: the two files must agree to the
            // last digit (a fixed number of decimals loses a slow machine's small rates).
            (Ok(o), Some((a, b))) => (
                format!("{a},{b}"),
                ci_cells(&o.speedup, 1.0),
                o.rounds.len().to_string(),
                o.verdict.name().to_string(),
            ),
            _ => (",".into(), ",,".into(), String::new(), "not timed".into()),
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{:.1},{:.3},{},{},{},{:.4},{:.4},{},{},{:.4},{},{},{},{}",
            p.name,
            r.packed,
            p.median_len,
            p.ratio,
            r.drawn.0,
            r.drawn.1,
            r.paired.samples,
            r.paired.tokens,
            r.shared.tokens,
            r.paired.padding(),
            r.shared.padding(),
            sps,
            sp,
            r.ideal,
            paper.over_fa3,
            paper.over_flex,
            rounds,
            verdict
        );
    }
    s
}

fn est_json(e: &Estimate, scale: f64) -> String {
    format!(
        "{{\"median\": {}, \"lo\": {}, \"hi\": {}}}",
        num(Some(e.median * scale)),
        num(Some(e.lo * scale)),
        num(Some(e.hi * scale))
    )
}

pub fn results_json(
    c: &Config,
    info: &RunInfo,
    results: &[PointResult],
    datasets: &[DatasetResult],
) -> String {
    let m = &c.model;
    let mut s = format!(
        "{{\n  \"mode\": {},\n  \"device\": {},\n  \"date\": {},\n  \"label\": {},\n  \"quick\": {},\n  \"statistic\": {},\n  \"target_rel_half_width\": {},\n  \"model\": {{\"hidden\": {}, \"q_heads\": {}, \"kv_heads\": {}, \"head_dim\": {}, \"ffn\": {}}},\n  \"points\": [\n",
        json_str(c.mode.name()),
        json_str(&info.device),
        json_str(&info.date),
        json_str(&c.label),
        c.quick,
        json_str(STATISTIC),
        c.plan.target,
        m.hidden,
        m.q_heads,
        m.kv_heads,
        m.head_dim,
        m.ffn
    );
    let rows: Vec<String> = results
        .iter()
        .map(|r| {
            let size = |f: Format| {
                let z = r.size(f);
                format!(
                    "{{\"rows\": {}, \"n\": {}, \"tokens\": {}, \"visible_pairs\": {}, \"flops\": {}, \"ms\": {}}}",
                    z.rows,
                    z.n,
                    z.tokens,
                    z.visible_pairs,
                    z.flops,
                    r.time(f).map_or("null".into(), |t| est_json(&t, 1e3))
                )
            };
            let timing = match &r.outcome {
                Ok(o) => format!(
                    "\"speedup\": {}, \"rounds\": {}, \"clean_rounds\": {}, \"cpu_contended\": {}, \"verdict\": {}",
                    est_json(&o.speedup, 1.0),
                    o.rounds.len(),
                    o.clean_rounds(),
                    num(Some(o.wait())),
                    json_str(o.verdict.name())
                ),
                Err(why) => format!("\"skipped\": {}", json_str(why)),
            };
            format!(
                "    {{\"op\": {}, \"case\": {}, \"prefix\": {}, \"ratio\": {}, \"k\": {}, \"ideal\": {}, \"paired\": {}, \"shared\": {}, {timing}}}",
                json_str(r.op.name()),
                json_str(&r.point.id()),
                r.point.prefix,
                r.point.ratio,
                r.point.k,
                num(Some(r.ideal)),
                size(Format::Paired),
                size(Format::Shared),
            )
        })
        .collect();
    s += &rows.join(",\n");
    s += "\n  ],\n  \"datasets\": [\n";
    let rows: Vec<String> = datasets
        .iter()
        .map(|r| {
            let p = &r.profile;
            let paper = p.paper[usize::from(r.packed)];
            let timing = match (&r.outcome, r.samples_per_s()) {
                (Ok(o), Some((a, b))) => format!(
                    "\"paired_samples_per_s\": {}, \"shared_samples_per_s\": {}, \"speedup\": {}, \"rounds\": {}, \"verdict\": {}",
                    num(Some(a)),
                    num(Some(b)),
                    est_json(&o.speedup, 1.0),
                    o.rounds.len(),
                    json_str(o.verdict.name())
                ),
                (Err(why), _) => format!("\"skipped\": {}", json_str(why)),
                _ => "\"skipped\": \"no timing\"".into(),
            };
            format!(
                "    {{\"dataset\": {}, \"packing\": {}, \"paper_median_len\": {}, \"paper_ratio\": {}, \"drawn_median_len\": {}, \"drawn_ratio\": {}, \"samples\": {}, \"ideal\": {}, \"paper\": {{\"fa3\": {}, \"flex\": {}, \"flex_shared\": {}, \"over_fa3\": {}, \"over_flex\": {}}}, {timing}}}",
                json_str(p.name),
                r.packed,
                p.median_len,
                p.ratio,
                num(Some(r.drawn.0)),
                num(Some(r.drawn.1)),
                r.paired.samples,
                num(Some(r.ideal)),
                paper.fa3,
                paper.flex,
                paper.flex_shared,
                paper.over_fa3,
                paper.over_flex
            )
        })
        .collect();
    s += &rows.join(",\n");
    s + "\n  ]\n}\n"
}

/// The problems, for the peers script: it rebuilds both formats from these numbers (shared rows
/// hold `per_row` samples `[prefix | completion x k]`; paired rows hold `per_row * k` causal
/// sequences of `prefix + completion`).
pub fn cases_json(c: &Config, cases: &[(Point, Problem, Problem)]) -> String {
    let m = &c.model;
    let mut s = format!(
        "{{\n  \"model\": {{\"hidden\": {}, \"q_heads\": {}, \"kv_heads\": {}, \"head_dim\": {}, \"ffn\": {}}},\n  \"cases\": [\n",
        m.hidden, m.q_heads, m.kv_heads, m.head_dim, m.ffn
    );
    let rows: Vec<String> = cases
        .iter()
        .map(|(p, sh, pa)| {
            format!(
                "    {{\"id\": {}, \"family\": {}, \"prefix\": {}, \"completion\": {}, \"k\": {}, \"per_row\": {}, \"rows\": {}, \"shared_n\": {}, \"paired_n\": {}, \"shared_pairs\": {}, \"paired_pairs\": {}}}",
                json_str(&p.id()),
                json_str(p.family.name()),
                p.prefix,
                p.completion,
                p.k,
                p.per_row,
                sh.rows(),
                sh.n(),
                pa.n(),
                sh.visible_pairs(),
                pa.visible_pairs()
            )
        })
        .collect();
    s += &rows.join(",\n");
    s + "\n  ]\n}\n"
}

/// A measured point of a chart: the median speedup, its interval, flagged or not.
fn measured(x: f64, r: &PointResult) -> Option<Pt> {
    let o = r.timed()?;
    Some(Pt {
        x,
        y: o.speedup.median,
        ci: Some((o.speedup.lo, o.speedup.hi)),
        flagged: o.verdict.flagged(),
    })
}

/// Adds an ideal series, or merges it into one already there that it would hide: the same
/// values within 1% (the MLP's ideal is the same at every prefix length; attention's differ by
/// a fraction of a percent). One dashed line, named for every series it stands for.
fn push_ideal(series: &mut Vec<Series>, name: &str, label: &str, color: usize, points: Vec<Pt>) {
    let close = |a: &Pt, b: &Pt| a.x == b.x && (a.y - b.y).abs() <= 0.01 * b.y.abs();
    let same = |s: &Series| {
        s.stroke == Stroke::Dashed
            && s.points.len() == points.len()
            && s.points.iter().zip(&points).all(|(a, b)| close(a, b))
    };
    if let Some(s) = series.iter_mut().find(|s| same(s)) {
        let exact = s.points.iter().zip(&points).all(|(a, b)| a.y == b.y);
        let name = s.name.trim_end_matches(" (within 1%)");
        s.name = format!(
            "{name}, {label}{}",
            if exact && !s.name.ends_with("(within 1%)") {
                ""
            } else {
                " (within 1%)"
            }
        );
        s.color = 7; // grey: it belongs to several series
        return;
    }
    series.push(Series {
        name: format!("{name} {label}"),
        color,
        marker: 0,
        stroke: Stroke::Dashed,
        points,
    });
}

fn subtitle(c: &Config) -> String {
    let mode = match c.mode {
        super::config::Mode::Cpu => format!(
            "CPU mode (the crate's CPU path, f32, {})",
            c.model.describe()
        ),
        super::config::Mode::Gpu => format!("GPU, bf16, {}", c.model.describe()),
    };
    format!("{mode}. Points: median of per-round paired/shared time ratios; bars: 95% CI")
}

/// Every chart of a run: `(file name, chart)`.
pub fn charts(
    c: &Config,
    results: &[PointResult],
    datasets: &[DatasetResult],
    peers: &[PeerTiming],
) -> Vec<(String, Chart)> {
    let mode = match c.mode {
        super::config::Mode::Cpu => "CPU mode",
        super::config::Mode::Gpu => "GPU",
    };
    let speedup_y = "speedup of shared over paired".to_string();
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut series = Vec::new();
        for (ci, &p) in c.prefixes.iter().enumerate() {
            let pts: Vec<&PointResult> = results
                .iter()
                .filter(|r| r.op == op && r.point.family == Family::Ratio && r.point.prefix == p)
                .collect();
            let m: Vec<Pt> = pts
                .iter()
                .filter_map(|r| measured(r.point.ratio, r))
                .collect();
            if m.is_empty() {
                continue;
            }
            series.push(Series {
                name: format!("prefix {p}: measured"),
                color: ci,
                marker: ci,
                stroke: Stroke::Solid,
                points: m,
            });
            let ideal = pts
                .iter()
                .map(|r| Pt::exact(r.point.ratio, r.ideal))
                .collect();
            push_ideal(&mut series, "ideal:", &format!("prefix {p}"), ci, ideal);
        }
        if !series.is_empty() {
            out.push((
                format!("{}.svg", op.name()),
                Chart {
                    title: format!("{} - {mode}", op.title()),
                    subtitle: format!("{}; ideal = {}", subtitle(c), op.ideal_basis()),
                    x_desc: "prefix length / completion length (DPO pairs, k = 2)".into(),
                    y_desc: speedup_y.clone(),
                    x_labels: Vec::new(),
                    series,
                },
            ));
        }
    }
    let mut series = Vec::new();
    for (ci, op) in Op::ALL.into_iter().enumerate() {
        let pts: Vec<&PointResult> = results
            .iter()
            .filter(|r| r.op == op && r.point.family == Family::Group)
            .collect();
        let m: Vec<Pt> = pts
            .iter()
            .filter_map(|r| measured(r.point.k as f64, r))
            .collect();
        if m.is_empty() {
            continue;
        }
        series.push(Series {
            name: format!("{}: measured", op.name()),
            color: ci,
            marker: ci,
            stroke: Stroke::Solid,
            points: m,
        });
        let ideal = pts
            .iter()
            .map(|r| Pt::exact(r.point.k as f64, r.ideal))
            .collect();
        push_ideal(&mut series, "ideal:", op.name(), ci, ideal);
        let packed: Vec<Pt> = results
            .iter()
            .filter(|r| r.op == op && r.point.family == Family::Packed)
            .filter_map(|r| measured(r.point.k as f64, r))
            .collect();
        if !packed.is_empty() {
            series.push(Series {
                name: format!("{}: packed rows, measured", op.name()),
                color: ci,
                marker: chart::PACKED_MARKER,
                stroke: Stroke::Markers,
                points: packed,
            });
        }
    }
    if !series.is_empty() {
        let p = results
            .iter()
            .find(|r| r.point.family == Family::Group)
            .map(|r| r.point);
        let at = p.map_or(String::new(), |p| {
            format!(" (prefix {}, completion {})", p.prefix, p.completion)
        });
        out.push((
            "groups.svg".into(),
            Chart {
                title: format!("Groups of k completions{at} - {mode}"),
                subtitle: subtitle(c),
                x_desc: "completions per prompt k".into(),
                y_desc: speedup_y.clone(),
                x_labels: Vec::new(),
                series,
            },
        ));
    }
    if let Some(ch) = datasets_chart(c, datasets) {
        out.push(("datasets.svg".into(), ch));
    }
    for op in [Op::AttnFwd, Op::AttnFwdBwd, Op::Mlp] {
        if let Some(ch) = peers_chart(c, op, results, peers) {
            out.push((format!("peers_{}.svg", op.name()), ch));
        }
    }
    out
}

/// The dataset tables as a chart: per dataset (x), ours without and with packing, the paper's
/// speedups (vs Flex: one attention implementation in both formats, like ours) as dashed lines.
fn datasets_chart(c: &Config, datasets: &[DatasetResult]) -> Option<Chart> {
    let names: Vec<&str> = super::datasets::PROFILES.iter().map(|p| p.name).collect();
    // Categories at 1, 2, 4, ...: evenly spaced on the charts' log axis.
    let at = |i: usize| f64::from(1u32 << i);
    let x = |name: &str| names.iter().position(|n| *n == name).map(at);
    let mut series = Vec::new();
    for (i, packed) in [false, true].into_iter().enumerate() {
        let rs: Vec<&DatasetResult> = datasets.iter().filter(|r| r.packed == packed).collect();
        let pts: Vec<Pt> = rs
            .iter()
            .filter_map(|r| {
                let o = r.outcome.as_ref().ok()?;
                Some(Pt {
                    x: x(r.profile.name)?,
                    y: o.speedup.median,
                    ci: Some((o.speedup.lo, o.speedup.hi)),
                    flagged: o.verdict.flagged(),
                })
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        let words = if packed {
            "with packing"
        } else {
            "without packing"
        };
        series.push(Series {
            name: format!("ours, {words}"),
            color: i,
            marker: i,
            stroke: Stroke::Markers,
            points: pts,
        });
        series.push(Series {
            name: format!("ideal (step FLOPs), {words}"),
            color: i,
            marker: 0,
            stroke: Stroke::Dashed,
            points: rs
                .iter()
                .filter_map(|r| Some(Pt::exact(x(r.profile.name)?, r.ideal)))
                .collect(),
        });
        series.push(Series {
            name: format!("paper (Flex + sharing vs Flex), {words}"),
            color: i + 2,
            marker: 3,
            stroke: Stroke::Markers,
            points: rs
                .iter()
                .filter_map(|r| {
                    Some(Pt::exact(
                        x(r.profile.name)?,
                        r.profile.paper[usize::from(packed)].over_flex,
                    ))
                })
                .collect(),
        });
    }
    if series.is_empty() {
        return None;
    }
    let mode = match c.mode {
        super::config::Mode::Cpu => "CPU mode",
        super::config::Mode::Gpu => "GPU",
    };
    Some(Chart {
        title: format!("Training step on six preference datasets (synthetic samples) - {mode}"),
        subtitle: subtitle(c),
        x_desc: "dataset".into(),
        y_desc: "speedup of shared over paired (samples/s)".into(),
        x_labels: names
            .iter()
            .enumerate()
            .map(|(i, n)| (at(i), n.to_string()))
            .collect(),
        series,
    })
}

/// Shared-format time of ours and of FlexAttention against the best paired peer, per prefix.
fn peers_chart(c: &Config, op: Op, results: &[PointResult], peers: &[PeerTiming]) -> Option<Chart> {
    let mut series = Vec::new();
    for (ci, &p) in c.prefixes.iter().enumerate() {
        let pts: Vec<&PointResult> = results
            .iter()
            .filter(|r| r.op == op && r.point.family == Family::Ratio && r.point.prefix == p)
            .collect();
        // Ours carries its point's flag: a busy or noisy time is no better against a peer.
        let over = |shared_ms: &dyn Fn(&PointResult) -> Option<f64>, ours: bool| -> Vec<Pt> {
            pts.iter()
                .filter_map(|r| {
                    let (_, base) = paired_baseline(peers, op.name(), &r.point.id())?;
                    Some(Pt {
                        flagged: ours && r.verdict().is_some_and(|v| v.flagged()),
                        ..Pt::exact(r.point.ratio, base / shared_ms(r)?)
                    })
                })
                .collect()
        };
        let ours = over(&|r| r.time(Format::Shared).map(|t| t.median * 1e3), true);
        let peer = if op == Op::Mlp { "torch" } else { "flex" };
        let theirs = over(
            &|r| find(peers, peer, op.name(), &r.point.id(), "shared"),
            false,
        );
        if !ours.is_empty() {
            series.push(Series {
                name: format!("prefix {p}: ours shared"),
                color: ci,
                marker: ci,
                stroke: Stroke::Solid,
                points: ours,
            });
        }
        if !theirs.is_empty() {
            series.push(Series {
                name: format!(
                    "prefix {p}: {} shared",
                    if op == Op::Mlp { "PyTorch" } else { "Flex" }
                ),
                color: ci,
                marker: ci,
                stroke: Stroke::Dashed,
                points: theirs,
            });
        }
    }
    if series.is_empty() {
        return None;
    }
    Some(Chart {
        title: format!(
            "{}: shared format vs the best paired peer - {}",
            op.title(),
            match c.mode {
                super::config::Mode::Cpu => "CPU mode",
                super::config::Mode::Gpu => "GPU, bf16",
            }
        ),
        subtitle: "median times; the peers' timings come from peers_sweep.py (no interval)".into(),
        x_desc: "prefix length / completion length (DPO pairs, k = 2)".into(),
        y_desc: "best paired peer's time / shared time".into(),
        x_labels: Vec::new(),
        series,
    })
}

/// Writes every file of the run into `dir`; returns the file names written.
pub fn write_all(
    dir: &Path,
    c: &Config,
    info: &RunInfo,
    results: &[PointResult],
    datasets: &[DatasetResult],
    peers: &[PeerTiming],
    summary_md: &str,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<(), String> {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
        written.push(name.to_string());
        Ok(())
    };
    put("results.csv", &results_csv(results))?;
    put("speedup.csv", &speedup_csv(results))?;
    put("datasets.csv", &datasets_csv(datasets))?;
    put("results.json", &results_json(c, info, results, datasets))?;
    put("summary.md", summary_md)?;
    for (name, ch) in charts(c, results, datasets, peers) {
        chart::draw(&ch, &dir.join(&name))?;
        written.push(name);
    }
    Ok(written)
}
