//! What a run leaves in its results folder (`target/prefix-attn-bench/<mode>/` by default):
//!
//! | file | content |
//! |---|---|
//! | `results.csv` | one line per (op, case, format): sizes, visible pairs, FLOPs, median ms, TFLOP/s |
//! | `speedup.csv` | one line per (op, case): shared ms, paired ms, measured and ideal speedup |
//! | `results.json` | the run (mode, device, model, label, date) and both tables above |
//! | `cases.json` | the problems, for scripts/gpucheck/peers_sweep.py |
//! | `summary.md` | the closing tables in markdown |
//! | `<op>.svg` | speedup vs prefix/completion ratio, one line per prefix length, ideal dashed |
//! | `groups.svg` | speedup vs group size k (and the packed rows), every op |
//! | `peers_<op>.svg` | with peers: speedup of ours and FlexAttention (shared) over the best paired peer |

use std::fmt::Write as _;
use std::path::Path;

use super::cases::{Family, Op, Point, Problem};
use super::chart::{self, Chart, Series, Stroke};
use super::config::Config;
use super::peers::{find, paired_baseline, PeerTiming};
use super::results::{Entry, Speedup};

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

pub fn results_csv(entries: &[Entry]) -> String {
    let mut s = String::from(
        "op,case,family,prefix,completion,k,samples_per_row,format,rows,n,tokens,visible_pairs,flops,median_ms,tflops,calls,skipped\n",
    );
    for e in entries {
        let p = &e.point;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            e.op.name(),
            p.id(),
            p.family.name(),
            p.prefix,
            p.completion,
            p.k,
            p.per_row,
            e.format.name(),
            e.rows,
            e.n,
            e.tokens,
            e.visible_pairs,
            e.flops,
            e.median_s()
                .map_or(String::new(), |t| format!("{:.6}", t * 1e3)),
            e.tflops().map_or(String::new(), |t| format!("{t:.6}")),
            e.per_call_s.len(),
            e.skipped.as_deref().unwrap_or("").replace(',', ";"),
        );
    }
    s
}

pub fn speedup_csv(speedups: &[Speedup]) -> String {
    let mut s = String::from(
        "op,case,family,prefix,completion,ratio,k,samples_per_row,shared_ms,paired_ms,measured,ideal,of_ideal\n",
    );
    for x in speedups {
        let p = &x.point;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.4},{:.4},{:.4}",
            x.op.name(),
            p.id(),
            p.family.name(),
            p.prefix,
            p.completion,
            p.ratio,
            p.k,
            p.per_row,
            x.shared_s * 1e3,
            x.paired_s * 1e3,
            x.measured(),
            x.ideal,
            x.of_ideal()
        );
    }
    s
}

