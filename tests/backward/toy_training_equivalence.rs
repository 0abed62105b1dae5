//! The examples' claim under `cargo test`: a DPO step and a GRPO step of the toy model give the
//! same per-completion log-probs, loss and parameter gradients in the prefix-shared and the
//! paired batch format (tolerance in examples/toy_model: f64 summation order only).

#[path = "../../examples/toy_model/mod.rs"]
mod toy_model;

use prefix_attn::batch::{Batch, BatchOptions};
use prefix_attn::reference::rel_l2_error;
use toy_model::{Comparison, TOLERANCE};

fn assert_agree(cmp: &Comparison, what: &str) {
    assert_eq!(cmp.shared.log_probs.len(), cmp.paired.log_probs.len());
    for (name, err) in cmp.errors() {
        assert!(err <= TOLERANCE, "{what}: {name} differs by {err:e}");
    }
    // The gradients are not trivially zero, and sharing saved tokens.
    assert!(cmp.shared.grads.wq.iter().any(|&g| g.abs() > 1e-6));
    assert!(cmp.shared.grads.pos.iter().any(|&g| g.abs() > 1e-6));
    assert!(cmp.shared.real_tokens < cmp.paired.real_tokens);
}

#[test]
fn dpo_step_is_the_same_shared_or_paired() {
    for seed in [1, 7, 23] {
        assert_agree(&toy_model::dpo_demo(seed).unwrap(), "DPO");
    }
}

#[test]
fn grpo_step_is_the_same_shared_or_paired() {
    for (seed, k) in [(3, 2), (11, 6), (5, 8)] {
        assert_agree(&toy_model::grpo_demo(seed, k).unwrap(), "GRPO");
    }
}

#[test]
fn wrong_position_ids_are_caught() {
    // The comparison can fail: feeding the shared batch with completion positions restarting at 0
    // (a trainer that ignored the builder's position ids) changes the log-probs by far more than
    // the tolerance.
    let samples = toy_model::dpo_samples(1, 3);
    let p = toy_model::Params::random(2);
    let opts = BatchOptions::new(toy_model::MAX_LEN);
    let shared = Batch::shared(&samples, &opts).unwrap();
    let paired = Batch::paired(&samples, &opts).unwrap();
    let (_, want) = toy_model::log_probs(&p, &paired).unwrap();
    let (_, good) = toy_model::log_probs(&p, &shared).unwrap();
    assert!(rel_l2_error(&good.sums, &want.sums) <= TOLERANCE);

    let mut restarted = shared.positions().to_vec();
    let mut counter = 0;
    for (t, pos) in restarted.iter_mut().enumerate() {
        if shared.completion_ids()[t] >= 0 {
            let first = t % shared.n() == 0 || shared.node_ids()[t] != shared.node_ids()[t - 1];
            counter = if first { 0 } else { counter + 1 };
            *pos = counter;
        }
    }
    assert_ne!(restarted, shared.positions());
    let f = toy_model::forward_with_positions(&p, &shared, &restarted).unwrap();
    let bad = shared
        .log_prob_map()
        .gather(&f.logits, toy_model::VOCAB)
        .unwrap();
    assert!(rel_l2_error(&bad.sums, &want.sums) > 1e-3);
}

// ---- the attention layer through the kernels (forward and backward, emulated, f16) ----

use crate::backward_support;
use crate::forward_support;

use half::f16;
use toy_model::kernels::KernelCall;
use toy_model::propagate::{step_bounds, AttnBounds, OUTPUTS};
use toy_model::Mode;

use backward_support::check::{bounds, check};
use forward_support::cases::Dtype;
use forward_support::check::{check_against, forward_bounds, Inputs};
use forward_support::configs::tile_of;
use prefix_attn::attention::KernelChoice;
use prefix_attn::bounds::{d_o_gain, Arith, ForwardRun, Grad};

fn fro(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The kernels' errors in one step's attention layer, from their derived bounds; checks on the
/// way that the kernels met them (the forward's O and LSE, the backward's gradients).
fn attn_bounds(call: &KernelCall) -> AttnBounds {
    let inp = Inputs::<f16> {
        shape: call.shape,
        vis_end: call.vis_end.clone(),
        q: call.q.clone(),
        k: call.k.clone(),
        v: call.v.clone(),
        scale: call.scale,
    };
    // The forward's per-element bounds (for the kernel the emulator's default choice runs): each
    // element within its own, so the whole O error within their Frobenius norm.
    let tile = tile_of(&KernelChoice::default(), inp.shape.head_dim);
    let run = ForwardRun {
        dtype: Dtype::F16,
        arith: Arith::Emulator,
        tile,
    };
    let tol = forward_bounds("toy forward", &inp, run).unwrap();
    check_against("toy forward", &tol, &call.o, &call.lse).unwrap();
    let o_bound = fro(tol.o());
    let rf = bounds(&inp, &call.d_o);
    let s = check(
        "toy backward",
        &rf,
        &call.lse,
        [&call.dq, &call.dk, &call.dv],
    )
    .unwrap();
    AttnBounds {
        o: o_bound,
        grads: Grad::ALL.map(|g| rf.bound(g, s.lse_error)),
        d_o_gain: d_o_gain(inp.bounds()).unwrap(),
        u: Dtype::F16.unit_roundoff(),
    }
}

/// With the kernels, shared and paired agree within the sum of their bounds plus the f64
/// tolerance of the reference comparison. The part through O is first order: it is taken 1.25
/// times, and checked to stay under 5% of its quantity, where the neglected higher-order terms
/// are a few percent of it; the part through dQ, dK, dV is exact (the gradients are linear in
/// them).
fn assert_kernels_agree(cmp: &toy_model::Comparison, what: &str) {
    let bounds_of = |step: &toy_model::Step, batch| {
        let f = step
            .forward
            .as_ref()
            .expect("a kernel-mode step keeps its forward");
        let a = attn_bounds(f.kernel_call().expect("kernel calls"));
        step_bounds(&cmp.params, batch, f, &*cmp.loss, &a).unwrap()
    };
    let bs = bounds_of(&cmp.shared, &cmp.shared_batch);
    let bp = bounds_of(&cmp.paired, &cmp.paired_batch);
    for (i, (name, diff, norm)) in cmp.differences().into_iter().enumerate() {
        assert_eq!(name, OUTPUTS[i]);
        let bound = 1.25 * (bs[i].through_o + bp[i].through_o)
            + bs[i].linear
            + bp[i].linear
            + TOLERANCE * norm;
        eprintln!("{what} kernels: {name:>9}: shared - paired {diff:.2e}, bound {bound:.2e} (norm {norm:.2e})");
        assert!(
            diff <= bound,
            "{what} with kernels: {name} differs by {diff:e} > {bound:e}"
        );
        assert!(
            bs[i].through_o.max(bp[i].through_o) <= 0.05 * norm,
            "{what}: {name}'s first-order part is not small against it"
        );
    }
    assert!(cmp.shared.grads.wq.iter().any(|&g| g.abs() > 1e-6));
    assert!(cmp.shared.real_tokens < cmp.paired.real_tokens);
}

#[test]
fn dpo_step_through_the_kernels_is_the_same_shared_or_paired() {
    assert_kernels_agree(&toy_model::dpo_demo_in(7, Mode::Kernels).unwrap(), "DPO");
}

#[test]
fn grpo_step_through_the_kernels_is_the_same_shared_or_paired() {
    assert_kernels_agree(
        &toy_model::grpo_demo_in(11, 6, Mode::Kernels).unwrap(),
        "GRPO",
    );
}
