//! The raw entry (memory given by address, element counts and strides) on the emulator: the same
//! bits as the typed calls on the same memory, and bad numbers refused with the typed errors
//! the typed calls give. Also the trainer-facing surface around it: dense tensors described from
//! the shape (a wrong head count named as such), one scale type, a batch's plan in one call.

use prefix_attn::attention::workspace::workspace_len;
use prefix_attn::attention::{
    backward_emulated_raw, forward_emulated_raw, BackwardChoice, KernelChoice, RawBackward,
    RawBuffer, RawForward, RawTensor, RawWorkspace,
};
use prefix_attn::emu::GuardedBuf;
use prefix_attn::layout::RowBuilder;
use prefix_attn::{
    backward_emulated, bf16, f16, forward_emulated, AttnDtype, AttnShape, Batch, BatchOptions,
    Dtype, Error, HostBackwardTensors, HostTensors, Plan, Sample, Scale, Schedule, VisEnd,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A DPO-shaped row (prompt 37, completions 21 and 30), a packed row of two documents and
/// padding: two rows of 100 tokens.
fn plan() -> Plan {
    let mut a = RowBuilder::new();
    a.prefix_completions(37, &[21, 30]).unwrap();
    let a = a.finish(100).unwrap();
    let mut b = RowBuilder::new();
    b.document(60).unwrap();
    b.document(25).unwrap();
    let b = b.finish(100).unwrap();
    Plan::new(VisEnd::from_rows(&[a.vis_end(), b.vis_end()]).unwrap()).unwrap()
}

fn shape(q_heads: usize, kv_heads: usize, head_dim: usize) -> AttnShape {
    AttnShape {
        rows: 2,
        n: 100,
        q_heads,
        kv_heads,
        head_dim,
    }
}

trait Elem: AttnDtype + prefix_attn::emu::Element + Default + PartialEq + std::fmt::Debug {
    fn of(x: f32) -> Self;
    fn bits(self) -> u16;
}
impl Elem for bf16 {
    fn of(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}
impl Elem for f16 {
    fn of(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

fn random<T: Elem>(rng: &mut StdRng, len: usize) -> GuardedBuf<T> {
    let v: Vec<T> = (0..len)
        .map(|_| T::of(rng.random_range(-1.0..1.0)))
        .collect();
    GuardedBuf::from_slice(&v)
}

fn addr<T: prefix_attn::emu::Element>(b: &GuardedBuf<T>) -> u64 {
    b.as_ptr() as usize as u64
}

fn dense<T: prefix_attn::emu::Element>(
    b: &GuardedBuf<T>,
    sh: &AttnShape,
    heads: usize,
) -> RawTensor {
    let t = RawTensor::dense(addr(b), sh, heads);
    assert_eq!(t.len, b.len());
    t
}

fn flat(b: &GuardedBuf<f32>) -> RawBuffer {
    RawBuffer {
        addr: addr(b),
        len: b.len(),
    }
}

/// Inputs, and outputs poisoned, of one call.
struct Bufs<T: prefix_attn::emu::Element> {
    q: GuardedBuf<T>,
    k: GuardedBuf<T>,
    v: GuardedBuf<T>,
    d_o: GuardedBuf<T>,
    o: GuardedBuf<T>,
    lse: GuardedBuf<f32>,
    dq: GuardedBuf<T>,
    dk: GuardedBuf<T>,
    dv: GuardedBuf<T>,
}

fn bufs<T: Elem>(sh: &AttnShape, seed: u64) -> Bufs<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    let poison = T::of(f32::NAN);
    Bufs {
        q: random(&mut rng, sh.q_len()),
        k: random(&mut rng, sh.kv_len()),
        v: random(&mut rng, sh.kv_len()),
        d_o: random(&mut rng, sh.q_len()),
        o: GuardedBuf::filled(sh.q_len(), poison),
        lse: GuardedBuf::filled(sh.lse_len(), f32::NAN),
        dq: GuardedBuf::filled(sh.q_len(), poison),
        dk: GuardedBuf::filled(sh.kv_len(), poison),
        dv: GuardedBuf::filled(sh.kv_len(), poison),
    }
}

fn bits<T: Elem>(b: &GuardedBuf<T>) -> Vec<u16> {
    b.as_slice().iter().map(|x| x.bits()).collect()
}

/// Forward and backward by the typed calls, then by the raw entry on fresh poisoned outputs:
/// every element of O, LSE, dQ, dK and dV has the same bits.
fn same_bits<T: Elem>(sh: AttnShape, seed: u64) {
    let plan = plan();
    let scale = Scale::default_for(sh.head_dim);
    let mut typed = bufs::<T>(&sh, seed);
    let t = &mut typed;
    forward_emulated(
        &plan,
        &sh,
        HostTensors::dense(
            &sh,
            t.q.as_slice(),
            t.k.as_slice(),
            t.v.as_slice(),
            t.o.as_mut_slice(),
            t.lse.as_mut_slice(),
        )
        .unwrap(),
        scale,
        Schedule::Ascending,
    )
    .unwrap();
    let (o, lse) = (t.o.to_vec(), t.lse.to_vec());
    backward_emulated(
        &plan,
        &sh,
        HostBackwardTensors::dense(
            &sh,
            t.q.as_slice(),
            t.k.as_slice(),
            t.v.as_slice(),
            &o,
            &lse,
            t.d_o.as_slice(),
            t.dq.as_mut_slice(),
            t.dk.as_mut_slice(),
            t.dv.as_mut_slice(),
        )
        .unwrap(),
        scale,
        Schedule::Ascending,
    )
    .unwrap();

    let r = bufs::<T>(&sh, seed);
    let (qh, kvh) = (sh.q_heads, sh.kv_heads);
    let fwd = RawForward {
        q: dense(&r.q, &sh, qh),
        k: dense(&r.k, &sh, kvh),
        v: dense(&r.v, &sh, kvh),
        o: dense(&r.o, &sh, qh),
        lse: flat(&r.lse),
    };
    let dtype = Dtype::of::<T>();
    // SAFETY: every address is a live GuardedBuf of the stated length, used by nothing else
    // during the synchronous calls.
    unsafe {
        forward_emulated_raw(
            &plan,
            &sh,
            dtype,
            &fwd,
            scale,
            KernelChoice::default(),
            Schedule::Ascending,
        )
        .unwrap();
    }
    let ws_len = workspace_len(&sh).unwrap();
    let (ws_a, ws_b) = (
        GuardedBuf::filled(ws_len, f32::NAN),
        GuardedBuf::filled(ws_len, f32::NAN),
    );
    let bwd = RawBackward {
        q: fwd.q,
        k: fwd.k,
        v: fwd.v,
        o: fwd.o,
        lse: fwd.lse,
        d_o: dense(&r.d_o, &sh, qh),
        dq: dense(&r.dq, &sh, qh),
        dk: dense(&r.dk, &sh, kvh),
        dv: dense(&r.dv, &sh, kvh),
        workspace: RawWorkspace {
            lse_log2: flat(&ws_a),
            delta: flat(&ws_b),
        },
    };
    // SAFETY: as above.
    unsafe {
        backward_emulated_raw(
            &plan,
            &sh,
            dtype,
            &bwd,
            scale,
            BackwardChoice::default(),
            Schedule::Ascending,
        )
        .unwrap();
    }
    for (name, a, b) in [
        ("o", bits(&typed.o), bits(&r.o)),
        ("dq", bits(&typed.dq), bits(&r.dq)),
        ("dk", bits(&typed.dk), bits(&r.dk)),
        ("dv", bits(&typed.dv), bits(&r.dv)),
    ] {
        assert_eq!(a, b, "{name}: raw entry differs from the typed call");
    }
    let lse_bits =
        |b: &GuardedBuf<f32>| b.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(lse_bits(&typed.lse), lse_bits(&r.lse), "lse");
    // Every output element was written (no poison left), and the guards held.
    assert!(r
        .o
        .as_slice()
        .iter()
        .all(|x| x.bits() != T::of(f32::NAN).bits()));
    for (n, b) in [("o", &r.o), ("dq", &r.dq), ("dk", &r.dk), ("dv", &r.dv)] {
        b.check_guards(n).unwrap();
    }
    ws_a.check_guards("ws").unwrap();
}

#[test]
fn raw_entry_gives_the_typed_calls_bits_bf16_gqa_d64() {
    same_bits::<bf16>(shape(4, 2, 64), 1);
}

#[test]
fn raw_entry_gives_the_typed_calls_bits_f16_d128() {
    same_bits::<f16>(shape(2, 1, 128), 2);
}

/// A valid raw forward call whose numbers each case breaks in one way.
fn bad_forward(edit: impl FnOnce(&mut AttnShape, &mut RawForward, &mut Scale)) -> Error {
    let mut sh = shape(2, 1, 64);
    let plan = plan();
    let b = bufs::<bf16>(&sh, 3);
    let mut t = RawForward {
        q: dense(&b.q, &sh, 2),
        k: dense(&b.k, &sh, 1),
        v: dense(&b.v, &sh, 1),
        o: dense(&b.o, &sh, 2),
        lse: flat(&b.lse),
    };
    let mut scale = Scale::from(0.125f32);
    edit(&mut sh, &mut t, &mut scale);
    // SAFETY: every edit keeps each (addr, len) inside its GuardedBuf or is refused by a check
    // before any launch (what the test asserts).
    unsafe {
        forward_emulated_raw(
            &plan,
            &sh,
            Dtype::Bf16,
            &t,
            scale,
            KernelChoice::default(),
            Schedule::Ascending,
        )
        .unwrap_err()
    }
}

#[test]
fn raw_forward_refuses_bad_numbers_with_typed_errors() {
    // A length one short of what the strides reach.
    let e = bad_forward(|_, t, _| t.q.len -= 1);
    assert!(matches!(e, Error::InvalidView { what: "q", .. }), "{e}");
    // K described with the query heads: a head-count mistake, named.
    let e = bad_forward(|sh, t, _| t.k.strides = prefix_attn::Strides::dense(sh.n, 2, 64));
    assert!(
        matches!(
            e,
            Error::WrongHeadCount {
                what: "k",
                expected: 1,
                found: 2
            }
        ),
        "{e}"
    );
    // Element 0 not 16-byte aligned.
    let e = bad_forward(|_, t, _| {
        t.v.addr += 2;
        t.v.len -= 1;
    });
    assert!(matches!(e, Error::InvalidView { what: "v", .. }), "{e}");
    // O overlapping itself (heads half a head apart).
    let e = bad_forward(|_, t, _| t.o.strides.head = 32);
    assert!(matches!(e, Error::InvalidView { what: "o", .. }), "{e}");
    // LSE too short.
    let e = bad_forward(|_, t, _| t.lse.len -= 1);
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e}");
    // A scale that is not finite and positive.
    let e = bad_forward(|_, _, s| *s = Scale::from(f32::NAN));
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                what: "softmax scale",
                ..
            }
        ),
        "{e}"
    );
    // A shape the plan was not built for.
    let e = bad_forward(|sh, _, _| sh.n = 90);
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e}");
    // Head counts that are not a GQA group.
    let e = bad_forward(|sh, _, _| sh.kv_heads = 3);
    assert!(matches!(e, Error::HeadCountMismatch { .. }), "{e}");
}

