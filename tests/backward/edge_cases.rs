//! Edge cases of the backward on the CPU emulator beyond the covering matrix, the forward's edge
//! families (tests/support/forward/edge.rs) through forward + backward: arbitrary valid `vis_end`
//! at lengths around the tiles (n = 1 included), padding at tile granularity (empty k-major lists:
//! their dK/dV must still be written, as zeros), a row where only the last query sees anything,
//! large score magnitudes, tiny softmax scales, FULL / PARTIAL / EMPTY checkerboards, GQA 8:1 and
//! odd head counts, head-major views of a mixed batch. Every case runs under every registered
//! sm80 backward configuration and with the sm90a dK/dV and dQ kernels against the f64 reference
//! within the derived bounds
//! (`prefix_attn::bounds`), outputs poisoned and guarded.

use crate::backward_support;
use crate::forward_support;

use half::{bf16, f16};
use prefix_attn::emu::Schedule;
use prefix_attn::registry::Arch;

use backward_support::check::{bounds, check};
use backward_support::configs;
use backward_support::run::{d_o_for, run};
use forward_support::cases::Dtype;
use forward_support::check::KernelElem;
use forward_support::edge::{self, Edge};

fn run_edge<T: KernelElem + prefix_attn::emu::Element>(e: &Edge) -> Result<(), String> {
    let inp = e.inputs::<T>();
    let d_o = d_o_for(&inp, e.seed);
    let rf = bounds(&inp, &d_o);
    for choice in backward_choices() {
        let label = format!("{} [{}]", e.name, configs::name(&choice));
        let out = run(e.layout, &inp, &d_o, choice, Schedule::Ascending)
            .map_err(|err| format!("{label}: {err}"))?;
        let s = check(&label, &rf, &out.lse, [&out.dq, &out.dk, &out.dv])?;
        let e = s.grads.map(|g| (g.error, g.bound));
        eprintln!(
            "{label}: dQ {:.2e}/{:.2e} dK {:.2e}/{:.2e} dV {:.2e}/{:.2e}",
            e[0].0, e[0].1, e[1].0, e[1].1, e[2].0, e[2].1
        );
    }
    Ok(())
}

/// Every sm80 backward configuration, then the sm90a dK/dV and dQ.
fn backward_choices() -> Vec<prefix_attn::attention::BackwardChoice> {
    let mut c = configs::choices(Arch::Sm80);
    c.push(configs::choices(Arch::Sm90a)[0]);
    c
}

fn run_all(cases: &[Edge]) {
    edge::run_all(cases, run_edge::<bf16>, run_edge::<f16>);
}

/// Arbitrary valid `vis_end` at n = 1, 15, 63, 64, 65, 130, 200, padding mixed in, both dtypes
/// and head dims, GQA 1/2/4.
#[test]
fn random_vis_end_at_tile_boundary_lengths() {
    run_all(&edge::random_vis_end_at_tile_boundaries());
}

/// Ragged n = 130, every tile below the diagonal PARTIAL with non-nested intervals, rows mostly
/// padding.
#[test]
fn random_vis_end_padding_mixes() {
    run_all(&edge::random_vis_end_padding_mixes(0..2));
}

/// n = 1; only the last query sees anything; the first / middle k tile all padding (an empty
/// k-major list: its CTA writes zeros).
#[test]
fn tiny_rows_and_padding_tiles() {
    run_all(&edge::tiny_rows_and_padding_tiles());
}

/// |scale * q.k| up to ~166, rising and falling maxima: P of the visible keys spans many orders
/// of magnitude, many underflow to 0.
#[test]
fn large_score_magnitudes() {
    run_all(&edge::large_score_magnitudes());
}

/// Scales 2^-20 and 1e-40 (subnormal): dQ and dK underflow in the element type, dV does not.
#[test]
fn tiny_softmax_scales() {
    run_all(&edge::tiny_softmax_scales());
}

/// FULL / PARTIAL / EMPTY checkerboards (tile-aligned documents and prompts), GQA 1 and 2.
#[test]
fn class_checkerboards() {
    run_all(&edge::class_checkerboards());
}

/// GQA 8:1 on random rows (one kv head's CTA walks eight q heads per q tile), and three q heads
/// on three kv heads.
#[test]
fn gqa_8_to_1_and_odd_heads() {
    run_all(&edge::gqa_8_to_1_and_odd_heads());
}

/// Q, K, V, O, dO, dQ, dK, dV head-major, a batch of differently shaped rows.
#[test]
fn head_major_mixed_batch() {
    run_all(&[
        edge::head_major_mixed_batch(Dtype::Bf16, 128, 61),
        edge::head_major_mixed_batch(Dtype::F16, 64, 62),
    ]);
}

/// Large scores, head-major, mixed rows: the same bits under every schedule (the race probe).
#[test]
fn identical_bits_under_every_schedule_large_scores() {
    let e = edge::head_major_large_scores(71);
    let inp = e.inputs::<f16>();
    let d_o = d_o_for(&inp, e.seed);
    for choice in backward_choices() {
        let base = run(e.layout, &inp, &d_o, choice, Schedule::Ascending).unwrap();
        for schedule in [Schedule::Descending, Schedule::Random { seed: 0xbeef }] {
            let other = run(e.layout, &inp, &d_o, choice, schedule).unwrap();
            for (name, a, b) in [
                ("dQ", &base.dq, &other.dq),
                ("dK", &base.dk, &other.dk),
                ("dV", &base.dv, &other.dv),
            ] {
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.bits() == y.bits()),
                    "{} [{}]: {name} differs under {schedule}",
                    e.name,
                    configs::name(&choice)
                );
            }
        }
    }
}
