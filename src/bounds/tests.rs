//! The public API of the bounds on small emulated calls: outputs of the kernels pass, an error
//! planted just beyond a bound is reported (what, where, got, want, bound), one just inside is
//! not; bad input is a typed error.

use half::{bf16, f16};

use crate::attention::{
    backward_emulated, forward_emulated, HostBackwardTensors, HostTensors, KernelChoice, View,
};
use crate::emu::Schedule;
use crate::error::Error;
use crate::mask::{TileShape, VisEnd};
use crate::plan::Plan;
use crate::reference::Element;
use crate::shape::AttnShape;

use super::*;

/// A prefix shared by two completions, then two padding tokens (queries that see no key, keys
/// nobody sees).
fn rows() -> Vec<Vec<i32>> {
    vec![vec![8, 8, 8, 8, 6, 6, 8, 8, 8, 9]]
}

struct Call<T> {
    shape: AttnShape,
    plan: Plan,
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    d_o: Vec<T>,
    scale: f32,
    o: Vec<T>,
    lse: Vec<f32>,
    dq: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

impl<T: Element> Call<T> {
    fn inputs(&self) -> Inputs<'_, T> {
        Inputs {
            shape: self.shape,
            vis_end: self.plan.vis_end(),
            q: &self.q,
            k: &self.k,
            v: &self.v,
            scale: self.scale.into(),
        }
    }
}

/// Forward and backward of a small GQA-2 call on the emulator.
fn call<T: Element + crate::attention::AttnDtype + crate::emu::Element>() -> Call<T> {
    let vis = rows();
    let n = vis[0].len();
    let shape = AttnShape {
        rows: 1,
        n,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 64,
    };
    let wave = |len: usize, f: f64, amp: f64| -> Vec<T> {
        (0..len)
            .map(|i| T::from_f64(amp * (i as f64 * f).sin()))
            .collect()
    };
    let zeros = |len: usize| vec![T::from_f64(0.0); len];
    let mut c = Call {
        shape,
        plan: Plan::new(VisEnd::from_rows(&vis).unwrap()).unwrap(),
        q: wave(shape.q_len(), 0.37, 2.0),
        k: wave(shape.kv_len(), 0.71, 1.5),
        v: wave(shape.kv_len(), 1.3, 1.0),
        d_o: wave(shape.q_len(), 0.53, 1.0),
        scale: 0.125,
        o: zeros(shape.q_len()),
        lse: vec![0.0; shape.lse_len()],
        dq: zeros(shape.q_len()),
        dk: zeros(shape.kv_len()),
        dv: zeros(shape.kv_len()),
    };
    let (qh, kvh) = (shape.q_heads, shape.kv_heads);
    forward_emulated(
        &c.plan,
        &shape,
        HostTensors {
            q: View::dense(&c.q[..], &shape, qh),
            k: View::dense(&c.k[..], &shape, kvh),
            v: View::dense(&c.v[..], &shape, kvh),
            o: View::dense(&mut c.o[..], &shape, qh),
            lse: &mut c.lse[..],
        },
        c.scale,
        Schedule::Ascending,
    )
    .unwrap();
    backward_emulated(
        &c.plan,
        &shape,
        HostBackwardTensors {
            q: View::dense(&c.q[..], &shape, qh),
            k: View::dense(&c.k[..], &shape, kvh),
            v: View::dense(&c.v[..], &shape, kvh),
            o: View::dense(&c.o[..], &shape, qh),
            lse: &c.lse[..],
            d_o: View::dense(&c.d_o[..], &shape, qh),
            dq: View::dense(&mut c.dq[..], &shape, qh),
            dk: View::dense(&mut c.dk[..], &shape, kvh),
            dv: View::dense(&mut c.dv[..], &shape, kvh),
        },
        c.scale,
        Schedule::Ascending,
    )
    .unwrap();
    c
}

fn forward_bounds<T: Element>(c: &Call<T>, dtype: Dtype) -> ForwardBounds {
    let run = ForwardRun::emulated(&KernelChoice::default(), dtype, c.shape.head_dim).unwrap();
    ForwardBounds::new(c.inputs(), run).unwrap()
}

