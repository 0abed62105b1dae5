//! Edge cases of the forward kernel on the CPU emulator that the covering matrix
//! (tests/forward/emulated.rs) does not reach: arbitrary valid `vis_end` (non-nested visibility
//! intervals, not from any builder), n = 1 and other tile-boundary lengths, rows whose first k
//! tile is all padding, a row where only the last query sees anything, score magnitudes that
//! drive the running-max rescale and exp2 into underflow, tiny softmax scales, tile-aligned
//! documents (FULL tiles) and checkerboards of FULL / PARTIAL / EMPTY tiles, GQA 8:1 and odd
//! head counts, head-major strided views for Q, K, V and O, and batches of differently shaped
//! rows (so the heaviest-first launch order interleaves rows).
//!
//! Every element of every case is compared with the f64 reference on the same rounded inputs
//! within its derived bound (`prefix_attn::bounds`, docs/forward.md); outputs are poisoned and
//! guarded, so an element the kernel does not write or a write outside its view fails. Shapes stay small: the emulated suite runs on 2 CI cores. The cases themselves live in
//! tests/support/forward/edge.rs; tests/gpu/forward.rs runs a subset of them on a device.

use crate::forward_support;

use half::{bf16, f16};
use prefix_attn::attention::{forward_emulated_with, HostTensors, KernelChoice, View};
use prefix_attn::bounds::Arith;
use prefix_attn::emu::{GuardedBuf, Schedule};
use prefix_attn::mask::{BlockMask, TileClass, TileShape, VisEnd};
use prefix_attn::registry::Arch;

use forward_support::cases::Dtype;
use forward_support::check::{check, Inputs, KernelElem, POISON_F32};
use forward_support::configs::{self, plan_for_all};
use forward_support::edge::{
    self, from_layout, max_scaled_score_of, strides, to_layout, Edge, Layout,
};

/// Runs the kernel on the emulator with poisoned, guarded outputs; returns dense O and LSE.
fn run<T: KernelElem + prefix_attn::emu::Element>(
    layout: Layout,
    inp: &Inputs<T>,
    choice: KernelChoice,
    schedule: Schedule,
) -> (Vec<T>, Vec<f32>) {
    let sh = &inp.shape;
    let put =
        |dense: &[T], heads: usize| GuardedBuf::from_slice(&to_layout(layout, dense, sh, heads));
    let (q, k, v) = (
        put(&inp.q, sh.q_heads),
        put(&inp.k, sh.kv_heads),
        put(&inp.v, sh.kv_heads),
    );
    let mut o = GuardedBuf::filled(sh.q_len(), T::poison());
    let mut lse = GuardedBuf::filled(sh.lse_len(), POISON_F32);
    let plan = plan_for_all(inp.vis_end.clone());
    forward_emulated_with(
        &plan,
        sh,
        HostTensors {
            q: View::new(q.as_slice(), strides(layout, sh, sh.q_heads)),
            k: View::new(k.as_slice(), strides(layout, sh, sh.kv_heads)),
            v: View::new(v.as_slice(), strides(layout, sh, sh.kv_heads)),
            o: View::new(o.as_mut_slice(), strides(layout, sh, sh.q_heads)),
            lse: lse.as_mut_slice(),
        },
        inp.scale,
        choice,
        schedule,
    )
    .unwrap();
    o.check_guards("o").unwrap();
    lse.check_guards("lse").unwrap();
    (
        from_layout(layout, o.as_slice(), sh, sh.q_heads),
        lse.to_vec(),
    )
}

/// Every tile configuration of both paths (sm80, and sm90a's warp-specialised wgmma + TMA).
fn all_choices() -> Vec<KernelChoice> {
    [Arch::Sm80, Arch::Sm90a]
        .into_iter()
        .flat_map(configs::choices)
        .collect()
}

/// Every edge case runs under every registered tile configuration of both paths: tile
/// boundaries, padding tiles and class checkerboards fall differently under each.
fn run_edge<T: KernelElem + prefix_attn::emu::Element>(e: &Edge) -> Result<(), String> {
    let inp = e.inputs::<T>();
    for choice in all_choices() {
        if !configs::runs_at(&choice, e.head_dim) {
            continue;
        }
        let (o, lse) = run(e.layout, &inp, choice, Schedule::Ascending);
        check(
            &format!("{} [{}]", e.name, configs::name(&choice)),
            e.dtype,
            &inp,
            &o,
            &lse,
            Arith::Emulator,
            configs::tile_of(&choice, e.head_dim),
        )?;
    }
    Ok(())
}

/// Block lists at the 64 x 64 tile the structural assertions below are written for.
fn mask_64(rows: &[Vec<i32>]) -> BlockMask {
    BlockMask::build(
        &VisEnd::from_rows(rows).unwrap(),
        TileShape::new(64, 64).unwrap(),
    )
    .unwrap()
}

fn run_all(cases: &[Edge]) {
    edge::run_all(cases, run_edge::<bf16>, run_edge::<f16>);
}

/// Arbitrary valid `vis_end` at every length around the 64-token tile, several seeds, padding
/// mixed in, both dtypes and head dims, GQA 1/2/4.
#[test]
fn random_vis_end_at_tile_boundary_lengths() {
    run_all(&edge::random_vis_end_at_tile_boundaries());
}

/// More seeds at one ragged length, where every (q tile, k tile) below the diagonal is PARTIAL
/// with non-nested intervals, and rows mostly padding.
#[test]
fn random_vis_end_more_seeds_and_padding_mixes() {
    run_all(&edge::random_vis_end_padding_mixes(0..4));
}