#[test]
fn raw_backward_refuses_bad_numbers_with_typed_errors() {
    let sh = shape(2, 1, 64);
    let plan = plan();
    let b = bufs::<bf16>(&sh, 4);
    let ws_len = workspace_len(&sh).unwrap();
    // Room for both arrays and a misaligned one.
    let ws = GuardedBuf::filled(2 * ws_len + 4, 0f32);
    let good = RawBackward {
        q: dense(&b.q, &sh, 2),
        k: dense(&b.k, &sh, 1),
        v: dense(&b.v, &sh, 1),
        o: dense(&b.o, &sh, 2),
        lse: flat(&b.lse),
        d_o: dense(&b.d_o, &sh, 2),
        dq: dense(&b.dq, &sh, 2),
        dk: dense(&b.dk, &sh, 1),
        dv: dense(&b.dv, &sh, 1),
        workspace: RawWorkspace {
            lse_log2: RawBuffer {
                addr: addr(&ws),
                len: ws_len,
            },
            delta: RawBuffer {
                addr: addr(&ws) + 4 * ws_len as u64,
                len: ws_len,
            },
        },
    };
    let run = |t: RawBackward| {
        // SAFETY: every case keeps each (addr, len) inside its buffer or is refused before any
        // launch.
        unsafe {
            backward_emulated_raw(
                &plan,
                &sh,
                Dtype::Bf16,
                &t,
                0.125,
                BackwardChoice::default(),
                Schedule::Ascending,
            )
        }
    };
    // A workspace one element short of the shape's.
    let mut t = good;
    t.workspace.delta.len -= 1;
    assert!(matches!(run(t), Err(Error::LengthMismatch { .. })));
    // A workspace array not 16-byte aligned.
    let mut t = good;
    t.workspace.delta.addr += 4;
    assert!(matches!(
        run(t),
        Err(Error::InvalidView {
            what: "workspace delta",
            ..
        })
    ));
    // dK written over dQ, dV over an input.
    let mut t = good;
    t.dk = RawTensor::dense(addr(&b.dq), &sh, 1);
    assert!(matches!(
        run(t),
        Err(Error::InvalidView { what: "dq", .. } | Error::InvalidView { what: "dk", .. })
    ));
    let mut t = good;
    t.dv = t.k;
    assert!(matches!(run(t), Err(Error::InvalidView { what: "dv", .. })));
    // dO too short.
    let mut t = good;
    t.d_o.len -= 64;
    assert!(matches!(
        run(t),
        Err(Error::InvalidView { what: "d_o", .. })
    ));
    // The valid call passes.
    run(good).unwrap();
}

