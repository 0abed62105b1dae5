//! Bad backward calls get typed errors naming what is wrong, never a panic: the checks the forward
//! makes (shape, head counts, plan, scale, views, LSE) plus the backward's own (dO, the written
//! views dQ, dK, dV, the kernel choice). The emulator path runs the same launch preparation as the
//! device path, so these cover both.

use half::bf16;
use prefix_attn::attention::{
    backward_emulated, backward_emulated_with, BackwardChoice, HostBackwardTensors, Strides, View,
};
use prefix_attn::emu::{GuardedBuf, Schedule};
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{Arch, TileConfig};
use prefix_attn::{AttnShape, Error};

/// A valid small call whose pieces each test breaks in one way.
struct Call {
    shape: AttnShape,
    plan: Plan,
    q: GuardedBuf<bf16>,
    kv: GuardedBuf<bf16>,
    lse: Vec<f32>,
    dq: Vec<bf16>,
    dk: Vec<bf16>,
    dv: Vec<bf16>,
}

fn call(q_heads: usize, kv_heads: usize, head_dim: usize) -> Call {
    let shape = AttnShape {
        rows: 1,
        n: 40,
        q_heads,
        kv_heads,
        head_dim,
    };
    let half = bf16::from_f32(0.5);
    let q_len = 40 * q_heads * head_dim;
    let kv_len = 40 * kv_heads.max(1) * head_dim;
    Call {
        plan: Plan::new(VisEnd::from_rows(&[vec![40; 40]]).unwrap()).unwrap(),
        q: GuardedBuf::filled(q_len, half),
        kv: GuardedBuf::filled(kv_len, half),
        lse: vec![0.0; 40 * q_heads],
        dq: vec![bf16::ZERO; q_len],
        dk: vec![bf16::ZERO; kv_len],
        dv: vec![bf16::ZERO; kv_len],
        shape,
    }
}

impl Call {
    /// Runs with dense views of the shape the buffers were made for, after `edit` changed the
    /// shape the call is given, under `choice`.
    fn run_with(
        &mut self,
        edit: impl FnOnce(&mut AttnShape),
        choice: BackwardChoice,
    ) -> Result<(), Error> {
        let vs = self.shape;
        let mut sh = vs;
        edit(&mut sh);
        let (q, kv) = (self.q.as_slice(), self.kv.as_slice());
        backward_emulated_with(
            &self.plan,
            &sh,
            HostBackwardTensors {
                q: View::dense(q, &vs, vs.q_heads),
                k: View::dense(kv, &vs, vs.kv_heads),
                v: View::dense(kv, &vs, vs.kv_heads),
                o: View::dense(q, &vs, vs.q_heads),
                lse: &self.lse[..],
                d_o: View::dense(q, &vs, vs.q_heads),
                dq: View::dense(&mut self.dq[..], &vs, vs.q_heads),
                dk: View::dense(&mut self.dk[..], &vs, vs.kv_heads),
                dv: View::dense(&mut self.dv[..], &vs, vs.kv_heads),
            },
            0.125,
            choice,
            Schedule::Ascending,
        )
        .map(|_| ())
    }

    fn run(&mut self) -> Result<(), Error> {
        self.run_with(|_| {}, BackwardChoice::default())
    }
}

#[test]
fn a_valid_small_call_runs_and_writes_every_gradient() {
    let mut c = call(4, 2, 64);
    c.dq.fill(bf16::NAN);
    c.dk.fill(bf16::NAN);
    c.dv.fill(bf16::NAN);
    c.run().unwrap();
    assert!(c.dq.iter().chain(&c.dk).chain(&c.dv).all(|x| x.is_finite()));
}