/// n = 1 (one query, seen or padding); a row where only the last query sees anything (one key:
/// itself); a row whose first k tile is all padding but later tiles are not; an all-padding k
/// tile in the middle of a row.
#[test]
fn tiny_rows_and_padding_at_tile_granularity() {
    let cases = edge::tiny_rows_and_padding_tiles();
    let m = mask_64(&cases[2].rows);
    // Row 1: q tile 0 lists nothing, q tiles 1.. never list k tile 0.
    assert_eq!(m.q_list(1, 0).count(), 0);
    assert!((1..m.q_tiles()).all(|qt| m.q_list(1, qt).all(|(kt, _)| kt > 0)));
    // Row 2: q tile 1 lists nothing; q tile 2 lists only k tile 2.
    assert_eq!(m.q_list(2, 1).count(), 0);
    assert_eq!(
        m.q_list(2, 2).map(|(kt, _)| kt).collect::<Vec<_>>(),
        vec![2]
    );
    run_all(&cases);
}

/// |scale * q.k| up to ~100-200: most probabilities underflow in exp2, and with an increasing
/// key ramp the running max jumps at every k tile (rescale factors that underflow to 0); with a
/// decreasing ramp the max sits in the first tile and later tiles contribute almost nothing.
/// f16 inputs stay far inside their range (|q| < 8, |k| < 16). (A rescale factor clamped at
/// 2^-12 instead of underflowing passes the matrix and fails here.)
///
/// |LSE| ~ 150 here, so its fp32 rounding (2^-24 |LSE|) and the scores' mma rounding (which grows
/// with |scale q.k|) dominate its error; the per-element bounds (`prefix_attn::bounds`) grow
/// with both, so the range below is what these cases test, not a limit of the check.
/// tests/forward/bounds.rs runs them under every model of ex2 / lg2.
#[test]
fn large_score_magnitudes() {
    let cases = edge::large_score_magnitudes();
    for e in &cases {
        let max = max_scaled_score_of(e);
        eprintln!("{}: max |scale q.k| = {max:.1}", e.name);
        assert!(
            (100.0..=200.0).contains(&max),
            "{}: max |scale q.k| = {max}",
            e.name
        );
    }
    run_all(&cases);
}

/// Scales far below 1/sqrt(d): the softmax is almost uniform; the smallest is an f32 subnormal,
/// whose scale * log2(e) is still non-zero.
#[test]
fn tiny_softmax_scales() {
    run_all(&edge::tiny_softmax_scales());
}

/// Documents of exactly 64-token multiples (every tile off the diagonal FULL), and rows whose
/// (q tile, k tile) classes form a checkerboard of FULL, PARTIAL and EMPTY.
#[test]
fn full_tiles_and_class_checkerboards() {
    let rows = edge::checkerboard_rows();
    let m = mask_64(&rows);
    let classes = |r: usize| -> Vec<TileClass> {
        (0..4)
            .flat_map(|qt| (0..4).map(move |kt| (qt, kt)))
            .map(|(qt, kt)| m.class(r, qt, kt))
            .collect()
    };
    use TileClass::{Empty as E, Full as F, Partial as P};
    #[rustfmt::skip]
    assert_eq!(classes(0), vec![
        P, E, E, E,
        F, P, E, E,
        E, E, P, E,
        E, E, E, P,
    ]);
    #[rustfmt::skip]
    assert_eq!(classes(1), vec![
        P, E, E, E,
        F, P, E, E,
        F, F, P, E,
        F, F, E, P,
    ]);
    for r in 0..3 {
        let c = classes(r);
        assert!(
            c.contains(&F) && c.contains(&P) && c.contains(&E),
            "row {r}: {c:?}"
        );
    }
    let cases = edge::class_checkerboards();
    assert!(cases.iter().all(|e| e.rows == rows));
    run_all(&cases);
}

/// GQA 8:1 on random rows, and q_heads == kv_heads with an odd head count.
#[test]
fn gqa_8_to_1_and_equal_odd_heads() {
    run_all(&edge::gqa_8_to_1_and_odd_heads());
}

#[test]
fn head_major_views_and_mixed_rows() {
    let e = edge::head_major_mixed_batch(Dtype::Bf16, 64, 61);
    // The launch order does interleave rows: not row-major.
    let m = mask_64(&e.rows);
    let order = m.heaviest_first();
    let q_tiles = m.q_tiles() as i32;
    assert!(
        order.windows(2).any(|w| w[0] / q_tiles > w[1] / q_tiles),
        "{order:?}"
    );
    run_all(&[e, edge::head_major_mixed_batch(Dtype::F16, 128, 62)]);
}

/// No races on the edge layouts: the same bits under the ascending, descending and random
/// schedules (head-major views, mixed rows with arbitrary `vis_end`, large scores), and each
/// run matches the reference.
#[test]
fn identical_bits_under_every_schedule() {
    let e = edge::head_major_large_scores(71);
    let inp = e.inputs::<f16>();
    for choice in all_choices() {
        if !configs::runs_at(&choice, e.head_dim) {
            continue;
        }
        let name = format!("{} [{}]", e.name, configs::name(&choice));
        let mut runs = Schedule::all(0xed9e)
            .into_iter()
            .map(|s| (s, run(e.layout, &inp, choice, s)));
        let (_, (base_o, base_lse)) = runs.next().unwrap();
        let tile = configs::tile_of(&choice, e.head_dim);
        check(
            &name,
            e.dtype,
            &inp,
            &base_o,
            &base_lse,
            Arith::Emulator,
            tile,
        )
        .unwrap();
        for (s, (o, lse)) in runs {
            let o_diff = base_o
                .iter()
                .zip(&o)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(o_diff, None, "{name}: O differs under {s}");
            let lse_diff = base_lse
                .iter()
                .zip(&lse)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(lse_diff, None, "{name}: LSE differs under {s}");
        }
    }
}
