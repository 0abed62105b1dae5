//! Nets for the device-test harness (tests/support/device_harness.rs): a test binary with
//! `harness = false` silently drops `#[test]` functions, and a device test under libtest's harness
//! would count as passed without a device. Both are caught here, from the sources.

use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Names of the `[[test]]` targets of Cargo.toml with `harness = false`.
fn custom_harness_tests() -> Vec<String> {
    let manifest = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    manifest
        .split("[[test]]")
        .skip(1)
        .filter_map(|target| {
            // The target's own lines: up to the next table header.
            let body = target.split("\n[").next().unwrap_or("");
            let name = body
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = "))?
                .trim_matches('"')
                .to_string();
            body.lines()
                .any(|l| l.trim() == "harness = false")
                .then_some(name)
        })
        .collect()
}

/// The `.rs` files under `dir`, recursively.
fn sources(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn custom_harness_binaries_have_no_test_attributes() {
    let names = custom_harness_tests();
    assert!(!names.is_empty(), "harness = false targets: {names:?}");
    for name in names {
        // A binary is a folder (tests/NAME/main.rs and its modules) or one file (tests/NAME.rs).
        let tests = Path::new(ROOT).join("tests");
        let dir = tests.join(&name);
        let (main, files) = if dir.is_dir() {
            let files = sources(&dir);
            assert!(files.len() > 1, "tests/{name}: {files:?}");
            (dir.join("main.rs"), files)
        } else {
            let file = tests.join(format!("{name}.rs"));
            (file.clone(), vec![file])
        };
        let main = fs::read_to_string(&main).unwrap_or_else(|e| panic!("{}: {e}", main.display()));
        assert!(
            main.contains("device_harness::run("),
            "tests/{name}: its main calls device_harness::run"
        );
        for path in files {
            let src = fs::read_to_string(&path).unwrap();
            assert!(
                !src.contains("#[test]"),
                "{} is in a harness = false binary: a #[test] there never runs; list it in its \
                 module's trials()",
                path.display()
            );
        }
    }
}

#[test]
fn every_test_that_opens_a_device_uses_the_device_harness() {
    let custom = custom_harness_tests();
    let tests = Path::new(ROOT).join("tests");
    let files = sources(&tests);
    assert!(files.len() > 30, "{} test sources", files.len());
    for path in files {
        let rel = path.strip_prefix(&tests).unwrap().to_path_buf();
        // The binary a source belongs to: its top folder, or a top-level file's stem.
        let top = if rel.components().count() == 1 {
            rel.file_stem().unwrap().to_str().unwrap().to_string()
        } else {
            rel.components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .to_string()
        };
        // this file names the call it looks for; the harness itself opens the device
        if rel.ends_with("device_harness_net.rs") || rel.ends_with("support/device_harness.rs") {
            continue;
        }
        let src = fs::read_to_string(&path).unwrap();
        if src.contains("Gpu::new(") {
            assert!(
                custom.contains(&top),
                "tests/{} opens a device but runs under libtest, where a test without a device \
                 would count as passed: move it to tests/gpu (harness = false, \
                 tests/support/device_harness.rs)",
                rel.display()
            );
        }
    }
}
