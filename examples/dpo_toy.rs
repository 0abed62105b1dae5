//! A DPO step with a toy model (embedding, one attention layer through the crate's f64
//! reference, then through the kernels on the CPU emulator, LM head) in the prefix-shared format and in the paired format: same per-completion
//! log-probs, same loss, same gradients. `tests/backward/toy_training_equivalence.rs` runs the same code.
//!
//! `cargo run --example dpo_toy`

mod toy_model;

fn main() -> Result<(), prefix_attn::Error> {
    let cmp = toy_model::dpo_demo(7)?;
    cmp.print("DPO, 5 pairs");
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
    let kernels = toy_model::dpo_demo_in(7, toy_model::Mode::Kernels)?;
    println!("with the kernels (emulated, f16):");
    for (name, diff, norm) in kernels.differences() {
        println!("  {name:>9}: |shared - paired| {diff:.2e} (|paired| {norm:.2e})");
    }
    Ok(())
}
