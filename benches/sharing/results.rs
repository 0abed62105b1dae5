//! What a run measured, per (op, point): the sizes of both formats, the ideal speedup and the
//! outcome of the interleaved timing (measure.rs), or why the point was not timed. Every table,
//! CSV line, JSON record and chart reads its numbers from here, so they cannot disagree.

use super::cases::{Format, Op, Point, Problem};
use super::config::Model;
use super::measure::{Outcome, Verdict};
use super::stats::Estimate;

/// One format of one (op, point): what is computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    pub rows: usize,
    pub n: usize,
    pub tokens: usize,
    pub visible_pairs: u64,
    pub flops: f64,
}

impl Size {
    pub fn of(op: Op, p: &Problem, m: &Model) -> Self {
        Size {
            rows: p.rows(),
            n: p.n(),
            tokens: p.tokens(),
            visible_pairs: p.visible_pairs(),
            flops: op.flops(p, m),
        }
    }
}

/// One (op, point).
#[derive(Debug, Clone)]
pub struct PointResult {
    pub op: Op,
    pub point: Point,
    pub shared: Size,
    pub paired: Size,
    /// Paired work over shared work.
    pub ideal: f64,
    /// `Err(why)` when this mode cannot run the op.
    pub outcome: Result<Outcome, String>,
}

impl PointResult {
    pub fn size(&self, f: Format) -> &Size {
        match f {
            Format::Shared => &self.shared,
            Format::Paired => &self.paired,
        }
    }

    pub fn timed(&self) -> Option<&Outcome> {
        self.outcome.as_ref().ok()
    }

    pub fn speedup(&self) -> Option<Estimate> {
        self.timed().map(|o| o.speedup)
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.timed().map(|o| o.verdict)
    }

    /// Median seconds per call of one format.
    pub fn time(&self, f: Format) -> Option<Estimate> {
        self.timed().map(|o| match f {
            Format::Shared => o.shared_s,
            Format::Paired => o.paired_s,
        })
    }

    /// FLOP/s of one format at its median time.
    pub fn flop_rate(&self, f: Format) -> Option<f64> {
        self.time(f).map(|t| self.size(f).flops / t.median)
    }
}

/// `12.3` → "12.3x [11.9, 12.6]"-style cells for a speedup.
pub fn speedup_cell(e: &Estimate) -> String {
    if e.lo.is_finite() && e.hi.is_finite() {
        format!("{:.2}x [{:.2}, {:.2}]", e.median, e.lo, e.hi)
    } else {
        format!("{:.2}x [unbounded]", e.median)
    }
}
