//! What the bench prints after criterion's own report: FLOP/s per case and, for each problem
//! timed in both formats, the measured shared-over-paired speedup next to the ideal one.

use std::cell::RefCell;
use std::time::Duration;

use super::cases::{Case, Dims, Format};

struct Entry {
    format: Format,
    name: String,
    visible_pairs: u64,
    flops: u64,
    /// Time per iteration of every timed call criterion made (warm-up and samples).
    per_iter_s: Vec<f64>,
}

/// Timings collected from inside criterion's `iter_custom` calls.
pub struct Summary {
    /// Printed FLOP/s unit: (divisor, label).
    unit: (f64, &'static str),
    entries: RefCell<Vec<Entry>>,
}

/// Handle of one case in a [`Summary`].
#[derive(Clone, Copy)]
pub struct Slot(usize);

impl Summary {
    pub fn new(unit: (f64, &'static str)) -> Self {
        Self {
            unit,
            entries: RefCell::new(Vec::new()),
        }
    }

    pub fn add(&self, case: &Case, dims: Dims) -> Slot {
        let mut entries = self.entries.borrow_mut();
        entries.push(Entry {
            format: case.format,
            name: case.name.clone(),
            visible_pairs: case.visible_pairs(),
            flops: case.forward_flops(dims),
            per_iter_s: Vec::new(),
        });
        Slot(entries.len() - 1)
    }

    /// One timed call: `iters` forwards took `total`.
    pub fn record(&self, slot: Slot, iters: u64, total: Duration) {
        if iters > 0 {
            self.entries.borrow_mut()[slot.0]
                .per_iter_s
                .push(total.as_secs_f64() / iters as f64);
        }
    }

    /// Prints the table; cases criterion did not run (filtered out) are left out. `above_ideal`
    /// says why, when a measured speedup exceeds the ideal one.
    pub fn print(&self, title: &str, above_ideal: &str) {
        let entries = self.entries.borrow();
        let (div, unit) = self.unit;
        println!("\n{title}");
        println!(
            "{:<8} {:<22} {:>14} {:>12} {:>10}",
            "format", "case", "visible pairs", "ms (median)", unit
        );
        for e in entries.iter() {
            if let Some(s) = median(&e.per_iter_s) {
                println!(
                    "{:<8} {:<22} {:>14} {:>12.4} {:>10.3}",
                    e.format.name(),
                    e.name,
                    e.visible_pairs,
                    s * 1e3,
                    e.flops as f64 / s / div
                );
            }
        }
        let find = |format, name: &str| {
            entries
                .iter()
                .find(|e| e.format == format && e.name == name)
                .and_then(|e| median(&e.per_iter_s).map(|s| (s, e.visible_pairs)))
        };
        let mut header = false;
        let mut above = false;
        for e in entries.iter().filter(|e| e.format == Format::Shared) {
            let (Some((shared_s, shared_pairs)), Some((paired_s, paired_pairs))) =
                (find(Format::Shared, &e.name), find(Format::Paired, &e.name))
            else {
                continue;
            };
            if !header {
                println!(
                    "\nshared vs paired (same samples); ideal = visible pairs paired / shared"
                );
                println!(
                    "{:<22} {:>10} {:>10} {:>10} {:>8}",
                    "case", "shared ms", "paired ms", "measured", "ideal"
                );
                header = true;
            }
            let (measured, ideal) = (
                paired_s / shared_s,
                paired_pairs as f64 / shared_pairs as f64,
            );
            above |= measured > 1.02 * ideal;
            println!(
                "{:<22} {:>10.4} {:>10.4} {:>9.2}x {:>7.2}x",
                e.name,
                shared_s * 1e3,
                paired_s * 1e3,
                measured,
                ideal
            );
        }
        if above {
            println!("Measured above ideal: the ideal counts visible pairs, and {above_ideal}.");
        }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
