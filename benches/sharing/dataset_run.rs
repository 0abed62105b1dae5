//! Runs the dataset tables: for each profile, with and without packing, the paired and the
//! shared batches of the same synthetic samples timed against each other (measure.rs), one
//! console line per point.

use super::config::Config;
use super::datasets::{batches, draw, drawn_medians, real_tokens, Batches, Profile, PROFILES};
use super::driver::{outcome_text, tag, time_pair, Runner};
use super::measure::{Outcome, Plan};

/// What one format of one dataset point computes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInfo {
    pub samples: usize,
    pub micro_batches: usize,
    pub rows: usize,
    /// Padding included.
    pub tokens: usize,
    pub real_tokens: usize,
    pub flops: f64,
}

impl BatchInfo {
    fn of(b: &Batches, real: usize, cfg: &Config) -> Self {
        BatchInfo {
            samples: b.samples,
            micro_batches: b.problems.len(),
            rows: b.rows(),
            tokens: b.tokens(),
            real_tokens: real,
            flops: b.step_flops(&cfg.model),
        }
    }

    pub fn padding(&self) -> f64 {
        1.0 - self.real_tokens as f64 / self.tokens as f64
    }
}

/// One dataset, packed or not.
#[derive(Debug, Clone)]
pub struct DatasetResult {
    pub profile: Profile,
    pub packed: bool,
    /// Medians of the drawn samples: (total length, prefix/completion ratio).
    pub drawn: (f64, f64),
    pub paired: BatchInfo,
    pub shared: BatchInfo,
    /// Paired step FLOPs over shared step FLOPs.
    pub ideal: f64,
    pub outcome: Result<Outcome, String>,
}

impl DatasetResult {
    /// Samples per second of (paired, shared) at their median times.
    pub fn samples_per_s(&self) -> Option<(f64, f64)> {
        let o = self.outcome.as_ref().ok()?;
        Some((
            self.paired.samples as f64 / o.paired_s.median,
            self.shared.samples as f64 / o.shared_s.median,
        ))
    }

    pub fn id(&self) -> String {
        format!(
            "{}{}",
            self.profile.name,
            if self.packed { "+packing" } else { "" }
        )
    }
}

/// The dataset points get a longer budget than a microbenchmark point: one call is a whole
/// training step over every micro-batch.
pub fn plan(cfg: &Config) -> Plan {
    Plan {
        budget: cfg.plan.budget * 3,
        ..cfg.plan
    }
}

pub fn run(cfg: &Config, runner: &dyn Runner) -> Vec<DatasetResult> {
    let plan = plan(cfg);
    let total = 2 * PROFILES.len();
    let mut out = Vec::new();
    for packed in [false, true] {
        for (i, p) in PROFILES.iter().enumerate() {
            let samples = draw(p, &cfg.data, i as u64);
            let result = (|| -> Result<DatasetResult, String> {
                let pb = batches(&samples, false, packed, &cfg.data)?;
                let sb = batches(&samples, true, packed, &cfg.data)?;
                let paired = BatchInfo::of(&pb, real_tokens(&samples, false), cfg);
                let shared = BatchInfo::of(&sb, real_tokens(&samples, true), cfg);
                let outcome = time_pair(
                    cfg,
                    &plan,
                    runner.step(&pb.problems),
                    runner.step(&sb.problems),
                );
                Ok(DatasetResult {
                    profile: *p,
                    packed,
                    drawn: drawn_medians(&samples),
                    ideal: paired.flops / shared.flops,
                    paired,
                    shared,
                    outcome,
                })
            })();
            match result {
                Ok(r) => {
                    println!(
                        "{} [{}/{total}] step {}: {}",
                        tag(cfg.mode),
                        out.len() + 1,
                        r.id(),
                        outcome_text(&r.outcome, r.ideal, &plan)
                    );
                    out.push(r);
                }
                Err(e) => println!(
                    "{} [-/{total}] step {}{}: batches not built: {e}",
                    tag(cfg.mode),
                    p.name,
                    if packed { "+packing" } else { "" }
                ),
            }
        }
    }
    out
}
