//! ci/downstream/Cargo.toml copies this package's dev-dependencies and dev profile, so that
//! candle's kernels build once in CI's shared target dir (the comment there says why). This keeps
//! the copy equal: the tables compared line by line, comments and blank lines left out.

use std::fs;
use std::path::Path;

/// The lines of every table of `manifest` whose header starts with one of `prefixes`, in order,
/// without comments or blank lines.
fn tables(manifest: &str, prefixes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            keep = prefixes.iter().any(|p| line.starts_with(p));
        }
        if keep {
            out.push(line.to_string());
        }
    }
    out
}

#[test]
fn downstream_crate_has_this_packages_dev_dependencies_and_profile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let theirs = fs::read_to_string(root.join("ci/downstream/Cargo.toml")).unwrap();
    let prefixes = ["[dev-dependencies]", "[profile."];
    let (a, b) = (tables(&ours, &prefixes), tables(&theirs, &prefixes));
    assert!(a.len() > 10, "{a:?}");
    assert_eq!(
        a, b,
        "ci/downstream/Cargo.toml's [dev-dependencies] and [profile.*] must equal Cargo.toml's"
    );
}
