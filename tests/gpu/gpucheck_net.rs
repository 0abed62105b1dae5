//! A net for the GPU check (scripts/gpucheck/run.sh), which runs this binary's trials through
//! libtest's name filters on a lent device: a filter that matches nothing passes there without
//! testing anything, and a device trial no filter matches never runs on a device at all. Device
//! time is scarce (minutes per session), so both are caught here, on the host, in every
//! `cargo test`.

use std::fs;
use std::path::Path;

use libtest_mimic::Trial;

use crate::device_harness;

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    host_tests![
        every_device_trial_is_in_the_gpu_check,
        run_sh_filters_are_read_as_the_shell_runs_them,
    ]
}

/// One run of this binary in run.sh: its name filter and whether `--exact` applies.
#[derive(Debug)]
struct Filter {
    text: String,
    exact: bool,
}

impl Filter {
    /// libtest's rule: the whole name under `--exact`, else any substring of it.
    fn selects(&self, name: &str) -> bool {
        if self.exact {
            name == self.text
        } else {
            name.contains(&self.text)
        }
    }
}

/// The filters of every `"$BIN/gpu" FILTER ...` command in `script` (continued lines joined).
fn filters(script: &str) -> Vec<Filter> {
    let joined = script.replace("\\\n", " ");
    joined
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split("\"$BIN/gpu\"").skip(1).map(move |rest| (l, rest)))
        .filter_map(|(line, rest)| {
            let text = rest.split_whitespace().next()?;
            // `[ -x "$BIN/gpu" ]` tests the file; it runs nothing.
            (!text.starts_with(']')).then(|| Filter {
                text: text.to_string(),
                exact: line.split_whitespace().any(|w| w == "--exact"),
            })
        })
        .collect()
}

fn every_device_trial_is_in_the_gpu_check() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpucheck/run.sh");
    let script = fs::read_to_string(&path).unwrap();
    let filters = filters(&script);
    assert!(filters.len() >= 5, "run.sh's filters: {filters:?}");
    let names: Vec<String> = crate::all_trials()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    for f in &filters {
        assert!(
            names.iter().any(|n| f.selects(n)),
            "run.sh runs the gpu binary with {f:?}, which selects none of its trials"
        );
    }
    // Every listing of the trials (main's and the one above) records them again.
    let mut device = device_harness::device_trial_names();
    device.sort();
    device.dedup();
    assert!(device.len() >= 20, "device trials: {device:?}");
    let missed: Vec<&String> = device
        .iter()
        .filter(|n| !filters.iter().any(|f| f.selects(n)))
        .collect();
    assert!(
        missed.is_empty(),
        "device trials that no run.sh step runs: {missed:?}"
    );
    // The sanitizer steps run one small case of each kernel family.
    let sanitizer = filters
        .iter()
        .find(|f| f.text.contains("sanitizer"))
        .expect("a compute-sanitizer step");
    for module in [
        "forward::",
        "backward::",
        "fill::",
        "logprob_gather::",
        "ops::",
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(module) && sanitizer.selects(n)),
            "the sanitizer steps ({sanitizer:?}) run no {module} trial"
        );
    }
}

/// The parser reads commands as the shell runs them: continued lines, `--exact` on the
/// continuation, the file test skipped, comments ignored.
fn run_sh_filters_are_read_as_the_shell_runs_them() {
    let script = "if [ -x \"$BIN/gpu\" ]; then\n\
                  \x20   run_step a 9 \"$BIN/gpu\" forward:: --nocapture\n\
                  \x20   run_step b 9 \"$BIN/gpu\" fill::x \\\n\
                  \x20       --exact --nocapture\n\
                  # run_step c 9 \"$BIN/gpu\" nothing::\n\
                  fi\n";
    let f = filters(script);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(!f[0].exact && f[0].text == "forward::");
    assert!(f[1].exact && f[1].text == "fill::x");
    assert!(f[0].selects("forward::gpu_a") && !f[0].selects("backward::gpu_a"));
    assert!(f[1].selects("fill::x") && !f[1].selects("fill::xy"));
}
