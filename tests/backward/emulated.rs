//! The backward kernels on the CPU emulator against the f64 reference (docs/backward.md): the
//! forward's covering matrix of mask layouts, ragged lengths, GQA ratios, dtypes and head dims,
//! for every registered dK/dV and dQ configuration of the sm80 path and the sm90a dK/dV and dQ
//! kernels, run after the forward kernel as a trainer runs them; identical bits under every
//! emulator schedule; the sm90a kernels' bits equal to the sm80 ones'; lists long enough to wrap
//! the sm90a dQ's K/V ring and the sm90a dK/dV's Q/dO ring; poisoned, guarded outputs; strided
//! (fused) views; the bounds can fail; typed errors for bad calls.

use crate::backward_support;
use crate::forward_support;
use crate::on_threads::failures_on_threads;

use half::{bf16, f16};
use prefix_attn::attention::{
    backward_emulated, BackwardChoice, HostBackwardTensors, Strides, View,
};
use prefix_attn::bounds::{Grad, LseError};
use prefix_attn::emu::{GuardedBuf, Schedule};
use prefix_attn::reference;
use prefix_attn::registry::Arch;

use backward_support::check::{bounds, check, check_given};
use backward_support::configs;
use backward_support::run::{d_o_for, run, Outputs};
use forward_support::cases::{matrix, Case, Dtype};
use forward_support::check::{inputs, Inputs, KernelElem};
use forward_support::edge::Layout;

/// Runs one case and compares it with the reference; returns the first failure.
fn run_case<T: KernelElem + prefix_attn::emu::Element>(
    label: &str,
    inp: &Inputs<T>,
    d_o: &[T],
    layout: Layout,
    choice: BackwardChoice,
    schedule: Schedule,
) -> Result<(), String> {
    let label = format!("{label} [{}] ({schedule})", configs::name(&choice));
    let out = run(layout, inp, d_o, choice, schedule).map_err(|e| format!("{label}: {e}"))?;
    check_outputs(&label, &bounds(inp, d_o), &out)
}

/// One run's outputs against the reference and its bounds (`bounds(inp, d_o)`, computed once
/// for all the runs of the same inputs).
fn check_outputs<T: KernelElem>(
    label: &str,
    rf: &prefix_attn::bounds::BackwardBounds,
    out: &Outputs<T>,
) -> Result<(), String> {
    let s = check(label, rf, &out.lse, [&out.dq, &out.dk, &out.dv])?;
    let e = s.grads.map(|g| (g.error, g.bound));
    eprintln!(
        "{label}: dQ {:.2e} (bound {:.2e}), dK {:.2e} ({:.2e}), dV {:.2e} ({:.2e})",
        e[0].0, e[0].1, e[1].0, e[1].1, e[2].0, e[2].1
    );
    Ok(())
}

fn run_matrix_case<T: KernelElem + prefix_attn::emu::Element>(
    case: &Case,
    choice: BackwardChoice,
) -> Result<(), String> {
    let inp = inputs::<T>(case);
    let d_o = d_o_for(&inp, case.seed);
    run_case(
        case.name,
        &inp,
        &d_o,
        Layout::Dense,
        choice,
        Schedule::Ascending,
    )
}

