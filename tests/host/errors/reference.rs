//! Every bad input to the reference returns its typed error (and never panics).

use prefix_attn::mask::VisEnd;
use prefix_attn::reference;
use prefix_attn::{AttnShape, Error};

const SHAPE: AttnShape = AttnShape {
    rows: 2,
    n: 4,
    q_heads: 4,
    kv_heads: 2,
    head_dim: 3,
};

fn vis() -> VisEnd {
    VisEnd::from_rows(&[[4, 4, 4, 4], [2, 2, 4, 3]]).unwrap()
}

fn filled(len: usize) -> Vec<f32> {
    (0..len).map(|i| 0.1 + i as f32 * 0.01).collect()
}

/// Forward and backward of the given inputs; both must fail with `want`.
fn expect_both(
    shape: &AttnShape,
    vis: &VisEnd,
    lens: [usize; 4],
    scale: f64,
    want: impl Fn(&Error) -> bool,
    label: &str,
) {
    let [q, k, v, d_o] = lens.map(filled);
    let fwd = reference::forward(shape, vis, &q, &k, &v, scale);
    match &fwd {
        Err(e) if want(e) => {}
        other => panic!("{label}: forward gave {other:?}"),
    }
    let bwd = reference::backward(shape, vis, &q, &k, &v, &d_o, scale);
    match &bwd {
        Err(e) if want(e) => {}
        other => panic!("{label}: backward gave {other:?}"),
    }
}

fn good_lens(shape: &AttnShape) -> [usize; 4] {
    [shape.q_len(), shape.kv_len(), shape.kv_len(), shape.q_len()]
}

#[test]
fn good_inputs_pass() {
    let [q, k, v, d_o] = good_lens(&SHAPE).map(filled);
    reference::forward(&SHAPE, &vis(), &q, &k, &v, 0.5).unwrap();
    reference::backward(&SHAPE, &vis(), &q, &k, &v, &d_o, 0.5).unwrap();
}

#[test]
fn wrong_tensor_lengths_name_the_tensor() {
    for (idx, name) in ["q", "k", "v"].into_iter().enumerate() {
        for delta in [-1isize, 1] {
            let mut lens = good_lens(&SHAPE);
            let expected = lens[idx];
            lens[idx] = (lens[idx] as isize + delta) as usize;
            let got = lens[idx];
            expect_both(
                &SHAPE,
                &vis(),
                lens,
                0.5,
                |e| {
                    *e == Error::LengthMismatch {
                        what: name,
                        expected,
                        got,
                    }
                },
                name,
            );
        }
    }
    // d_o only matters to backward.
    let mut lens = good_lens(&SHAPE);
    lens[3] -= 1;
    let [q, k, v, d_o] = lens.map(filled);
    let err = reference::backward(&SHAPE, &vis(), &q, &k, &v, &d_o, 0.5).unwrap_err();
    assert_eq!(
        err,
        Error::LengthMismatch {
            what: "d_o",
            expected: SHAPE.q_len(),
            got: SHAPE.q_len() - 1
        }
    );
    // Q and K swapped (K given Q's length) is caught too.
    let mut lens = good_lens(&SHAPE);
    lens[1] = SHAPE.q_len();
    expect_both(
        &SHAPE,
        &vis(),
        lens,
        0.5,
        |e| matches!(e, Error::LengthMismatch { what: "k", .. }),
        "k as q",
    );
}

#[test]
fn vis_end_must_describe_the_same_rows() {
    let other_n = VisEnd::from_rows(&[[5, 5, 5, 5, 5], [5, 5, 5, 5, 5]]).unwrap();
    let other_rows = VisEnd::from_rows(&[[4, 4, 4, 4]]).unwrap();
    for (label, vis, what) in [
        ("other n", other_n, "vis_end row length (shape.n)"),
        ("other rows", other_rows, "vis_end rows (shape.rows)"),
    ] {
        expect_both(
            &SHAPE,
            &vis,
            good_lens(&SHAPE),
            0.5,
            |e| matches!(e, Error::LengthMismatch { what: w, .. } if *w == what),
            label,
        );
    }
}

#[test]
fn scale_must_be_finite_and_positive() {
    for scale in [0.0, -0.5, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        expect_both(
            &SHAPE,
            &vis(),
            good_lens(&SHAPE),
            scale,
            |e| matches!(e, Error::InvalidArgument { what: "scale", .. }),
            &format!("scale {scale}"),
        );
    }
}

#[test]
fn bad_shapes_are_rejected() {
    for (q_heads, kv_heads) in [(3, 2), (2, 4), (4, 0), (0, 2)] {
        let shape = AttnShape {
            q_heads,
            kv_heads,
            ..SHAPE
        };
        expect_both(
            &shape,
            &vis(),
            good_lens(&SHAPE),
            0.5,
            |e| *e == Error::HeadCountMismatch { q_heads, kv_heads },
            &format!("{q_heads}/{kv_heads} heads"),
        );
    }
    let no_dim = AttnShape {
        head_dim: 0,
        ..SHAPE
    };
    expect_both(
        &no_dim,
        &vis(),
        [0; 4],
        0.5,
        |e| matches!(e, Error::UnsupportedHeadDim { head_dim: 0 }),
        "head_dim 0",
    );
    expect_both(
        &AttnShape { rows: 0, ..SHAPE },
        &vis(),
        [0; 4],
        0.5,
        |e| matches!(e, Error::NoRows { .. }),
        "no rows",
    );
    expect_both(
        &AttnShape { n: 0, ..SHAPE },
        &vis(),
        [0; 4],
        0.5,
        |e| matches!(e, Error::EmptyRow { .. }),
        "empty rows",
    );
}
