//! Runs one check per item, each on a thread of its own so they spread over the cores, and
//! collects the panics as messages naming their item: one failing tile configuration does not
//! hide the others, and each failure says which configuration it was.

/// `run(item)` for every item, in parallel; the failures as `"<name(item)>: <panic message>"`,
/// in item order (empty when every run returned).
pub fn failures_on_threads<C: Copy + Send>(
    items: &[C],
    name: impl Fn(&C) -> String,
    run: impl Fn(C) + Sync,
) -> Vec<String> {
    let run = &run;
    std::thread::scope(|s| {
        let runs: Vec<_> = items
            .iter()
            .map(|&item| (item, s.spawn(move || run(item))))
            .collect();
        runs.into_iter()
            .filter_map(|(item, handle)| {
                handle.join().err().map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|m| m.to_string()))
                        .unwrap_or_default();
                    format!("{}: {msg}", name(&item))
                })
            })
            .collect()
    })
}
