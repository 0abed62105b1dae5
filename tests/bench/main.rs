//! The benches' plumbing, on the host: `cargo bench`'s problems (attention_forward, the GPU
//! example's cases) build and fit, and the sharing bench's configuration, statistics, reports,
//! charts and results files, all through the benches' own modules. One test binary
//! (`cargo test --test bench`). Which test checks what: tests/README.md.

mod attention_forward;
mod sharing;