/// The whole matrix under one backward configuration.
fn run_matrix(choice: BackwardChoice) {
    let failures: Vec<String> = matrix()
        .iter()
        .filter_map(|case| {
            match case.dtype {
                Dtype::Bf16 => run_matrix_case::<bf16>(case, choice),
                Dtype::F16 => run_matrix_case::<f16>(case, choice),
            }
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The whole matrix under every backward configuration of `arch` registered in
/// csrc/registry.cuh (a new one is tested with no test edit), each on a thread of its own so they
/// spread over the cores; a failure names its configuration.
fn run_every_config(arch: Arch) {
    let choices = configs::choices(arch);
    assert!(!choices.is_empty(), "no {arch} backward configuration");
    let failures = failures_on_threads(&choices, configs::name, run_matrix);
    assert!(
        failures.is_empty(),
        "{} of {} {arch} configurations fail:\n{}",
        failures.len(),
        choices.len(),
        failures.join("\n")
    );
}

/// Every registered sm80 backward configuration.
#[test]
fn matrix_matches_reference_every_sm80_config() {
    run_every_config(Arch::Sm80);
}

/// The sm90a dK/dV and dQ kernels: every registered sm90a configuration.
#[test]
fn matrix_matches_reference_every_sm90a_config() {
    run_every_config(Arch::Sm90a);
}

/// The sm80 choice whose kernels the sm90a ones reproduce bit for bit: the sm80 dK/dV of the
/// same 64 x 128 plan tile (its k-major lists are the sm90a dK/dV's), any sm80 dQ.
fn sm80_twin() -> BackwardChoice {
    let sm90 = configs::choices(Arch::Sm90a)[0];
    let same_tile = |c: &BackwardChoice| {
        let shape = |t: Option<prefix_attn::registry::TileConfig>| {
            t.map(prefix_attn::attention::configs::tile_shape)
        };
        shape(c.dkv_tile) == shape(sm90.dkv_tile)
    };
    let twin = configs::choices(Arch::Sm80).into_iter().find(same_tile);
    twin.expect("an sm80 dK/dV configuration of the sm90a one's tile")
}

/// The sm90a kernels give the sm80 kernels' bits on every matrix case: on the emulator a k16
/// wgmma step is the same chain of 16 products as an mma.m16n8k16 step, and the element-wise
/// steps are the same code. dQ: both walk the keys in ascending order (the sm90a's 128-key tiles
/// are two of the sm80's 64-key tiles; where its list holds a 128-key tile whose half the sm80
/// list skips as EMPTY, that half's dS is exactly 0 and adds nothing). dK/dV: both walk the same
/// k-major lists (64 x 128 tiles), q tile by q tile and q head by q head in the same order, and
/// add each q tile's 64 queries to dK and dV in ascending 16-query steps (the sm80 kernel at
/// head dim 128 computes a q tile in two 32-query halves, which only splits the same ascending
/// chain of steps in two).
#[test]
fn sm90a_gives_the_sm80_bits() {
    let sm80 = sm80_twin();
    let sm90 = configs::choices(Arch::Sm90a)[0];
    let failures: Vec<String> = matrix()
        .iter()
        .filter_map(|case| {
            let differs = match case.dtype {
                Dtype::Bf16 => same_bits_of::<bf16>(case, sm80, sm90),
                Dtype::F16 => same_bits_of::<f16>(case, sm80, sm90),
            };
            differs.map(|what| format!("{}: {what} differs", case.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn same_bits_of<T: KernelElem + prefix_attn::emu::Element>(
    case: &Case,
    a: BackwardChoice,
    b: BackwardChoice,
) -> Option<String> {
    let inp = inputs::<T>(case);
    let d_o = d_o_for(&inp, case.seed);
    let x = run(Layout::Dense, &inp, &d_o, a, Schedule::Ascending).unwrap();
    let y = run(Layout::Dense, &inp, &d_o, b, Schedule::Random { seed: 11 }).unwrap();
    same_bits(&x, &y).map(|w| w.to_string())
}

/// Causal rows of 520 tokens: the last q tile of 128 walks 5 k tiles, so the sm90a dQ kernel's
/// 2-stage K/V ring wraps twice (every stage refilled after its release, parities flipping),
/// with GQA 2 and two rows; the sm90a dK/dV's first k tile walks 9 q tiles x 2 q heads, 18 steps
/// through its 2-stage Q/dO ring. Within the bounds under every schedule (descending lets a
/// refill land before a wgmma released too early reads its stage), the sm80 kernels' bits, and
/// the same bits under every schedule.
#[test]
fn sm90a_dq_wraps_its_ring() {
    let case = Case {
        name: "causal n=520 + a 300-token document, 2 rows, gqa 2, d64, bf16",
        rows: vec![
            forward_support::masks::causal(520, 520),
            forward_support::masks::packed(&[300, 220], 520),
        ],
        q_heads: 2,
        kv_heads: 1,
        head_dim: 64,
        dtype: Dtype::Bf16,
        seed: 77,
    };
    let sm90 = configs::choices(Arch::Sm90a)[0];
    // Each run once, each bound once: the checks are those of run_case under every schedule,
    // same_bits_of(sm80 twin, sm90), same_bits_of(sm90, sm90) and ascending against descending.
    let inp = inputs::<bf16>(&case);
    let d_o = d_o_for(&inp, case.seed);
    let rf = bounds(&inp, &d_o);
    let go = |choice, schedule| run(Layout::Dense, &inp, &d_o, choice, schedule).unwrap();
    let label = |schedule| format!("{} [{}] ({schedule})", case.name, configs::name(&sm90));
    let ascending = go(sm90, Schedule::Ascending);
    let descending = go(sm90, Schedule::Descending);
    let random = go(sm90, Schedule::Random { seed: 5 });
    for (schedule, out) in [
        (Schedule::Ascending, &ascending),
        (Schedule::Descending, &descending),
        (Schedule::Random { seed: 5 }, &random),
    ] {
        check_outputs(&label(schedule), &rf, out).unwrap();
    }
    let random_11 = go(sm90, Schedule::Random { seed: 11 });
    let twin = go(sm80_twin(), Schedule::Ascending);
    assert_eq!(same_bits(&twin, &random_11), None);
    assert_eq!(same_bits(&ascending, &random_11), None);
    assert_eq!(same_bits(&ascending, &descending), None);
}

/// The sm90a dK/dV kernel's 2-stage Q/dO ring wrapped at head dim 128 with GQA 4: causal n = 200
/// (the first k tile's list holds q tiles 0..3, 4 entries x 4 q heads = 16 steps, the stage of
/// step i refilled with step i + 2 once every consumer released it) and a row of two documents
/// with padding (PARTIAL and EMPTY tiles, and a list shorter than the ring). Within the bounds
/// under ascending, descending and random schedules, the same bits under all three, and the
/// sm80 kernels' bits.
#[test]
fn sm90a_dkv_wraps_its_ring() {
    let case = Case {
        name: "causal n=200 + two documents and padding, 2 rows, gqa 4, d128, f16",
        rows: vec![
            forward_support::masks::causal(200, 200),
            forward_support::masks::packed(&[90, 70], 200),
        ],
        q_heads: 4,
        kv_heads: 1,
        head_dim: 128,
        dtype: Dtype::F16,
        seed: 91,
    };
    let sm90 = configs::choices(Arch::Sm90a)[0];
    // Each bound once: the checks are those of run_case under every schedule, each schedule's
    // bits against a first ascending run, and same_bits_of(sm80 twin, sm90).
    let inp = inputs::<f16>(&case);
    let d_o = d_o_for(&inp, case.seed);
    let rf = bounds(&inp, &d_o);
    let go = |choice, schedule| run(Layout::Dense, &inp, &d_o, choice, schedule).unwrap();
    let base = go(sm90, Schedule::Ascending);
    for schedule in [
        Schedule::Ascending,
        Schedule::Descending,
        Schedule::Random { seed: 21 },
    ] {
        let other = go(sm90, schedule);
        let label = format!("{} [{}] ({schedule})", case.name, configs::name(&sm90));
        check_outputs(&label, &rf, &other).unwrap();
        assert_eq!(same_bits(&base, &other), None, "{schedule}");
    }
    let twin = go(sm80_twin(), Schedule::Ascending);
    let random_11 = go(sm90, Schedule::Random { seed: 11 });
    assert_eq!(same_bits(&twin, &random_11), None);
}

/// The magnitudes' own reference gradients are the crate's f64 reference backward (the bounds
/// are computed next to the same formulas, not a second opinion on them).
#[test]
fn bounds_reference_is_the_crate_reference() {
    let case = &matrix()[5]; // GQA 8, prefix + 4 completions
    let inp = inputs::<bf16>(case);
    let d_o = d_o_for(&inp, case.seed);
    let rf = bounds(&inp, &d_o);
    let want = reference::backward(
        &inp.shape,
        &inp.vis_end,
        &inp.q,
        &inp.k,
        &inp.v,
        &d_o,
        f64::from(inp.scale),
    )
    .unwrap();
    let fwd = reference::forward(
        &inp.shape,
        &inp.vis_end,
        &inp.q,
        &inp.k,
        &inp.v,
        f64::from(inp.scale),
    )
    .unwrap();
    for (name, got, want) in [
        ("dq", rf.reference(Grad::Dq), &want.dq[..]),
        ("dk", rf.reference(Grad::Dk), &want.dk[..]),
        ("dv", rf.reference(Grad::Dv), &want.dv[..]),
        ("lse", rf.lse(), &fwd.lse[..]),
    ] {
        let err = reference::rel_l2_error(got, want);
        assert!(err <= 1e-12, "{name}: {err:e}");
    }
}

/// The bounds catch small errors: the kernel's own result passes, and it fails once one key's
/// gradient misses one query (a mask slip), or dK's scale is off by 1%.
#[test]
fn the_bounds_can_fail() {
    let case = &matrix()[1]; // causal n = 200, GQA 4, d128, f16
    let inp = inputs::<f16>(case);
    let d_o = d_o_for(&inp, case.seed);
    let out = run(
        Layout::Dense,
        &inp,
        &d_o,
        BackwardChoice::default(),
        Schedule::Ascending,
    )
    .unwrap();
    let rf = bounds(&inp, &d_o);
    let exact = LseError::EXACT;
    check_given("kernel", &rf, exact, [&out.dq, &out.dk, &out.dv]).unwrap();
    // dK 1% too large.
    let scaled: Vec<f16> = out
        .dk
        .iter()
        .map(|x| f16::from_f64(x.to_f64() * 1.01))
        .collect();
    assert!(check_given("scaled dK", &rf, exact, [&out.dq, &scaled, &out.dv]).is_err());
    // One query fewer sees key 10: the reference of that mask stands in for the kernel's result.
    let mut rows: Vec<Vec<i32>> = (0..inp.shape.rows)
        .map(|r| inp.vis_end.row(r).to_vec())
        .collect();
    rows[0][10] = 150; // key 10 was seen by queries 10..200; now by 10..150
    let slipped = Inputs {
        vis_end: prefix_attn::mask::VisEnd::from_rows(&rows).unwrap(),
        q: inp.q.clone(),
        k: inp.k.clone(),
        v: inp.v.clone(),
        ..inp
    };
    let wrong = bounds(&slipped, &d_o);
    let round = |g: Grad| -> Vec<f16> {
        let x = wrong.reference(g);
        x.iter().map(|&v| f16::from_f64(v)).collect()
    };
    let (dq, dk, dv) = (round(Grad::Dq), round(Grad::Dk), round(Grad::Dv));
    let err = check_given("mask slip", &rf, exact, [&dq, &dk, &dv]).unwrap_err();
    eprintln!("{err}");
}

fn same_bits<T: KernelElem>(a: &Outputs<T>, b: &Outputs<T>) -> Option<&'static str> {
    let eq = |x: &[T], y: &[T]| x.iter().zip(y).all(|(p, q)| p.bits() == q.bits());
    if !eq(&a.dq, &b.dq) {
        Some("dQ")
    } else if !eq(&a.dk, &b.dk) {
        Some("dK")
    } else if !eq(&a.dv, &b.dv) {
        Some("dV")
    } else {
        None
    }
}

/// Deterministic and race-free: the same bits under ascending, descending and random thread/CTA
/// orders (and cp.async / TMA landing times), for every backward configuration, the sm90a
/// kernels' included.
#[test]
fn identical_bits_under_every_schedule() {
    let all = matrix();
    // A d128 multi-row case with padding, and a d64 GQA-8 shared-prompt case.
    for case in [&all[2], &all[5]] {
        let inp = inputs::<bf16>(case);
        let d_o = d_o_for(&inp, case.seed);
        let sm90a = configs::choices(Arch::Sm90a)[0];
        for choice in configs::choices(Arch::Sm80).into_iter().chain([sm90a]) {
            let base = run(Layout::Dense, &inp, &d_o, choice, Schedule::Ascending).unwrap();
            for schedule in [Schedule::Descending, Schedule::Random { seed: 0x5eed }] {
                let other = run(Layout::Dense, &inp, &d_o, choice, schedule).unwrap();
                assert_eq!(
                    same_bits(&base, &other),
                    None,
                    "{} [{}] differs under {schedule}",
                    case.name,
                    configs::name(&choice)
                );
            }
        }
    }
}

/// Q, K, V and dO head-major, and the forward's O: same bits as the dense call.
#[test]
fn head_major_views_match_dense() {
    let case = &matrix()[3]; // GQA 4, two rows, f16, d64
    let inp = inputs::<f16>(case);
    let d_o = d_o_for(&inp, case.seed);
    let choice = BackwardChoice::default();
    let dense = run(Layout::Dense, &inp, &d_o, choice, Schedule::Ascending).unwrap();
    let hm = run(
        Layout::HeadMajor,
        &inp,
        &d_o,
        choice,
        Schedule::Random { seed: 3 },
    )
    .unwrap();
    assert_eq!(same_bits(&dense, &hm), None);
}

/// Q, K, V as slices of one fused `[rows, n, q_heads + 2 kv_heads, d]` buffer, O and dO dense,
/// and dQ, dK, dV each inside a wider buffer with an unused head slot per token: the same bits as
/// the dense call, and the gaps keep their poison.
#[test]
fn fused_inputs_and_gapped_outputs_match_dense() {
    let case = &matrix()[3]; // GQA 4, two rows, f16, d64
    let inp = inputs::<f16>(case);
    let d_o = d_o_for(&inp, case.seed);
    let sh = inp.shape;
    let d = sh.head_dim;
    let dense = run(
        Layout::Dense,
        &inp,
        &d_o,
        BackwardChoice::default(),
        Schedule::Ascending,
    )
    .unwrap();
    let fz = forward_support::fused::Fused::new(&inp);
    let fused = GuardedBuf::from_slice(&fz.data);
    let buf = fused.as_slice();
    let plan = configs::plan_for_all(inp.vis_end.clone());
    let q_dense = Strides::dense(sh.n, sh.q_heads, d);
    let gapped = |heads: usize| {
        let token = (heads + 1) * d;
        (
            Strides {
                row: sh.n * token,
                token,
                head: d,
            },
            sh.rows * sh.n * token,
        )
    };
    let poison = f16::poison();
    let ((q_st, q_len), (kv_st, kv_len)) = (gapped(sh.q_heads), gapped(sh.kv_heads));
    let mut dq = GuardedBuf::filled(q_len, poison);
    let mut dk = GuardedBuf::filled(kv_len, poison);
    let mut dv = GuardedBuf::filled(kv_len, poison);
    backward_emulated(
        &plan,
        &sh,
        HostBackwardTensors {
            q: View::new(&buf[fz.q_at..], fz.strides),
            k: View::new(&buf[fz.k_at..], fz.strides),
            v: View::new(&buf[fz.v_at..], fz.strides),
            o: View::new(&dense.o[..], q_dense),
            lse: &dense.lse[..],
            d_o: View::new(&d_o[..], q_dense),
            dq: View::new(dq.as_mut_slice(), q_st),
            dk: View::new(dk.as_mut_slice(), kv_st),
            dv: View::new(dv.as_mut_slice(), kv_st),
        },
        inp.scale,
        Schedule::Random { seed: 9 },
    )
    .unwrap();
    for (name, got, want, heads) in [
        ("dq", &dq, &dense.dq, sh.q_heads),
        ("dk", &dk, &dense.dk, sh.kv_heads),
        ("dv", &dv, &dense.dv, sh.kv_heads),
    ] {
        got.check_guards(name).unwrap();
        let w = heads * d;
        for (t, token) in got.as_slice().chunks(w + d).enumerate() {
            let (body, gap) = token.split_at(w);
            assert!(
                body.iter()
                    .zip(&want[t * w..(t + 1) * w])
                    .all(|(a, b)| a.bits() == b.bits()),
                "{name} token {t}: strided result differs from dense"
            );
            assert!(
                gap.iter().all(|x| x.bits() == poison.bits()),
                "{name} token {t}: gap written"
            );
        }
    }
}