pub fn results_json(c: &Config, info: &RunInfo, entries: &[Entry], speedups: &[Speedup]) -> String {
    let m = &c.model;
    let mut s = format!(
        "{{\n  \"mode\": {},\n  \"device\": {},\n  \"date\": {},\n  \"label\": {},\n  \"quick\": {},\n  \"model\": {{\"hidden\": {}, \"q_heads\": {}, \"kv_heads\": {}, \"head_dim\": {}, \"ffn\": {}}},\n  \"entries\": [\n",
        json_str(c.mode.name()),
        json_str(&info.device),
        json_str(&info.date),
        json_str(&c.label),
        c.quick,
        m.hidden,
        m.q_heads,
        m.kv_heads,
        m.head_dim,
        m.ffn
    );
    let rows: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "    {{\"op\": {}, \"case\": {}, \"format\": {}, \"rows\": {}, \"n\": {}, \"visible_pairs\": {}, \"flops\": {}, \"median_ms\": {}, \"tflops\": {}, \"skipped\": {}}}",
                json_str(e.op.name()),
                json_str(&e.point.id()),
                json_str(e.format.name()),
                e.rows,
                e.n,
                e.visible_pairs,
                e.flops,
                num(e.median_s().map(|t| t * 1e3)),
                num(e.tflops()),
                e.skipped.as_deref().map_or("null".into(), json_str)
            )
        })
        .collect();
    s += &rows.join(",\n");
    s += "\n  ],\n  \"speedups\": [\n";
    let rows: Vec<String> = speedups
        .iter()
        .map(|x| {
            format!(
                "    {{\"op\": {}, \"case\": {}, \"prefix\": {}, \"ratio\": {}, \"k\": {}, \"measured\": {}, \"ideal\": {}}}",
                json_str(x.op.name()),
                json_str(&x.point.id()),
                x.point.prefix,
                x.point.ratio,
                x.point.k,
                num(Some(x.measured())),
                num(Some(x.ideal))
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

/// Every chart of a run: `(file name, chart)`.
pub fn charts(c: &Config, speedups: &[Speedup], peers: &[PeerTiming]) -> Vec<(String, Chart)> {
    let mode = match c.mode {
        super::config::Mode::Cpu => "CPU mode, f32",
        super::config::Mode::Gpu => "GPU, bf16",
    };
    let speedup_y = "speedup of shared over paired (paired time / shared time)".to_string();
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut series = Vec::new();
        for (ci, &p) in c.prefixes.iter().enumerate() {
            let pts: Vec<&Speedup> = speedups
                .iter()
                .filter(|s| s.op == op && s.point.family == Family::Ratio && s.point.prefix == p)
                .collect();
            if pts.is_empty() {
                continue;
            }
            series.push(Series {
                name: format!("prefix {p}: measured"),
                color: ci,
                stroke: Stroke::Solid,
                points: pts.iter().map(|s| (s.point.ratio, s.measured())).collect(),
            });
            series.push(Series {
                name: format!("prefix {p}: ideal"),
                color: ci,
                stroke: Stroke::Dashed,
                points: pts.iter().map(|s| (s.point.ratio, s.ideal)).collect(),
            });
        }
        if !series.is_empty() {
            out.push((
                format!("{}.svg", op.name()),
                Chart {
                    title: format!("{} ({mode}; ideal = {})", op.title(), op.ideal_basis()),
                    x_desc: "prefix length / completion length (DPO pairs, k = 2)".into(),
                    y_desc: speedup_y.clone(),
                    series,
                },
            ));
        }
    }
    let mut series = Vec::new();
    for (ci, op) in Op::ALL.into_iter().enumerate() {
        let pts: Vec<&Speedup> = speedups
            .iter()
            .filter(|s| s.op == op && s.point.family == Family::Group)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let k = |s: &&Speedup| s.point.k as f64;
        series.push(Series {
            name: format!("{}: measured", op.name()),
            color: ci,
            stroke: Stroke::Solid,
            points: pts.iter().map(|s| (k(s), s.measured())).collect(),
        });
        series.push(Series {
            name: format!("{}: ideal", op.name()),
            color: ci,
            stroke: Stroke::Dashed,
            points: pts.iter().map(|s| (k(s), s.ideal)).collect(),
        });
        let packed: Vec<(f64, f64)> = speedups
            .iter()
            .filter(|s| s.op == op && s.point.family == Family::Packed)
            .map(|s| (s.point.k as f64, s.measured()))
            .collect();
        if !packed.is_empty() {
            series.push(Series {
                name: format!("{}: packed rows, measured", op.name()),
                color: ci,
                stroke: Stroke::Markers,
                points: packed,
            });
        }
    }
    if !series.is_empty() {
        let p = speedups
            .iter()
            .find(|s| s.point.family == Family::Group)
            .map(|s| s.point);
        let at = p.map_or(String::new(), |p| {
            format!(", prefix {} / completion {}", p.prefix, p.completion)
        });
        out.push((
            "groups.svg".into(),
            Chart {
                title: format!("Groups of k completions ({mode}{at})"),
                x_desc: "completions per prompt k".into(),
                y_desc: speedup_y.clone(),
                series,
            },
        ));
    }
    for op in [Op::AttnFwd, Op::AttnFwdBwd, Op::Mlp] {
        if let Some(ch) = peers_chart(c, op, speedups, peers) {
            out.push((format!("peers_{}.svg", op.name()), ch));
        }
    }
    out
}

/// Shared-format time of ours and of FlexAttention against the best paired peer, per prefix.
fn peers_chart(c: &Config, op: Op, speedups: &[Speedup], peers: &[PeerTiming]) -> Option<Chart> {
    let mut series = Vec::new();
    for (ci, &p) in c.prefixes.iter().enumerate() {
        let pts: Vec<&Speedup> = speedups
            .iter()
            .filter(|s| s.op == op && s.point.family == Family::Ratio && s.point.prefix == p)
            .collect();
        let over = |shared_ms: &dyn Fn(&Speedup) -> Option<f64>| -> Vec<(f64, f64)> {
            pts.iter()
                .filter_map(|s| {
                    let (_, base) = paired_baseline(peers, op.name(), &s.point.id())?;
                    Some((s.point.ratio, base / shared_ms(s)?))
                })
                .collect()
        };
        let ours = over(&|s| Some(s.shared_s * 1e3));
        let peer = if op == Op::Mlp { "torch" } else { "flex" };
        let theirs = over(&|s| find(peers, peer, op.name(), &s.point.id(), "shared"));
        if !ours.is_empty() {
            series.push(Series {
                name: format!("prefix {p}: ours shared"),
                color: ci,
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
            "{}: shared format vs the best paired peer (GPU, bf16)",
            op.title()
        ),
        x_desc: "prefix length / completion length (DPO pairs, k = 2)".into(),
        y_desc: "best paired peer's time / shared time".into(),
        series,
    })
}

/// Writes every file of the run into `dir`; returns the file names written.
pub fn write_all(
    dir: &Path,
    c: &Config,
    info: &RunInfo,
    entries: &[Entry],
    speedups: &[Speedup],
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
    put("results.csv", &results_csv(entries))?;
    put("speedup.csv", &speedup_csv(speedups))?;
    put("results.json", &results_json(c, info, entries, speedups))?;
    put("summary.md", summary_md)?;
    for (name, ch) in charts(c, speedups, peers) {
        chart::draw(&ch, &dir.join(&name))?;
        written.push(name);
    }
    Ok(written)
}
