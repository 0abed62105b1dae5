//! The closing tables (console and markdown): per op, time and FLOP/s of both formats and the
//! measured speedup next to the ideal one; the peers beside ours; the targets (GPU mode);
//! and why a measured speedup can exceed the ideal.

use super::cases::{Family, Op};
use super::config::{Config, Mode};
use super::peers::{find, paired_baseline, peer_title, PeerTiming};
use super::results::{Entry, Speedup};

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

/// One table per op: both formats' times and FLOP/s, measured and ideal speedup.
pub fn op_tables(
    c: &Config,
    entries: &[Entry],
    speedups: &[Speedup],
    peak: Option<f64>,
) -> Vec<Table> {
    let (div, u) = unit(c.mode);
    let mut out = Vec::new();
    for op in Op::ALL {
        let mine: Vec<&Entry> = entries.iter().filter(|e| e.op == op).collect();
        if mine.is_empty() {
            continue;
        }
        let mut header: Vec<String> = ["case", "shared rows x n", "shared ms", "paired ms"]
            .map(String::from)
            .to_vec();
        header.push(format!("shared {u}"));
        header.push(format!("paired {u}"));
        if peak.is_some() {
            header.push("shared % of bf16 peak".into());
        }
        header.extend(["measured", "ideal", "of ideal"].map(String::from));
        let mut t = Table {
            title: format!("{} - ideal = {}", op.title(), op.ideal_basis()),
            header,
            rows: Vec::new(),
            notes: Vec::new(),
        };
        if let Some(why) = mine.iter().find_map(|e| e.skipped.clone()) {
            t.notes.push(format!("not timed in this mode: {why}"));
        }
        for s in speedups.iter().filter(|s| s.op == op) {
            let id = s.point.id();
            let get = |f: &str| {
                mine.iter()
                    .find(|e| e.point.id() == id && e.format.name() == f)
            };
            let (Some(sh), Some(pa)) = (get("shared"), get("paired")) else {
                continue;
            };
            let mut row = vec![
                id.clone(),
                format!("{} x {}", sh.rows, sh.n),
                format!("{:.4}", s.shared_s * 1e3),
                format!("{:.4}", s.paired_s * 1e3),
                format!("{:.3}", sh.flops / s.shared_s / div),
                format!("{:.3}", pa.flops / s.paired_s / div),
            ];
            if let Some(p) = peak {
                row.push(format!("{:.1}%", 100.0 * sh.flops / s.shared_s / 1e12 / p));
            }
            row.push(format!("{:.2}x", s.measured()));
            row.push(format!("{:.2}x", s.ideal));
            row.push(format!("{:.0}%", 100.0 * s.of_ideal()));
            t.rows.push(row);
        }
        out.push(t);
    }
    out
}

/// Ours beside the peers, per op the peers ran.
pub fn peer_tables(speedups: &[Speedup], peers: &[PeerTiming]) -> Vec<Table> {
    let mut out = Vec::new();
    for op in [Op::AttnFwd, Op::AttnFwdBwd, Op::Mlp] {
        let cases: Vec<&Speedup> = speedups.iter().filter(|s| s.op == op).collect();
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
            let ours = cases.iter().find(|s| &s.point.id() == id);
            let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
            let f = |peer: &str, fmt: &str| find(peers, peer, op.name(), id, fmt);
            let base = paired_baseline(peers, op.name(), id);
            let vs = |shared_ms: Option<f64>| match (base, shared_ms) {
                (Some((_, b)), Some(s)) => format!("{:.2}x", b / s),
                _ => "-".into(),
            };
            let ours_shared = ours.map(|s| s.shared_s * 1e3);
            t.rows.push(vec![
                id.clone(),
                ms(ours_shared),
                ms(ours.map(|s| s.paired_s * 1e3)),
                ms(f("sdpa_cudnn", "paired")),
                ms(f("sdpa_flash", "paired")),
                ms(f("flex", "shared")),
                ms(f("torch", "shared")),
                ms(f("torch", "paired")),
                vs(ours_shared),
                vs(f("flex", "shared")),
                ours.map_or("-".into(), |s| format!("{:.2}x", s.ideal)),
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
/// and 97% for the MLP, at prefixes of 1k and more.
pub fn target_lines(c: &Config, speedups: &[Speedup]) -> Vec<String> {
    if c.mode == Mode::Cpu {
        return vec![
            "Targets (attention >= 95% of ideal, MLP >= 97%, prefixes >= 1k) apply to GPU runs; CPU mode is not judged against them.".into(),
        ];
    }
    let mut out = Vec::new();
    for (op, target) in [(Op::AttnFwd, 0.95), (Op::AttnFwdBwd, 0.95), (Op::Mlp, 0.97)] {
        let worst = speedups
            .iter()
            .filter(|s| s.op == op && s.point.prefix >= 1024 && s.point.family == Family::Ratio)
            .min_by(|a, b| a.of_ideal().total_cmp(&b.of_ideal()));
        if let Some(w) = worst {
            out.push(format!(
                "target {}: >= {:.0}% of ideal at prefixes >= 1k: worst {:.1}% ({}) - {}",
                op.name(),
                target * 100.0,
                w.of_ideal() * 100.0,
                w.point.id(),
                if w.of_ideal() >= target {
                    "met"
                } else {
                    "SHORT"
                }
            ));
        }
    }
    out
}

/// Said when some measured speedup is above the ideal one by more than 2%.
pub fn above_ideal_note(mode: Mode, speedups: &[Speedup]) -> Option<String> {
    let above: Vec<String> = speedups
        .iter()
        .filter(|s| s.of_ideal() > 1.02)
        .map(|s| {
            format!(
                "{} {} ({:.0}%)",
                s.op.name(),
                s.point.id(),
                100.0 * s.of_ideal()
            )
        })
        .collect();
    if above.is_empty() {
        return None;
    }
    let why = match mode {
        Mode::Cpu => "Why a CPU can beat the ideal: the ideal is a ratio of work (visible pairs, tokens, FLOPs), which assumes the same time per unit of work in both formats. On a CPU that is not so: the paired format copies every prompt k times, so its tensors are larger and miss the caches more; small problems leave threads idle at the end of a pass; and a busy shared machine adds noise. None of this is the GPU's cost model, so CPU ratios above ideal say nothing about the kernels.",
        Mode::Gpu => "Why a GPU can beat the ideal: the ideal is a ratio of work, which assumes the same time per unit of work in both formats. Per-tile fixed costs, partly filled tiles at sequence ends and the last wave of CTAs differ between the formats, and more so on small problems. A few percent either way is that; more deserves a look.",
    };
    Some(format!(
        "Measured above ideal at {} point(s): {}.\n  {why}",
        above.len(),
        above.join(", ")
    ))
}