/// The value of `T` nearest `want + dir * bound` on the far side of the bound (`beyond`) or on
/// the near side (within it).
fn planted<T: Element>(want: f64, bound: f64, dir: f64, beyond: bool) -> T {
    let step = |x: f64, up: bool| {
        // The neighbour of x in T: grow a step from far below T's spacing until x moves.
        let mut h = x.abs().max(1e-30) * 2f64.powi(-60);
        loop {
            let y = T::from_f64(if up { x + h } else { x - h }).to_f64();
            if y != x {
                return y;
            }
            h *= 2.0;
        }
    };
    let mut x = T::from_f64(want + dir * bound).to_f64();
    let inside = |x: f64| (x - want).abs() <= bound;
    if beyond {
        while inside(x) {
            x = step(x, dir > 0.0);
        }
    } else {
        while !inside(x) {
            x = step(x, dir < 0.0);
        }
    }
    T::from_f64(x)
}

#[test]
fn the_kernels_outputs_pass_in_both_dtypes() {
    let c = call::<bf16>();
    let s = forward_bounds(&c, Dtype::Bf16).check(&c.o, &c.lse).unwrap();
    assert!(s.o_worst.error <= s.o_worst.bound && s.lse_worst.error <= s.lse_worst.bound);
    let b = BackwardBounds::new(c.inputs(), &c.d_o, Dtype::Bf16).unwrap();
    let grads = Gradients {
        dq: &c.dq[..],
        dk: &c.dk[..],
        dv: &c.dv[..],
    };
    let s = b.check(&c.lse, grads).unwrap();
    assert!(s.lse_error.get() > 0.0 && s.lse_error.get() < 1e-5, "{s:?}");
    for (g, m) in Grad::ALL.iter().zip(&s.grads) {
        assert!(m.error > 0.0 && m.error <= m.bound, "{g}: {m:?}");
        assert_eq!(m.bound, b.bound(*g, s.lse_error));
    }

    let c = call::<f16>();
    forward_bounds(&c, Dtype::F16).check(&c.o, &c.lse).unwrap();
    let b = BackwardBounds::new(c.inputs(), &c.d_o, Dtype::F16).unwrap();
    let grads = Gradients {
        dq: &c.dq[..],
        dk: &c.dk[..],
        dv: &c.dv[..],
    };
    b.check(&c.lse, grads).unwrap();
}

/// An O and an LSE element moved to the nearest representable value beyond their bounds are
/// each reported, with what, where, got, want and bound; moved to the farthest value within,
/// they pass.
#[test]
fn an_error_just_beyond_a_forward_bound_is_reported_and_one_just_within_is_not() {
    let c = call::<bf16>();
    let b = forward_bounds(&c, Dtype::Bf16);
    let want = b.reference();
    // A query that sees keys: row 0, query 6, head 3, column 17.
    let oi = ((6 * c.shape.q_heads) + 3) * 64 + 17;
    let li = 3 * c.shape.n + 6;
    assert!(b.o()[oi] > 0.0 && b.lse()[li] > 0.0);
    for dir in [1.0, -1.0] {
        let mut o = c.o.clone();
        o[oi] = planted::<bf16>(want.o[oi], b.o()[oi], dir, true);
        match b.check(&o, &c.lse) {
            Err(Violation::Beyond {
                what: Output::O,
                at,
                got,
                want: w,
                bound,
            }) => {
                assert_eq!(
                    (at.index, at.row, at.token, at.head, at.column),
                    (oi, 0, 6, 3, Some(17))
                );
                assert_eq!((got, w, bound), (o[oi].to_f64(), want.o[oi], b.o()[oi]));
                assert!((got - w).abs() > bound);
            }
            other => panic!("{other:?}"),
        }
        o[oi] = planted::<bf16>(want.o[oi], b.o()[oi], dir, false);
        assert!((o[oi].to_f64() - want.o[oi]).abs() <= b.o()[oi]);
        b.check(&o, &c.lse).unwrap();

        let mut lse = c.lse.clone();
        lse[li] = planted::<f32>(want.lse[li], b.lse()[li], dir, true);
        let v = b.check(&c.o, &lse).unwrap_err();
        assert!(
            matches!(v, Violation::Beyond { what: Output::Lse, at, .. } if at.index == li
                && (at.row, at.token, at.head, at.column) == (0, 6, 3, None)),
            "{v:?}"
        );
        assert!(v.to_string().contains("LSE"), "{v}");
        lse[li] = planted::<f32>(want.lse[li], b.lse()[li], dir, false);
        b.check(&c.o, &lse).unwrap();
    }
}

