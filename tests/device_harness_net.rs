//! Nets for the device-test harness (tests/device_harness): a test binary with `harness = false`
//! silently drops `#[test]` functions, and a device test under libtest's harness would count as
//! passed without a device. Both are caught here, from the sources.

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

#[test]
fn custom_harness_binaries_have_no_test_attributes() {
    let names = custom_harness_tests();
    assert!(names.len() >= 4, "harness = false targets: {names:?}");
    for name in names {
        let src = fs::read_to_string(Path::new(ROOT).join(format!("tests/{name}.rs"))).unwrap();
        assert!(
            !src.contains("#[test]"),
            "tests/{name}.rs has harness = false: a #[test] there never runs; list it in main"
        );
        assert!(src.contains("device_harness::run("), "tests/{name}.rs");
    }
}

#[test]
fn every_test_that_opens_a_device_uses_the_device_harness() {
    let custom = custom_harness_tests();
    for entry in fs::read_dir(Path::new(ROOT).join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "device_harness_net" {
            continue; // this file names the call it looks for
        }
        let src = fs::read_to_string(&path).unwrap();
        if src.contains("Gpu::new(") {
            assert!(
                custom.contains(&name),
                "tests/{name}.rs opens a device but runs under libtest, where a test without a \
                 device would count as passed: give it harness = false and tests/device_harness"
            );
        }
    }
}
