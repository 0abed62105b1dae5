//! The closing tables (console and markdown): per op, time and FLOP/s of both formats and the
//! measured speedup next to the ideal one; the peers beside ours; the targets (GPU mode);
//! and why a measured speedup can exceed the ideal.

use super::cases::{Family, Format, Op};
use super::config::{Config, Mode};
use super::measure::Verdict;
use super::peers::{find, paired_baseline, peer_title, PeerTiming};
use super::results::{speedup_cell, PointResult};
use super::stats::STATISTIC;

/// A table: header and rows of cells.
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    pub fn console(&self) -> String {
        let mut w: Vec<usize> = self.header.iter().map(String::len).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i == 0 {
                    s += &format!("{c:<width$}", width = w[i]);
                } else {
                    s += &format!("  {c:>width$}", width = w[i]);
                }
            }
            s + "\n"
        };
        let mut s = format!("\n{}\n", self.title);
        s += &line(&self.header);
        for r in &self.rows {
            s += &line(r);
        }
        for n in &self.notes {
            s += &format!("  {n}\n");
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n| {} |\n|", self.title, self.header.join(" | "));
        s += &"---|".repeat(self.header.len());
        s += "\n";
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        for n in &self.notes {
            s += &format!("\n{n}\n");
        }
        s + "\n"
    }
}

/// FLOP/s unit of a mode: GFLOP/s on a CPU, TFLOP/s on a GPU.
fn unit(mode: Mode) -> (f64, &'static str) {
    match mode {
        Mode::Cpu => (1e9, "GFLOP/s"),
        Mode::Gpu => (1e12, "TFLOP/s"),
    }
}

/// "CPU mode" or "GPU": in every table title.
pub fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Cpu => "CPU mode",
        Mode::Gpu => "GPU",
    }
}

/// The flag cell of a timed point: empty when its speedup is a result.
pub fn flag_cell(v: Verdict) -> String {
    match v {
        Verdict::Ok => String::new(),
        Verdict::Noisy => "NOISY".into(),
        Verdict::Busy => "BUSY".into(),
    }
}

/// The note under every table of speedups: which statistic, and what a flag means.
pub fn statistic_note(target: f64) -> String {
    format!(
        "speedup = {STATISTIC}; times = median per call over the same rounds (so paired/shared of the times can differ slightly from the speedup). NOISY: the interval stayed wider than ±{:.0}% within the point's budget; BUSY: other processes took the CPU during most rounds. A flagged speedup is not a result.",
        100.0 * target
    )
}

/// One table per op: both formats' times and FLOP/s, measured speedup with its interval, ideal.
pub fn op_tables(c: &Config, results: &[PointResult], peak: Option<f64>) -> Vec<Table> {
    let (div, u) = unit(c.mode);
    let mut out = Vec::new();
    for op in Op::ALL {
        let mine: Vec<&PointResult> = results.iter().filter(|r| r.op == op).collect();
        if mine.is_empty() {
            continue;
        }
        let mut header: Vec<String> = ["case", "shared rows x n", "paired ms", "shared ms"]
            .map(String::from)
            .to_vec();
        header.push(format!("paired {u}"));
        header.push(format!("shared {u}"));
        if peak.is_some() {
            header.push("shared % of bf16 peak".into());
        }
        header.extend(["speedup [95% CI]", "ideal", "of ideal", "flag"].map(String::from));
        let mut t = Table {
            title: format!(
                "{} ({}) - ideal = {}",
                op.title(),
                mode_label(c.mode),
                op.ideal_basis()
            ),
            header,
            rows: Vec::new(),
            notes: vec![statistic_note(c.plan.target)],
        };
        if let Some(why) = mine.iter().find_map(|r| r.outcome.as_ref().err()) {
            t.notes.push(format!("not timed in this mode: {why}"));
        }
        for r in &mine {
            let (Some(o), Some(s)) = (r.timed(), r.speedup()) else {
                continue;
            };
            let mut row = vec![
                r.point.id(),
                format!("{} x {}", r.shared.rows, r.shared.n),
                format!("{:.4}", o.paired_s.median * 1e3),
                format!("{:.4}", o.shared_s.median * 1e3),
                format!("{:.3}", r.flop_rate(Format::Paired).unwrap_or(0.0) / div),
                format!("{:.3}", r.flop_rate(Format::Shared).unwrap_or(0.0) / div),
            ];
            if let Some(p) = peak {
                let rate = r.flop_rate(Format::Shared).unwrap_or(0.0);
                row.push(format!("{:.1}%", 100.0 * rate / 1e12 / p));
            }
            row.push(speedup_cell(&s));
            row.push(format!("{:.2}x", r.ideal));
            row.push(format!("{:.0}%", 100.0 * s.median / r.ideal));
            row.push(flag_cell(o.verdict));
            t.rows.push(row);
        }
        out.push(t);
    }
    out
}

