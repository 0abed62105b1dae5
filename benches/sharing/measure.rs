//! Times one point fairly: the paired and the shared format in interleaved rounds, until the
//! speedup's interval is narrow or the point's time budget is spent.
//!
//! - A round times one sample of each format back to back (paired first in even rounds, shared
//!   first in odd ones, so neither always runs on a cache or clock the other warmed up). A sample
//!   is enough calls to last [`Plan::min_sample`], so timer resolution and per-call jitter stay
//!   small against it.
//! - Each sample also records how much of its time the CPU was contended: the larger of the
//!   timing thread's run-queue wait (Linux `/proc/thread-self/schedstat`) and the time during
//!   which any task of the machine waited for a CPU (`/proc/pressure/cpu`, `some`: this one
//!   also sees the CPU path's helper threads). The CPU path runs one thread per core, so on an
//!   idle machine both are near zero; another process competing for the cores makes them grow.
//!   A round whose mean share is above [`Plan::max_wait`] is *busy*: kept in the files, left out
//!   of the statistic.
//! - After [`Plan::min_rounds`] clean rounds, the loop stops as soon as the interval of the
//!   median ratio (stats.rs) is within `±target`. Otherwise it goes on until the budget or
//!   [`Plan::max_rounds`], and the point is flagged: **noisy** (enough clean rounds, interval
//!   still wide) or **busy** (not enough clean rounds: the machine was not ours).

use std::time::{Duration, Instant};

use super::driver::Timed;
use super::stats::{estimate, Estimate};

/// How a point is timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Clean rounds before the interval is looked at (8 gives a 95% interval at all).
    pub min_rounds: usize,
    pub max_rounds: usize,
    /// Target relative half-width of the speedup's interval (0.05 = ±5%).
    pub target: f64,
    /// Wall-clock budget of one point, calibration included.
    pub budget: Duration,
    /// Shortest sample: calls per sample are chosen to last at least this.
    pub min_sample: Duration,
    /// Largest share of a round's wall time the timing thread may wait for a CPU; `None`: not
    /// checked (GPU mode: device time does not depend on the host's load).
    pub max_wait: Option<f64>,
}

/// One sample: a number of calls of one format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub per_call_s: f64,
    /// Share of the sample's wall time during which the timing thread, or any task of the
    /// machine, waited for a CPU (0 when the kernel says neither).
    pub wait: f64,
}

/// One round: a sample of each format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub paired: Sample,
    pub shared: Sample,
    pub busy: bool,
}

impl Round {
    pub fn ratio(&self) -> f64 {
        self.paired.per_call_s / self.shared.per_call_s
    }
}

/// Is a point's speedup a result?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Interval within the target.
    Ok,
    /// Enough clean rounds, but the interval stayed wider than the target.
    Noisy,
    /// Too few rounds without CPU contention: the machine was busy with something else.
    Busy,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Noisy => "noisy",
            Verdict::Busy => "busy",
        }
    }

    pub fn flagged(self) -> bool {
        self != Verdict::Ok
    }
}

/// Everything measured at one point.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rounds: Vec<Round>,
    pub calls: (u64, u64),
    /// Over the clean rounds (all rounds when the point is busy).
    pub speedup: Estimate,
    pub paired_s: Estimate,
    pub shared_s: Estimate,
    pub verdict: Verdict,
    pub seconds: f64,
}

impl Outcome {
    pub fn clean_rounds(&self) -> usize {
        self.rounds.iter().filter(|r| !r.busy).count()
    }

    /// Median contention share over every sample.
    pub fn wait(&self) -> f64 {
        let w: Vec<f64> = self
            .rounds
            .iter()
            .flat_map(|r| [r.paired.wait, r.shared.wait])
            .collect();
        super::stats::median(&w).unwrap_or(0.0)
    }
}

/// Nanoseconds the calling thread has waited on a run queue since it started; `None` where the
/// kernel does not say.
pub fn thread_wait_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

