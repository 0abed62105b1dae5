//! The examples' claim under `cargo test`: a DPO step and a GRPO step of the toy model give the
//! same per-completion log-probs, loss and parameter gradients in the prefix-shared and the
//! paired batch format (tolerance in examples/toy_model: f64 summation order only).

#[path = "../examples/toy_model/mod.rs"]
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