/// Ours beside the peers, per op the peers ran.
pub fn peer_tables(results: &[PointResult], peers: &[PeerTiming]) -> Vec<Table> {
    let mut out = Vec::new();
    for op in [Op::AttnFwd, Op::AttnFwdBwd, Op::Mlp] {
        let cases: Vec<&PointResult> = results
            .iter()
            .filter(|r| r.op == op && r.timed().is_some())
            .collect();
        let ran = |case: &str| peers.iter().any(|p| p.op == op.name() && p.case == case);
        let ids: Vec<String> = {
            let mut v: Vec<String> = peers
                .iter()
                .filter(|p| p.op == op.name())
                .map(|p| p.case.clone())
                .collect();
            v.dedup();
            v
        };
        if ids.is_empty() {
            continue;
        }
        let mut t = Table {
            title: format!("{}: ours and PyTorch peers (ms per call)", op.title()),
            header: [
                "case",
                "ours shared",
                "ours paired",
                "cuDNN paired",
                "FA2 paired",
                "Flex shared",
                "PyTorch shared",
                "PyTorch paired",
                "ours shared vs best paired peer",
                "Flex vs best paired peer",
                "ideal",
            ]
            .map(String::from)
            .to_vec(),
            rows: Vec::new(),
            notes: vec![
                "'vs best paired peer' = the paired peer's time (cuDNN, else FA2, else PyTorch) / the shared time: the speedup a trainer gets from switching to the shared format.".into(),
            ],
        };
        for id in ids.iter().filter(|id| ran(id)) {
            let ours = cases.iter().find(|r| &r.point.id() == id);
            let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
            let f = |peer: &str, fmt: &str| find(peers, peer, op.name(), id, fmt);
            let base = paired_baseline(peers, op.name(), id);
            let vs = |shared_ms: Option<f64>| match (base, shared_ms) {
                (Some((_, b)), Some(s)) => format!("{:.2}x", b / s),
                _ => "-".into(),
            };
            let ms_of = |f: Format| ours.and_then(|r| r.time(f)).map(|t| t.median * 1e3);
            let ours_shared = ms_of(Format::Shared);
            t.rows.push(vec![
                id.clone(),
                ms(ours_shared),
                ms(ms_of(Format::Paired)),
                ms(f("sdpa_cudnn", "paired")),
                ms(f("sdpa_flash", "paired")),
                ms(f("flex", "shared")),
                ms(f("torch", "shared")),
                ms(f("torch", "paired")),
                vs(ours_shared),
                vs(f("flex", "shared")),
                ours.map_or("-".into(), |r| format!("{:.2}x", r.ideal)),
            ]);
        }
        let notes: Vec<String> = peers
            .iter()
            .filter(|p| p.op == op.name() && !p.note.is_empty())
            .map(|p| {
                format!(
                    "{} {} {}: {}",
                    peer_title(&p.peer),
                    p.case,
                    p.format,
                    p.note
                )
            })
            .collect();
        t.notes.extend(notes);
        out.push(t);
    }
    out
}

/// The targets, GPU mode only: shared over paired at least 95% of ideal for attention
/// and 97% for the MLP, at prefixes of 1k and more. Flagged points are not judged.
pub fn target_lines(c: &Config, results: &[PointResult]) -> Vec<String> {
    if c.mode == Mode::Cpu {
        return vec![
            "Targets (attention >= 95% of ideal, MLP >= 97%, prefixes >= 1k) apply to GPU runs; CPU mode is not judged against them.".into(),
        ];
    }
    let of_ideal = |r: &PointResult| r.speedup().map_or(f64::NAN, |s| s.median / r.ideal);
    let mut out = Vec::new();
    for (op, target) in [(Op::AttnFwd, 0.95), (Op::AttnFwdBwd, 0.95), (Op::Mlp, 0.97)] {
        let judged: Vec<&PointResult> = results
            .iter()
            .filter(|r| r.op == op && r.point.prefix >= 1024 && r.point.family == Family::Ratio)
            .filter(|r| r.verdict() == Some(Verdict::Ok))
            .collect();
        let worst = judged
            .iter()
            .min_by(|a, b| of_ideal(a).total_cmp(&of_ideal(b)));
        if let Some(w) = worst {
            out.push(format!(
                "target {}: >= {:.0}% of ideal at prefixes >= 1k: worst {:.1}% ({}) - {}",
                op.name(),
                target * 100.0,
                of_ideal(w) * 100.0,
                w.point.id(),
                if of_ideal(w) >= target {
                    "met"
                } else {
                    "SHORT"
                }
            ));
        }
    }
    out
}

/// Said when some unflagged measured speedup is above the ideal one by more than 2%, with its
/// whole interval above the ideal.
pub fn above_ideal_note(mode: Mode, results: &[PointResult]) -> Option<String> {
    let above: Vec<String> = results
        .iter()
        .filter(|r| r.verdict() == Some(Verdict::Ok))
        .filter_map(|r| {
            let s = r.speedup()?;
            (s.median > 1.02 * r.ideal && s.lo > r.ideal).then(|| {
                format!(
                    "{} {} ({:.0}%)",
                    r.op.name(),
                    r.point.id(),
                    100.0 * s.median / r.ideal
                )
            })
        })
        .collect();
    if above.is_empty() {
        return None;
    }
    let why = match mode {
        Mode::Cpu => "Why a CPU can beat the ideal: the ideal is a ratio of work (visible pairs, tokens, FLOPs), which assumes the same time per unit of work in both formats. On a CPU that is not so: the paired format copies every prompt k times, so its tensors are larger and miss the caches more, and small problems leave threads idle at the end of a pass. None of this is the GPU's cost model, so CPU ratios above ideal say nothing about the kernels.",
        Mode::Gpu => "Why a GPU can beat the ideal: the ideal is a ratio of work, which assumes the same time per unit of work in both formats. Per-tile fixed costs, partly filled tiles at sequence ends and the last wave of CTAs differ between the formats, and more so on small problems. A few percent either way is that; more deserves a look.",
    };
    Some(format!(
        "Measured above ideal (whole interval above it) at {} point(s): {}.\n  {why}",
        above.len(),
        above.join(", ")
    ))
}
