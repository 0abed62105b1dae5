//! The forward's derived error bounds (`prefix_attn::bounds`, docs/forward.md "Error bounds") on
//! the emulator under every model of the approximate instructions — exact, perturbed, and ex2 /
//! lg2 off by their whole documented error in either direction — on the cases that stress them
//! most: large scores (|LSE| ~ 150), a row of 16 k tiles, GQA and head-major views; and the check
//! itself rejecting an error planted just beyond an element's bound.

use crate::forward_support;

use half::{bf16, f16};
use prefix_attn::attention::{forward_emulated, HostTensors, KernelChoice, View};
use prefix_attn::emu::{Approx, GuardedBuf, Options, Schedule};
use prefix_attn::plan::Plan;

use prefix_attn::bounds::{Arith, ForwardBounds, ForwardRun};

use forward_support::cases::{matrix, Dtype};
use forward_support::check::{
    check_against, forward_bounds, inputs, Inputs, KernelElem, POISON_F32,
};
use forward_support::configs;
use forward_support::edge::{self, from_layout, strides, to_layout, Edge, Layout};
use forward_support::masks::causal;

fn run<T: KernelElem + prefix_attn::emu::Element>(
    layout: Layout,
    inp: &Inputs<T>,
    approx: Approx,
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
    let plan = Plan::new(inp.vis_end.clone()).unwrap();
    forward_emulated(
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
        Options::from(Schedule::Ascending).with_approx(approx),
    )
    .unwrap();
    o.check_guards("o").unwrap();
    lse.check_guards("lse").unwrap();
    (
        from_layout(layout, o.as_slice(), sh, sh.q_heads),
        lse.to_vec(),
    )
}

/// The bounds of `inp` for the kernel the emulator's default choice runs.
fn default_bounds<T: KernelElem>(name: &str, dtype: Dtype, inp: &Inputs<T>) -> ForwardBounds {
    let tile = configs::tile_of(&KernelChoice::default(), inp.shape.head_dim);
    let run = ForwardRun {
        dtype,
        arith: Arith::Emulator,
        tile,
    };
    forward_bounds(name, inp, run).unwrap()
}

fn all_modes<T: KernelElem + prefix_attn::emu::Element + Sync>(
    name: &str,
    dtype: Dtype,
    layout: Layout,
    inp: &Inputs<T>,
) -> Vec<String> {
    let tol = default_bounds(name, dtype, inp);
    Approx::all()
        .into_iter()
        .filter_map(|approx| {
            let (o, lse) = run(layout, inp, approx);
            check_against(&format!("{name} [{approx}]"), &tol, &o, &lse).err()
        })
        .collect()
}

fn edge_all_modes(e: &Edge) -> Vec<String> {
    match e.dtype {
        Dtype::Bf16 => all_modes(&e.name, e.dtype, e.layout, &e.inputs::<bf16>()),
        Dtype::F16 => all_modes(&e.name, e.dtype, e.layout, &e.inputs::<f16>()),
    }
}

/// A causal row of 512 tokens (8 k tiles for its last q tile) with large flat scores: the
/// bound's terms that grow with the number of k tiles (rescale factors, the sum of l).
fn long_large_scores() -> Edge {
    let mut e = Edge::new(
        "large scores, flat, causal n=512, bf16 d64",
        vec![causal(512, 512)],
        (1, 1),
        64,
    )
    .seed(77);
    e.amps = [8.0, 8.0, 1.0];
    e.key_ramp = (1.5, 1.5);
    e
}

#[test]
fn large_scores_within_the_bounds_under_every_approx_mode() {
    let mut cases = edge::large_score_magnitudes();
    cases.push(edge::head_major_large_scores(71));
    cases.push(long_large_scores());
    let failures: Vec<String> = cases.iter().flat_map(edge_all_modes).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn matrix_cases_within_the_bounds_under_every_approx_mode() {
    let all = matrix();
    // Causal bf16 d64; ragged f16 d128 with GQA 4.
    let mut failures = all_modes(
        all[0].name,
        all[0].dtype,
        Layout::Dense,
        &inputs::<bf16>(&all[0]),
    );
    failures.extend(all_modes(
        all[1].name,
        all[1].dtype,
        Layout::Dense,
        &inputs::<f16>(&all[1]),
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The check can fail: one O element and one LSE element moved just beyond their bounds (to the
/// nearest representable value past the bound) each fail it; moved to the reference value they
/// pass.
#[test]
fn an_error_planted_just_beyond_an_element_bound_fails() {
    let e = &edge::large_score_magnitudes()[3]; // flat, bf16 d128: |LSE| ~ 150
    let inp = e.inputs::<bf16>();
    let (o, lse) = run(e.layout, &inp, Approx::DEFAULT);
    let bounds = default_bounds(&e.name, e.dtype, &inp);
    let (want, tol) = (bounds.reference(), (bounds.o(), bounds.lse()));
    check_against(&e.name, &bounds, &o, &lse).unwrap();

    // The O element whose bound is smallest relative to its value, and a seen query's LSE.
    let oi = (0..o.len())
        .filter(|&i| want.o[i].abs() > 1e-3)
        .min_by(|&a, &b| (tol.0[a] / want.o[a].abs()).total_cmp(&(tol.0[b] / want.o[b].abs())))
        .unwrap();
    let li = (0..lse.len()).find(|&i| want.lse[i] > 100.0).unwrap();
    for dir in [1.0f64, -1.0] {
        let mut bad_o = o.clone();
        let mut x = bf16::from_f64(want.o[oi] + dir * tol.0[oi]);
        while (x.to_f64() - want.o[oi]).abs() <= tol.0[oi] {
            x = bf16::from_bits(if (x.to_f64() > 0.0) == (dir > 0.0) {
                x.to_bits() + 1
            } else {
                x.to_bits() - 1
            });
        }
        bad_o[oi] = x;
        let err = check_against(&e.name, &bounds, &bad_o, &lse).unwrap_err();
        assert!(err.contains("O "), "{err}");
        bad_o[oi] = bf16::from_f64(want.o[oi]);
        check_against(&e.name, &bounds, &bad_o, &lse).unwrap();

        let mut bad_lse = lse.clone();
        let mut y = (want.lse[li] + dir * tol.1[li]) as f32;
        while (f64::from(y) - want.lse[li]).abs() <= tol.1[li] {
            y = f32::from_bits(if dir > 0.0 {
                y.to_bits() + 1
            } else {
                y.to_bits() - 1
            });
        }
        bad_lse[li] = y;
        let err = check_against(&e.name, &bounds, &o, &bad_lse).unwrap_err();
        assert!(err.contains("LSE"), "{err}");
    }
}
