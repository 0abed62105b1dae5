//! A GRPO-style step (groups of k completions, group-normalized advantages) with the toy model,
//! prefix-shared against paired: same log-probs, loss and gradients.
//! `tests/toy_training_equivalence.rs` runs the same code.
//!
//! `cargo run --example grpo_toy`

mod toy_model;

fn main() -> Result<(), prefix_attn::Error> {
    let cmp = toy_model::grpo_demo(11, 6)?;
    cmp.print("GRPO, 3 groups of 6");
    for (name, err) in cmp.errors() {
        assert!(err <= toy_model::TOLERANCE, "{name} differs by {err:e}");
    }
    println!(
        "shared and paired formats agree within {:e}",
        toy_model::TOLERANCE
    );
    Ok(())
}