/// Where a query sees no key, O must be exactly 0 and LSE exactly -inf; a NaN anywhere in O is
/// reported as not finite; outputs of the wrong length are reported.
#[test]
fn exact_values_non_finite_outputs_and_lengths() {
    let c = call::<bf16>();
    let b = forward_bounds(&c, Dtype::Bf16);
    let sh = c.shape;
    // Query 8 is padding (vis_end[8] = 8): it sees no key.
    let li = sh.n + 8; // head 1
    assert_eq!(b.reference().lse[li], f64::NEG_INFINITY);
    assert_eq!(c.lse[li], f32::NEG_INFINITY);
    let mut lse = c.lse.clone();
    lse[li] = -1e30;
    assert!(matches!(
        b.check(&c.o, &lse),
        Err(Violation::NotExact { what: Output::Lse, at, want, .. })
            if at.index == li && want == f64::NEG_INFINITY
    ));
    let oi = (8 * sh.q_heads + 1) * 64 + 5;
    let mut o = c.o.clone();
    o[oi] = bf16::from_f32(1e-30);
    assert!(matches!(
        b.check(&o, &c.lse),
        Err(Violation::NotExact { what: Output::O, at, want, .. }) if at.index == oi && want == 0.0
    ));
    o[oi] = bf16::NAN;
    assert!(matches!(
        b.check(&o, &c.lse),
        Err(Violation::NotFinite { what: Output::O, at, .. }) if at.index == oi
    ));
    assert_eq!(
        b.check(&c.o[1..], &c.lse).unwrap_err(),
        Violation::Length {
            what: Output::O,
            expected: sh.q_len(),
            got: sh.q_len() - 1
        }
    );

    // The backward: dQ of a query that sees nothing, dK of a key nobody sees (key 9 is padding).
    let bb = BackwardBounds::new(c.inputs(), &c.d_o, Dtype::Bf16).unwrap();
    assert!(!bb.query_sees_a_key(0, 8) && !bb.key_is_seen(0, 9) && bb.key_is_seen(0, 7));
    let mut dk = c.dk.clone();
    let ki = (9 * sh.kv_heads + 1) * 64 + 3;
    dk[ki] = bf16::from_f32(1e-3);
    let v = bb
        .check(
            &c.lse,
            Gradients {
                dq: &c.dq,
                dk: &dk,
                dv: &c.dv,
            },
        )
        .unwrap_err();
    assert!(
        matches!(v, Violation::NotExact { what: Output::Grad(Grad::Dk), at, .. }
            if at.index == ki && (at.token, at.head, at.column) == (9, 1, Some(3))),
        "{v:?}"
    );
    assert!(v.to_string().contains("seen by nobody"), "{v}");
    // The handed-over LSE: -inf where the reference's is, within LSE_ERR_MAX elsewhere.
    let mut lse = c.lse.clone();
    lse[li] = 0.0;
    assert!(matches!(
        bb.forward_lse_error(&lse),
        Err(Violation::NotExact {
            what: Output::GivenLse,
            ..
        })
    ));
    let mut lse = c.lse.clone();
    lse[2] += 1e-3;
    assert!(matches!(
        bb.forward_lse_error(&lse),
        Err(Violation::Beyond { what: Output::GivenLse, bound, .. }) if bound == figures::LSE_ERR_MAX
    ));
}

