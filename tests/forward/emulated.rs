//! The forward kernels on the CPU emulator against the f64 reference: the covering matrix of
//! mask layouts, ragged lengths, GQA ratios, dtypes and head dims, for every registered tile
//! configuration of the sm80 path; identical bits under every emulator schedule; poisoned,
//! guarded outputs (every element written, nothing outside); strided views; typed errors for bad
//! calls.

use crate::forward_support;
use crate::on_threads::failures_on_threads;

use half::{bf16, f16};
use prefix_attn::attention::{
    forward_emulated, forward_emulated_with, HostTensors, KernelChoice, Strides, View,
};
use prefix_attn::bounds::Arith;
use prefix_attn::emu::{GuardedBuf, Schedule};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{Arch, TileConfig};
use prefix_attn::{AttnShape, Error};

use forward_support::cases::{matrix, Case, Dtype};
use forward_support::check::{check, inputs, Inputs, KernelElem, POISON_F32};
use forward_support::configs::{self, plan_for_all};
use forward_support::fused::Fused;
use forward_support::masks::{causal, prefix_groups};

/// Output buffers with guards, poisoned.
struct Outputs<T: KernelElem + prefix_attn::emu::Element> {
    o: GuardedBuf<T>,
    lse: GuardedBuf<f32>,
}

fn run<T: KernelElem + prefix_attn::emu::Element>(
    inp: &Inputs<T>,
    choice: KernelChoice,
    schedule: Schedule,
) -> Outputs<T> {
    let sh = &inp.shape;
    let plan = plan_for_all(inp.vis_end.clone());
    let mut out = Outputs {
        o: GuardedBuf::filled(sh.q_len(), T::poison()),
        lse: GuardedBuf::filled(sh.lse_len(), POISON_F32),
    };
    forward_emulated_with(
        &plan,
        sh,
        HostTensors {
            q: View::dense(&inp.q[..], sh, sh.q_heads),
            k: View::dense(&inp.k[..], sh, sh.kv_heads),
            v: View::dense(&inp.v[..], sh, sh.kv_heads),
            o: View::dense(out.o.as_mut_slice(), sh, sh.q_heads),
            lse: out.lse.as_mut_slice(),
        },
        inp.scale,
        choice,
        schedule,
    )
    .unwrap();
    out.o.check_guards("o").unwrap();
    out.lse.check_guards("lse").unwrap();
    out
}

fn run_case<T: KernelElem + prefix_attn::emu::Element>(
    case: &Case,
    choice: KernelChoice,
) -> Result<(), String> {
    let inp = inputs::<T>(case);
    let out = run(&inp, choice, Schedule::Ascending);
    check(
        &format!("{} [{}]", case.name, configs::name(&choice)),
        case.dtype,
        &inp,
        out.o.as_slice(),
        out.lse.as_slice(),
        Arith::Emulator,
        configs::tile_of(&choice, case.head_dim),
    )
}

