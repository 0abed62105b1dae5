//! The dataset tables, laid out like the paper's Tables 1 and 2: per dataset its published
//! median length and ratio (and the medians actually drawn), our samples/s in the paired and the
//! shared format, our speedup with its interval, the ideal one, and the paper's numbers beside.

use super::config::{Config, Mode};
use super::dataset_run::DatasetResult;
use super::report::{flag_cell, mode_label, statistic_note, Table};
use super::results::speedup_cell;

/// What the step is, per mode, for the table titles.
fn step_words(c: &Config) -> String {
    match c.mode {
        Mode::Cpu => format!(
            "one transformer block fwd+bwd on the crate's CPU path, f32, {}; sample lengths x{}",
            c.model.describe(),
            c.data.length_scale
        ),
        Mode::Gpu => format!(
            "one transformer block fwd+bwd, bf16, our kernels + cuBLAS, {}",
            c.model.describe()
        ),
    }
}

/// Table 1 (`packed = false`) or Table 2 (`packed = true`).
pub fn table(c: &Config, results: &[DatasetResult], packed: bool) -> Option<Table> {
    let mine: Vec<&DatasetResult> = results.iter().filter(|r| r.packed == packed).collect();
    if mine.is_empty() {
        return None;
    }
    let (pf, sf) = if packed {
        ("paired + packing", "shared + packing")
    } else {
        ("paired", "shared")
    };
    let paper_cols = if packed {
        "paper: FA3 + packing / Flex + packing / Flex + prefix sharing + packing"
    } else {
        "paper: FA3 / Flex / Flex + prefix sharing"
    };
    let mut t = Table {
        title: format!(
            "Table {} ({}): training samples/s {} packing - {}",
            if packed { 2 } else { 1 },
            mode_label(c.mode),
            if packed { "with" } else { "without" },
            step_words(c)
        ),
        header: vec![
            "dataset".into(),
            if c.data.length_scale == 1.0 {
                "median len: paper / drawn".into()
            } else {
                format!("median len: paper / drawn (x{})", c.data.length_scale)
            },
            "prefix/completion: paper / drawn".into(),
            format!("{pf} samples/s"),
            format!("{sf} samples/s"),
            "speedup [95% CI]".into(),
            "ideal".into(),
            "padding paired / shared".into(),
            paper_cols.into(),
            "paper speedup (vs FA3, vs Flex)".into(),
            "flag".into(),
        ],
        rows: Vec::new(),
        notes: vec![
            format!(
                "Synthetic samples ({} per dataset, nothing downloaded): lengths and ratios drawn log-normally around the paper's medians (benches/sharing/datasets.rs, docs/bench.md). Micro-batches: {}. The paper: Mistral-7B, FlashAttention-3 and FlexAttention; its speedup 'vs Flex' compares one attention implementation in both formats, as ours does.",
                c.data.samples,
                if packed {
                    format!("rows of at most {} tokens, first-fit, no padding", c.data.pack_len)
                } else {
                    format!("{} samples, rows padded to the longest", c.data.batch)
                }
            ),
            statistic_note(c.plan.target),
        ],
    };
    for r in mine {
        let p = &r.profile;
        let paper = p.paper[usize::from(packed)];
        let (ours_p, ours_s, sp, flag) = match (&r.outcome, r.samples_per_s()) {
            (Ok(o), Some((a, b))) => (
                format!("{a:.2}"),
                format!("{b:.2}"),
                speedup_cell(&o.speedup),
                flag_cell(o.verdict),
            ),
            (Err(why), _) => (
                "-".into(),
                "-".into(),
                format!("not timed: {why}"),
                String::new(),
            ),
            _ => ("-".into(), "-".into(), "-".into(), String::new()),
        };
        t.rows.push(vec![
            p.name.into(),
            format!("{} / {:.0}", p.median_len, r.drawn.0),
            format!("{} / {:.2}", p.ratio, r.drawn.1),
            ours_p,
            ours_s,
            sp,
            format!("{:.2}x", r.ideal),
            format!(
                "{:.0}% / {:.0}%",
                100.0 * r.paired.padding(),
                100.0 * r.shared.padding()
            ),
            format!(
                "{:.2} / {:.2} / {:.2}",
                paper.fa3, paper.flex, paper.flex_shared
            ),
            format!("{:.2}x, {:.2}x", paper.over_fa3, paper.over_flex),
            flag,
        ]);
    }
    Some(t)
}

/// Both tables that have results.
pub fn tables(c: &Config, results: &[DatasetResult]) -> Vec<Table> {
    [false, true]
        .into_iter()
        .filter_map(|packed| table(c, results, packed))
        .collect()
}
