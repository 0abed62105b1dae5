//! The sweep, for either mode: for each op and point, both formats prepared by the mode's
//! runner, timed against each other (measure.rs), one console line per point.

use std::time::Duration;

use super::cases::{Op, Point, Problem};
use super::config::{Config, Mode};
use super::measure::{self, Outcome, Plan, Round};
use super::results::{speedup_cell, PointResult, Size};

/// Runs `calls` calls of one prepared (op, problem) and returns the time they took (device time
/// on a GPU).
pub type Timed<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// What a mode provides: inputs and buffers for one (op, problem), allocated and warmed up
/// before timing; `Err(reason)` when the mode cannot run the op (the tables say why).
pub trait Runner {
    fn prepare<'a>(&'a self, op: Op, problem: &'a Problem) -> Result<Timed<'a>, String>;

    /// The training step (a transformer block, forward and backward) over every micro-batch of
    /// one format of a dataset: one call = one pass over all of them.
    fn step<'a>(&'a self, batches: &'a [Problem]) -> Result<Timed<'a>, String>;
}

/// `CPU` or `GPU`: the first word of every progress line.
pub fn tag(mode: Mode) -> &'static str {
    match mode {
        Mode::Cpu => "CPU",
        Mode::Gpu => "GPU",
    }
}

/// Times both formats of one point; `Err` when either cannot be prepared.
pub fn time_pair(
    cfg: &Config,
    plan: &Plan,
    paired: Result<Timed<'_>, String>,
    shared: Result<Timed<'_>, String>,
) -> Result<Outcome, String> {
    let (paired, shared) = (paired?, shared?);
    let mut log = |i: usize, r: &Round| {
        if cfg.verbose {
            println!(
                "      round {i:>3}: paired {:.4} ms, shared {:.4} ms, ratio {:.3}, CPU contended {:.0}% / {:.0}% of the samples{}",
                r.paired.per_call_s * 1e3,
                r.shared.per_call_s * 1e3,
                r.ratio(),
                100.0 * r.paired.wait,
                100.0 * r.shared.wait,
                if r.busy { " (busy: left out)" } else { "" }
            );
        }
    };
    Ok(measure::run(plan, paired, shared, &mut log))
}

/// The result part of a progress line: speedup, interval, ideal, rounds and the flag.
pub fn outcome_text(o: &Result<Outcome, String>, ideal: f64, plan: &Plan) -> String {
    match o {
        Err(why) => format!("not timed: {why}"),
        Ok(o) => {
            let s = &o.speedup;
            let mut t = format!(
                "{} (ideal {ideal:.2}x, {:.0}% of it), {} rounds, {:.1} s",
                speedup_cell(s),
                100.0 * s.median / ideal,
                o.rounds.len(),
                o.seconds
            );
            match o.verdict {
                measure::Verdict::Ok => {}
                measure::Verdict::Noisy => t += &format!(
                    "  NOISY: interval ±{:.0}% > ±{:.0}% target - not a result",
                    100.0 * s.rel_half_width().min(9.99),
                    100.0 * plan.target
                ),
                measure::Verdict::Busy => t += &format!(
                    "  BUSY: only {} of {} rounds without CPU contention (CPU contended {:.0}% of the time) - not a result",
                    o.clean_rounds(),
                    o.rounds.len(),
                    100.0 * o.wait()
                ),
            }
            t
        }
    }
}

/// The microbenchmark sweep: every op at every point.
pub fn run(
    cfg: &Config,
    plan: &Plan,
    cases: &[(Point, Problem, Problem)],
    runner: &dyn Runner,
) -> Vec<PointResult> {
    let total = Op::ALL.len() * cases.len();
    let mut out = Vec::new();
    for op in Op::ALL {
        for (point, shared, paired) in cases {
            let ideal = op.ideal(shared, paired, &cfg.model);
            let outcome = time_pair(
                cfg,
                plan,
                runner.prepare(op, paired),
                runner.prepare(op, shared),
            );
            println!(
                "{} [{}/{total}] {} {}: {}",
                tag(cfg.mode),
                out.len() + 1,
                op.name(),
                point.id(),
                outcome_text(&outcome, ideal, plan)
            );
            out.push(PointResult {
                op,
                point: *point,
                shared: Size::of(op, shared, &cfg.model),
                paired: Size::of(op, paired, &cfg.model),
                ideal,
                outcome,
            });
        }
    }
    out
}