/// The whole matrix under one tile configuration (the cases at head dims it is registered for).
fn run_matrix(choice: KernelChoice) {
    let cases: Vec<Case> = matrix()
        .into_iter()
        .filter(|c| configs::runs_at(&choice, c.head_dim))
        .collect();
    assert!(!cases.is_empty(), "{}: no case", configs::name(&choice));
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            match case.dtype {
                Dtype::Bf16 => run_case::<bf16>(case, choice),
                Dtype::F16 => run_case::<f16>(case, choice),
            }
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The whole matrix under every configuration of `arch` registered in csrc/registry.cuh (a new
/// one is tested with no test edit), the configurations on threads of their own so they spread
/// over the cores; a failure names its configuration.
fn run_every_config(arch: Arch) {
    let choices = configs::choices(arch);
    assert!(!choices.is_empty(), "no {arch} forward configuration");
    let failures = failures_on_threads(&choices, configs::name, run_matrix);
    assert!(
        failures.is_empty(),
        "{} of {} {arch} configurations fail:\n{}",
        failures.len(),
        choices.len(),
        failures.join("\n")
    );
}

/// Every registered sm80 tile configuration (the default pick first).
#[test]
fn matrix_matches_reference_every_sm80_config() {
    run_every_config(Arch::Sm80);
}

/// Every registered sm90a configuration (warp-specialised wgmma + TMA), each at the head dims it
/// exists for.
#[test]
fn matrix_matches_reference_every_sm90a_config() {
    run_every_config(Arch::Sm90a);
}

/// The sm90a forward does the sm80 forward's arithmetic in the same order (csrc/attn/softmax.cuh
/// on both accumulators, P V chained in 16-key steps, the emulator's wgmma and mma.sync round
/// alike): on the emulator its O and LSE are the bits of the sm80 kernel with the same k tile,
/// whatever the q tile. So the sm80 path's derived bounds apply to it term for term. (If its
/// arithmetic is ever changed on purpose, this test goes and the bounds still hold.)
#[test]
fn sm90a_gives_the_bits_of_sm80_with_the_same_k_tile() {
    let all = matrix();
    let sm80_k128 = KernelChoice::exactly(Arch::Sm80, TileConfig::new(128, 128, 8, 2));
    for (case, choice) in [&all[0], &all[1], &all[3], &all[6]]
        .into_iter()
        .flat_map(|c| {
            configs::choices(Arch::Sm90a)
                .into_iter()
                .map(move |k| (c, k))
        })
        .filter(|(c, k)| configs::runs_at(k, c.head_dim))
    {
        let name = format!("{} [{}]", case.name, configs::name(&choice));
        let (same_o, same_lse) = match case.dtype {
            Dtype::Bf16 => same_bits::<bf16>(case, choice, sm80_k128),
            Dtype::F16 => same_bits::<f16>(case, choice, sm80_k128),
        };
        assert_eq!(
            same_o, None,
            "{name}: O differs from the sm80 kernel's at this index"
        );
        assert_eq!(
            same_lse, None,
            "{name}: LSE differs from the sm80 kernel's at this index"
        );
    }
}

/// Rows long enough that a CTA's list wraps the sm90a kernel's two-stage K/V ring (5 k tiles of
/// 128 keys): stage reuse, the empty barriers' later phases and a producer running ahead of its
/// consumers happen only here (the matrix's rows have at most three 128-key tiles per q tile).
/// Each configuration under every schedule: against the reference, and the same bits.
#[test]
fn sm90a_long_rows_wrap_the_ring_under_every_schedule() {
    let cases = [
        Case {
            name: "causal n=640 (5 k tiles of 128), gqa 1, d64, bf16",
            rows: vec![causal(640, 640)],
            q_heads: 1,
            kv_heads: 1,
            head_dim: 64,
            dtype: Dtype::Bf16,
            seed: 21,
        },
        Case {
            name: "prefix 300 + completions 100/120/110, n=640, gqa 2, d128, f16",
            rows: vec![prefix_groups(&[(300, &[100, 120, 110])], 640)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 128,
            dtype: Dtype::F16,
            seed: 22,
        },
    ];
    for case in &cases {
        for choice in configs::choices(Arch::Sm90a) {
            if !configs::runs_at(&choice, case.head_dim) {
                continue;
            }
            let r = match case.dtype {
                Dtype::Bf16 => schedules_agree_and_match::<bf16>(case, choice),
                Dtype::F16 => schedules_agree_and_match::<f16>(case, choice),
            };
            r.unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// One case under one configuration and every schedule: the first run within the reference's
/// bounds, the others its bits.
fn schedules_agree_and_match<T: KernelElem + prefix_attn::emu::Element>(
    case: &Case,
    choice: KernelChoice,
) -> Result<(), String> {
    let name = format!("{} [{}]", case.name, configs::name(&choice));
    let inp = inputs::<T>(case);
    let mut runs = Schedule::all(case.seed)
        .into_iter()
        .map(|s| (s, run(&inp, choice, s)));
    let (_, base) = runs.next().expect("three schedules");
    check(
        &name,
        case.dtype,
        &inp,
        base.o.as_slice(),
        base.lse.as_slice(),
        Arith::Emulator,
        configs::tile_of(&choice, case.head_dim),
    )?;
    for (s, other) in runs {
        let o = base
            .o
            .as_slice()
            .iter()
            .zip(other.o.as_slice())
            .position(|(p, q)| p.bits() != q.bits());
        let lse = base
            .lse
            .as_slice()
            .iter()
            .zip(other.lse.as_slice())
            .position(|(p, q)| p.to_bits() != q.to_bits());
        if o.is_some() || lse.is_some() {
            return Err(format!(
                "{name}: under {s}, O differs at {o:?}, LSE at {lse:?} (a pipeline race)"
            ));
        }
    }
    Ok(())
}

/// The first index where two kernels' O, and LSE, differ in bits.
fn same_bits<T: KernelElem + prefix_attn::emu::Element>(
    case: &Case,
    a: KernelChoice,
    b: KernelChoice,
) -> (Option<usize>, Option<usize>) {
    let inp = inputs::<T>(case);
    let (x, y) = (
        run(&inp, a, Schedule::Ascending),
        run(&inp, b, Schedule::Ascending),
    );
    let o =
        x.o.as_slice()
            .iter()
            .zip(y.o.as_slice())
            .position(|(p, q)| p.bits() != q.bits());
    let lse = x
        .lse
        .as_slice()
        .iter()
        .zip(y.lse.as_slice())
        .position(|(p, q)| p.to_bits() != q.to_bits());
    (o, lse)
}

/// No races: the same bits under ascending, descending and random thread/CTA orders, for every
/// tile configuration of both paths (on the sm90a path the schedules also move TMA landings and
/// wgmma operand reads between their extremes: a missing wait or an early release shows here).
#[test]
fn identical_bits_under_every_schedule() {
    let all = matrix();
    // A d128 multi-row case with padding and a d64 GQA-8 case.
    for (case, choice) in [&all[2], &all[5]]
        .into_iter()
        .flat_map(|c| {
            [Arch::Sm80, Arch::Sm90a]
                .into_iter()
                .flat_map(configs::choices)
                .map(move |k| (c, k))
        })
        .filter(|(c, k)| configs::runs_at(k, c.head_dim))
    {
        let inp = inputs::<bf16>(case);
        let base = run(&inp, choice, Schedule::Ascending);
        for schedule in [Schedule::Descending, Schedule::Random { seed: 0x5eed }] {
            let other = run(&inp, choice, schedule);
            let same_o = base
                .o
                .as_slice()
                .iter()
                .zip(other.o.as_slice())
                .position(|(a, b)| a.to_bits() != b.to_bits());
            let name = format!("{} [{}]", case.name, configs::name(&choice));
            assert_eq!(same_o, None, "{name}: O differs under {schedule}");
            let same_lse = base
                .lse
                .as_slice()
                .iter()
                .zip(other.lse.as_slice())
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(same_lse, None, "{name}: LSE differs under {schedule}");
        }
    }
}

/// Every configuration with the same k-tile width computes each row with the same operations in
/// the same order (a row's arithmetic depends only on how its keys are grouped into k tiles; a k
/// tile that is EMPTY for a 64-row q tile but PARTIAL for a 128-row one adds exact zeros), so they
/// give the same bits: what `docs/forward.md` claims, and what lets a pick change without moving
/// any result.
#[test]
fn configs_with_the_same_key_tiles_give_the_same_bits() {
    let all = matrix();
    let mut compared = 0;
    for case in [&all[2], &all[5]] {
        let inp = inputs::<bf16>(case);
        let choices: Vec<KernelChoice> = configs::choices(Arch::Sm80)
            .into_iter()
            .filter(|k| configs::runs_at(k, case.head_dim))
            .collect();
        for (i, a) in choices.iter().enumerate() {
            for b in &choices[i + 1..] {
                if a.tile.map(|t| t.block_k) != b.tile.map(|t| t.block_k) {
                    continue;
                }
                let (oa, ob) = (
                    run(&inp, *a, Schedule::Ascending),
                    run(&inp, *b, Schedule::Ascending),
                );
                let name = format!(
                    "{} [{} vs {}]",
                    case.name,
                    configs::name(a),
                    configs::name(b)
                );
                let o_diff =
                    oa.o.as_slice()
                        .iter()
                        .zip(ob.o.as_slice())
                        .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(o_diff, None, "{name}: O differs");
                let lse_diff = oa
                    .lse
                    .as_slice()
                    .iter()
                    .zip(ob.lse.as_slice())
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(lse_diff, None, "{name}: LSE differs");
                compared += 1;
            }
        }
    }
    assert!(
        compared >= 2,
        "no pair of configurations shares a k-tile width"
    );
}

/// Q, K, V as slices of one fused `[rows, n, q_heads + 2 kv_heads, d]` buffer and O inside a
/// wider buffer: same bits as the dense call, and the gaps of O keep their poison; on both paths
/// (the sm90a one reads the fused views through TMA tensor maps).
#[test]
fn strided_views_match_dense() {
    strided_views_match_dense_under(KernelChoice::default());
    strided_views_match_dense_under(configs::choices(Arch::Sm90a)[0]);
}

fn strided_views_match_dense_under(choice: KernelChoice) {
    let case = &matrix()[3]; // GQA 4, two rows, f16, d64
    let inp = inputs::<f16>(case);
    let sh = inp.shape;
    let d = sh.head_dim;
    let fz = Fused::new(&inp);
    let fused = GuardedBuf::from_slice(&fz.data);
    let (strides, o_token, o_strides) = (fz.strides, fz.o_token, fz.o_strides);
    let poison = f16::poison();
    let mut o = GuardedBuf::filled(fz.o_len(&inp), poison);
    let mut lse = GuardedBuf::filled(sh.lse_len(), POISON_F32);
    let plan = Plan::new(inp.vis_end.clone()).unwrap();
    let buf = fused.as_slice();
    forward_emulated_with(
        &plan,
        &sh,
        HostTensors {
            q: View::new(&buf[fz.q_at..], strides),
            k: View::new(&buf[fz.k_at..], strides),
            v: View::new(&buf[fz.v_at..], strides),
            o: View::new(o.as_mut_slice(), o_strides),
            lse: lse.as_mut_slice(),
        },
        inp.scale,
        choice,
        Schedule::Random { seed: 7 },
    )
    .unwrap();
    o.check_guards("o").unwrap();
    lse.check_guards("lse").unwrap();
    let dense = run(&inp, choice, Schedule::Ascending);
    let dense_o = dense.o.as_slice();
    for (t, row) in o.as_slice().chunks(o_token).enumerate() {
        let (got, gap) = row.split_at(sh.q_heads * d);
        let want = &dense_o[t * sh.q_heads * d..(t + 1) * sh.q_heads * d];
        assert!(
            got.iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "token {t}: strided O differs from dense"
        );
        assert!(
            gap.iter().all(|x| x.to_bits() == poison.to_bits()),
            "token {t}: the gap between heads was written"
        );
    }
    assert!(lse
        .as_slice()
        .iter()
        .zip(dense.lse.as_slice())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// A valid small call whose pieces each test breaks in one way.
struct Call {
    shape: AttnShape,
    plan: Plan,
    q: Vec<bf16>,
    kv: Vec<bf16>,
    o: Vec<bf16>,
    lse: Vec<f32>,
}

fn call(q_heads: usize, kv_heads: usize, head_dim: usize) -> Call {
    let shape = AttnShape {
        rows: 1,
        n: 40,
        q_heads,
        kv_heads,
        head_dim,
    };
    let plan = Plan::new(prefix_attn::mask::VisEnd::from_rows(&[vec![40; 40]]).unwrap()).unwrap();
    let one = bf16::from_f32(0.5);
    Call {
        q: vec![one; shape.rows * shape.n * q_heads * head_dim],
        kv: vec![one; shape.rows * shape.n * kv_heads.max(1) * head_dim],
        o: vec![one; shape.rows * shape.n * q_heads * head_dim],
        lse: vec![0.0; shape.rows * shape.n * q_heads],
        shape,
        plan,
    }
}

impl Call {
    fn run(&mut self) -> Result<(), Error> {
        self.run_with(|_| {})
    }

    /// Runs with dense views, after `edit` changed the shape the views are computed from.
    fn run_with(&mut self, edit: impl FnOnce(&mut AttnShape)) -> Result<(), Error> {
        let mut sh = self.shape;
        let view_shape = sh;
        edit(&mut sh);
        forward_emulated(
            &self.plan,
            &sh,
            HostTensors {
                q: View::dense(&self.q[..], &view_shape, view_shape.q_heads),
                k: View::dense(&self.kv[..], &view_shape, view_shape.kv_heads),
                v: View::dense(&self.kv[..], &view_shape, view_shape.kv_heads),
                o: View::dense(&mut self.o[..], &view_shape, view_shape.q_heads),
                lse: &mut self.lse[..],
            },
            0.125,
            Schedule::Ascending,
        )
        .map(|_| ())
    }
}

#[test]
fn a_valid_small_call_runs() {
    call(2, 1, 64).run().unwrap();
}

#[test]
fn unsupported_head_dims_are_rejected() {
    for d in [32, 96, 256] {
        assert_eq!(
            call(2, 2, d).run().unwrap_err(),
            Error::UnsupportedHeadDim { head_dim: d }
        );
    }
}

#[test]
fn head_counts_that_do_not_divide_are_rejected() {
    assert_eq!(
        call(3, 2, 64).run().unwrap_err(),
        Error::HeadCountMismatch {
            q_heads: 3,
            kv_heads: 2
        }
    );
}

#[test]
fn a_plan_for_another_batch_is_rejected() {
    let mut c = call(2, 2, 64);
    let err = c.run_with(|sh| sh.n = 32).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LengthMismatch {
                expected: 40,
                got: 32,
                ..
            }
        ),
        "{err}"
    );
    let err = c.run_with(|sh| sh.rows = 2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LengthMismatch {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_scales_are_rejected() {
    let mut c = call(2, 2, 64);
    let sh = c.shape;
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = forward_emulated(
            &c.plan,
            &sh,
            HostTensors {
                q: View::dense(&c.q[..], &sh, 2),
                k: View::dense(&c.kv[..], &sh, 2),
                v: View::dense(&c.kv[..], &sh, 2),
                o: View::dense(&mut c.o[..], &sh, 2),
                lse: &mut c.lse[..],
            },
            scale,
            Schedule::Ascending,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    what: "softmax scale",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn bad_views_are_rejected_with_their_name() {
    let mut c = call(2, 2, 64);
    let sh = c.shape;
    let dense = Strides::dense(sh.n, 2, 64);
    // Misaligned: element 0 one element (2 bytes) into an aligned buffer.
    let aligned = GuardedBuf::from_slice(&c.q);
    let cases: Vec<(&str, Strides, usize, usize)> = vec![
        ("q", dense, 1, sh.q_len() - 1), // misaligned base
        (
            "q",
            Strides {
                token: 2 * 64 + 4,
                ..dense
            },
            0,
            0,
        ), // stride not 16-byte multiple
        ("q", dense, 0, sh.q_len() - 8), // buffer too short
    ];
    for (what, strides, offset, len) in cases {
        let q =
            &aligned.as_slice()[offset..offset + if len == 0 { sh.q_len() - offset } else { len }];
        let err = forward_emulated(
            &c.plan,
            &sh,
            HostTensors {
                q: View::new(q, strides),
                k: View::dense(&c.kv[..], &sh, 2),
                v: View::dense(&c.kv[..], &sh, 2),
                o: View::dense(&mut c.o[..], &sh, 2),
                lse: &mut c.lse[..],
            },
            0.125,
            Schedule::Ascending,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidView { what: w, .. } if w == what),
            "{err}"
        );
    }
    // O whose heads overlap.
    let overlap = Strides { head: 32, ..dense };
    let err = forward_emulated(
        &c.plan,
        &sh,
        HostTensors {
            q: View::dense(&c.q[..], &sh, 2),
            k: View::dense(&c.kv[..], &sh, 2),
            v: View::dense(&c.kv[..], &sh, 2),
            o: View::new(&mut c.o[..], overlap),
            lse: &mut c.lse[..],
        },
        0.125,
        Schedule::Ascending,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidView { what: "o", .. }), "{err}");
    // LSE of the wrong length.
    let mut short = vec![0f32; sh.lse_len() - 1];
    let err = forward_emulated(
        &c.plan,
        &sh,
        HostTensors {
            q: View::dense(&c.q[..], &sh, 2),
            k: View::dense(&c.kv[..], &sh, 2),
            v: View::dense(&c.kv[..], &sh, 2),
            o: View::dense(&mut c.o[..], &sh, 2),
            lse: &mut short[..],
        },
        0.125,
        Schedule::Ascending,
    )
    .unwrap_err();
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
}

/// A plan without block lists at the chosen kernel's tile is a typed error naming the plan, and
/// a tile configuration that is not registered is one naming the choice.
#[test]
fn a_plan_without_the_kernels_tile_and_unknown_tiles_are_rejected() {
    use prefix_attn::mask::{TileShape, VisEnd};
    let mut c = call(2, 2, 64);
    let sh = c.shape;
    let vis = VisEnd::from_rows(&[vec![40; 40]]).unwrap();
    let plan = Plan::with_tiles(vis, &[TileShape::new(64, 64).unwrap()]).unwrap();
    for (tile, what) in [
        (TileConfig::new(128, 64, 4, 2), "plan"),
        (TileConfig::new(64, 32, 4, 2), "kernel choice"),
    ] {
        let err = forward_emulated_with(
            &plan,
            &sh,
            HostTensors {
                q: View::dense(&c.q[..], &sh, 2),
                k: View::dense(&c.kv[..], &sh, 2),
                v: View::dense(&c.kv[..], &sh, 2),
                o: View::dense(&mut c.o[..], &sh, 2),
                lse: &mut c.lse[..],
            },
            0.125,
            KernelChoice::exactly(Arch::Sm80, tile),
            Schedule::Ascending,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { what: w, .. } if w == what),
            "{tile}: {err}"
        );
    }
}

/// A view the sm80 path reads but TMA may not describe (K's heads broadcast with a zero head
/// stride) is a typed error naming K on the sm90a path, never a panic or a wrong result.
#[test]
fn the_sm90a_path_names_views_tma_cannot_load() {
    let mut c = call(2, 2, 64);
    let sh = c.shape;
    let broadcast = Strides {
        head: 0,
        ..Strides::dense(sh.n, 2, 64)
    };
    let mut run_with = |choice: KernelChoice| {
        forward_emulated_with(
            &c.plan,
            &sh,
            HostTensors {
                q: View::dense(&c.q[..], &sh, 2),
                k: View::new(&c.kv[..], broadcast),
                v: View::dense(&c.kv[..], &sh, 2),
                o: View::dense(&mut c.o[..], &sh, 2),
                lse: &mut c.lse[..],
            },
            0.125,
            choice,
            Schedule::Ascending,
        )
    };
    run_with(KernelChoice::default()).unwrap();
    let err = run_with(configs::choices(Arch::Sm90a)[0]).unwrap_err();
    assert!(
        matches!(err, Error::InvalidView { what: "k", ref detail } if detail.contains("head stride 0")),
        "{err}"
    );
}
