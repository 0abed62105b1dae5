//! One way to get nvcc: scripts/get-nvcc.sh holds the five pinned 13.0 packages, and the README,
//! CI (.ci/run) and the hint of `Error::KernelsNotBuilt` (`cuda::GET_NVCC`, which the device
//! tests' skip reasons print) all run that script instead of listing packages of their own.

use std::fs;
use std::path::Path;

use prefix_attn::cuda::GET_NVCC;
use prefix_attn::Error;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The command as a human types it in a checkout (the README's form).
const IN_A_CHECKOUT: &str = "export NVCC=\"$(bash scripts/get-nvcc.sh)\"";

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_script_pins_all_five_packages_to_13_0() {
    let script = read("scripts/get-nvcc.sh");
    for package in [
        "nvidia-cuda-nvcc",
        "nvidia-cuda-cccl",
        "nvidia-cuda-crt",
        "nvidia-nvvm",
        "nvidia-cuda-runtime",
    ] {
        assert!(
            script.contains(&format!("\"{package}==13.0.*\"")),
            "{package} is not pinned to 13.0 in scripts/get-nvcc.sh"
        );
    }
}

#[test]
fn the_hint_runs_the_script_by_its_absolute_path() {
    let script = format!("{ROOT}/scripts/get-nvcc.sh");
    assert!(Path::new(&script).is_file(), "{script}");
    assert_eq!(GET_NVCC, format!("export NVCC=\"$(bash '{script}')\""));
    // The same command as the README's, from anywhere.
    assert_eq!(
        GET_NVCC
            .replace(&format!("'{ROOT}/"), "")
            .replace("')", ")"),
        IN_A_CHECKOUT
    );
    let e = Error::KernelsNotBuilt {
        reason: "nvcc was not found".into(),
    };
    assert!(e.to_string().contains(GET_NVCC), "{e}");
}

#[test]
fn readme_and_ci_use_the_script_and_list_no_packages() {
    let readme = read("README.md");
    assert!(
        readme.contains(IN_A_CHECKOUT),
        "README lacks {IN_A_CHECKOUT}"
    );
    let ci = read(".ci/run");
    assert!(ci.contains("\"$(bash scripts/get-nvcc.sh)\""), ".ci/run");
    for (path, text) in [
        ("README.md", &readme),
        (".ci/run", &ci),
        ("src/error.rs", &read("src/error.rs")),
    ] {
        assert!(
            !text.contains("nvidia-cuda-nvcc"),
            "{path} lists nvcc packages itself: run scripts/get-nvcc.sh instead"
        );
    }
}
