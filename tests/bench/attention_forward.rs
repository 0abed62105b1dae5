//! The device-only benchmarks' problems, built on the host in every `cargo test`: the GPU mode of
//! `cargo bench --bench attention_forward` (benches/attention_forward/gpu_cases.rs) and
//! examples/forward_bench.rs (examples/forward_bench/cases.rs), through the very functions they
//! time. A layout that overflows its row, a batch over its token budget or a plan that does not
//! build fails here instead of on a GPU.

#[allow(dead_code)]
#[path = "../../benches/attention_forward/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../../examples/forward_bench/cases.rs"]
mod forward_bench_cases;
#[allow(dead_code)]
#[path = "../../benches/attention_forward/gpu_cases.rs"]
mod gpu_cases;

use cases::{Case, Format};
use prefix_attn::plan::Plan;
use prefix_attn::AttnShape;

/// Shape validation, a host plan, and the launch's CTA count within the kernel's int32 index.
fn plans(shape: &AttnShape, case_vis: &prefix_attn::mask::VisEnd, what: &str) {
    shape
        .validate()
        .unwrap_or_else(|e| panic!("{what}: shape: {e}"));
    let plan = Plan::new(case_vis.clone()).unwrap_or_else(|e| panic!("{what}: plan: {e}"));
    for tile in plan.tiles() {
        let mask = plan.mask(tile).unwrap();
        let ctas = mask.rows() * mask.q_tiles() * shape.q_heads;
        assert!(ctas <= i32::MAX as usize, "{what}: {ctas} CTAs");
    }
}

/// Tokens that are padding (`vis_end[j] = j`: seen by nobody).
fn padding(case: &Case) -> usize {
    let (n, v) = (case.vis_end.n(), case.vis_end.as_slice());
    v.iter()
        .enumerate()
        .filter(|&(j, &e)| e as usize == j % n)
        .count()
}

#[test]
fn gpu_mode_bench_cases_fit_and_plan() {
    let dims = gpu_cases::DIMS;
    let causal = gpu_cases::causal_cases();
    assert_eq!(causal.len(), gpu_cases::CAUSAL_N.len());
    for (case, &n) in causal.iter().zip(&gpu_cases::CAUSAL_N) {
        assert_eq!(case.format, Format::Causal);
        assert_eq!(case.vis_end.n(), n);
        assert_eq!(case.tokens(), gpu_cases::TOKENS, "{}", case.name);
        assert_eq!(padding(case), 0, "{}", case.name);
        plans(&case.shape(dims), &case.vis_end, &case.name);
    }
    // The ideal speedups the bench's docs quote, in GROUPS order.
    let ideal = [1.29, 1.58, 1.50, 1.92];
    let prefix = gpu_cases::prefix_cases();
    assert_eq!(prefix.len(), ideal.len());
    for ((shared, paired), want) in prefix.iter().zip(ideal) {
        assert_eq!(
            (shared.format, paired.format),
            (Format::Shared, Format::Paired)
        );
        assert_eq!(shared.name, paired.name);
        for case in [shared, paired] {
            let what = format!("{} {}", case.format.name(), case.name);
            assert_eq!(padding(case), 0, "{what}");
            plans(&case.shape(dims), &case.vis_end, &what);
        }
        // The shared batch is within the launch's token budget (the paired one holds the same
        // samples with each prompt repeated, so it is larger) and without padding in either
        // format (the paired baseline at its best, as gpu_cases.rs says).
        let tokens = shared.tokens();
        assert!(
            (gpu_cases::TOKENS / 2..=gpu_cases::TOKENS).contains(&tokens),
            "{}: {tokens} shared tokens",
            shared.name
        );
        // Same samples: every real token of the shared batch's completions appears once per
        // completion in the paired one, so the paired batch never has fewer tokens.
        assert!(paired.tokens() >= shared.tokens(), "{}", shared.name);
        let speedup = paired.visible_pairs() as f64 / shared.visible_pairs() as f64;
        assert!(
            (speedup - want).abs() < 0.01,
            "{}: ideal speedup {speedup:.3}, the docs say {want}",
            shared.name
        );
    }
}

#[test]
fn forward_bench_example_cases_fit_and_plan() {
    use forward_bench_cases::{benches, KV_HEADS, Q_HEADS, TOKENS};
    let all = benches();
    assert_eq!(all.len(), 12);
    for b in &all {
        let what = format!("{} n={} d={}", b.kind, b.n, b.head_dim);
        let vis_end = b.vis_end();
        assert_eq!(vis_end.n(), b.n, "{what}");
        assert_eq!(vis_end.rows() * b.n, TOKENS, "{what}");
        let shape = AttnShape {
            rows: b.rows(),
            n: b.n,
            q_heads: Q_HEADS,
            kv_heads: KV_HEADS,
            head_dim: b.head_dim,
        };
        plans(&shape, &vis_end, &what);
    }
}
