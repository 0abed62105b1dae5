//! Deterministic fan-out of independent work units over the machine's threads.

use crate::mask::VisEnd;
use crate::reference::visible::VisibleKeys;
use crate::shape::AttnShape;

/// `f(keys, row, q_head, kv_head)` for every (row, query head), in ascending (row, head) order,
/// with each row's visible-key lists built once and shared by its heads. What forward and
/// backward both fan out over.
pub(crate) fn map_heads<R, F>(shape: &AttnShape, vis_end: &VisEnd, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(&VisibleKeys, usize, usize, usize) -> R + Sync,
{
    let lists: Vec<VisibleKeys> = (0..shape.rows)
        .map(|r| VisibleKeys::build(vis_end.row(r)))
        .collect();
    par_map(shape.rows * shape.q_heads, |unit| {
        let (r, h) = (unit / shape.q_heads, unit % shape.q_heads);
        f(&lists[r], r, h, h / shape.group())
    })
}

/// `(0..units).map(f).collect()`, computed on up to `available_parallelism` scoped threads.
///
/// Each unit is computed by exactly one thread and results come back in unit order, so the
/// output does not depend on the thread count or scheduling. A panic in `f` is re-raised here.
pub(crate) fn par_map<R, F>(units: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(units);
    if threads <= 1 {
        return (0..units).map(f).collect();
    }
    let per_thread = units.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = t * per_thread..((t + 1) * per_thread).min(units);
                scope.spawn(move || range.map(f).collect::<Vec<R>>())
            })
            .collect();
        let mut out = Vec::with_capacity(units);
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::par_map;

    #[test]
    fn results_come_back_in_unit_order() {
        for units in [0, 1, 2, 3, 17] {
            let got = par_map(units, |u| u * 10);
            let want: Vec<usize> = (0..units).map(|u| u * 10).collect();
            assert_eq!(got, want);
        }
    }
}