/// Microseconds during which at least one task of the machine was runnable but waiting for a
/// CPU (Linux pressure stall information, `some` line); `None` without PSI. It also sees the
/// CPU path's helper threads, which the calling thread's own wait does not.
pub fn cpu_pressure_us() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = s.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Share of `wall` seconds that a counter's growth from `a` to `b` (in `unit` seconds) covers.
fn share(a: Option<u64>, b: Option<u64>, unit: f64, wall: f64) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) if wall > 0.0 => (b.saturating_sub(a) as f64 * unit / wall).min(1.0),
        _ => 0.0,
    }
}

fn sample(timed: &mut Timed<'_>, calls: u64) -> Sample {
    let (w0, p0) = (thread_wait_ns(), cpu_pressure_us());
    let t0 = Instant::now();
    let t = timed(calls);
    let wall = t0.elapsed().as_secs_f64();
    let (w1, p1) = (thread_wait_ns(), cpu_pressure_us());
    // Either signal is contention: the timing thread waited, or some task (a helper thread of
    // ours or another process) did.
    let wait = share(w0, w1, 1e-9, wall).max(share(p0, p1, 1e-6, wall));
    Sample {
        per_call_s: t.as_secs_f64() / calls as f64,
        wait,
    }
}

/// Calls per sample: enough to last `min`, from a first timed call (the runners have already
/// run one untimed call, so this one is warm).
fn calibrate(timed: &mut Timed<'_>, min: Duration) -> u64 {
    let one = timed(1).as_secs_f64().max(1e-7);
    (min.as_secs_f64() / one).ceil().clamp(1.0, 1e7) as u64
}

/// Times `paired` against `shared` under `plan`. `log` gets each round when the bench is
/// verbose.
pub fn run(
    plan: &Plan,
    mut paired: Timed<'_>,
    mut shared: Timed<'_>,
    log: &mut dyn FnMut(usize, &Round),
) -> Outcome {
    let start = Instant::now();
    let calls = (
        calibrate(&mut paired, plan.min_sample),
        calibrate(&mut shared, plan.min_sample),
    );
    let mut rounds: Vec<Round> = Vec::new();
    loop {
        let (p, s) = if rounds.len() % 2 == 0 {
            let p = sample(&mut paired, calls.0);
            (p, sample(&mut shared, calls.1))
        } else {
            let s = sample(&mut shared, calls.1);
            (sample(&mut paired, calls.0), s)
        };
        let busy = plan
            .max_wait
            .is_some_and(|max| 0.5 * (p.wait + s.wait) > max);
        let round = Round {
            paired: p,
            shared: s,
            busy,
        };
        log(rounds.len(), &round);
        rounds.push(round);
        let clean = rounds.iter().filter(|r| !r.busy).count();
        if clean >= plan.min_rounds {
            let e = summarise(&rounds, plan).speedup;
            if e.rel_half_width() <= plan.target {
                break;
            }
        }
        if rounds.len() >= plan.max_rounds || start.elapsed() >= plan.budget {
            break;
        }
    }
    let mut out = summarise(&rounds, plan);
    out.calls = calls;
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// The statistic over the clean rounds (all of them when too few are clean) and the verdict.
pub fn summarise(rounds: &[Round], plan: &Plan) -> Outcome {
    let clean: Vec<&Round> = rounds.iter().filter(|r| !r.busy).collect();
    let busy = clean.len() < plan.min_rounds;
    let used: Vec<&Round> = if busy { rounds.iter().collect() } else { clean };
    let of = |f: &dyn Fn(&Round) -> f64| {
        let v: Vec<f64> = used.iter().map(|r| f(r)).collect();
        estimate(&v).expect("a point has at least one round")
    };
    let speedup = of(&|r| r.ratio());
    let verdict = if busy {
        Verdict::Busy
    } else if speedup.rel_half_width() > plan.target {
        Verdict::Noisy
    } else {
        Verdict::Ok
    };
    Outcome {
        rounds: rounds.to_vec(),
        calls: (0, 0),
        speedup,
        paired_s: of(&|r| r.paired.per_call_s),
        shared_s: of(&|r| r.shared.per_call_s),
        verdict,
        seconds: 0.0,
    }
}