/// A gradient whose error norm is just beyond its bound is reported; just within, it passes.
#[test]
fn an_error_just_beyond_a_backward_bound_is_reported_and_one_just_within_is_not() {
    let c = call::<f16>();
    let b = BackwardBounds::new(c.inputs(), &c.d_o, Dtype::F16).unwrap();
    let e = b.forward_lse_error(&c.lse).unwrap();
    for which in Grad::ALL {
        let bound = b.bound(which, e);
        for (factor, fails) in [(1.0 + 1e-9, true), (1.0 - 1e-9, false)] {
            // The reference itself (f64), one element of a seen token moved by the whole error.
            let mut g: [Vec<f64>; 3] = Grad::ALL.map(|w| b.reference(w).to_vec());
            let i = 2 * c.shape.head_dim; // token 0, head 2 (dQ) / 1 (dK, dV), column 0
            g[which as usize][i] += factor * bound;
            let grads = Gradients {
                dq: &g[0][..],
                dk: &g[1][..],
                dv: &g[2][..],
            };
            let r = b.check_given(e, grads);
            if fails {
                match r {
                    Err(Violation::NormBeyond {
                        what,
                        error,
                        bound: got_bound,
                        ..
                    }) => {
                        assert_eq!((what, got_bound), (Output::Grad(which), bound));
                        assert!(error > bound);
                    }
                    other => panic!("{which}: {other:?}"),
                }
            } else {
                let s = r.unwrap_or_else(|v| panic!("{which}: {v}"));
                assert!(s.grads[which as usize].error <= bound);
            }
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let c = call::<bf16>();
    let run = ForwardRun::emulated(&KernelChoice::default(), Dtype::Bf16, 64).unwrap();
    // f32 copies of the bf16 inputs are accepted, and give the same bounds.
    let wide = |x: &[bf16]| -> Vec<f32> { x.iter().map(|v| v.to_f32()).collect() };
    let (q, k, v) = (wide(&c.q), wide(&c.k), wide(&c.v));
    let f32_inputs = Inputs {
        shape: c.shape,
        vis_end: c.plan.vis_end(),
        q: &q,
        k: &k,
        v: &v,
        scale: c.scale.into(),
    };
    let a = ForwardBounds::new(f32_inputs, run).unwrap();
    let b = forward_bounds(&c, Dtype::Bf16);
    assert_eq!((a.o(), a.lse()), (b.o(), b.lse()));
    // A value the kernel could not have read.
    let mut q2 = q.clone();
    q2[7] = 0.1;
    let e = ForwardBounds::new(
        Inputs {
            q: &q2,
            ..f32_inputs
        },
        run,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { what: "q", .. }), "{e}");
    q2[7] = f32::NAN;
    let e = BackwardBounds::new(
        Inputs {
            q: &q2,
            ..f32_inputs
        },
        &q,
        Dtype::Bf16,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { what: "q", .. }), "{e}");
    // Lengths, scale, vis_end of another length, head dim.
    let e = ForwardBounds::new(
        Inputs {
            v: &v[1..],
            ..f32_inputs
        },
        run,
    )
    .unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { what: "v", .. }), "{e}");
    let e = BackwardBounds::new(f32_inputs, &q[1..], Dtype::Bf16).unwrap_err();
    assert!(
        matches!(e, Error::LengthMismatch { what: "d_o", .. }),
        "{e}"
    );
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = ForwardBounds::new(
            Inputs {
                scale: scale.into(),
                ..f32_inputs
            },
            run,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { what: "scale", .. }),
            "{e}"
        );
    }
    let other = VisEnd::from_rows(&[vec![4, 4, 4, 4]]).unwrap();
    let e = ForwardBounds::new(
        Inputs {
            vis_end: &other,
            ..f32_inputs
        },
        run,
    )
    .unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e}");
    let shape = AttnShape {
        head_dim: 40,
        ..c.shape
    };
    let e = d_o_gain(Inputs {
        shape,
        ..f32_inputs
    })
    .unwrap_err();
    assert_eq!(e, Error::UnsupportedHeadDim { head_dim: 40 });
    // A tile given by hand; kernels that are not forward kernels, head dims without one.
    let by_hand = ForwardRun {
        tile: TileShape::new(64, 64).unwrap(),
        ..run
    };
    assert_eq!(
        ForwardBounds::new(f32_inputs, by_hand).unwrap().run(),
        by_hand
    );
    let pre = crate::attention::configs::select_untiled(
        crate::attention::configs::BACKWARD_PRE_FAMILY,
        crate::registry::KernelDtype::Bf16,
        64,
    )
    .unwrap();
    assert!(matches!(
        ForwardRun::device(pre),
        Err(Error::InvalidArgument { what: "kernel", .. })
    ));
    assert!(ForwardRun::emulated(&KernelChoice::default(), Dtype::Bf16, 96).is_err());
}

/// The device model is wider than the emulator's, by the mma latitude only.
#[test]
fn device_bounds_are_wider_than_the_emulators() {
    let c = call::<bf16>();
    let emu = forward_bounds(&c, Dtype::Bf16);
    let dev = ForwardBounds::new(
        c.inputs(),
        ForwardRun {
            arith: Arith::Device,
            ..emu.run()
        },
    )
    .unwrap();
    let wider = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x >= y);
    assert!(wider(dev.o(), emu.o()) && wider(dev.lse(), emu.lse()));
    assert!(dev.lse().iter().zip(emu.lse()).any(|(x, y)| x > y));
}
