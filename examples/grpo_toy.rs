//! A GRPO-style step (groups of k completions, group-normalized advantages) with the toy model,
//! prefix-shared against paired: same log-probs, loss and gradients.
//! `tests/backward/toy_training_equivalence.rs` runs the same code.
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
    // The same step with the attention layer's forward and backward on the crate's kernels (CPU
    // emulator, f16): the formats still agree, within the kernels' rounding
    // (tests/backward/toy_training_equivalence.rs checks it against bounds derived in docs/backward.md).
    let kernels = toy_model::grpo_demo_in(11, 6, toy_model::Mode::Kernels)?;
    println!("with the kernels (emulated, f16):");
    for (name, diff, norm) in kernels.differences() {
        println!("  {name:>9}: |shared - paired| {diff:.2e} (|paired| {norm:.2e})");
    }
    Ok(())
}
