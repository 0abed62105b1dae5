//! Timings collected from inside criterion's `iter_custom` calls, and what is derived from them:
//! per (op, point, format) the median time per call, and per (op, point) the measured speedup of
//! shared over paired next to the ideal one.

use std::cell::RefCell;
use std::time::Duration;

use super::cases::{Format, Op, Point, Problem};
use super::config::Model;

/// One timed (op, point, format).
#[derive(Debug, Clone)]
pub struct Entry {
    pub op: Op,
    pub point: Point,
    pub format: Format,
    pub rows: usize,
    pub n: usize,
    pub tokens: usize,
    pub visible_pairs: u64,
    pub flops: f64,
    /// Paired work over shared work of this point and op.
    pub ideal: f64,
    /// Seconds per call of every timed batch of calls (criterion's warm-up and samples).
    pub per_call_s: Vec<f64>,
    /// Why there is no timing (an op this mode cannot run yet).
    pub skipped: Option<String>,
}

impl Entry {
    /// Median seconds per call, when timed.
    pub fn median_s(&self) -> Option<f64> {
        median(&self.per_call_s)
    }

    pub fn tflops(&self) -> Option<f64> {
        self.median_s().map(|s| self.flops / s / 1e12)
    }
}

/// Handle of one entry.
#[derive(Debug, Clone, Copy)]
pub struct Slot(usize);

/// Every entry of a run (single-threaded: criterion runs one benchmark at a time).
#[derive(Default)]
pub struct Results {
    entries: RefCell<Vec<Entry>>,
}

/// The measured and ideal speedup of one (op, point).
#[derive(Debug, Clone)]
pub struct Speedup {
    pub op: Op,
    pub point: Point,
    pub shared_s: f64,
    pub paired_s: f64,
    pub ideal: f64,
}

impl Speedup {
    pub fn measured(&self) -> f64 {
        self.paired_s / self.shared_s
    }

    /// Measured over ideal.
    pub fn of_ideal(&self) -> f64 {
        self.measured() / self.ideal
    }
}

impl Results {
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        op: Op,
        point: &Point,
        format: Format,
        problem: &Problem,
        model: &Model,
        ideal: f64,
    ) -> Slot {
        let mut e = self.entries.borrow_mut();
        e.push(Entry {
            op,
            point: *point,
            format,
            rows: problem.rows(),
            n: problem.n(),
            tokens: problem.tokens(),
            visible_pairs: problem.visible_pairs(),
            flops: op.flops(problem, model),
            ideal,
            per_call_s: Vec::new(),
            skipped: None,
        });
        Slot(e.len() - 1)
    }

    /// `calls` calls took `total`.
    pub fn record(&self, slot: Slot, calls: u64, total: Duration) {
        if calls > 0 {
            self.entries.borrow_mut()[slot.0]
                .per_call_s
                .push(total.as_secs_f64() / calls as f64);
        }
    }

    /// Median seconds per call of one entry, when timed.
    pub fn median_s(&self, slot: Slot) -> Option<f64> {
        self.entries.borrow()[slot.0].median_s()
    }

    pub fn skip(&self, slot: Slot, why: &str) {
        self.entries.borrow_mut()[slot.0].skipped = Some(why.to_string());
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.borrow().clone()
    }

    /// Speedups of every (op, point) timed in both formats, in the order they were added.
    pub fn speedups(&self) -> Vec<Speedup> {
        speedups(&self.entries.borrow())
    }
}

pub fn speedups(entries: &[Entry]) -> Vec<Speedup> {
    let mut out = Vec::new();
    for s in entries.iter().filter(|e| e.format == Format::Shared) {
        let paired = entries
            .iter()
            .find(|e| e.format == Format::Paired && e.op == s.op && e.point.id() == s.point.id());
        if let (Some(shared_s), Some(paired_s)) = (s.median_s(), paired.and_then(Entry::median_s)) {
            out.push(Speedup {
                op: s.op,
                point: s.point,
                shared_s,
                paired_s,
                ideal: s.ideal,
            });
        }
    }
    out
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}