#[test]
fn unsupported_head_dims_and_head_counts_are_rejected() {
    for d in [32, 96, 256] {
        assert_eq!(
            call(2, 2, d).run().unwrap_err(),
            Error::UnsupportedHeadDim { head_dim: d }
        );
    }
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
    let err = c
        .run_with(|sh| sh.n = 32, BackwardChoice::default())
        .unwrap_err();
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
    let err = c
        .run_with(|sh| sh.rows = 2, BackwardChoice::default())
        .unwrap_err();
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
fn a_plan_without_the_kernels_tile_and_unknown_tiles_are_rejected() {
    let mut c = call(2, 2, 64);
    c.plan = Plan::with_tiles(
        VisEnd::from_rows(&[vec![40; 40]]).unwrap(),
        &[TileShape::new(64, 64).unwrap()],
    )
    .unwrap();
    let exact = |dkv: TileConfig| BackwardChoice {
        arch: Some(Arch::Sm80),
        dkv_tile: Some(dkv),
        dq_tile: None,
    };
    // The 64 x 128 dK/dV kernel needs lists the plan does not have.
    let err = c
        .run_with(|_| {}, exact(TileConfig::new(64, 128, 8, 2)))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { what: "plan", .. }),
        "{err}"
    );
    c.run_with(|_| {}, exact(TileConfig::new(64, 64, 4, 2)))
        .unwrap();
    let err = c
        .run_with(|_| {}, exact(TileConfig::new(64, 32, 4, 2)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "kernel choice",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_scales_are_rejected() {
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let mut c = call(2, 2, 64);
        let sh = c.shape;
        let (q, kv) = (c.q.as_slice(), c.kv.as_slice());
        let err = backward_emulated(
            &c.plan,
            &sh,
            HostBackwardTensors {
                q: View::dense(q, &sh, 2),
                k: View::dense(kv, &sh, 2),
                v: View::dense(kv, &sh, 2),
                o: View::dense(q, &sh, 2),
                lse: &c.lse[..],
                d_o: View::dense(q, &sh, 2),
                dq: View::dense(&mut c.dq[..], &sh, 2),
                dk: View::dense(&mut c.dk[..], &sh, 2),
                dv: View::dense(&mut c.dv[..], &sh, 2),
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

/// Which view a test breaks, and how.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// Element 0 one element (2 bytes) into an aligned buffer.
    Misaligned(&'static str),
    /// The buffer one token short.
    Short(&'static str),
    /// Heads overlapping half of each other (a written view overlapping itself).
    SelfOverlap(&'static str),
}

/// A read view of `data` for tensor `name`, broken if `b` says so.
fn input<'a>(b: Break, name: &str, data: &'a [bf16], dense: Strides) -> View<&'a [bf16]> {
    match b {
        Break::Misaligned(n) if n == name => View::new(&data[1..], dense),
        Break::Short(n) if n == name => View::new(&data[..data.len() - 128], dense),
        _ => View::new(data, dense),
    }
}

/// A written view of `data` for tensor `name`, broken if `b` says so.
fn output<'a>(b: Break, name: &str, data: &'a mut [bf16], dense: Strides) -> View<&'a mut [bf16]> {
    match b {
        Break::Short(n) if n == name => {
            let len = data.len() - 128;
            View::new(&mut data[..len], dense)
        }
        Break::SelfOverlap(n) if n == name => View::new(data, Strides { head: 32, ..dense }),
        Break::Misaligned(n) if n == name => View::new(&mut data[1..], dense),
        _ => View::new(data, dense),
    }
}

fn run_broken(b: Break) -> Error {
    let c = call(2, 2, 64);
    let sh = c.shape;
    let dense = Strides::dense(sh.n, 2, 64);
    let (q, kv) = (c.q.as_slice(), c.kv.as_slice());
    let (mut dq, mut dk, mut dv) = (c.dq.clone(), c.dk.clone(), c.dv.clone());
    backward_emulated(
        &c.plan,
        &sh,
        HostBackwardTensors {
            q: input(b, "q", q, dense),
            k: input(b, "k", kv, dense),
            v: input(b, "v", kv, dense),
            o: input(b, "o", q, dense),
            lse: &c.lse[..],
            d_o: input(b, "d_o", q, dense),
            dq: output(b, "dq", &mut dq, dense),
            dk: output(b, "dk", &mut dk, dense),
            dv: output(b, "dv", &mut dv, dense),
        },
        0.125,
        Schedule::Ascending,
    )
    .unwrap_err()
}

#[test]
fn bad_views_are_rejected_with_their_name() {
    for name in ["q", "k", "v", "o", "d_o"] {
        for b in [Break::Misaligned(name), Break::Short(name)] {
            let err = run_broken(b);
            assert!(
                matches!(err, Error::InvalidView { what, .. } if what == name),
                "{b:?}: {err}"
            );
        }
    }
    for name in ["dq", "dk", "dv"] {
        for b in [Break::Short(name), Break::SelfOverlap(name)] {
            let err = run_broken(b);
            assert!(
                matches!(err, Error::InvalidView { what, .. } if what == name),
                "{b:?}: {err}"
            );
        }
    }
}

#[test]
fn lse_of_the_wrong_length_is_rejected() {
    let mut c = call(2, 2, 64);
    c.lse.pop();
    let err = c.run().unwrap_err();
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
}
