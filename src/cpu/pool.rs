//! Work distribution of the CPU path: independent units handed out one at a time from a shared
//! counter to scoped threads, so a thread that drew short units takes more of them (attention
//! units differ a lot in cost: a q tile near the end of a long row walks many k tiles).
//!
//! Each unit is computed by exactly one thread from inputs nobody writes, and results come back
//! in unit order: the output does not depend on the thread count or on which thread ran what.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads the CPU path uses: the machine's available parallelism (at least 1).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// `(0..units).map(f).collect()`, computed on up to `threads` threads (the calling thread is one
/// of them). A panic in `f` is re-raised here.
pub(crate) fn par_units<R, F>(units: usize, threads: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    let threads = threads.clamp(1, units.max(1));
    if threads == 1 {
        return (0..units).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let unit = next.fetch_add(1, Ordering::Relaxed);
            if unit >= units {
                return done;
            }
            done.push((unit, f(unit)));
        }
    };
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut parts = vec![work()];
        for helper in helpers {
            match helper.join() {
                Ok(part) => parts.push(part),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        parts
    });
    let mut slots: Vec<Option<R>> = (0..units).map(|_| None).collect();
    for (unit, r) in parts.into_iter().flatten() {
        slots[unit] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every unit was computed exactly once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::par_units;

    #[test]
    fn results_come_back_in_unit_order_for_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            for units in [0, 1, 2, 5, 33] {
                let got = par_units(units, threads, |u| u * 3 + 1);
                let want: Vec<usize> = (0..units).map(|u| u * 3 + 1).collect();
                assert_eq!(got, want, "{threads} threads, {units} units");
            }
        }
    }
}
