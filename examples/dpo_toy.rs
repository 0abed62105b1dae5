//! A DPO step with a toy model (embedding, one attention layer through the crate's f64
//! reference, LM head) in the prefix-shared format and in the paired format: same per-completion
//! log-probs, same loss, same gradients. `tests/toy_training_equivalence.rs` runs the same code.
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
    Ok(())
}