#[test]
fn dense_tensors_name_a_wrong_head_count() {
    let sh = shape(4, 2, 64);
    let q = vec![bf16::ZERO; sh.q_len()];
    let kv = vec![bf16::ZERO; sh.kv_len()];
    let mut o = vec![bf16::ZERO; sh.q_len()];
    let mut lse = vec![0f32; sh.lse_len()];
    // K given with the query heads' length: 4 heads where the shape says 2.
    let e = HostTensors::dense(&sh, &q, &q, &kv, &mut o, &mut lse)
        .err()
        .unwrap();
    assert_eq!(
        e,
        Error::WrongHeadCount {
            what: "k",
            expected: 2,
            found: 4
        }
    );
    assert!(e.to_string().contains("kv_heads"), "{e}");
    // A length that is no whole number of heads.
    let e = HostTensors::dense(&sh, &q[1..], &kv, &kv, &mut o, &mut lse)
        .err()
        .unwrap();
    assert!(matches!(e, Error::LengthMismatch { what: "q", .. }), "{e}");
    assert!(HostTensors::dense(&sh, &q, &kv, &kv, &mut o, &mut lse).is_ok());
}

#[test]
fn one_scale_type_for_kernels_and_reference() {
    // f64 and f32 arguments are the same scale once rounded; the reference widens that f32.
    let d = 128usize;
    assert_eq!(Scale::from(1.0 / (d as f64).sqrt()), Scale::default_for(d));
    assert_eq!(Scale::from(0.125f32).as_f64(), 0.125);
    let sh = AttnShape {
        rows: 1,
        n: 3,
        q_heads: 1,
        kv_heads: 1,
        head_dim: 16,
    };
    let ve = VisEnd::from_rows(&[vec![3, 3, 3]]).unwrap();
    let x: Vec<f64> = (0..48).map(|i| (i as f64 * 0.37).sin()).collect();
    let a = prefix_attn::reference::forward(&sh, &ve, &x, &x, &x, 0.3f64).unwrap();
    let b = prefix_attn::reference::forward(&sh, &ve, &x, &x, &x, Scale::from(0.3f32)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_batch_gives_its_plan_and_shape() {
    let samples = vec![
        Sample::completions(vec![5, 8, 2, 9], vec![vec![4, 4, 1], vec![7, 3]]),
        Sample::completions(vec![6, 1], vec![vec![2], vec![3, 3], vec![8, 1, 1]]),
    ];
    let opts = BatchOptions {
        round_to: Some(64),
        ..BatchOptions::new(256)
    };
    let batch = Batch::shared(&samples, &opts).unwrap();
    let plan = batch.plan().unwrap();
    assert_eq!(plan.vis_end(), batch.vis_end());
    assert_eq!((plan.rows(), plan.n()), (batch.rows(), batch.n()));
    assert!(!plan.is_on_device());
    let sh = batch.attn_shape(4, 2, 64).unwrap();
    assert_eq!(
        (sh.rows, sh.n, sh.q_heads, sh.kv_heads, sh.head_dim),
        (batch.rows(), batch.n(), 4, 2, 64)
    );
    assert!(matches!(
        batch.attn_shape(3, 2, 64),
        Err(Error::HeadCountMismatch { .. })
    ));
    // Clones share the lists.
    let c = plan.clone();
    assert!(std::ptr::eq(c.vis_end(), plan.vis_end()));
}
